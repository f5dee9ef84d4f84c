//! The global allocator of the release binary: musl's malloc with a cache of
//! freed blocks in front of it.
//!
//! musl's allocator hands memory back to the kernel as soon as a group of
//! blocks is free, so every telemetry batch (the parsed records and their
//! strings, built on the listener thread and freed on the core thread) mapped
//! and unmapped pages again: ~12 `mmap`/`munmap` calls and ~30 page faults
//! per 100-line invocation, on the billed path after `runtimeDone`. Here a
//! freed block of up to [`MAX_BLOCK`] bytes goes on a free list of its
//! power-of-two class and serves the next allocation of that class; only
//! blocks beyond [`CLASS_CAP`] bytes per class go back to musl. The cost:
//! up to 2x rounding on small blocks, and memory kept after a burst (the peak
//! RSS is unchanged).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest pooled block; larger ones go straight to musl (which maps them).
const MAX_BLOCK: usize = 256 * 1024;
/// Classes 16 B, 32 B, … MAX_BLOCK.
const CLASSES: usize = 15;
/// Bytes kept free per class; more are given back.
const CLASS_CAP: usize = 256 << 10;
const ALIGN: usize = 16;

pub struct Pool;

struct Lists {
    head: [*mut u8; CLASSES],
    count: [usize; CLASSES],
}

struct Shared(std::cell::UnsafeCell<Lists>);
// Only touched under LOCK.
unsafe impl Sync for Shared {}

static LOCK: AtomicBool = AtomicBool::new(false);
static LISTS: Shared = Shared(std::cell::UnsafeCell::new(Lists { head: [null_mut(); CLASSES], count: [0; CLASSES] }));

/// The class of `l`, or None for blocks musl handles directly.
fn class(l: Layout) -> Option<usize> {
    if l.size() > MAX_BLOCK || l.align() > ALIGN {
        return None;
    }
    Some((l.size().max(ALIGN).next_power_of_two().trailing_zeros() - 4) as usize)
}

fn block(c: usize) -> Layout {
    // SAFETY: a power of two ≥ 16 with alignment 16.
    unsafe { Layout::from_size_align_unchecked(ALIGN << c, ALIGN) }
}

fn with_lists<R>(f: impl FnOnce(&mut Lists) -> R) -> R {
    let mut spins = 0u32;
    while LOCK.swap(true, Ordering::Acquire) {
        spins += 1;
        if spins > 64 {
            std::thread::yield_now(); // the holder may be descheduled
        } else {
            std::hint::spin_loop();
        }
    }
    // SAFETY: LOCK is held.
    let r = f(unsafe { &mut *LISTS.0.get() });
    LOCK.store(false, Ordering::Release);
    r
}

unsafe impl GlobalAlloc for Pool {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let Some(c) = class(l) else { return System.alloc(l) };
        let p = with_lists(|s| {
            let p = s.head[c];
            if !p.is_null() {
                // SAFETY: a free block holds the next pointer in its first word.
                s.head[c] = unsafe { *(p as *mut *mut u8) };
                s.count[c] -= 1;
            }
            p
        });
        if p.is_null() {
            System.alloc(block(c))
        } else {
            p
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let Some(c) = class(l) else { return System.dealloc(p, l) };
        let kept = with_lists(|s| {
            if (s.count[c] + 1) << (c + 4) > CLASS_CAP {
                return false;
            }
            // SAFETY: the block is ours now and at least 16 bytes.
            unsafe { *(p as *mut *mut u8) = s.head[c] };
            s.head[c] = p;
            s.count[c] += 1;
            true
        });
        if !kept {
            System.dealloc(p, block(c));
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, l.align());
        match (class(l), class(new)) {
            (None, None) => return System.realloc(p, l, new_size),
            (Some(a), Some(b)) if a == b => return p,
            _ => {}
        }
        let q = self.alloc(new);
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            self.dealloc(p, l);
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let c = |n| class(Layout::from_size_align(n, 8).unwrap());
        assert_eq!((c(1), c(16), c(17), c(4096), c(MAX_BLOCK)), (Some(0), Some(0), Some(1), Some(8), Some(CLASSES - 1)));
        assert_eq!(c(MAX_BLOCK + 1), None);
        assert_eq!(class(Layout::from_size_align(64, 64).unwrap()), None);
    }

    #[test]
    fn reuse_and_realloc() {
        unsafe {
            let l = Layout::from_size_align(100, 8).unwrap();
            let a = Pool.alloc(l);
            a.write_bytes(7, 100);
            Pool.dealloc(a, l);
            let b = Pool.alloc(Layout::from_size_align(120, 8).unwrap());
            assert_eq!(a, b, "the freed 128-byte block serves the next one");
            b.write_bytes(9, 120);
            let c = Pool.realloc(b, Layout::from_size_align(120, 8).unwrap(), 128);
            assert_eq!(b, c, "same class: in place");
            let d = Pool.realloc(c, Layout::from_size_align(128, 8).unwrap(), 300_000);
            assert_eq!(*d.add(119), 9);
            let e = Pool.realloc(d, Layout::from_size_align(300_000, 8).unwrap(), 64);
            assert_eq!(*e.add(63), 9);
            Pool.dealloc(e, Layout::from_size_align(64, 8).unwrap());
        }
    }
}
