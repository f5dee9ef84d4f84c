//! HTTP/1.1 request framing under arbitrary bytes.
//!
//! The first three bytes pick the limits and how the rest is split across
//! reads. Checks: never panics; the events are the same whether the bytes
//! arrive at once or in pieces (ignoring `Continue`, which depends on timing);
//! bodies respect the limit; a terminal event is sticky.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slimcap::wire::http1::{Event, RequestReader};

#[derive(Debug, PartialEq, Eq)]
enum Out {
    Req(String, String, bool, bool, Vec<u8>),
    TooLarge,
    Bad,
    Closed,
}

fn run(input: &[u8], max_head: usize, max_body: usize, piece: usize) -> Vec<Out> {
    let mut rr = RequestReader::with_limits(max_head, max_body);
    let mut out = Vec::new();
    let mut i = 0;
    let mut round = 0usize;
    loop {
        loop {
            let o = match rr.next() {
                Event::NeedMore => break,
                Event::Continue => continue,
                Event::Request(r) => {
                    assert!(r.body.len() <= max_body);
                    Out::Req(r.method.into(), r.path.into(), r.keep_alive, r.expect_continue, r.body.to_vec())
                }
                Event::TooLarge => Out::TooLarge,
                Event::Bad(_) => Out::Bad,
                Event::Closed => Out::Closed,
            };
            let terminal = !matches!(o, Out::Req(..));
            out.push(o);
            if terminal {
                // Sticky.
                let again = rr.next();
                assert!(matches!(again, Event::TooLarge | Event::Bad(_) | Event::Closed));
                return out;
            }
        }
        if i >= input.len() {
            return out;
        }
        round += 1;
        let n = piece.min(input.len() - i);
        if round % 2 == 0 {
            rr.feed(&input[i..i + n]);
            i += n;
        } else {
            let spare = rr.spare();
            let n = n.min(spare.len());
            spare[..n].copy_from_slice(&input[i..i + n]);
            rr.filled(n);
            i += n;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (cfg, input) = data.split_at(3);
    let max_head = 16 + cfg[0] as usize * 4;
    let max_body = cfg[1] as usize * 8;
    let piece = 1 + cfg[2] as usize % 64;
    let whole = run(input, max_head, max_body, usize::MAX);
    let split = run(input, max_head, max_body, piece);
    assert_eq!(whole, split, "piece size {piece}");
});
