//! # lambda-emulator: the AWS Lambda platform, as an extension sees it
//!
//! Test-support crate for slimcap (never part of the release binary). It
//! plays the Lambda **platform and the runtime** around one or more real
//! extension binaries, following `shared/docs/lambda-platform.md`, and ships a
//! **fake Datadog intake** ([`FakeIntake`]) to point the extension at.
//!
//! ```no_run
//! use lambda_emulator::*;
//! use std::time::Duration;
//! let intake = FakeIntake::start();
//! let mut cfg = Config::with_extension("target/release/slimcap");
//! cfg.env = vec![("DD_API_KEY".into(), "k".into()), ("DD_DD_URL".into(), intake.url()),
//!                ("DD_LOGS_CONFIG_LOGS_DD_URL".into(), intake.url())];
//! let emu = Emulator::start(cfg).unwrap();
//! let init = emu.wait_init(Duration::from_secs(12));
//! assert!(init.ok);
//! let out = emu.invoke(Invocation::new(50).log("hello").status(InvokeStatus::Error));
//! assert!(out.post_runtime_ms.unwrap() < 50.0);
//! let sd = emu.shutdown("spindown");
//! assert!(!sd.killed);
//! assert!(emu.deliveries_spanning_freeze().is_empty());
//! assert!(!intake.requests_to("/api/v2/logs").is_empty());
//! ```
//!
//! ## Clock
//! Every time exposed (`*_ms: f64`) is milliseconds on one process-wide
//! monotonic clock ([`now_ms`]), shared by the emulator, its deliveries, the
//! fake intake and the fake-extension helpers, so they can be compared
//! directly. [`util::to_unix_ms`] converts to epoch ms (as in `deadlineMs`).
//!
//! ## What is emulated (and how it maps to the doc)
//! **Processes.** [`Emulator::start`] binds the Runtime API on `127.0.0.1:0`,
//! emits `platform.initStart` (before any extension starts), then execs each
//! extension through a symlink `…/opt/extensions/<name>` (so argv\[0\]'s file
//! name is the name the platform expects) with a *cleared* environment plus
//! `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME/_VERSION/_MEMORY_SIZE`,
//! `AWS_REGION`, `AWS_LAMBDA_INITIALIZATION_TYPE`, `PATH`/`LANG`/`TZ`, dummy
//! AWS credentials, and [`Config::env`]. It does *not* set `AWS_EXECUTION_ENV`,
//! `_HANDLER`, log group vars, etc. stdout/stderr are captured line by line
//! with timestamps ([`Emulator::output`]) and also become `extension`
//! telemetry records. Extensions can also be closures on threads
//! ([`ExtensionSpec::thread`]) for protocol tests.
//!
//! **Extensions API 2020-01-01.** `register` (name must be the file name: a
//! different name is an *internal* extension, and asking it for `SHUTDOWN` is
//! 403 `Extension.InvalidEventType`; the real file then never registers and
//! INIT times out), `Lambda-Extension-Accept-Feature: accountId`, duplicate
//! names (403), `configurationKeys` (403), registration after the runtime
//! started (403 `Extension.RegistrationClosed`); `event/next` long-poll (403
//! without/with an unknown `Lambda-Extension-Identifier`); `init/error` and
//! `exit/error` (202; `init/error` fails INIT with that error type). Every
//! request and answer is kept in [`Emulator::wire`].
//!
//! **INIT.** The runtime starts only once *every* spawned extension has
//! registered (`runtime_started_ms`); it is ready `runtime_init_ms` later
//! (`platform.initRuntimeDone`); INIT ends when it is ready and every
//! registered extension has called `next` (`platform.initReport`), limited to
//! `init_timeout_ms` (10 s: `Sandbox.Timeout`). An extension that exits first
//! fails INIT with `Extension.Crash`. [`Emulator::wait_init`] returns the
//! timings ([`InitOutcome`], [`ProcessInfo::exec_to_register_ms`]).
//!
//! **Telemetry API 2022-07-01.** `PUT /2022-07-01/telemetry` needs the
//! identifier (403); validates `schemaVersion` (2022-07-01, 2022-12-13,
//! 2025-01-29; managed instances only 2025-01-29), `destination` (HTTP,
//! `sandbox.localdomain` → 127.0.0.1), `types`, buffering ranges (400
//! `ValidationError`); 200 while the window is open, **403
//! `Telemetry.SubscriptionClosed` once INIT ended**. Events emitted during
//! INIT are replayed to each new subscriber. Each subscriber has its own queue
//! and delivery thread: batches up to `maxItems` / ≥`maxBytes` / after
//! `timeoutMs`, POSTed as a JSON array over a keep-alive connection; records
//! rendered per schema (2022-07-01 without runtimeDone metrics/spans,
//! 2025-01-29 initStart with `functionName`…). Non-2xx or I/O errors are
//! retried `delivery_retries` times with doubling backoff, then the batch is
//! dropped and `platform.logsDropped` is queued. See [`Emulator::deliveries`].
//!
//! **INVOKE (on-demand).** [`Emulator::invoke`] waits until everyone is
//! parked in `next`, thaws, emits `platform.start`, hands the INVOKE event
//! (`deadlineMs`, `requestId`, ARN, `tracing`) to INVOKE-registered
//! extensions, emits the function's lines as `function` records spread over
//! `duration_ms` (text: `"line\n"`; JSON: parsed object or `{timestamp,
//! level, message, requestId}`), then `platform.runtimeDone` (status,
//! errorType, metrics, spans) which is **flushed at once**; the invocation
//! ends when every INVOKE extension has called `next` again (post-runtime
//! time), the sandbox **freezes**, and `platform.report` (duration including
//! post-runtime time, billed ceil, memory, `initDurationMs` on the first) is
//! emitted — so it is delivered at the next thaw (next invoke or SHUTDOWN).
//! While frozen no delivery attempt starts; [`Emulator::freezes`] lists the
//! intervals; [`Emulator::deliveries_spanning_freeze`] lists deliveries the
//! extension had not answered when it went back to `next` (checked on the
//! socket at that instant, so CPU load causes no false positives). For the
//! extension's own flushes compare [`IntakeRequest::started_ms`]/`at_ms`
//! with the freezes. With [`Config::freeze_processes`] the extension
//! processes are really SIGSTOPped while frozen (the demo does this). There
//! is no freeze between INIT and the first INVOKE (on demand, the INVOKE
//! that caused INIT follows at once).
//! `Timeout` does not wait for extensions and, like `OutOfMemory` or an
//! extension that misses the deadline, marks the sandbox `needs_reset`: the
//! test then calls `shutdown("timeout")`/`("failure")`.
//!
//! **SHUTDOWN.** [`Emulator::shutdown`] thaws, sends `{"eventType":
//! "SHUTDOWN","shutdownReason","deadlineMs"}` (now + `shutdown_budget_ms`,
//! 2000 by default) to SHUTDOWN-registered extensions, keeps delivering
//! (the pending report goes out), waits for them to exit, SIGKILLs at the
//! deadline ([`ShutdownOutcome::killed`]); other processes are killed once
//! those are done. Telemetry still queued then is counted as undelivered.
//!
//! **Managed instances** ([`Mode::ManagedInstances`]): registering `INVOKE`
//! is 403 `Extension.InvalidEventType`, `next` only ever returns SHUTDOWN,
//! telemetry schema 2025-01-29 only, [`Emulator::invoke_many`] runs
//! invocations concurrently, no freezing. The records are those of AWS's
//! managed-instances emulator: INIT emits `platform.initStart`,
//! `platform.telemetrySubscription` per subscriber, the runtime's
//! [`Config::init_log_lines`] as `function`, `platform.initRuntimeDone`,
//! then one `platform.extension` per extension (not at `register`), then
//! `platform.initReport`; each invocation emits `platform.start`, its
//! `function` lines and `platform.report` (`status`, `errorType?`,
//! `metrics` with only `durationMs`, spans `responseLatency` and
//! `responseDuration`) and **no `platform.runtimeDone`**.
//!
//! **Faults** ([`Faults`]): failing `register`, an unknown event type before
//! the first INVOKE, 202 for subscriptions (old emulators), deliveries aborted
//! mid-body, unknown record types and fields.
//!
//! **Not emulated:** the runtime API for the function itself (`/runtime/…`),
//! SnapStart/restore, provisioned concurrency, the Logs API (2020-08-15 → 404),
//! memory limits, the runtime's own 300 ms share of the shutdown budget,
//! automatic re-INIT after a reset, a bound on the platform-side telemetry
//! buffer (a subscriber that never accepts just cycles through
//! retries/`logsDropped`).
//!
//! ## Helpers
//! [`fake`]: a std-only Extensions/Telemetry client ([`fake::ExtClient`]) and
//! telemetry listener ([`fake::TelemetryListener`]) for fake extensions
//! written inside tests; the `fake-extension` bin is a real-process one.
//! [`intake`]: the fake Datadog intake (keep-alive, gzip/deflate decoding,
//! switchable answers: 202, any status, slow, reset).
//! Bin `lambda-emulator demo [PATH] [--mi] [-v]` runs the README scenario
//! and prints a timeline.

pub mod fake;
pub mod http;
pub mod intake;
pub mod util;

mod emulator;
mod types;

pub use emulator::Emulator;
pub use intake::{FakeIntake, IntakeMode, IntakeRequest};
pub use types::*;
pub use util::now_ms;
