//! Datadog log entries from telemetry records, a bounded buffer, and batches
//! for `POST /api/v2/logs`.
//!
//! Each accepted record becomes one JSON entry, serialized once:
//!
//! ```text
//! {"message":{"message":"...","lambda":{"arn":"<ARN>","request_id":"<id>"}},
//!  "timestamp":<ms>,"status":"info","hostname":"<ARN>","service":"<svc>",
//!  "ddsource":"lambda","ddtags":"k:v,..."}
//! ```
//!
//! * `function` and `extension` records: the text as delivered (JSON-format
//!   records: the object's JSON text, which the intake parses); status from
//!   the record's `level`/`status`, normalised, else `info`.
//! * Platform records become the lines Datadog's extension writes:
//!   `INIT_START Runtime Version: ...`, `START RequestId: ... Version: ...`,
//!   `END RequestId: ...` (with `Task timed out after N seconds` /
//!   `Task failed: <errorType>` and status `error` when runtimeDone was not
//!   a success) and `REPORT RequestId: ... Duration: ... ms Billed Duration:
//!   ... ms Memory Size: ... MB Max Memory Used: ... MB[ Init Duration: ... ms]`
//!   (fields the record lacks, as on managed instances, are left out).
//! * request id: the record's, else the invocation in progress given by the
//!   caller, else omitted (no orphan buffering: a line is never held back).
//!   `timestamp`: the record's time, else the latest time seen.
//!
//! Trade-offs: `timestamp`/`status` sit at the top level (the intake's
//! reserved attributes; Datadog's extension nests them in `message`, which
//! the intake also accepts). An entry over [`MAX_LOG_BYTES`] has its message
//! cut (on a character boundary) and marked `...TRUNCATED...`, never
//! dropped. The buffer holds serialized entries up to a byte bound; past it
//! the oldest entries are dropped and counted ([`Logs::dropped`]).
//!
//! Cost: entries are written straight into one buffer (no allocation per
//! entry), numbers and platform lines without `format!`; a batch body is one
//! copy. Shaping is about a third of the ingest path's time per record, the
//! rest being parsing (scripts/perf.sh, size-reports/perf.md).
//!
//! Shipping: [`Logs::take_batch`] removes up to [`MAX_BATCH_ENTRIES`] entries
//! / [`MAX_BATCH_BYTES`] as one JSON array body ([`Batch::json`]); on a
//! failed send [`Logs::put_back`] returns the batch to the front, so nothing
//! accepted is lost unless the memory bound forces it.

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::wire::json::{scan_plain, write_str};
use crate::lambda::telemetry::{Kind, Log, Record};

/// Largest entry the intake takes (longer messages are truncated).
pub const MAX_LOG_BYTES: usize = 1 << 20;
/// Largest payload (uncompressed), brackets and commas included.
pub const MAX_BATCH_BYTES: usize = 5 << 20;
pub const MAX_BATCH_ENTRIES: usize = 1000;
/// Default bound of the buffer (serialized bytes).
pub const DEFAULT_BUFFER_BYTES: usize = 8 << 20;
const TRUNCATED: &str = "...TRUNCATED...";
/// An emptied buffer (or a spare body) keeps up to this much capacity;
/// after a larger burst it shrinks to it, so the memory goes back.
const KEEP_CAPACITY: usize = 1 << 20;

/// Entries taken from the buffer for one request: the JSON array body,
/// built once.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[e1,e2,...]`
    body: Vec<u8>,
    /// Byte length of each entry, in order.
    lens: Vec<u32>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            body: b"[]".to_vec(),
            lens: Vec::new(),
        }
    }
}

impl Batch {
    pub fn len(&self) -> usize {
        self.lens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
    /// Size of the JSON array body in bytes.
    pub fn json_len(&self) -> usize {
        self.body.len()
    }
    /// The request body (a JSON array).
    pub fn json(&self) -> &[u8] {
        &self.body
    }
    /// Appends the request body to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body);
    }
    /// The request body, copied.
    pub fn to_json(&self) -> Vec<u8> {
        self.body.clone()
    }
    /// The serialized entries (each one JSON object).
    pub fn entries(&self) -> Vec<&str> {
        let mut at = 1;
        self.lens
            .iter()
            .map(|&l| {
                let e = std::str::from_utf8(&self.body[at..at + l as usize]).unwrap_or("");
                at += l as usize + 1;
                e
            })
            .collect()
    }
    /// `e1,e2,...` (the body without its brackets).
    fn inner(&self) -> &[u8] {
        &self.body[1..self.body.len() - 1]
    }
}

