//! Telemetry API record model (schemas 2022-07-01, 2022-12-13, 2025-01-29).
//!
//! Pure data: the listener parses a POSTed JSON array into `Record`s with
//! [`parse_batch`] and hands them to the core. Parsing is tolerant: unknown
//! record types become [`Kind::Unknown`], unknown fields are ignored, missing
//! optional fields are `None`. Only a body that is not a JSON array is an error.

/// Milliseconds since the Unix epoch (parsed from the record's RFC 3339 `time`).
pub type EpochMs = i64;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `time` of the record, if present and parseable.
    pub time_ms: Option<EpochMs>,
    pub kind: Kind,
}

/// A log line from the `function` or `extension` stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Log {
    /// Text format: the string as delivered (trailing newline trimmed).
    /// JSON format: the object re-serialized compactly (its raw JSON text).
    pub message: String,
    /// JSON format: the `level` (or `status`) field, as given.
    pub level: Option<String>,
    /// JSON format: the `requestId` field.
    pub request_id: Option<String>,
    /// True when the record was a JSON object (JSON log format).
    pub is_json: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Span {
    pub name: String,
    pub start_ms: Option<EpochMs>,
    pub duration_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    InitStart {
        initialization_type: Option<String>,
        phase: Option<String>,
        runtime_version: Option<String>,
        runtime_version_arn: Option<String>,
        function_name: Option<String>,
        function_version: Option<String>,
        instance_id: Option<String>,
        instance_max_memory: Option<u64>,
    },
    InitRuntimeDone {
        initialization_type: Option<String>,
        phase: Option<String>,
        status: Option<String>,
        error_type: Option<String>,
    },
    InitReport {
        initialization_type: Option<String>,
        phase: Option<String>,
        status: Option<String>,
        error_type: Option<String>,
        duration_ms: Option<f64>,
    },
    Start {
        request_id: Option<String>,
        version: Option<String>,
    },
    RuntimeDone {
        request_id: Option<String>,
        status: Option<String>,
        error_type: Option<String>,
        duration_ms: Option<f64>,
        produced_bytes: Option<u64>,
        spans: Vec<Span>,
    },
    Report {
        request_id: Option<String>,
        status: Option<String>,
        error_type: Option<String>,
        duration_ms: Option<f64>,
        billed_duration_ms: Option<f64>,
        memory_size_mb: Option<u64>,
        max_memory_used_mb: Option<u64>,
        init_duration_ms: Option<f64>,
        restore_duration_ms: Option<f64>,
        /// The `responseLatency` span's duration (managed instances: the
        /// runtime's duration, as there is no `platform.runtimeDone`).
        response_latency_ms: Option<f64>,
    },
    /// `platform.extension`
    ExtensionState {
        name: Option<String>,
        state: Option<String>,
        events: Vec<String>,
        error_type: Option<String>,
    },
    TelemetrySubscription {
        name: Option<String>,
        state: Option<String>,
        types: Vec<String>,
    },
    LogsDropped {
        reason: Option<String>,
        dropped_records: Option<u64>,
        dropped_bytes: Option<u64>,
    },
    RestoreStart {
        runtime_version: Option<String>,
    },
    RestoreRuntimeDone {
        status: Option<String>,
        error_type: Option<String>,
    },
    RestoreReport {
        status: Option<String>,
        error_type: Option<String>,
        duration_ms: Option<f64>,
    },
    /// `function` stream log line.
    Function(Log),
    /// `extension` stream log line.
    Extension(Log),
    /// A record type this build does not know (kept for counting only).
    Unknown {
        type_: String,
    },
}

/// Outcome of parsing one POSTed batch.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Array elements that were not usable records (not an object, no `type`, ...).
    pub rejected: usize,
}

