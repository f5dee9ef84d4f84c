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
//! Shipping: [`Logs::take_batch`] removes up to [`MAX_BATCH_ENTRIES`] entries
//! / [`MAX_BATCH_BYTES`]; [`Batch::write_json`] renders the array; on a failed
//! send [`Logs::put_back`] returns the batch to the front, so nothing
//! accepted is lost unless the memory bound forces it.

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::json::{write_escaped, write_str};
use crate::telemetry::{Kind, Log, Record};

/// Largest entry the intake takes (longer messages are truncated).
pub const MAX_LOG_BYTES: usize = 1 << 20;
/// Largest payload (uncompressed), brackets and commas included.
pub const MAX_BATCH_BYTES: usize = 5 << 20;
pub const MAX_BATCH_ENTRIES: usize = 1000;
/// Default bound of the buffer (serialized bytes).
pub const DEFAULT_BUFFER_BYTES: usize = 8 << 20;
const TRUNCATED: &str = "...TRUNCATED...";

/// Entries taken from the buffer for one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    entries: Vec<String>,
    bytes: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Size of the JSON array body in bytes.
    pub fn json_len(&self) -> usize {
        self.bytes + self.entries.len().saturating_sub(1) + 2
    }
    /// Appends the request body (a JSON array) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.reserve(self.json_len());
        out.push(b'[');
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(e.as_bytes());
        }
        out.push(b']');
    }
    /// The request body.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_json(&mut v);
        v
    }
    /// The serialized entries (each one JSON object).
    pub fn entries(&self) -> &[String] {
        &self.entries
    }
}

/// Shapes records into entries and buffers them. See the module docs.
#[derive(Debug)]
pub struct Logs {
    /// `,"lambda":{"arn":"<ARN>"` (escaped once).
    lambda_arn: String,
    /// `,"hostname":...,"ddtags":"..."}` (escaped once).
    tail: String,
    buf: VecDeque<String>,
    buf_bytes: usize,
    max_bytes: usize,
    dropped: u64,
    last_ms: Option<i64>,
}