/// Shapes records into entries and buffers them. See the module docs.
///
/// Storage: the entries are serialized back to back into one buffer that
/// starts with `[`, each followed by a comma (`[e1,e2,`). An entry costs no
/// allocation of its own, and when a batch takes everything (the usual
/// flush) the buffer itself becomes the body (`[e1,e2]`): no copy. The
/// shipper hands sent bodies back ([`Logs::recycle`]) to serve as the next
/// buffer, so a flush does not allocate (and fault in) a fresh body either.
#[derive(Debug)]
pub struct Logs {
    /// `","lambda":{"arn":"<ARN>"` (escaped once; closes the message).
    lambda_arn: String,
    /// `","hostname":...,"ddtags":"..."}` (escaped once; closes the status).
    tail: String,
    /// `[` then serialized entries, each followed by `,`; live from `head` (≥ 1).
    buf: Vec<u8>,
    head: usize,
    /// A recycled body, cleared, to become the next buffer or body.
    spare: Vec<u8>,
    /// Length of each live entry (without its comma), oldest first.
    lens: VecDeque<u32>,
    max_bytes: usize,
    dropped: u64,
    last_ms: Option<i64>,
    /// Reused for the platform lines.
    line: String,
}

impl Logs {
    /// `function_arn`: hostname and `lambda.arn`; `service`: omitted when
    /// empty; `ddtags`: `k:v,k:v`; `max_buffer_bytes`: memory bound.
    pub fn new(function_arn: &str, service: &str, ddtags: &str, max_buffer_bytes: usize) -> Self {
        let mut lambda_arn = String::from("\",\"lambda\":{\"arn\":");
        write_str(&mut lambda_arn, function_arn);
        let mut tail = String::from("\",\"hostname\":");
        write_str(&mut tail, function_arn);
        if !service.is_empty() {
            tail.push_str(",\"service\":");
            write_str(&mut tail, service);
        }
        tail.push_str(",\"ddsource\":\"lambda\",\"ddtags\":");
        write_str(&mut tail, ddtags);
        tail.push('}');
        Logs {
            lambda_arn,
            tail,
            buf: vec![b'['],
            head: 1,
            spare: Vec::new(),
            lens: VecDeque::new(),
            max_bytes: max_buffer_bytes,
            dropped: 0,
            last_ms: None,
            line: String::new(),
        }
    }

