//! Public configuration and result types.

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which kind of sandbox is emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Classic on-demand Lambda: one invocation at a time, freezes between them.
    OnDemand,
    /// Lambda Managed Instances: SHUTDOWN-only extensions, concurrent
    /// invocations, telemetry schema 2025-01-29 only, no freezing.
    ManagedInstances,
}

impl Mode {
    /// Value of `AWS_LAMBDA_INITIALIZATION_TYPE` / `initializationType`.
    pub fn init_type(self) -> &'static str {
        match self {
            Mode::OnDemand => "on-demand",
            Mode::ManagedInstances => "lambda-managed-instances",
        }
    }
}

/// Function log format (affects `function` records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Records are strings with a trailing `\n`.
    Text,
    /// Records are objects: the parsed JSON line, or `{timestamp, level, message, requestId}`.
    Json,
}

/// Injected platform misbehaviour.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer every `register` with this status (and an error body) instead of registering.
    pub register_status: Option<u16>,
    /// Right after INIT, hand every extension an event with an unknown
    /// `eventType` (`"FUTURE_EVENT"`) before anything else.
    pub next_unknown_event: bool,
    /// Answer telemetry subscriptions with 202 and no subscription, like old
    /// local emulators that do not implement the Telemetry API.
    pub subscribe_answer_202: bool,
    /// Abort the first N telemetry delivery attempts mid-body (headers and half
    /// the body are sent, then the connection is closed). They count as failed
    /// attempts and are retried.
    pub delivery_fail_first_n: usize,
    /// Add records of an unknown type (`platform.futureEvent`) and unknown
    /// fields (`"futureField"`) to the stream, to check tolerance.
    pub unknown_records: bool,
}

/// The simulated function.
#[derive(Clone, Debug)]
pub struct FunctionInfo {
    pub name: String,
    pub version: String,
    pub memory_mb: u32,
    pub region: String,
    pub account_id: String,
    pub handler: String,
    /// Function timeout; INVOKE `deadlineMs` = start + this.
    pub timeout_ms: u64,
    pub runtime_version: String,
}

impl Default for FunctionInfo {
    fn default() -> Self {
        FunctionInfo {
            name: "emulated-fn".into(),
            version: "$LATEST".into(),
            memory_mb: 128,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            handler: "index.handler".into(),
            timeout_ms: 30_000,
            runtime_version: "provided:al2023.v100".into(),
        }
    }
}

impl FunctionInfo {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.name
        )
    }
}

/// Environment handed to an in-thread extension.
#[derive(Clone, Debug)]
pub struct ExtEnv {
    pub vars: Vec<(String, String)>,
}

impl ExtEnv {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    /// `AWS_LAMBDA_RUNTIME_API` (host:port).
    pub fn api(&self) -> String {
        self.get("AWS_LAMBDA_RUNTIME_API")
            .unwrap_or_default()
            .to_string()
    }
}

/// How an extension is started.
#[derive(Clone)]
pub enum Launch {
    /// A real executable, exec'd through a symlink named after the extension
    /// in a temporary `opt/extensions/` directory (so `argv[0]`'s file name is
    /// the extension name, as on Lambda).
    Process { program: PathBuf, args: Vec<String> },
    /// A closure run on its own thread (for protocol tests). It cannot be
    /// SIGKILLed: at the deadline it is marked killed and abandoned (its
    /// connections to the emulator are closed).
    Thread(Arc<dyn Fn(ExtEnv) + Send + Sync>),
}

/// One extension under `/opt/extensions`.
#[derive(Clone)]
pub struct ExtensionSpec {
    /// File name under /opt/extensions = the name the platform expects in `Lambda-Extension-Name`.
    pub name: String,
    pub launch: Launch,
}

impl ExtensionSpec {
    /// An executable; the registered name is its file name.
    pub fn process(path: impl AsRef<Path>) -> Self {
        let p = path.as_ref().to_path_buf();
        let name = p
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ext".into());
        ExtensionSpec {
            name,
            launch: Launch::Process {
                program: p,
                args: vec![],
            },
        }
    }
    /// An executable installed under another file name.
    pub fn process_named(name: &str, path: impl AsRef<Path>, args: &[&str]) -> Self {
        ExtensionSpec {
            name: name.into(),
            launch: Launch::Process {
                program: path.as_ref().to_path_buf(),
                args: args.iter().map(|s| s.to_string()).collect(),
            },
        }
    }
    /// A closure run on a thread, as if it were the executable `name`.
    pub fn thread(name: &str, f: impl Fn(ExtEnv) + Send + Sync + 'static) -> Self {
        ExtensionSpec {
            name: name.into(),
            launch: Launch::Thread(Arc::new(f)),
        }
    }
}

