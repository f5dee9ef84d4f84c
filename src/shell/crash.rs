//! Crash reports from signal handlers: a fatal signal (SIGILL from
//! `panic=immediate-abort`'s trap on x86_64, SIGTRAP from `brk` on aarch64,
//! SIGSEGV, a stack overflow, ...) is sent to the platform as `init/error` or
//! `exit/error` (`Extension.Crash`) before the process dies of it.
//!
//! Everything is prepared by [`arm`], after `register`: the whole request
//! (`crate::lambda::extapi::CrashRequest`) and the Runtime API's socket address. The
//! handler then only patches bytes and calls async-signal-safe functions
//! (socket, setsockopt, connect, send, read, close, write, raise). The
//! handlers are installed with `SA_RESETHAND`: the default action is back
//! when one runs, and it re-raises the signal, so the exit status still says
//! what happened. It runs on an alternate stack (a stack overflow is reported
//! too) on every thread that called [`altstack`] (each gets its own).
//!
//! Only one report per process: the panic hook (host builds, which have the
//! panic message) claims it with [`claim`] first, and the SIGABRT of the
//! abort that follows is then not reported again.

use crate::lambda::extapi::CrashRequest;
use std::ffi::{c_int, c_void};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};

/// Set once init is done: crashes go to `exit/error` from then on.
pub static INIT_DONE: AtomicBool = AtomicBool::new(false);

/// 0: nothing reported yet; 1: claimed (a report is going out or went out).
static CLAIMED: AtomicU8 = AtomicU8::new(0);

struct Prepared {
    req: CrashRequest,
    /// `struct sockaddr_in` (the Runtime API is IPv4).
    addr: [u8; 16],
}

static PREPARED: AtomicPtr<Prepared> = AtomicPtr::new(std::ptr::null_mut());

// Linux, the same on x86_64 and aarch64 (asm-generic), musl and glibc.
const SIGILL: c_int = 4;
const SIGTRAP: c_int = 5;
const SIGABRT: c_int = 6;
const SIGBUS: c_int = 7;
const SIGFPE: c_int = 8;
const SIGSEGV: c_int = 11;
const SA_ONSTACK: c_int = 0x0800_0000;
const SA_RESETHAND: c_int = 0x8000_0000u32 as c_int;
const SS_DISABLE: c_int = 2;
const SOCK_STREAM_CLOEXEC: c_int = 1 | 0o2000000;
const SOL_SOCKET: c_int = 1;
const SO_RCVTIMEO: c_int = 20;
const SO_SNDTIMEO: c_int = 21;
const MSG_NOSIGNAL: c_int = 0x4000;

/// libc's `struct sigaction` (glibc and musl, x86_64 and aarch64: 152 bytes).
#[repr(C)]
struct SigAction {
    handler: usize,
    mask: [u64; 16],
    flags: c_int,
    restorer: usize,
}

/// `stack_t`.
#[repr(C)]
struct Stack {
    sp: *mut c_void,
    flags: c_int,
    size: usize,
}

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

extern "C" {
    fn sigaction(sig: c_int, act: *const SigAction, old: *mut SigAction) -> c_int;
    fn sigaltstack(ss: *const Stack, old: *mut Stack) -> c_int;
    fn raise(sig: c_int) -> c_int;
    fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: u32) -> c_int;
    fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int;
    fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize;
    fn read(fd: c_int, buf: *mut c_void, len: usize) -> isize;
    fn write(fd: c_int, buf: *const c_void, len: usize) -> isize;
    fn close(fd: c_int) -> c_int;
}

/// Claims the one crash report; false if it was claimed already.
pub fn claim() -> bool {
    CLAIMED.swap(1, Ordering::SeqCst) == 0
}

/// Prepares the report for `runtime_api` (`host:port`) and identifier `id`
/// and installs the handlers (with an alternate stack for this thread).
/// Call once, after `register`.
pub fn arm(runtime_api: &str, id: &str) {
    // An IPv4 literal in Lambda (a name is resolved here, once, off the register path).
    let resolved = runtime_api
        .rsplit_once(':')
        .and_then(|(host, port)| (host, port.parse().ok()?).to_socket_addrs().ok()?.next());
    let Some(SocketAddr::V4(sa)) = resolved else {
        return;
    };
    // struct sockaddr_in
    let mut addr = [0u8; 16];
    addr[0..2].copy_from_slice(&2u16.to_ne_bytes()); // AF_INET
    addr[2..4].copy_from_slice(&sa.port().to_be_bytes());
    addr[4..8].copy_from_slice(&sa.ip().octets());
    let p = Box::new(Prepared { req: CrashRequest::new(runtime_api, id), addr });
    PREPARED.store(Box::into_raw(p), Ordering::Release);
    altstack();
    let act = SigAction {
        handler: on_signal as extern "C" fn(c_int) as usize,
        mask: [0; 16],
        flags: SA_ONSTACK | SA_RESETHAND,
        restorer: 0,
    };
    for sig in [SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV] {
        // SAFETY: a valid struct sigaction for a handler that only makes signal-safe calls.
        unsafe { sigaction(sig, &act, std::ptr::null_mut()) };
    }
}