    /// Turns a record into an entry (or ignores it). `current_request`: the
    /// invocation in progress, used when the record carries no request id.
    pub fn on_record(&mut self, rec: &Record, current_request: Option<&str>) {
        if rec.time_ms.is_some() {
            self.last_ms = rec.time_ms;
        }
        let t = self.last_ms;
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        match &rec.kind {
            Kind::Function(log) | Kind::Extension(log) => {
                let rid = log.request_id.as_deref().or(current_request);
                self.push(&log.message, t, status_of(log), rid);
            }
            Kind::InitStart {
                runtime_version,
                runtime_version_arn,
                ..
            } => {
                line.push_str("INIT_START Runtime Version: ");
                line.push_str(runtime_version.as_deref().unwrap_or("?"));
                line.push_str(" Runtime Version ARN: ");
                line.push_str(runtime_version_arn.as_deref().unwrap_or("?"));
                self.push(&line, t, "info", current_request);
            }
            Kind::Start {
                request_id,
                version,
            } => {
                let rid = request_id.as_deref().or(current_request);
                line.push_str("START RequestId: ");
                line.push_str(rid.unwrap_or(""));
                line.push_str(" Version: ");
                line.push_str(version.as_deref().unwrap_or("$LATEST"));
                self.push(&line, t, "info", rid);
            }
            Kind::RuntimeDone {
                request_id,
                status,
                error_type,
                duration_ms,
                ..
            } => {
                let rid = request_id.as_deref().or(current_request);
                line.push_str("END RequestId: ");
                line.push_str(rid.unwrap_or(""));
                let status = status.as_deref().unwrap_or("success");
                let level = if status.eq_ignore_ascii_case("success") {
                    "info"
                } else if status.eq_ignore_ascii_case("timeout") {
                    line.push_str(" Task timed out after ");
                    push_fixed(&mut line, duration_ms.unwrap_or(0.0) / 1000.0, 2);
                    line.push_str(" seconds");
                    "error"
                } else {
                    line.push_str(" Task failed: ");
                    line.push_str(error_type.as_deref().unwrap_or(status));
                    "error"
                };
                self.push(&line, t, level, rid);
            }
            Kind::Report {
                request_id,
                duration_ms,
                billed_duration_ms,
                memory_size_mb,
                max_memory_used_mb,
                init_duration_ms,
                ..
            } => {
                let rid = request_id.as_deref().or(current_request);
                line.push_str("REPORT RequestId: ");
                line.push_str(rid.unwrap_or(""));
                if let Some(d) = duration_ms {
                    line.push_str(" Duration: ");
                    push_fixed(&mut line, *d, 2);
                    line.push_str(" ms");
                }
                if let Some(d) = billed_duration_ms {
                    line.push_str(" Billed Duration: ");
                    push_fixed(&mut line, *d, 0);
                    line.push_str(" ms");
                }
                if let Some(m) = memory_size_mb {
                    line.push_str(" Memory Size: ");
                    push_u64_str(&mut line, *m);
                    line.push_str(" MB");
                }
                if let Some(m) = max_memory_used_mb {
                    line.push_str(" Max Memory Used: ");
                    push_u64_str(&mut line, *m);
                    line.push_str(" MB");
                }
                if let Some(d) = init_duration_ms {
                    line.push_str(" Init Duration: ");
                    push_fixed(&mut line, *d, 2);
                    line.push_str(" ms");
                }
                self.push(&line, t, "info", rid);
            }
            _ => {}
        }
        self.line = line;
    }

    /// Adds one entry (also for the extension's own lines, e.g. a notice of
    /// dropped logs). `time_ms` `None`: the intake stamps it on arrival.
    pub fn push(
        &mut self,
        message: &str,
        time_ms: Option<i64>,
        status: &str,
        request_id: Option<&str>,
    ) {
        let start = self.buf.len();
        self.write_entry(message, time_ms, status, request_id);
        let len = self.buf.len() - start;
        if len > MAX_LOG_BYTES {
            let excess = len - MAX_LOG_BYTES + TRUNCATED.len();
            let budget = escaped_len(message).saturating_sub(excess);
            let cut = escaped_prefix(message, budget);
            let msg = format!("{}{TRUNCATED}", &message[..cut]);
            self.buf.truncate(start);
            self.write_entry(&msg, time_ms, status, request_id);
        }
        let len = self.buf.len() - start;
        self.buf.push(b',');
        self.lens.push_back(len as u32);
        self.enforce_bound();
    }

    /// Appends one serialized entry (no comma) to `buf`.
    fn write_entry(
        &mut self,
        message: &str,
        time_ms: Option<i64>,
        status: &str,
        rid: Option<&str>,
    ) {
        let out = &mut self.buf;
        out.reserve(message.len() + self.lambda_arn.len() + self.tail.len() + 128);
        out.extend_from_slice(b"{\"message\":{\"message\":\"");
        escape_into(out, message);
        out.extend_from_slice(self.lambda_arn.as_bytes());
        if let Some(rid) = rid {
            out.extend_from_slice(b",\"request_id\":\"");
            escape_into(out, rid);
            out.extend_from_slice(b"\"}}");
        } else {
            out.extend_from_slice(b"}}");
        }
        if let Some(t) = time_ms {
            out.extend_from_slice(b",\"timestamp\":");
            push_i64(out, t);
        }
        out.extend_from_slice(b",\"status\":\"");
        escape_into(out, status);
        out.extend_from_slice(self.tail.as_bytes());
    }

    /// Serialized bytes held (entries and their commas).
    fn live_bytes(&self) -> usize {
        self.buf.len() - self.head
    }