/// Emulator configuration. `Config::default()` is an on-demand sandbox with
/// no extensions; set `extensions`.
#[derive(Clone)]
pub struct Config {
    pub mode: Mode,
    pub extensions: Vec<ExtensionSpec>,
    /// Extra environment for the extensions (after the Lambda variables).
    pub env: Vec<(String, String)>,
    /// SHUTDOWN budget: `deadlineMs` = now + this; SIGKILL when it passes (2000 on Lambda).
    pub shutdown_budget_ms: u64,
    /// How long the simulated runtime takes to initialise (after every extension registered).
    pub runtime_init_ms: u64,
    /// INIT limit (10 s on Lambda).
    pub init_timeout_ms: u64,
    pub log_format: LogFormat,
    pub faults: Faults,
    pub function: FunctionInfo,
    /// Delivery retries after the first failed attempt (then the batch is dropped).
    pub delivery_retries: usize,
    /// Backoff before the first retry; doubles each retry.
    pub delivery_backoff_ms: u64,
    /// How long to wait for the subscriber's answer to a delivery.
    pub delivery_timeout_ms: u64,
    /// Also print extension output to this process's stderr (debugging).
    pub echo_output: bool,
    /// Really freeze: SIGSTOP the extension processes while the sandbox is
    /// frozen and SIGCONT them at the thaw (Linux), so a request the
    /// extension left in flight stalls as on Lambda. Off by default.
    pub freeze_processes: bool,
    /// Lines the runtime prints while it initialises (`function` records
    /// between the subscriptions and `platform.initRuntimeDone`).
    pub init_log_lines: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::OnDemand,
            extensions: vec![],
            env: vec![],
            shutdown_budget_ms: 2000,
            runtime_init_ms: 20,
            init_timeout_ms: 10_000,
            log_format: LogFormat::Text,
            faults: Faults::default(),
            function: FunctionInfo::default(),
            delivery_retries: 3,
            delivery_backoff_ms: 50,
            delivery_timeout_ms: 5000,
            echo_output: false,
            freeze_processes: false,
            init_log_lines: vec![],
        }
    }
}

impl Config {
    /// On-demand config with one executable extension.
    pub fn with_extension(path: impl AsRef<Path>) -> Self {
        Config {
            extensions: vec![ExtensionSpec::process(path)],
            ..Config::default()
        }
    }
}

/// How the simulated function invocation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokeStatus {
    Success,
    Error,
    Timeout,
    OutOfMemory,
}

/// One simulated invocation.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// Runtime duration (INVOKE delivered → runtime response).
    pub duration_ms: u64,
    pub status: InvokeStatus,
    /// Override for `errorType` (defaults: none for Error, `Sandbox.Timeout`, `Runtime.OutOfMemory`).
    pub error_type: Option<String>,
    /// Lines the function prints (become `function` records, spread over the duration).
    pub log_lines: Vec<String>,
    pub produced_bytes: u64,
    /// Defaults to 64, or the memory size for OutOfMemory.
    pub max_memory_used_mb: Option<u32>,
    /// Include X-Ray tracing in the INVOKE event and platform.start.
    pub tracing: bool,
}

impl Invocation {
    pub fn new(duration_ms: u64) -> Self {
        Invocation {
            duration_ms,
            status: InvokeStatus::Success,
            error_type: None,
            log_lines: vec![],
            produced_bytes: 8,
            max_memory_used_mb: None,
            tracing: true,
        }
    }
    pub fn status(mut self, s: InvokeStatus) -> Self {
        self.status = s;
        self
    }
    pub fn log(mut self, line: &str) -> Self {
        self.log_lines.push(line.to_string());
        self
    }
    pub fn memory_used(mut self, mb: u32) -> Self {
        self.max_memory_used_mb = Some(mb);
        self
    }
}

/// A spawned extension process (or thread) and its life.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    pub name: String,
    /// When it was exec'd (test clock ms).
    pub exec_ms: f64,
    /// When it called `register` successfully under its own name.
    pub registered_ms: Option<f64>,
    /// When its first `next` arrived.
    pub first_next_ms: Option<f64>,
    pub exited_ms: Option<f64>,
    pub exit_code: Option<i32>,
    /// Signal that ended it (unix).
    pub signal: Option<i32>,
    /// Killed by the emulator (SIGKILL) at the shutdown deadline or at drop.
    pub killed: bool,
}

impl ProcessInfo {
    /// exec → register latency in ms.
    pub fn exec_to_register_ms(&self) -> Option<f64> {
        self.registered_ms.map(|r| r - self.exec_ms)
    }
}

/// Result of INIT.
#[derive(Clone, Debug)]
pub struct InitOutcome {
    pub ok: bool,
    /// `Extension.Crash`, `Sandbox.Timeout`, the `init/error` error type, ...
    pub error_type: Option<String>,
    /// `platform.initStart` time.
    pub init_start_ms: f64,
    pub processes: Vec<ProcessInfo>,
    /// When every extension had registered and the runtime was started.
    pub runtime_started_ms: Option<f64>,
    /// When the runtime called next (runtime_started + runtime_init_ms).
    pub runtime_ready_ms: Option<f64>,
    /// When INIT ended (= the subscription window closed).
    pub init_done_ms: Option<f64>,
    pub init_duration_ms: Option<f64>,
}