/// Size of each thread's alternate signal stack (std gives threads one only
/// when panics unwind or abort with a message; immediate-abort builds have none).
const ALT_SIZE: usize = 64 * 1024;

/// Gives the calling thread an alternate signal stack of its own if it has
/// none, so a stack overflow on it is reported too. Call it on long-lived
/// threads only: the stack is leaked (its pages cost memory only once a
/// signal touches them).
pub fn altstack() {
    let mut old = Stack { sp: std::ptr::null_mut(), flags: 0, size: 0 };
    // SAFETY: reads, then sets, this thread's alternate stack to a buffer that lives forever.
    unsafe {
        if sigaltstack(std::ptr::null(), &mut old) == 0 && old.flags & SS_DISABLE != 0 {
            let buf = Box::leak(Box::<[std::mem::MaybeUninit<u8>]>::new_uninit_slice(ALT_SIZE));
            let ss = Stack { sp: buf.as_mut_ptr() as *mut c_void, flags: 0, size: ALT_SIZE };
            sigaltstack(&ss, std::ptr::null_mut());
        }
    }
}

fn signal_name(sig: c_int) -> &'static str {
    match sig {
        SIGILL => "SIGILL",
        SIGTRAP => "SIGTRAP",
        SIGABRT => "SIGABRT",
        SIGBUS => "SIGBUS",
        SIGFPE => "SIGFPE",
        SIGSEGV => "SIGSEGV",
        _ => "signal",
    }
}

fn stderr(b: &[u8]) {
    // SAFETY: write(2) on a valid buffer.
    unsafe { write(2, b.as_ptr().cast(), b.len()) };
}

extern "C" fn on_signal(sig: c_int) {
    // SA_RESETHAND has put the default action back.
    if claim() {
        let name = signal_name(sig);
        stderr(b"[slimcap] ERROR crashed: ");
        stderr(name.as_bytes());
        stderr(b"\n");
        let p = PREPARED.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: leaked in `arm`, never freed; `claim` lets one thread in.
            let p = unsafe { &mut *p };
            p.req.patch(INIT_DONE.load(Ordering::Relaxed), name);
            send_report(p);
        }
    }
    // Pending until the handler returns, then the default action.
    // SAFETY: raise is async-signal-safe.
    unsafe { raise(sig) };
}

/// Connects, sends, and waits (≤ 1 s each) for the answer's first bytes.
fn send_report(p: &Prepared) {
    // SAFETY: plain socket calls on buffers that outlive them.
    unsafe {
        let fd = socket(2, SOCK_STREAM_CLOEXEC, 0); // AF_INET
        if fd < 0 {
            return;
        }
        let tv = Timeval { sec: 1, usec: 0 };
        let tvp = (&tv as *const Timeval).cast();
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tvp, 16);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tvp, 16);
        if connect(fd, p.addr.as_ptr().cast(), 16) == 0 {
            let b = &p.req.bytes;
            let mut off = 0;
            while off < b.len() {
                let n = send(fd, b[off..].as_ptr().cast(), b.len() - off, MSG_NOSIGNAL);
                if n <= 0 {
                    break;
                }
                off += n as usize;
            }
            if off == b.len() {
                let mut answer = [0u8; 64];
                read(fd, answer.as_mut_ptr().cast(), answer.len());
            }
        }
        close(fd);
    }
}

/// Where a crash goes now: `init/error` until init is done, then `exit/error`.
pub fn error_path() -> &'static str {
    if INIT_DONE.load(Ordering::Relaxed) {
        "exit/error"
    } else {
        "init/error"
    }
}

/// The test hook at an INVOKE (both shells): with `SLIMCAP_CRASH_TEST` set,
/// `overflow` overflows the stack, anything else panics.
pub fn test_at_invoke(crash_test: Option<&str>) {
    match crash_test {
        Some("overflow") => {
            std::hint::black_box(overflow(1));
        }
        Some(_) => panic!("SLIMCAP_CRASH_TEST is set"),
        None => {}
    }
}

/// SLIMCAP_CRASH_TEST=overflow: recurses until the stack overflows.
fn overflow(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 32]);
    if n == 0 {
        return 0;
    }
    overflow(n + 1).wrapping_add(frame[7])
}