    fn enforce_bound(&mut self) {
        while self.live_bytes() > self.max_bytes && self.lens.len() > 1 {
            if let Some(l) = self.lens.pop_front() {
                self.head += l as usize + 1;
                self.dropped += 1;
            }
        }
        self.compact();
    }

    /// Reclaims the consumed front: at once when nothing is live (the usual
    /// case after a flush), else once it is at least half of the buffer.
    fn compact(&mut self) {
        if self.lens.is_empty() {
            self.buf.truncate(1);
            self.head = 1;
            if self.buf.capacity() > 2 * KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        } else if self.head > 4096 && self.head > self.live_bytes() {
            self.buf.drain(1..self.head);
            self.head = 1;
        }
    }

    /// A fresh buffer: the spare if there is one, else a new one.
    fn fresh(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.spare);
        v.clear();
        v.push(b'[');
        v
    }

    /// Hands back a batch that was sent: its memory serves the next entries
    /// (the buffer, if nothing is buffered and it is smaller) or the next
    /// batch. Without this, each flush would start the buffer from nothing
    /// and grow it again (with musl's allocator: fresh mmaps and page faults).
    pub fn recycle(&mut self, batch: Batch) {
        let mut body = batch.body;
        if body.capacity() > 2 * KEEP_CAPACITY {
            return;
        }
        if self.lens.is_empty() && body.capacity() > self.buf.capacity() {
            body.clear();
            body.push(b'[');
            self.head = 1;
            body = std::mem::replace(&mut self.buf, body);
        }
        if body.capacity() > self.spare.capacity() {
            self.spare = body;
        }
    }

    /// Entries buffered.
    pub fn len(&self) -> usize {
        self.lens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
    /// Entries dropped so far because of the memory bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Removes the oldest entries that fit one request (≤ 1,000 entries,
    /// ≤ 5 MiB as a JSON array); `None` when the buffer is empty.
    pub fn take_batch(&mut self) -> Option<Batch> {
        let mut n = 0;
        let mut bytes = 0; // "e1,...,en"
        for &l in &self.lens {
            let next = bytes + usize::from(n > 0) + l as usize;
            if n >= MAX_BATCH_ENTRIES || (n > 0 && next + 2 > MAX_BATCH_BYTES) {
                break;
            }
            bytes = next;
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let lens = self.lens.drain(..n).collect();
        if self.lens.is_empty() && self.head == 1 {
            // Everything: the buffer is the body (`[e1,...,en,` → `[e1,...,en]`).
            let fresh = self.fresh();
            let mut body = std::mem::replace(&mut self.buf, fresh);
            body.truncate(1 + bytes);
            body.push(b']');
            return Some(Batch { body, lens });
        }
        let mut body = self.fresh();
        body.reserve(bytes + 1);
        body.extend_from_slice(&self.buf[self.head..self.head + bytes]);
        body.push(b']');
        self.head += bytes + 1;
        self.compact();
        Some(Batch { body, lens })
    }

    /// Returns a batch whose send failed to the front of the buffer, in
    /// order (then the memory bound applies, dropping the oldest first).
    pub fn put_back(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let inner = batch.inner();
        let need = inner.len() + 1;
        if self.head > need {
            let h = self.head - need;
            self.buf[h..h + inner.len()].copy_from_slice(inner);
            self.buf[h + inner.len()] = b',';
            self.head = h;
        } else {
            let mut buf = Vec::with_capacity(1 + need + self.live_bytes());
            buf.push(b'[');
            buf.extend_from_slice(inner);
            buf.push(b',');
            buf.extend_from_slice(&self.buf[self.head..]);
            self.buf = buf;
            self.head = 1;
        }
        for &l in batch.lens.iter().rev() {
            self.lens.push_front(l);
        }
        self.enforce_bound();
    }
}

/// Appends `s` JSON-escaped (no quotes): `"` `\` and control characters
/// (`\n`, `\r`, `\t`, `\b`, `\f`, others `\u00XX`). Runs of plain bytes are
/// found a word at a time and copied at once; an escape is two byte stores.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len());
    let mut run = 0;
    let mut i = 0;
    loop {
        i = scan_plain(b, i);
        let Some(&c) = b.get(i) else { break };
        out.extend_from_slice(&b[run..i]);
        let e = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            _ => 0,
        };
        if e != 0 {
            out.push(b'\\');
            out.push(e);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]);
        }
        i += 1;
        run = i;
    }
    out.extend_from_slice(&b[run..]);
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut d = [0u8; 20];
    out.extend_from_slice(digits(v, &mut d));
}