/// The body is not a JSON array: the only case the listener answers 400.
#[derive(Debug, Clone, PartialEq)]
pub struct NotAnArray(pub &'static str);

impl Kind {
    /// The record's wire `type` (`platform.report`, `function`, ... or the
    /// unknown type as received).
    pub fn type_name(&self) -> &str {
        match self {
            Kind::Unknown { type_ } => type_,
            k => kind_name(k),
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing. One validation pass over the body (json::parse), then one lazy
// walk over each record; the only allocations are the `String`s and `Vec`s
// of the resulting records.
//
// Schema notes: 2022-07-01, 2022-12-13 and 2025-01-29 use the same field
// names; later schemas only add fields (initStart's functionName,
// functionVersion, instanceId, instanceMaxMemory) or drop them (managed
// instances' platform.report carries metrics.durationMs only). Every field is
// therefore optional here, and a field of the wrong JSON type reads as None.

use crate::wire::json::{Error, Reader, Type, Value};
use std::borrow::Cow;

/// Parses one POSTed Telemetry API batch (a JSON array of records).
///
/// One validating pass over the body (`json::Reader`): each record is read
/// in place, fields nobody needs are skipped. Invalid UTF-8 is replaced
/// (U+FFFD) rather than rejected. `Err` only when the body is not a
/// well-formed JSON array (then no records are returned); elements that are
/// not usable records (not an object, no string `type`, a log record without
/// `record`) are counted in [`Batch::rejected`].
pub fn parse_batch(body: &[u8]) -> Result<Batch, NotAnArray> {
    let text = match std::str::from_utf8(body) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(body),
    };
    let mut r = Reader::new(&text);
    // Sized for ~200-byte records (the platform's are 100-400 bytes) so
    // that a large delivery does not grow (and copy) the vector ten times.
    let mut batch = Batch {
        records: Vec::with_capacity(body.len() / 200),
        rejected: 0,
    };
    let is_array = r
        .array(|r| {
            match read_record(r)? {
                Some(rec) => batch.records.push(rec),
                None => batch.rejected += 1,
            }
            Ok(())
        })
        .and_then(|a| r.finish().map(|_| a))
        .map_err(|_| NotAnArray("body is not valid JSON"))?;
    if !is_array {
        return Err(NotAnArray("body is not a JSON array"));
    }
    Ok(batch)
}

/// Parses one already-parsed array element `{"time", "type", "record"}`;
/// `None` if it is not a usable record.
pub fn parse_record(item: Value<'_>) -> Option<Record> {
    read_record(&mut Reader::new(item.raw())).ok().flatten()
}

/// Reads one array element. `Ok(None)`: valid JSON but not a usable record.
fn read_record(r: &mut Reader<'_>) -> Result<Option<Record>, Error> {
    let mut time_ms = None;
    let mut ty: Option<Cow<'_, str>> = None;
    let mut kind: Option<Option<Kind>> = None; // Some(None): log without usable record
    let mut deferred: Option<Value<'_>> = None;
    let is_obj = r.object(|k, r| {
        match k {
            "time" => time_ms = r.string()?.and_then(|t| crate::wire::time::parse_rfc3339(&t)),
            "type" if ty.is_none() => ty = r.string()?,
            "record" if kind.is_none() && deferred.is_none() => match &ty {
                // The platform writes `type` before `record`: parse in place.
                Some(t) => kind = Some(read_kind(t, Some(r))?),
                None => deferred = Some(r.value()?),
            },
            _ => {}
        }
        Ok(())
    })?;
    let Some(ty) = ty.filter(|_| is_obj) else {
        return Ok(None);
    };
    let kind = match (kind, deferred) {
        (Some(k), _) => k,
        (None, Some(v)) => read_kind(&ty, Some(&mut Reader::new(v.raw())))?,
        (None, None) => read_kind(&ty, None)?,
    };
    Ok(kind.map(|kind| Record { time_ms, kind }))
}

/// Reads the `record` value for type `ty` (`r`: `None` when the element has
/// no `record`). `Ok(None)` for a log type without a record.
fn read_kind(ty: &str, r: Option<&mut Reader<'_>>) -> Result<Option<Kind>, Error> {
    if ty == "function" || ty == "extension" {
        let Some(r) = r else { return Ok(None) };
        let log = log(r)?;
        return Ok(Some(if ty == "function" {
            Kind::Function(log)
        } else {
            Kind::Extension(log)
        }));
    }
    let mut empty = Reader::new("{}");
    let r = r.unwrap_or(&mut empty);
    Ok(Some(match platform_record(ty, r)? {
        Some(k) => k,
        None => Kind::Unknown {
            type_: ty.to_owned(),
        },
    }))
}

// Field readers: a value of the wrong JSON type reads as `None` (and is
// skipped); only malformed JSON is an error.

type R<'r, 'a> = &'r mut Reader<'a>;

/// Calls `f` for each member if the next value is an object; skips it otherwise.
fn fields<'a>(
    r: R<'_, 'a>,
    f: impl FnMut(&str, &mut Reader<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    r.object(f).map(drop)
}

fn s(r: R<'_, '_>) -> Result<Option<String>, Error> {
    Ok(r.string()?.map(Cow::into_owned))
}

fn f(r: R<'_, '_>) -> Result<Option<f64>, Error> {
    Ok(r.value()?.as_f64())
}

fn u(r: R<'_, '_>) -> Result<Option<u64>, Error> {
    Ok(r.value()?.as_u64())
}

fn strings(r: R<'_, '_>) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    r.array(|r| {
        if let Some(s) = s(r)? {
            out.push(s);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The `platform.*` records, stated once: for each wire type, the [`Kind`]
/// variant, its fields with the reader and JSON key of each, and at most one
/// nested object (`metrics`) with fields of its own. Expands to
/// [`platform_record`] (the per-type decoder: one pass over the object,
/// unknown keys skipped) and [`kind_name`]. Every field starts empty
/// (`None`, no elements): a missing field stays so.
macro_rules! platform_records {
    ($(
        $ty:literal => $variant:ident {
            $($field:ident: $read:ident @ $key:literal),* $(,)?
            $(; $nested:literal { $($nfield:ident: $nread:ident @ $nkey:literal),* $(,)? })?
        }
    )*) => {
        /// Decodes the record object of platform type `ty`; `None` for a type
        /// not in the table.
        fn platform_record(ty: &str, r: R<'_, '_>) -> Result<Option<Kind>, Error> {
            Ok(Some(match ty {
                $($ty => {
                    $(let mut $field = empty($read);)*
                    $($(let mut $nfield = empty($nread);)*)?
                    fields(r, |k, r| {
                        match k {
                            $($key => $field = $read(r)?,)*
                            $($nested => fields(r, |k, r| {
                                match k {
                                    $($nkey => $nfield = $nread(r)?,)*
                                    _ => {}
                                }
                                Ok(())
                            })?,)?
                            _ => {}
                        }
                        Ok(())
                    })?;
                    Kind::$variant { $($field,)* $($($nfield,)*)? }
                })*
                _ => return Ok(None),
            }))
        }

        /// The wire `type` of a known kind; `"unknown"` for [`Kind::Unknown`].
        pub fn kind_name(k: &Kind) -> &'static str {
            match k {
                $(Kind::$variant { .. } => $ty,)*
                Kind::Function(_) => "function",
                Kind::Extension(_) => "extension",
                Kind::Unknown { .. } => "unknown",
            }
        }
    };
}

/// The empty value of a reader's output type (`None`, `Vec::new()`).
fn empty<T: Default>(_: fn(R<'_, '_>) -> Result<T, Error>) -> T {
    T::default()
}

platform_records! {
    "platform.initStart" => InitStart {
        initialization_type: s @ "initializationType",
        phase: s @ "phase",
        runtime_version: s @ "runtimeVersion",
        runtime_version_arn: s @ "runtimeVersionArn",
        function_name: s @ "functionName",
        function_version: s @ "functionVersion",
        instance_id: s @ "instanceId",
        instance_max_memory: u @ "instanceMaxMemory",
    }
    "platform.initRuntimeDone" => InitRuntimeDone {
        initialization_type: s @ "initializationType",
        phase: s @ "phase",
        status: s @ "status",
        error_type: s @ "errorType",
    }
    "platform.initReport" => InitReport {
        initialization_type: s @ "initializationType",
        phase: s @ "phase",
        status: s @ "status",
        error_type: s @ "errorType";
        "metrics" { duration_ms: f @ "durationMs" }
    }
    "platform.start" => Start {
        request_id: s @ "requestId",
        version: s @ "version",
    }
    "platform.runtimeDone" => RuntimeDone {
        request_id: s @ "requestId",
        status: s @ "status",
        error_type: s @ "errorType",
        spans: span_list @ "spans";
        "metrics" { duration_ms: f @ "durationMs", produced_bytes: u @ "producedBytes" }
    }
    "platform.report" => Report {
        request_id: s @ "requestId",
        status: s @ "status",
        error_type: s @ "errorType",
        response_latency_ms: response_latency_span @ "spans";
        "metrics" {
            duration_ms: f @ "durationMs",
            billed_duration_ms: f @ "billedDurationMs",
            memory_size_mb: u @ "memorySizeMB",
            max_memory_used_mb: u @ "maxMemoryUsedMB",
            init_duration_ms: f @ "initDurationMs",
            restore_duration_ms: f @ "restoreDurationMs",
        }
    }
    "platform.extension" => ExtensionState {
        name: s @ "name",
        state: s @ "state",
        events: strings @ "events",
        error_type: s @ "errorType",
    }
    "platform.telemetrySubscription" => TelemetrySubscription {
        name: s @ "name",
        state: s @ "state",
        types: strings @ "types",
    }
    "platform.logsDropped" => LogsDropped {
        reason: s @ "reason",
        dropped_records: u @ "droppedRecords",
        dropped_bytes: u @ "droppedBytes",
    }
    "platform.restoreStart" => RestoreStart {
        runtime_version: s @ "runtimeVersion",
    }
    "platform.restoreRuntimeDone" => RestoreRuntimeDone {
        status: s @ "status",
        error_type: s @ "errorType",
    }
    "platform.restoreReport" => RestoreReport {
        status: s @ "status",
        error_type: s @ "errorType";
        "metrics" { duration_ms: f @ "durationMs" }
    }
}

fn span_list(r: R<'_, '_>) -> Result<Vec<Span>, Error> {
    let mut out = Vec::new();
    r.array(|r| {
        let mut sp = Span::default();
        let is_obj = r.object(|k, r| {
            match k {
                "name" => sp.name = s(r)?.unwrap_or_default(),
                "start" => sp.start_ms = r.string()?.and_then(|t| crate::wire::time::parse_rfc3339(&t)),
                "durationMs" => sp.duration_ms = f(r)?,
                _ => {}
            }
            Ok(())
        })?;
        if is_obj {
            out.push(sp);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The `responseLatency` span's duration (managed instances: the runtime's
/// duration, as there is no `platform.runtimeDone`).
fn response_latency_span(r: R<'_, '_>) -> Result<Option<f64>, Error> {
    Ok(response_latency(&span_list(r)?))
}

/// The `responseLatency` span's duration.
pub fn response_latency(spans: &[Span]) -> Option<f64> {
    spans.iter().find(|s| s.name == "responseLatency").and_then(|s| s.duration_ms)
}

/// A `function`/`extension` record: a string (text format) or an object (JSON
/// format: `message` is the object's raw text). Any other JSON value is kept
/// as its raw text. One pass: the string is unescaped while it is validated
/// (and copied once), the object's top-level members are read in place.
fn log(r: R<'_, '_>) -> Result<Log, Error> {
    match r.peek() {
        Some(Type::String) => {
            let message = match r.string()?.unwrap_or_default() {
                Cow::Borrowed(t) => t.strip_suffix('\n').unwrap_or(t).to_owned(),
                Cow::Owned(mut t) => {
                    if t.ends_with('\n') {
                        t.pop();
                    }
                    t
                }
            };
            Ok(Log {
                message,
                ..Log::default()
            })
        }
        Some(Type::Object) => {
            let start = r.pos();
            let (mut level, mut status, mut rid) = (None, None, None);
            fields(r, |k, r| {
                match k {
                    "level" => level = s(r)?,
                    "status" => status = s(r)?,
                    "requestId" => rid = s(r)?,
                    _ => {}
                }
                Ok(())
            })?;
            Ok(Log {
                message: r.since(start).to_owned(),
                level: level.or(status),
                request_id: rid,
                is_json: true,
            })
        }
        _ => Ok(Log {
            message: r.value()?.raw().to_owned(),
            ..Log::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Record {
        let b = parse_batch(format!("[{json}]").as_bytes()).unwrap();
        assert_eq!(b.rejected, 0, "{json}");
        assert_eq!(b.records.len(), 1);
        b.records.into_iter().next().unwrap()
    }

    fn kind(json: &str) -> Kind {
        one(json).kind
    }

    const RID: &str = "459921b5-681c-4a96-beb0-81e0aa586026";

    #[test]
    fn doc_example_batch() {
        let body = br#"[{"time":"2022-10-19T13:52:15.636Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init"}},
 {"time":"2022-10-21T14:05:05.764Z","type":"platform.runtimeDone","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","status":"success","spans":[{"name":"responseLatency","start":"2022-10-21T14:05:03.165Z","durationMs":2598.0}],"metrics":{"durationMs":2599.0,"producedBytes":8}}},
 {"time":"2022-10-21T14:05:05.766Z","type":"platform.report","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","metrics":{"durationMs":2599.4,"billedDurationMs":2600,"memorySizeMB":128,"maxMemoryUsedMB":94,"initDurationMs":549.04},"status":"success"}},
 {"time":"2024-04-24T12:34:56.789Z","type":"function","record":"plain text line\n"},
 {"time":"2024-04-24T12:34:56.789Z","type":"function","record":{"level":"ERROR","message":"boom","requestId":"459921b5-681c-4a96-beb0-81e0aa586026"}}]"#;
        let b = parse_batch(body).unwrap();
        assert_eq!(b.rejected, 0);
        let r = &b.records;
        assert_eq!(r.len(), 5);
        assert_eq!(r[0].time_ms, Some(1_666_187_535_636));
        assert_eq!(
            r[0].kind,
            Kind::InitStart {
                initialization_type: Some("on-demand".into()),
                phase: Some("init".into()),
                runtime_version: None,
                runtime_version_arn: None,
                function_name: None,
                function_version: None,
                instance_id: None,
                instance_max_memory: None,
            }
        );
        assert_eq!(
            r[1].kind,
            Kind::RuntimeDone {
                request_id: Some(RID.into()),
                status: Some("success".into()),
                error_type: None,
                duration_ms: Some(2599.0),
                produced_bytes: Some(8),
                spans: vec![Span {
                    name: "responseLatency".into(),
                    start_ms: crate::wire::time::parse_rfc3339("2022-10-21T14:05:03.165Z"),
                    duration_ms: Some(2598.0),
                }],
            }
        );
        assert_eq!(
            r[2].kind,
            Kind::Report {
                request_id: Some(RID.into()),
                status: Some("success".into()),
                error_type: None,
                duration_ms: Some(2599.4),
                billed_duration_ms: Some(2600.0),
                memory_size_mb: Some(128),
                max_memory_used_mb: Some(94),
                init_duration_ms: Some(549.04),
                restore_duration_ms: None,
                response_latency_ms: None,
            }
        );
        assert_eq!(
            r[3].kind,
            Kind::Function(Log {
                message: "plain text line".into(),
                ..Log::default()
            })
        );
        assert_eq!(
            r[4].kind,
            Kind::Function(Log {
                message: r#"{"level":"ERROR","message":"boom","requestId":"459921b5-681c-4a96-beb0-81e0aa586026"}"#.into(),
                level: Some("ERROR".into()),
                request_id: Some(RID.into()),
                is_json: true,
            })
        );
        assert_eq!(
            r[4].time_ms,
            crate::wire::time::parse_rfc3339("2024-04-24T12:34:56.789Z")
        );
    }

    #[test]
    fn init_start_newer_schemas() {
        let k = kind(
            r#"{"time":"2025-01-29T00:00:00Z","type":"platform.initStart","record":{"initializationType":"lambda-managed-instances","phase":"init","runtimeVersion":"python:3.13.v12","runtimeVersionArn":"arn:aws:lambda:us-east-1::runtime:abc","functionName":"f","functionVersion":"$LATEST","instanceId":"i-0123","instanceMaxMemory":4096,"extra":{"x":[1]}}}"#,
        );
        assert_eq!(
            k,
            Kind::InitStart {
                initialization_type: Some("lambda-managed-instances".into()),
                phase: Some("init".into()),
                runtime_version: Some("python:3.13.v12".into()),
                runtime_version_arn: Some("arn:aws:lambda:us-east-1::runtime:abc".into()),
                function_name: Some("f".into()),
                function_version: Some("$LATEST".into()),
                instance_id: Some("i-0123".into()),
                instance_max_memory: Some(4096),
            }
        );
    }

    #[test]
    fn init_runtime_done_and_report() {
        assert_eq!(
            kind(
                r#"{"type":"platform.initRuntimeDone","record":{"initializationType":"on-demand","phase":"init","status":"error","errorType":"Runtime.ExitError","spans":[]}}"#
            ),
            Kind::InitRuntimeDone {
                initialization_type: Some("on-demand".into()),
                phase: Some("init".into()),
                status: Some("error".into()),
                error_type: Some("Runtime.ExitError".into()),
            }
        );
        assert_eq!(
            kind(
                r#"{"type":"platform.initReport","record":{"initializationType":"snap-start","phase":"invoke","metrics":{"durationMs":125.33},"status":"timeout","errorType":"Sandbox.Timeout"}}"#
            ),
            Kind::InitReport {
                initialization_type: Some("snap-start".into()),
                phase: Some("invoke".into()),
                status: Some("timeout".into()),
                error_type: Some("Sandbox.Timeout".into()),
                duration_ms: Some(125.33),
            }
        );
    }

    #[test]
    fn start_and_runtime_done_variants() {
        assert_eq!(
            kind(
                r#"{"type":"platform.start","record":{"requestId":"r1","version":"$LATEST","tracing":{"spanId":"s","type":"X-Amzn-Trace-Id","value":"Root=1-x"}}}"#
            ),
            Kind::Start {
                request_id: Some("r1".into()),
                version: Some("$LATEST".into())
            }
        );
        // 2022-07-01 style: no metrics, no spans; error with errorType.
        assert_eq!(
            kind(
                r#"{"type":"platform.runtimeDone","record":{"requestId":"r1","status":"failure","errorType":"Runtime.OutOfMemory"}}"#
            ),
            Kind::RuntimeDone {
                request_id: Some("r1".into()),
                status: Some("failure".into()),
                error_type: Some("Runtime.OutOfMemory".into()),
                duration_ms: None,
                produced_bytes: None,
                spans: vec![],
            }
        );
        // Two spans, one of them without start; a non-object span is skipped.
        match kind(
            r#"{"type":"platform.runtimeDone","record":{"spans":[{"name":"responseLatency","start":"2022-10-21T14:05:03.165Z","durationMs":1},{"name":"responseDuration","durationMs":0.5},7]}}"#,
        ) {
            Kind::RuntimeDone { spans, .. } => {
                assert_eq!(spans.len(), 2);
                assert_eq!(
                    spans[1],
                    Span {
                        name: "responseDuration".into(),
                        start_ms: None,
                        duration_ms: Some(0.5)
                    }
                );
            }
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn report_variants() {
        // Managed instances (2025-01-29): durationMs only, status, errorType
        // and the responseLatency/responseDuration spans (AWS's emulator:
        // aws-lambda-runtime-interface-emulator,
        // internal/lambda-managed-instances/aws-lambda-rie/test/rie_test.go:476).
        assert_eq!(
            kind(
                r#"{"time":"2025-06-01T10:00:00.000Z","type":"platform.report","record":{"requestId":"r2","status":"error","errorType":"Runtime.Unknown","metrics":{"durationMs":12.5},"spans":[{"name":"responseLatency","start":"2025-06-01T10:00:00.000Z","durationMs":11.25},{"name":"responseDuration","start":"2025-06-01T10:00:00.011Z","durationMs":0.5}]}}"#
            ),
            Kind::Report {
                request_id: Some("r2".into()),
                status: Some("error".into()),
                error_type: Some("Runtime.Unknown".into()),
                duration_ms: Some(12.5),
                billed_duration_ms: None,
                memory_size_mb: None,
                max_memory_used_mb: None,
                init_duration_ms: None,
                restore_duration_ms: None,
                response_latency_ms: Some(11.25),
            }
        );
        // SnapStart restore, timeout with error type, other spans ignored.
        match kind(
            r#"{"type":"platform.report","record":{"requestId":"r3","status":"timeout","errorType":"Sandbox.Timeout","metrics":{"durationMs":3000.0,"billedDurationMs":3000,"memorySizeMB":1024,"maxMemoryUsedMB":512,"restoreDurationMs":300.5},"spans":[{"name":"x"}]}}"#,
        ) {
            Kind::Report {
                error_type,
                restore_duration_ms,
                init_duration_ms,
                memory_size_mb,
                response_latency_ms,
                ..
            } => {
                assert_eq!(response_latency_ms, None);
                assert_eq!(error_type.as_deref(), Some("Sandbox.Timeout"));
                assert_eq!(restore_duration_ms, Some(300.5));
                assert_eq!(init_duration_ms, None);
                assert_eq!(memory_size_mb, Some(1024));
            }
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn extension_subscription_logs_dropped() {
        assert_eq!(
            kind(
                r#"{"type":"platform.extension","record":{"name":"slimcap","state":"Ready","events":["INVOKE","SHUTDOWN",3]}}"#
            ),
            Kind::ExtensionState {
                name: Some("slimcap".into()),
                state: Some("Ready".into()),
                events: vec!["INVOKE".into(), "SHUTDOWN".into()],
                error_type: None,
            }
        );
        assert_eq!(
            kind(
                r#"{"type":"platform.telemetrySubscription","record":{"name":"slimcap","state":"Subscribed","types":["platform","function"]}}"#
            ),
            Kind::TelemetrySubscription {
                name: Some("slimcap".into()),
                state: Some("Subscribed".into()),
                types: vec!["platform".into(), "function".into()],
            }
        );
        assert_eq!(
            kind(r#"{"type":"platform.logsDropped","record":{"reason":"Consumer seems to have fallen behind as it has not acknowledged receipt of logs.","droppedRecords":123,"droppedBytes":12345}}"#),
            Kind::LogsDropped {
                reason: Some("Consumer seems to have fallen behind as it has not acknowledged receipt of logs.".into()),
                dropped_records: Some(123),
                dropped_bytes: Some(12345),
            }
        );
    }

    #[test]
    fn restore_records() {
        assert_eq!(
            kind(
                r#"{"type":"platform.restoreStart","record":{"runtimeVersion":"java:21.v1","runtimeVersionArn":"arn"}}"#
            ),
            Kind::RestoreStart {
                runtime_version: Some("java:21.v1".into())
            }
        );
        assert_eq!(
            kind(r#"{"type":"platform.restoreRuntimeDone","record":{"status":"success"}}"#),
            Kind::RestoreRuntimeDone {
                status: Some("success".into()),
                error_type: None
            }
        );
        assert_eq!(
            kind(
                r#"{"type":"platform.restoreReport","record":{"status":"failure","errorType":"Runtime.X","metrics":{"durationMs":88.5}}}"#
            ),
            Kind::RestoreReport {
                status: Some("failure".into()),
                error_type: Some("Runtime.X".into()),
                duration_ms: Some(88.5),
            }
        );
    }

    #[test]
    fn text_logs() {
        let log = |json: &str| match kind(json) {
            Kind::Function(l) | Kind::Extension(l) => l,
            k => panic!("{k:?}"),
        };
        assert_eq!(log(r#"{"type":"function","record":"a\n"}"#).message, "a");
        assert_eq!(
            log(r#"{"type":"function","record":"a\n\n"}"#).message,
            "a\n"
        );
        assert_eq!(
            log(r#"{"type":"function","record":"a\r\n"}"#).message,
            "a\r"
        );
        assert_eq!(log(r#"{"type":"function","record":""}"#).message, "");
        assert_eq!(
            log(r#"{"type":"function","record":"tab\there \"q\" \u00e9\ud83d\ude00"}"#).message,
            "tab\there \"q\" é😀"
        );
        let l = log(r#"{"type":"extension","record":"ext line"}"#);
        assert_eq!(
            l,
            Log {
                message: "ext line".into(),
                ..Log::default()
            }
        );
        assert!(matches!(
            kind(r#"{"type":"extension","record":"x"}"#),
            Kind::Extension(_)
        ));
        // A JSON value that is neither string nor object: kept as raw text.
        assert_eq!(
            log(r#"{"type":"function","record":42}"#),
            Log {
                message: "42".into(),
                ..Log::default()
            }
        );
    }

    #[test]
    fn log_record_edge_cases() {
        let log = |json: &str| match kind(json) {
            Kind::Function(l) | Kind::Extension(l) => l,
            k => panic!("{k:?}"),
        };
        let text = |m: &str| Log {
            message: m.into(),
            ..Log::default()
        };
        // Only one trailing newline goes, escaped or not (raw ones are invalid JSON).
        assert_eq!(log(r#"{"type":"function","record":"\n"}"#), text(""));
        assert_eq!(log(r#"{"type":"function","record":"a\u000a"}"#), text("a"));
        assert_eq!(log(r#"{"type":"function","record":"a\\n"}"#), text("a\\n"));
        // Long lines with escapes spread over several words, and raw UTF-8.
        let long = "x".repeat(37);
        assert_eq!(
            log(&format!(
                r#"{{"type":"function","record":"{long}\t{long}\"é😀\"\/\u00e9\n"}}"#
            )),
            text(&format!("{long}\t{long}\"é😀\"/é"))
        );
        assert_eq!(
            log(r#"{"type":"function","record":"é😀 plain"}"#),
            text("é😀 plain")
        );
        // JSON records: top-level fields only, escaped keys, whitespace kept,
        // duplicates (the last wins, as before), arrays and nested objects skipped.
        let raw = r#"{ "msg" : {"level":"x","requestId":"nested"}, "l\u0065vel" : "WARN",
 "requestId":"r1", "a":[{"requestId":"no"},"]}"], "requestId":"r2", "status":"error" }"#;
        let l = log(&format!(r#"{{"type":"function","record":{raw}}}"#));
        assert_eq!(l.message, raw);
        assert_eq!(l.level.as_deref(), Some("WARN"));
        assert_eq!(l.request_id.as_deref(), Some("r2"));
        assert!(l.is_json);
        assert_eq!(
            log(r#"{"type":"function","record":{}}"#),
            Log {
                message: "{}".into(),
                is_json: true,
                ..Log::default()
            }
        );
        // Other JSON values keep their raw text.
        assert_eq!(
            log(r#"{"type":"function","record":[1, "a"]}"#),
            text(r#"[1, "a"]"#)
        );
        assert_eq!(log(r#"{"type":"function","record":null}"#), text("null"));
        // A record written before the type (read later from its raw text).
        assert_eq!(
            log(r#"{"record":"late\n","type":"function"}"#),
            text("late")
        );
        // Truncated or broken records: the whole body is rejected.
        for body in [
            r#"[{"type":"function","record":"abc"#,
            r#"[{"type":"function","record":"abc\"}]"#,
            r#"[{"type":"function","record":"a\x"}]"#,
            r#"[{"type":"function","record":"a\u12"}]"#,
            r#"[{"type":"function","record":{"level":"INFO""#,
            r#"[{"type":"function","record":{"level":"INFO",}}]"#,
            r#"[{"type":"function","record":{"a":[}}]"#,
            "[{\"type\":\"function\",\"record\":\"tab\tinside\"}]",
        ] {
            assert!(parse_batch(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn spans_with_nested_values() {
        let k = kind(
            r#"{"type":"platform.runtimeDone","record":{"spans":[{"name":"a\u0062","start":"2024-04-24T12:34:56.100Z","durationMs":1.5,"attrs":{"x":[{"name":"no"}],"s":"}"}},{"name":"c"},7,"s"],"requestId":"r"}}"#,
        );
        let Kind::RuntimeDone {
            spans, request_id, ..
        } = k
        else {
            panic!()
        };
        assert_eq!(request_id.as_deref(), Some("r"));
        assert_eq!(
            spans,
            vec![
                Span {
                    name: "ab".into(),
                    start_ms: Some(1_713_962_096_100),
                    duration_ms: Some(1.5),
                },
                Span {
                    name: "c".into(),
                    ..Span::default()
                },
            ]
        );
    }

    #[test]
    fn json_logs() {
        let log = |json: &str| match kind(json) {
            Kind::Function(l) | Kind::Extension(l) => l,
            k => panic!("{k:?}"),
        };
        // Lambda's own JSON log shape.
        let l = log(
            r#"{"type":"function","record":{"timestamp":"2024-04-24T12:34:56.789Z","level":"INFO","message":"hi","requestId":"r9"}}"#,
        );
        assert_eq!(l.level.as_deref(), Some("INFO"));
        assert_eq!(l.request_id.as_deref(), Some("r9"));
        assert!(l.is_json);
        assert_eq!(
            l.message,
            r#"{"timestamp":"2024-04-24T12:34:56.789Z","level":"INFO","message":"hi","requestId":"r9"}"#
        );
        // `status` as the level fallback; `level` wins when both exist.
        assert_eq!(
            log(r#"{"type":"function","record":{"status":"warn"}}"#)
                .level
                .as_deref(),
            Some("warn")
        );
        assert_eq!(
            log(r#"{"type":"function","record":{"status":"warn","level":"DEBUG"}}"#)
                .level
                .as_deref(),
            Some("DEBUG")
        );
        // Wrong types read as None; nested requestId is not the top-level one.
        let l = log(
            r#"{"type":"extension","record":{"level":3,"requestId":null,"inner":{"requestId":"x"}}}"#,
        );
        assert_eq!((l.level, l.request_id, l.is_json), (None, None, true));
        // Raw text keeps the object's inner whitespace exactly as delivered.
        assert_eq!(
            log(r#"{"type":"function","record": { "a" : 1 } }"#).message,
            r#"{ "a" : 1 }"#
        );
    }

    #[test]
    fn tolerance() {
        // Unknown type, unknown fields, wrong types, missing record, missing time.
        let b = parse_batch(
            br#"[
            {"time":"2030-01-01T00:00:00Z","type":"platform.somethingNew","record":{"x":1}},
            {"type":"platform.report","record":{"requestId":7,"status":null,"metrics":{"durationMs":"12","memorySizeMB":128.5,"maxMemoryUsedMB":-1,"billedDurationMs":true}}},
            {"type":"platform.start"},
            {"type":"platform.runtimeDone","record":"not an object"},
            {"time":"yesterday","type":"platform.start","record":{"requestId":"r"},"extra":[{}]},
            {"type":"platform.report","record":{"metrics":[1,2]}},
            {"type":"platform.runtimeDone","record":{"spans":{"name":"x"}}}
        ]"#,
        )
        .unwrap();
        assert_eq!(b.rejected, 0);
        let r = &b.records;
        assert_eq!(
            r[0].kind,
            Kind::Unknown {
                type_: "platform.somethingNew".into()
            }
        );
        assert_eq!(r[0].kind.type_name(), "platform.somethingNew");
        assert_eq!(kind_name(&r[0].kind), "unknown");
        assert_eq!(
            r[1].kind,
            Kind::Report {
                request_id: None,
                status: None,
                error_type: None,
                duration_ms: None,
                billed_duration_ms: None,
                memory_size_mb: None,
                max_memory_used_mb: None,
                init_duration_ms: None,
                restore_duration_ms: None,
                response_latency_ms: None,
            }
        );
        assert_eq!(r[1].time_ms, None);
        assert_eq!(
            r[2].kind,
            Kind::Start {
                request_id: None,
                version: None
            }
        );
        assert!(
            matches!(&r[3].kind, Kind::RuntimeDone { request_id: None, spans, .. } if spans.is_empty())
        );
        assert_eq!(r[4].time_ms, None);
        assert_eq!(
            r[4].kind,
            Kind::Start {
                request_id: Some("r".into()),
                version: None
            }
        );
        assert!(matches!(
            &r[5].kind,
            Kind::Report {
                duration_ms: None,
                ..
            }
        ));
        assert!(matches!(&r[6].kind, Kind::RuntimeDone { spans, .. } if spans.is_empty()));
    }

    #[test]
    fn rejected_elements() {
        let b = parse_batch(
            br#"[1, "s", null, [], {}, {"type":5,"record":{}}, {"record":{}},
                 {"type":"function"}, {"type":"platform.start","record":{}}]"#,
        )
        .unwrap();
        assert_eq!(b.rejected, 8);
        assert_eq!(b.records.len(), 1);
        assert_eq!(parse_batch(b"[]").unwrap().records.len(), 0);
        assert_eq!(parse_batch(b" \n[ ]\r\n").unwrap().rejected, 0);
    }

    #[test]
    fn not_an_array() {
        for body in [
            &b""[..],
            b"{}",
            b"null",
            b"\"[]\"",
            b"[",
            b"[{\"type\":\"function\",\"record\":\"x\"},",
            b"[1] [2]",
            b"[1,]",
        ] {
            assert!(
                parse_batch(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let b = parse_batch(b"[{\"type\":\"function\",\"record\":\"bad \xff byte\"}]").unwrap();
        assert_eq!(
            b.records[0].kind,
            Kind::Function(Log {
                message: "bad \u{FFFD} byte".into(),
                ..Log::default()
            })
        );
    }

    #[test]
    fn escaped_keys_and_types() {
        // Keys and the type may legally be written with escapes.
        let r = one(
            r#"{"\u0074ime":"1970-01-01T00:00:01Z","type":"platform\u002estart","record":{"request\u0049d":"r"}}"#,
        );
        assert_eq!(r.time_ms, Some(1000));
        assert_eq!(
            r.kind,
            Kind::Start {
                request_id: Some("r".into()),
                version: None
            }
        );
    }

    #[test]
    fn member_order_does_not_matter() {
        let a = one(
            r#"{"record":{"requestId":"r","metrics":{"durationMs":1.5}},"time":"1970-01-01T00:00:01Z","type":"platform.report"}"#,
        );
        let b = one(
            r#"{"type":"platform.report","time":"1970-01-01T00:00:01Z","record":{"metrics":{"durationMs":1.5},"requestId":"r"}}"#,
        );
        assert_eq!(a, b);
        assert_eq!(a.time_ms, Some(1000));
        assert!(matches!(a.kind, Kind::Report { duration_ms: Some(d), .. } if d == 1.5));
        let l = one(r#"{"record":{"level":"WARN"},"type":"extension"}"#);
        assert!(matches!(l.kind, Kind::Extension(Log { is_json: true, .. })));
        // Duplicate members: the first `type` and the first `record` win.
        let d = one(
            r#"{"type":"platform.start","type":"function","record":{"requestId":"a"},"record":"x"}"#,
        );
        assert_eq!(
            d.kind,
            Kind::Start {
                request_id: Some("a".into()),
                version: None
            }
        );
    }

    #[test]
    fn kind_names_round_trip() {
        for ty in [
            "platform.initStart",
            "platform.initRuntimeDone",
            "platform.initReport",
            "platform.start",
            "platform.runtimeDone",
            "platform.report",
            "platform.extension",
            "platform.telemetrySubscription",
            "platform.logsDropped",
            "platform.restoreStart",
            "platform.restoreRuntimeDone",
            "platform.restoreReport",
        ] {
            let k = kind(&format!(r#"{{"type":"{ty}","record":{{}}}}"#));
            assert_eq!(kind_name(&k), ty);
            assert_eq!(k.type_name(), ty);
        }
        assert_eq!(
            kind_name(&kind(r#"{"type":"function","record":""}"#)),
            "function"
        );
        assert_eq!(
            kind_name(&kind(r#"{"type":"extension","record":""}"#)),
            "extension"
        );
    }

    /// Mutated real batches: never a panic, and Err exactly when the body is
    /// not a valid JSON array.
    #[test]
    fn mutated_batches() {
        let (base, _) = sample_batch(2);
        let mut seed = 0x2545F4914F6CDD1Du64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"{}[]\",:\\ 0123456789.-etfnu";
        for _ in 0..5_000 {
            let mut body = base.clone();
            for _ in 0..(rnd() % 3 + 1) {
                let at = (rnd() % body.len() as u64) as usize;
                if rnd() % 2 == 0 {
                    body[at] = alphabet[(rnd() % alphabet.len() as u64) as usize];
                } else {
                    body.remove(at);
                }
            }
            let valid_array = crate::wire::json::parse_bytes(&body)
                .ok()
                .and_then(|v| v.as_array().map(|a| a.count()));
            match (parse_batch(&body), valid_array) {
                (Ok(b), Some(n)) => assert_eq!(b.records.len() + b.rejected, n),
                (Err(_), None) => {}
                (got, want) => panic!(
                    "{:?} vs {want:?}: {}",
                    got.map(|b| b.records.len()),
                    String::from_utf8_lossy(&body)
                ),
            }
        }
    }

    /// A realistic batch: per invocation start, 3 function log lines (text and
    /// JSON), runtimeDone with spans, report.
    pub(crate) fn sample_batch(invocations: usize) -> (Vec<u8>, usize) {
        let mut s = String::from("[");
        let mut n = 0;
        for i in 0..invocations {
            let rid = format!("459921b5-681c-4a96-beb0-{i:012}");
            let recs = [
                format!(
                    r#"{{"time":"2022-10-21T14:05:03.165Z","type":"platform.start","record":{{"requestId":"{rid}","version":"$LATEST","tracing":{{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"}}}}}}"#
                ),
                format!(
                    r#"{{"time":"2022-10-21T14:05:03.166Z","type":"function","record":"2022-10-21T14:05:03.166Z\t{rid}\tINFO\tprocessing order 12345 for customer ACME\n"}}"#
                ),
                format!(
                    r#"{{"time":"2022-10-21T14:05:03.167Z","type":"function","record":{{"timestamp":"2022-10-21T14:05:03.167Z","level":"INFO","message":"fetched 3 items from \"inventory\"","requestId":"{rid}"}}}}"#
                ),
                r#"{"time":"2022-10-21T14:05:05.760Z","type":"function","record":"END of work: ok\n"}"#
                    .to_string(),
                format!(
                    r#"{{"time":"2022-10-21T14:05:05.764Z","type":"platform.runtimeDone","record":{{"requestId":"{rid}","status":"success","tracing":{{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"}},"spans":[{{"name":"responseLatency","start":"2022-10-21T14:05:03.165Z","durationMs":2598.0}},{{"name":"responseDuration","start":"2022-10-21T14:05:05.763Z","durationMs":0.1}}],"metrics":{{"durationMs":2599.0,"producedBytes":8}}}}}}"#
                ),
                format!(
                    r#"{{"time":"2022-10-21T14:05:05.766Z","type":"platform.report","record":{{"requestId":"{rid}","metrics":{{"durationMs":2599.4,"billedDurationMs":2600,"memorySizeMB":128,"maxMemoryUsedMB":94,"initDurationMs":549.04}},"status":"success"}}}}"#
                ),
            ];
            for r in recs {
                if n > 0 {
                    s.push(',');
                }
                s.push_str(&r);
                n += 1;
            }
        }
        s.push(']');
        (s.into_bytes(), n)
    }

    #[test]
    fn sample_batch_parses() {
        let (body, n) = sample_batch(10);
        let b = parse_batch(&body).unwrap();
        assert_eq!((b.records.len(), b.rejected), (n, 0));
    }

    /// Throughput: `cargo test --release --lib telemetry::tests::bench_parse_batch -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_parse_batch() {
        let (body, n) = sample_batch(1000); // 6000 records, ~2.2 MB: a large delivery
        let iters = 200;
        // Time on CPU of this thread (Linux), so that a busy machine does not
        // distort the figure; wall time is printed as well.
        let on_cpu_ns = || -> Option<u64> {
            let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
            s.split_whitespace().next()?.parse().ok()
        };
        let cpu0 = on_cpu_ns();
        let t = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..iters {
            let b = parse_batch(std::hint::black_box(&body)).unwrap();
            total += b.records.len();
        }
        let dt = t.elapsed().as_secs_f64();
        let cpu = cpu0.zip(on_cpu_ns()).map(|(a, b)| (b - a) as f64 / 1e9);
        assert_eq!(total, n * iters);
        if let Some(cpu) = cpu {
            println!(
                "parse_batch: {:.2} M records/s on CPU ({:.3} s of CPU time)",
                total as f64 / cpu / 1e6,
                cpu
            );
        }
        println!(
            "parse_batch: {} records in {:.3} s = {:.2} M records/s, {:.0} MB/s ({} bytes/record)",
            total,
            dt,
            total as f64 / dt / 1e6,
            (body.len() * iters) as f64 / dt / 1e6,
            body.len() / n
        );
    }
}