/// One request seen on the Runtime API.
#[derive(Clone, Debug)]
pub struct WireEvent {
    pub seq: usize,
    /// Connection number (same number = same keep-alive connection).
    pub conn: u64,
    /// When its request line arrived (test clock ms).
    pub started_ms: f64,
    /// When the request was fully read and recorded (test clock ms).
    pub at_ms: f64,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Registered extension name the request was made for (from the identifier or name header).
    pub ext: Option<String>,
    pub status: Option<u16>,
    pub answered_ms: Option<f64>,
    pub answer_headers: Vec<(String, String)>,
    pub answer_body: Vec<u8>,
}

impl WireEvent {
    pub fn header(&self, k: &str) -> Option<&str> {
        crate::http::header(&self.headers, k)
    }
    pub fn answer_header(&self, k: &str) -> Option<&str> {
        crate::http::header(&self.answer_headers, k)
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn answer_str(&self) -> String {
        String::from_utf8_lossy(&self.answer_body).into_owned()
    }
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn answer_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.answer_body).ok()
    }
}

/// An accepted telemetry subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub ext: String,
    pub schema: String,
    pub types: Vec<String>,
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout_ms: u64,
    /// Destination URI as sent.
    pub uri: String,
    /// Where deliveries actually go (`sandbox.localdomain` mapped to 127.0.0.1).
    pub addr: SocketAddr,
    pub path: String,
    pub subscribed_ms: f64,
}

/// One telemetry delivery attempt (POST to the subscriber).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub ext: String,
    pub started_ms: f64,
    pub finished_ms: f64,
    /// 1 for the first attempt of a batch, 2.. for retries.
    pub attempt: usize,
    pub records: Vec<Value>,
    pub body_bytes: usize,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// Whether the batch was dropped after this (last) failed attempt.
    pub dropped: bool,
    /// The sandbox froze while this attempt was on the wire and the
    /// subscriber had not answered yet (checked on the socket at the moment
    /// of the freeze, so scheduling delays cause no false positives). On
    /// Lambda such a delivery stalls until the next thaw.
    pub spanned_freeze: bool,
}

impl Delivery {
    pub fn ok(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }
    /// Record types in this batch.
    pub fn types(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| r["type"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// A frozen interval (everyone waiting in `next`, on-demand mode).
#[derive(Clone, Copy, Debug)]
pub struct Freeze {
    pub start_ms: f64,
    /// None while still frozen.
    pub end_ms: Option<f64>,
}

impl Freeze {
    /// Whether the interval [a, b] overlaps this freeze.
    pub fn overlaps(&self, a: f64, b: f64) -> bool {
        let end = self.end_ms.unwrap_or(f64::INFINITY);
        a < end && b > self.start_ms
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A line an extension printed.
#[derive(Clone, Debug)]
pub struct OutputLine {
    pub at_ms: f64,
    pub ext: String,
    pub stream: Stream,
    pub line: String,
}

/// Result of one invocation.
#[derive(Clone, Debug, Default)]
pub struct InvokeOutcome {
    pub request_id: String,
    /// Set when the invocation could not run (INIT failed, sandbox shut down, ...).
    pub error: Option<String>,
    /// The INVOKE event sent to extensions.
    pub event: Value,
    pub started_ms: f64,
    pub runtime_done_ms: f64,
    /// When the last INVOKE-registered extension called `next` again.
    pub extensions_next_ms: Option<f64>,
    /// extensions_next − runtime_done (≥ 0).
    pub post_runtime_ms: Option<f64>,
    pub status: String,
    pub error_type: Option<String>,
    pub report_duration_ms: f64,
    pub billed_duration_ms: u64,
    pub init_duration_ms: Option<f64>,
    /// An extension did not call `next` before the deadline, or died.
    pub extension_errors: Vec<String>,
    /// The sandbox must be reset (timeout / out of memory / extension failure):
    /// call `shutdown("timeout"|"failure")`; further invokes are refused.
    pub needs_reset: bool,
}

/// Result of SHUTDOWN.
#[derive(Clone, Debug, Default)]
pub struct ShutdownOutcome {
    pub reason: String,
    pub started_ms: f64,
    /// Deadline on the test clock (the event carries it as Unix ms).
    pub deadline_ms: f64,
    pub processes: Vec<ProcessInfo>,
    /// Some extension had to be SIGKILLed at the deadline.
    pub killed: bool,
    /// From the start of SHUTDOWN until the last extension exited (or was killed).
    pub elapsed_ms: f64,
    /// Telemetry records still queued (never delivered) when the sandbox died.
    pub undelivered_records: usize,
}

impl ShutdownOutcome {
    pub fn exit_code(&self, name: &str) -> Option<i32> {
        self.processes
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.exit_code)
    }
}