/// `v` in decimal, written at the end of `d`.
fn digits(mut v: u64, d: &mut [u8; 20]) -> &[u8] {
    let mut i = d.len();
    loop {
        let q = div10(v);
        i -= 1;
        d[i] = b'0' + (v - q * 10) as u8;
        v = q;
        if v == 0 {
            break;
        }
    }
    &d[i..]
}

/// `v / 10` as one multiplication by the rounded-up reciprocal 2^67 / 10
/// (exact for every u64). At opt-level "z" LLVM leaves a division by a
/// constant as a `div` instruction, ~15-40 cycles each; a 13-digit
/// timestamp took 13 of them.
#[inline]
fn div10(v: u64) -> u64 {
    ((v as u128 * 0xCCCC_CCCC_CCCC_CCCD) >> 67) as u64
}

/// `push_u64` for a `String`.
fn push_u64_str(out: &mut String, v: u64) {
    let mut d = [0u8; 20];
    out.push_str(std::str::from_utf8(digits(v, &mut d)).unwrap_or(""));
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends `v` as `format!("{v:.N}")` does, N = `decimals` (0 or 2): by
/// integer arithmetic when the result is certain (a non-negative value below
/// 10^7 not within 10^-6 of a rounding tie, far more than the product's
/// rounding error), else through `format!`.
fn push_fixed(out: &mut String, v: f64, decimals: u32) {
    let scale = 10u64.pow(decimals);
    let x = v * scale as f64;
    if v >= 0.0 && x < 1e9 && ((x - x.floor()) - 0.5).abs() > 1e-6 {
        let r = x.round() as u64;
        // The integer part, then `decimals` digits (no allocation, no `div`).
        let mut frac = [b'0'; 20];
        let mut int = r;
        for k in (0..decimals as usize).rev() {
            let q = div10(int);
            frac[k] = b'0' + (int - q * 10) as u8;
            int = q;
        }
        push_u64_str(out, int);
        if decimals > 0 {
            out.push('.');
            out.push_str(std::str::from_utf8(&frac[..decimals as usize]).unwrap_or(""));
        }
    } else {
        let _ = write!(out, "{v:.prec$}", prec = decimals as usize);
    }
}

/// Datadog status of a function/extension record: the JSON `level`/`status`
/// normalised, else `info`.
pub fn status_of(log: &Log) -> &'static str {
    log.level.as_deref().map_or("info", normalize_status)
}

/// `WARNING` → `warn`, `ERR` → `error`, `FATAL` → `critical`, ...; unknown → `info`.
pub fn normalize_status(level: &str) -> &'static str {
    let l = level.trim();
    let is = |s: &str| l.eq_ignore_ascii_case(s);
    if is("error") || is("err") {
        "error"
    } else if is("warn") || is("warning") {
        "warn"
    } else if is("debug") || is("trace") {
        "debug"
    } else if is("fatal") || is("critical") || is("crit") || is("emergency") || is("alert") {
        "critical"
    } else if is("notice") {
        "notice"
    } else {
        "info"
    }
}

fn esc_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

fn escaped_len(s: &str) -> usize {
    s.chars().map(esc_len).sum()
}