impl Logs {
    /// `function_arn`: hostname and `lambda.arn`; `service`: omitted when
    /// empty; `ddtags`: `k:v,k:v`; `max_buffer_bytes`: memory bound.
    pub fn new(function_arn: &str, service: &str, ddtags: &str, max_buffer_bytes: usize) -> Self {
        let mut lambda_arn = String::from(",\"lambda\":{\"arn\":");
        write_str(&mut lambda_arn, function_arn);
        let mut tail = String::from(",\"hostname\":");
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
            buf: VecDeque::new(),
            buf_bytes: 0,
            max_bytes: max_buffer_bytes,
            dropped: 0,
            last_ms: None,
        }
    }

    /// Turns a record into an entry (or ignores it). `current_request`: the
    /// invocation in progress, used when the record carries no request id.
    pub fn on_record(&mut self, rec: &Record, current_request: Option<&str>) {
        if rec.time_ms.is_some() {
            self.last_ms = rec.time_ms;
        }
        let t = self.last_ms;
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
                let line = format!(
                    "INIT_START Runtime Version: {} Runtime Version ARN: {}",
                    runtime_version.as_deref().unwrap_or("?"),
                    runtime_version_arn.as_deref().unwrap_or("?")
                );
                self.push(&line, t, "info", current_request);
            }
            Kind::Start {
                request_id,
                version,
            } => {
                let rid = request_id.as_deref().or(current_request);
                let line = format!(
                    "START RequestId: {} Version: {}",
                    rid.unwrap_or(""),
                    version.as_deref().unwrap_or("$LATEST")
                );
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
                let mut line = format!("END RequestId: {}", rid.unwrap_or(""));
                let status = status.as_deref().unwrap_or("success");
                let level = if status.eq_ignore_ascii_case("success") {
                    "info"
                } else if status.eq_ignore_ascii_case("timeout") {
                    let secs = duration_ms.unwrap_or(0.0) / 1000.0;
                    let _ = write!(line, " Task timed out after {secs:.2} seconds");
                    "error"
                } else {
                    let _ = write!(
                        line,
                        " Task failed: {}",
                        error_type.as_deref().unwrap_or(status)
                    );
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
                let mut line = format!("REPORT RequestId: {}", rid.unwrap_or(""));
                if let Some(d) = duration_ms {
                    let _ = write!(line, " Duration: {d:.2} ms");
                }
                if let Some(d) = billed_duration_ms {
                    let _ = write!(line, " Billed Duration: {d:.0} ms");
                }
                if let Some(m) = memory_size_mb {
                    let _ = write!(line, " Memory Size: {m} MB");
                }
                if let Some(m) = max_memory_used_mb {
                    let _ = write!(line, " Max Memory Used: {m} MB");
                }
                if let Some(d) = init_duration_ms {
                    let _ = write!(line, " Init Duration: {d:.2} ms");
                }
                self.push(&line, t, "info", rid);
            }
            _ => {}
        }
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
        let mut e = self.entry(message, time_ms, status, request_id);
        if e.len() > MAX_LOG_BYTES {
            let excess = e.len() - MAX_LOG_BYTES + TRUNCATED.len();
            let budget = escaped_len(message).saturating_sub(excess);
            let cut = escaped_prefix(message, budget);
            let msg = format!("{}{TRUNCATED}", &message[..cut]);
            e = self.entry(&msg, time_ms, status, request_id);
        }
        self.buf_bytes += e.len();
        self.buf.push_back(e);
        self.enforce_bound();
    }

    fn entry(
        &self,
        message: &str,
        time_ms: Option<i64>,
        status: &str,
        rid: Option<&str>,
    ) -> String {
        let mut e =
            String::with_capacity(message.len() + self.lambda_arn.len() + self.tail.len() + 128);
        e.push_str("{\"message\":{\"message\":\"");
        write_escaped(&mut e, message);
        e.push('"');
        e.push_str(&self.lambda_arn);
        if let Some(rid) = rid {
            e.push_str(",\"request_id\":");
            write_str(&mut e, rid);
        }
        e.push_str("}}");
        if let Some(t) = time_ms {
            let _ = write!(e, ",\"timestamp\":{t}");
        }
        e.push_str(",\"status\":");
        write_str(&mut e, status);
        e.push_str(&self.tail);
        e
    }

    fn enforce_bound(&mut self) {
        while self.buf_bytes > self.max_bytes && self.buf.len() > 1 {
            if let Some(old) = self.buf.pop_front() {
                self.buf_bytes -= old.len();
                self.dropped += 1;
            }
        }
    }

    /// Entries buffered.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// Entries dropped so far because of the memory bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Removes the oldest entries that fit one request (≤ 1,000 entries,
    /// ≤ 5 MiB as a JSON array); `None` when the buffer is empty.
    pub fn take_batch(&mut self) -> Option<Batch> {
        let mut b = Batch::default();
        while let Some(e) = self.buf.front() {
            let next = b.json_len() + e.len() + usize::from(!b.is_empty());
            if b.len() >= MAX_BATCH_ENTRIES || (!b.is_empty() && next > MAX_BATCH_BYTES) {
                break;
            }
            let e = self.buf.pop_front().unwrap_or_default();
            self.buf_bytes -= e.len();
            b.bytes += e.len();
            b.entries.push(e);
        }
        (!b.is_empty()).then_some(b)
    }

    /// Returns a batch whose send failed to the front of the buffer, in
    /// order (then the memory bound applies, dropping the oldest first).
    pub fn put_back(&mut self, batch: Batch) {
        self.buf_bytes += batch.bytes;
        for e in batch.entries.into_iter().rev() {
            self.buf.push_front(e);
        }
        self.enforce_bound();
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
            v.extend(b.entries);
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
            v.extend(x.entries);
        }
        assert_eq!(v.len(), 1501);
        assert_eq!(&v[..1000], a.entries());
        assert_eq!(&v[1000..1500], b.entries());
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
}
