//! Hand-written protobuf encoder for the agent's `SketchPayload`
//! (`/api/beta/sketches`, agent-payload `proto/metrics/agent_payload.proto`):
//!
//! ```text
//! SketchPayload { repeated Sketch sketches = 1; }
//! Sketch        { string metric = 1; string host = 2; repeated string tags = 4;
//!                 repeated Dogsketch dogsketches = 7; }
//! Dogsketch     { int64 ts = 1; int64 cnt = 2; double min = 3; double max = 4;
//!                 double avg = 5; double sum = 6;
//!                 repeated sint32 k = 7 [packed]; repeated uint32 n = 8 [packed]; }
//! ```
//!
//! Trade-offs: no protobuf crate (a few dozen lines instead of a dependency
//! and its generated code). A `SketchPayload` is just its `sketches` fields
//! one after another, so a payload is built by appending with
//! [`write_sketch`]; the caller can stop at any entry-count or byte limit
//! without re-encoding. Nested messages are written in place with a one-byte
//! length placeholder that is widened (a short memmove) only when the body
//! reaches 128 bytes. Default values (0, empty string) are omitted, as
//! proto3 encoders do; decoders read them back as defaults.

use crate::datadog::sketch::Sketch;

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, (field << 3 | wire) as u64);
}

fn int64(out: &mut Vec<u8>, field: u32, v: i64) {
    if v != 0 {
        key(out, field, VARINT);
        varint(out, v as u64);
    }
}

fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    if v.to_bits() != 0 {
        key(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    key(out, field, LEN);
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Writes field `field` as a length-delimited body produced by `body`.
fn nested(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.push(0);
    body(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(5);
        varint(&mut prefix, len as u64);
        out.splice(at..at + 1, prefix);
    }
}

fn zigzag(v: i32) -> u64 {
    ((v << 1) ^ (v >> 31)) as u32 as u64
}

/// Writes one `Dogsketch` body (no field key/length).
fn dogsketch(out: &mut Vec<u8>, ts: i64, s: &Sketch) {
    int64(out, 1, ts);
    int64(out, 2, s.count() as i64);
    double(out, 3, s.min());
    double(out, 4, s.max());
    double(out, 5, s.avg());
    double(out, 6, s.sum());
    if s.key_count() > 0 {
        nested(out, 7, |o| s.bins().for_each(|(k, _)| varint(o, zigzag(k))));
        nested(out, 8, |o| s.bins().for_each(|(_, n)| varint(o, n as u64)));
    }
}

/// Appends one `SketchPayload.sketches` entry to `out`: the metric `metric`
/// on host `host` (omitted when empty) with `tags` (`"k:v"` strings), and
/// one `Dogsketch` per `(ts_seconds, sketch)` point. A whole payload is any
/// number of these calls on the same buffer.
pub fn write_sketch<'a, T: AsRef<str>>(
    out: &mut Vec<u8>,
    metric: &str,
    host: &str,
    tags: impl IntoIterator<Item = T>,
    points: impl IntoIterator<Item = (i64, &'a Sketch)>,
) {
    nested(out, 1, |o| {
        string(o, 1, metric);
        if !host.is_empty() {
            string(o, 2, host);
        }
        for t in tags {
            string(o, 4, t.as_ref());
        }
        for (ts, s) in points {
            nested(o, 7, |o| dogsketch(o, ts, s));
        }
    });
}

/// The independent prost decoder the end-to-end tests use too.
#[cfg(test)]
#[path = "../../tests/common/sketch_proto.rs"]
mod sketch_proto;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    pub use super::sketch_proto::{decode, Dogsketch};

    /// Quantile from decoded bins, computed independently of `Sketch`:
    /// the value of key k is γ^(k-1338) (keys of the agent's config).
    pub fn quantile(d: &Dogsketch, q: f64) -> f64 {
        let rank = (q * (d.cnt - 1) as f64).round();
        let mut seen = 0.0;
        for (k, n) in d.k.iter().zip(&d.n) {
            seen += *n as f64;
            if seen > rank {
                let m = (1.0f64 + 2.0 / 128.0).powi(k.abs() - 1338);
                let v = if *k == 0 { 0.0 } else { m.copysign(*k as f64) };
                return v.clamp(d.min, d.max);
            }
        }
        d.max
    }

    #[test]
    fn round_trips_through_prost() {
        let mut s = Sketch::new();
        let mut values = Vec::new();
        for i in 0..5000 {
            // 0.5 ms .. 15 s, skewed like durations.
            let v = 0.0005 * (1.0 + (i as f64 * 7.919) % 30000.0);
            s.insert(v);
            values.push(v);
        }
        let one = Sketch::of(1.0);
        let mut body = Vec::new();
        write_sketch(
            &mut body,
            "aws.lambda.enhanced.duration",
            "",
            ["functionname:f", "region:us-east-1"],
            [(1_700_000_000, &s), (1_700_000_010, &one)],
        );
        write_sketch(
            &mut body,
            "m2",
            "h",
            Vec::<String>::new(),
            [(-5, &Sketch::new())],
        );

        let p = decode(&body);
        assert_eq!(p.sketches.len(), 2);
        let sk = &p.sketches[0];
        assert_eq!(sk.metric, "aws.lambda.enhanced.duration");
        assert_eq!(sk.host, "");
        assert_eq!(sk.tags, ["functionname:f", "region:us-east-1"]);
        assert_eq!(sk.dogsketches.len(), 2);
        let d = &sk.dogsketches[0];
        assert_eq!(d.ts, 1_700_000_000);
        assert_eq!(d.cnt, 5000);
        assert_eq!(
            (d.min, d.max, d.sum, d.avg),
            (s.min(), s.max(), s.sum(), s.avg())
        );
        assert_eq!(d.n.iter().map(|&n| n as i64).sum::<i64>(), 5000);
        let bins: Vec<_> = s.bins().collect();
        assert_eq!(d.k, bins.iter().map(|b| b.0).collect::<Vec<_>>());
        assert!(d.k.windows(2).all(|w| w[0] < w[1]));

        values.sort_by(f64::total_cmp);
        for q in [0.01, 0.25, 0.5, 0.75, 0.9, 0.99] {
            let exact = values[(q * (values.len() - 1) as f64).round() as usize];
            let est = quantile(d, q);
            assert!((est - exact).abs() <= 0.01 * exact, "q={q} {exact} {est}");
        }

        let d1 = &sk.dogsketches[1];
        assert_eq!(
            (d1.cnt, d1.min, d1.max, d1.sum, d1.avg),
            (1, 1.0, 1.0, 1.0, 1.0)
        );
        assert_eq!((d1.k.as_slice(), d1.n.as_slice()), (&[1338][..], &[1][..]));

        let e = &p.sketches[1];
        assert_eq!((e.metric.as_str(), e.host.as_str()), ("m2", "h"));
        assert!(e.tags.is_empty());
        assert_eq!(e.dogsketches[0].ts, -5);
        assert_eq!(e.dogsketches[0].cnt, 0);
        assert!(e.dogsketches[0].k.is_empty());
    }

    #[test]
    fn negative_zero_and_long_lengths() {
        let mut s = Sketch::new();
        for v in [-3.5, 0.0, 2.0] {
            s.insert(v);
        }
        let long_tag = "t:".to_string() + &"x".repeat(300);
        let mut body = Vec::new();
        write_sketch(&mut body, "m", "", [long_tag.as_str()], [(1, &s)]);
        let p = decode(&body);
        assert_eq!(p.sketches[0].tags[0], long_tag);
        let d = &p.sketches[0].dogsketches[0];
        assert_eq!(
            d.k,
            vec![
                -(crate::datadog::sketch::key(3.5) as i32),
                0,
                crate::datadog::sketch::key(2.0) as i32
            ]
        );
        assert_eq!(d.n, vec![1, 1, 1]);
        assert_eq!((d.min, d.max, d.sum), (-3.5, 2.0, -1.5));
    }

    #[test]
    fn varint_and_zigzag() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
        assert_eq!([zigzag(0), zigzag(-1), zigzag(1), zigzag(-2)], [0, 1, 2, 3]);
        assert_eq!(zigzag(i32::MIN), u32::MAX as u64);
    }
}
