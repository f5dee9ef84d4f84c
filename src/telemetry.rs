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
    Unknown { type_: String },
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