/// Length in bytes of the longest prefix of `s` whose escaped form fits `budget`.
fn escaped_prefix(s: &str, budget: usize) -> usize {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += esc_len(c);
        if used > budget {
            return i;
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

    fn logs() -> Logs {
        Logs::new(ARN, "svc", "env:prod,functionname:f", DEFAULT_BUFFER_BYTES)
    }
    fn rec(t: i64, kind: Kind) -> Record {
        Record {
            time_ms: Some(t),
            kind,
        }
    }
    fn text(t: i64, s: &str) -> Record {
        rec(
            t,
            Kind::Function(Log {
                message: s.into(),
                ..Log::default()
            }),
        )
    }
    fn all(l: &mut Logs) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(b) = l.take_batch() {
            v.extend(b.entries().into_iter().map(String::from));
        }
        v
    }

    #[test]
    fn entry_shape() {
        let mut l = logs();
        l.on_record(&text(1000, "hello \"world\"\n"), Some("rid-1"));
        let e = &all(&mut l)[0];
        assert_eq!(
            e,
            &format!(
                "{{\"message\":{{\"message\":\"hello \\\"world\\\"\\n\",\"lambda\":{{\"arn\":\"{ARN}\",\"request_id\":\"rid-1\"}}}},\
                 \"timestamp\":1000,\"status\":\"info\",\"hostname\":\"{ARN}\",\"service\":\"svc\",\
                 \"ddsource\":\"lambda\",\"ddtags\":\"env:prod,functionname:f\"}}"
            )
        );
        // No request id and no service: both keys left out.
        let mut l = Logs::new(ARN, "", "", 1 << 20);
        l.push("x", None, "info", None);
        let e = &all(&mut l)[0];
        assert!(!e.contains("request_id") && !e.contains("service") && !e.contains("timestamp"));
    }

    #[test]
    fn json_records_keep_text_and_level() {
        let mut l = logs();
        let j = Log {
            message: r#"{"level":"ERROR","message":"boom","requestId":"r9"}"#.into(),
            level: Some("ERROR".into()),
            request_id: Some("r9".into()),
            is_json: true,
        };
        l.on_record(&rec(5, Kind::Function(j)), Some("current"));
        let w = Log {
            message: "{}".into(),
            level: Some("Warning".into()),
            is_json: true,
            ..Log::default()
        };
        l.on_record(&rec(6, Kind::Extension(w)), Some("current"));
        let v = all(&mut l);
        assert!(v[0].contains(
            r#""message":"{\"level\":\"ERROR\",\"message\":\"boom\",\"requestId\":\"r9\"}""#
        ));
        assert!(v[0].contains(r#""request_id":"r9""#) && v[0].contains(r#""status":"error""#));
        assert!(v[1].contains(r#""request_id":"current""#) && v[1].contains(r#""status":"warn""#));
    }

    #[test]
    fn platform_lines() {
        let mut l = logs();
        l.on_record(
            &rec(
                1,
                Kind::Start {
                    request_id: Some("r1".into()),
                    version: Some("7".into()),
                },
            ),
            None,
        );
        let done = |status: &str, err: Option<&str>| Kind::RuntimeDone {
            request_id: Some("r1".into()),
            status: Some(status.into()),
            error_type: err.map(String::from),
            duration_ms: Some(3000.0),
            produced_bytes: None,
            spans: vec![],
        };
        l.on_record(&rec(2, done("success", None)), None);
        l.on_record(&rec(3, done("timeout", Some("Sandbox.Timeout"))), None);
        l.on_record(&rec(4, done("error", Some("Runtime.ExitError"))), None);
        l.on_record(
            &rec(
                5,
                Kind::Report {
                    request_id: Some("r1".into()),
                    status: Some("success".into()),
                    error_type: None,
                    duration_ms: Some(2599.4),
                    billed_duration_ms: Some(2600.0),
                    memory_size_mb: Some(128),
                    max_memory_used_mb: Some(94),
                    init_duration_ms: Some(549.04),
                    restore_duration_ms: None,
                    response_latency_ms: None,
                },
            ),
            None,
        );
        l.on_record(
            &rec(
                6,
                Kind::Unknown {
                    type_: "platform.future".into(),
                },
            ),
            None,
        );
        let v = all(&mut l);
        assert_eq!(v.len(), 5);
        let msg = |e: &str| {
            e.split("\"message\":\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(msg(&v[0]), "START RequestId: r1 Version: 7");
        assert_eq!(msg(&v[1]), "END RequestId: r1");
        assert!(v[1].contains(r#""status":"info""#));
        assert_eq!(
            msg(&v[2]),
            "END RequestId: r1 Task timed out after 3.00 seconds"
        );
        assert!(v[2].contains(r#""status":"error""#));
        assert_eq!(
            msg(&v[3]),
            "END RequestId: r1 Task failed: Runtime.ExitError"
        );
        assert!(v[3].contains(r#""status":"error""#));
        assert_eq!(
            msg(&v[4]),
            "REPORT RequestId: r1 Duration: 2599.40 ms Billed Duration: 2600 ms Memory Size: 128 MB Max Memory Used: 94 MB Init Duration: 549.04 ms"
        );
        assert!(v.iter().all(|e| e.contains(r#""request_id":"r1""#)));
        assert!(v[4].contains(r#""timestamp":5"#));
    }

    #[test]
    fn statuses() {
        for (i, o) in [
            ("ERROR", "error"),
            ("warning", "warn"),
            ("TRACE", "debug"),
            ("Fatal", "critical"),
            ("info", "info"),
            ("weird", "info"),
        ] {
            assert_eq!(normalize_status(i), o);
        }
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let mut l = logs();
        for i in 0..2500 {
            l.push(&format!("line {i}"), Some(i), "info", None);
        }
        let sizes: Vec<_> = std::iter::from_fn(|| l.take_batch().map(|b| b.len())).collect();
        assert_eq!(sizes, [1000, 1000, 500]);

        // ~0.9 MiB entries: five fit in 5 MiB, not six.
        let big = "y".repeat(900 * 1024);
        for _ in 0..7 {
            l.push(&big, Some(1), "info", None);
        }
        let b = l.take_batch().unwrap();
        assert_eq!(b.len(), 5);
        let body = b.to_json();
        assert_eq!(body.len(), b.json_len());
        assert!(body.len() <= MAX_BATCH_BYTES);
        assert_eq!((body[0], *body.last().unwrap()), (b'[', b']'));
        assert_eq!(l.take_batch().unwrap().len(), 2);
        assert!(l.take_batch().is_none());
    }

    #[test]
    fn long_logs_truncated_not_dropped() {
        let mut l = logs();
        let huge = "é".repeat(MAX_LOG_BYTES); // 2 MiB of 2-byte chars
        l.push(&huge, Some(1), "info", None);
        let ctl = "\u{1}".repeat(MAX_LOG_BYTES / 2); // escapes to 3 MiB
        l.push(&ctl, Some(2), "info", None);
        let v = all(&mut l);
        assert_eq!(v.len(), 2);
        for e in &v {
            assert!(
                e.len() <= MAX_LOG_BYTES && e.len() > MAX_LOG_BYTES - 16,
                "{}",
                e.len()
            );
            assert!(e.contains("...TRUNCATED...\""));
        }
    }

    #[test]
    fn bound_drops_oldest_first() {
        let mut l = Logs::new(ARN, "", "", 10_000);
        for i in 0..100 {
            l.push(&format!("{i:04}"), Some(i), "info", None);
        }
        let first_kept = 100 - l.len();
        assert!(first_kept > 0);
        assert_eq!(first_kept as u64, l.dropped());
        let b = l.take_batch().unwrap();
        assert!(b.entries()[0].contains(&format!("\"{first_kept:04}\"")));
        assert!(b.entries().last().unwrap().contains("\"0099\""));
        // Putting back into a full buffer drops the oldest (the batch's head).
        l.push("new", Some(100), "info", None);
        l.put_back(b);
        assert_eq!(l.dropped(), first_kept as u64 + 1);
        let again = l.take_batch().unwrap();
        assert!(again.entries()[0].contains(&format!("\"{:04}\"", first_kept + 1)));
        assert!(again.entries().last().unwrap().contains("\"new\""));
    }

    #[test]
    fn put_back_keeps_order() {
        let mut l = logs();
        for i in 0..1500 {
            l.push(&format!("{i}"), Some(i), "info", None);
        }
        let a = l.take_batch().unwrap();
        let b = l.take_batch().unwrap();
        l.push("new", None, "info", None);
        l.put_back(b.clone());
        l.put_back(a.clone());
        assert_eq!(l.dropped(), 0);
        let mut v = Vec::new();
        while let Some(x) = l.take_batch() {
            v.extend(x.entries().into_iter().map(String::from));
        }
        assert_eq!(v.len(), 1501);
        assert_eq!(v[..1000], a.entries());
        assert_eq!(v[1000..1500], b.entries());
        assert!(v[1500].contains("\"new\""));
    }

    #[test]
    fn request_id_falls_back_to_current() {
        let mut l = logs();
        l.on_record(&text(1, "a"), Some("cur"));
        l.on_record(&text(2, "b"), None);
        let v = all(&mut l);
        assert!(v[0].contains(r#""request_id":"cur""#));
        assert!(!v[1].contains("request_id"));
    }

    #[test]
    fn numbers_match_format() {
        let mut vals = vec![
            0.0,
            0.004,
            0.005,
            0.015,
            0.125,
            1.0,
            2.675,
            1.005,
            2599.4,
            549.04,
            2599.405,
            99.995,
            1e6 + 0.125,
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x % 100_000_000) as f64 / 1000.0; // ms with µs, up to 100 000 s
            vals.push(v);
            vals.push((x % 1_000_000) as f64 / 100.0 + 0.005); // near ties
        }
        vals.extend([1e12, 3e9 + 0.5, -1.5, f64::NAN]);
        for v in vals {
            for d in [0u32, 2] {
                let mut s = String::new();
                push_fixed(&mut s, v, d);
                assert_eq!(s, format!("{v:.prec$}", prec = d as usize), "{v} .{d}");
            }
        }
        for v in [0i64, 7, -7, 1_700_000_000_123, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            push_i64(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }

    #[test]
    fn div10_is_exact() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut vals = vec![
            0,
            9,
            10,
            11,
            99,
            100,
            u64::MAX,
            u64::MAX - 1,
            u64::MAX / 10 * 10,
        ];
        for p in 1..20 {
            let t = 10u64.pow(p);
            vals.extend([t - 1, t, t + 1]);
        }
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            vals.extend([x, x >> (x % 64)]);
        }
        for v in vals {
            assert_eq!(div10(v), v / 10, "{v}");
            let mut d = [0u8; 20];
            assert_eq!(digits(v, &mut d), v.to_string().as_bytes());
        }
    }

    #[test]
    fn escaping_matches_the_json_writer() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{1F600}\"\\ plain text of some length \u{7f}\u{2028}");
        for s in [
            all.as_str(),
            "",
            "x",
            "\"",
            "ab\ncd\te",
            "0123456789abcdef0123\u{1}",
        ] {
            let mut a = Vec::new();
            escape_into(&mut a, s);
            let mut b = String::new();
            crate::wire::json::write_escaped(&mut b, s);
            assert_eq!(String::from_utf8(a).unwrap(), b, "{s:?}");
        }
    }

    #[test]
    fn whole_buffer_batches_and_recycling() {
        let mut l = logs();
        for round in 0..3 {
            for i in 0..10 {
                l.push(&format!("r{round} l{i}"), Some(i), "info", None);
            }
            let b = l.take_batch().unwrap();
            assert!(l.take_batch().is_none() && l.is_empty());
            let v: Value = serde_json::from_slice(b.json()).unwrap();
            assert_eq!(v.as_array().unwrap().len(), 10);
            assert_eq!(v[9]["message"]["message"], format!("r{round} l9"));
            assert_eq!(b.json(), &b.to_json()[..]);
            assert_eq!(b.json_len(), b.json().len());
            let cap = b.body.capacity();
            l.recycle(b);
            // The sent body's memory is the buffer again (no regrowth per flush).
            assert!(l.buf.capacity() >= cap && l.buf == b"[" && l.head == 1);
        }
        // A partial batch (over 1,000 entries) copies; the rest stays in order.
        for i in 0..1005 {
            l.push(&i.to_string(), None, "info", None);
        }
        let a = l.take_batch().unwrap();
        let b = l.take_batch().unwrap();
        assert_eq!((a.len(), b.len()), (1000, 5));
        l.put_back(b);
        l.put_back(a);
        let again = l.take_batch().unwrap();
        let v: Value = serde_json::from_slice(again.json()).unwrap();
        assert_eq!(
            (
                v[0]["message"]["message"].as_str(),
                v[999]["message"]["message"].as_str()
            ),
            (Some("0"), Some("999"))
        );
        let rest: Value = serde_json::from_slice(l.take_batch().unwrap().json()).unwrap();
        assert_eq!(rest[4]["message"]["message"], "1004");
        assert!(l.take_batch().is_none());
    }
}
