//! The I/O shell on std threads: the only place with sockets and threads.
//!
//! Threads: the main thread runs the [`Core`] loop (it owns all state and
//! does the flushes); a poller thread makes the `next` long-poll when the core
//! allows it; listener workers accept and serve telemetry connections (one
//! per open connection, reused). They meet at one bounded channel of [`Msg`].
//!
//! Before `register` only the three environment reads it needs happen: the
//! register call is on the function's cold-start path.

pub(crate) mod crash;
mod listener;
pub(crate) mod logger;
mod net;
pub mod pool;
mod runtime_api;
mod secrets;
mod ship;

use crate::config::{Config, SubscribeMode};
use crate::lambda::core::{Action, Core};
use crate::datadog::flush::{FlushControl, Strategy};
use crate::datadog::sink::Datadog;
use crate::lambda::extapi::{self, Event, SubscribeOutcome};
use crate::lambda::telemetry::Batch;
use crate::lambda::extapi::ApiError;
use runtime_api::RuntimeApi;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything that reaches the core loop.
pub enum Msg {
    Batch(Batch),
    Event(Result<Event, ApiError>),
    Subscribed(SubscribeOutcome),
    /// A background flush (Managed Instances timer) is over.
    Flushed(Box<ship::Parcel>),
}

/// Capacity of the listener → core queue, in batches (each ≤ maxItems records).
const QUEUE_BATCHES: usize = 256;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The name to register with: the executable's file name (Lambda compares it
/// with the file under /opt/extensions; another name makes SHUTDOWN a 403).
pub(crate) fn extension_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("slimcap")
        .to_string()
}

/// What the environment says before `register` (both shells): only the
/// reads `register` needs, nothing that can wait.
pub(crate) struct Launch {
    pub runtime_api: String,
    pub managed: bool,
    pub name: String,
    /// Registered already by the stage (src/bin/slimcap-stage.rs), which
    /// exec'd us: its identifier and the body of the register answer.
    pub staged: Option<(String, String)>,
}

impl Launch {
    /// `None`, after an error line, when not running as a Lambda extension.
    /// `--help`/`--version` (Lambda passes no arguments) print and exit 0.
    pub fn from_env() -> Option<Launch> {
        if let Some(a) = std::env::args_os().nth(1) {
            about(a.to_str().unwrap_or(""));
        }
        let runtime_api = match std::env::var("AWS_LAMBDA_RUNTIME_API") {
            Ok(v) if !v.is_empty() => v,
            _ => {
                eprintln!("[slimcap] ERROR AWS_LAMBDA_RUNTIME_API is not set: not running as a Lambda extension (slimcap --help)");
                return None;
            }
        };
        let runtime_api = match runtime_api.split_once("://") {
            Some((_, rest)) => {
                eprintln!("[slimcap] WARN AWS_LAMBDA_RUNTIME_API is host:port without a scheme (Lambda sets e.g. 127.0.0.1:9001); using {rest:?}");
                rest.to_string()
            }
            None => runtime_api,
        };
        let managed = std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE")
            .map(|v| v.eq_ignore_ascii_case("lambda-managed-instances"))
            .unwrap_or(false);
        let staged = std::env::var("SLIMCAP_EXTENSION_ID")
            .ok()
            .filter(|id| !id.is_empty())
            .map(|id| (id, std::env::var("SLIMCAP_REGISTRATION").unwrap_or_default()));
        Some(Launch { runtime_api, managed, name: extension_name(), staged })
    }
}

/// `slimcap --version` / `--help`; other arguments are ignored.
fn about(arg: &str) {
    let v = concat!("slimcap ", env!("CARGO_PKG_VERSION"));
    if arg == "--version" || arg == "-V" {
        println!("{v}");
    } else if arg == "--help" || arg == "-h" {
        println!("{v}: a small AWS Lambda extension that sends Datadog's enhanced metrics and\n\
            function logs to Datadog, a drop-in for Datadog's extension (the same DD_* settings).\n\
            It runs inside AWS Lambda as an extension (a layer's /opt/extensions/slimcap), started\n\
            by the platform with AWS_LAMBDA_RUNTIME_API set; it is not run by hand.\n\
            Configuration, build and tests: README.md in the slimcap repository.");
    } else {
        return;
    }
    std::process::exit(0)
}

/// After `register`: the crash test hook (`SLIMCAP_CRASH_TEST=init` panics
/// here, during init; the value is returned for the INVOKE-time variants),
/// then the configuration, with logging set up and its warnings logged.
pub(crate) fn configure() -> (Option<String>, Config) {
    let crash_test = std::env::var("SLIMCAP_CRASH_TEST").ok();
    if crash_test.as_deref() == Some("init") {
        panic!("SLIMCAP_CRASH_TEST=init");
    }
    let (cfg, warnings) = Config::from_lookup(|k| std::env::var(k).ok());
    logger::init(cfg.log_level);
    for w in &warnings {
        log::warn!("{w}");
    }
    (crash_test, cfg)
}

pub fn run() -> i32 {
    // --- the cold-start critical path: straight to register ---
    let Some(Launch { runtime_api, managed, name, staged }) = Launch::from_env() else { return 1 };
    let mut api = RuntimeApi::new(&runtime_api);
    let registration = match staged {
        Some((id, answer)) => {
            api.set_id(id);
            Ok(extapi::parse_registration(answer.as_bytes()))
        }
        None => api.register(&name, managed),
    };
    let registration = match registration {
        Ok(r) => r,
        Err(e) => {
            eprintln!("[slimcap] ERROR register as {name:?} failed: {e}");
            return 1;
        }
    };
    // --- registered: the runtime may start now ---
    crash_reporter(&api, &runtime_api);
    // (SLIMCAP_CRASH_TEST: =overflow overflows the stack at the first INVOKE; else a panic there.)
    let (crash_test, cfg) = configure();
    log::debug!("registered as {name:?} (id {}), function {}", api.id(), registration.function_name.as_deref().unwrap_or("?"));
    if let Err(msg) = cfg.validate() {
        log::error!("{msg}");
        if let Err(e) = api.report_error("init/error", "Extension.ConfigInvalid", &msg) {
            log::error!("init/error failed: {e}");
        }
        return 1;
    }

    let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE_BATCHES);

    // Bind the listener before subscribing: the platform starts delivering at once.
    // Bodies reach 2 × maxBytes plus overhead; accept the platform's largest
    // (maxBytes 1 MiB) whatever we asked for, so no batch is ever refused.
    let body_limit = 2 * (cfg.buffer_max_bytes as usize).max(1 << 20) + 256 * 1024;
    let port = match listener::start(cfg.telemetry_port, body_limit, tx.clone()) {
        Ok(p) => Some(p),
        Err(e) => {
            log::error!("telemetry listener on port {} failed: {e}; running without telemetry", cfg.telemetry_port);
            None
        }
    };

    let (strategy, bad_strategy) = Strategy::parse(cfg.flush_strategy.as_deref());
    if let Some(w) = bad_strategy {
        log::warn!("{w}");
    }
    let policy = FlushControl::new(strategy, now_ms());
    let mut core = Core::new(cfg.managed_instances, policy, Datadog::new(&cfg, &registration));
    let mut shipper = ship::Shipper::new(cfg.api_key.clone(), &cfg.metrics_url, &cfg.logs_url);
    // DD_API_KEY_SECRET_ARN: fetched once the first `next` is out (not on init's path).
    let mut key_secret = if cfg.api_key.is_none() { cfg.api_key_secret_arn.clone() } else { None };
    if let Some(e) = cfg.api_key_error() {
        log::error!("{e}");
    }
    core.flush_timeout_ms = cfg.flush_timeout_ms as i64;

    if let Some(port) = port {
        let body = extapi::subscribe_body(
            extapi::schema(cfg.managed_instances),
            port,
            cfg.telemetry_types(),
            cfg.buffer_max_items,
            cfg.buffer_max_bytes,
            cfg.buffer_timeout_ms,
        );
        match cfg.subscribe_mode {
            SubscribeMode::Awaited => {
                let outcome = api.subscribe(&body);
                core.set_telemetry_active(outcome.log_and_active());
            }
            SubscribeMode::Concurrent => {
                let handle = api.clone_handle();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(Msg::Subscribed(handle.subscribe(&body)));
                });
            }
        }
    } else {
        core.set_telemetry_active(false);
    }
    core.init_done(now_ms());
    crash::INIT_DONE.store(true, std::sync::atomic::Ordering::Relaxed);

    // DD_API_KEY_SECRET_ARN: the fetch thread starts now and waits for the
    // poller to have written the first `next` (the end of our init).
    let (fetch_go, fetch_wait) = mpsc::channel::<()>();
    if let Some(arn) = key_secret.take() {
        shipper.await_api_key(secrets::spawn_fetch(arn, fetch_wait));
    }
    let mut fetch_go = Some(fetch_go);

    // The `next` poller: one long-poll each time the core allows it.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    {
        let tx = tx.clone();
        let poller = api.clone_handle();
        std::thread::spawn(move || {
            crash::altstack();
            while go_rx.recv().is_ok() {
                let ev = poller.next(&mut || drop(fetch_go.take()));
                let stop = matches!(ev, Ok(Event::Shutdown { .. }));
                if tx.send(Msg::Event(ev)).is_err() || stop {
                    break;
                }
            }
        });
    }
    // (kept only for background flushes: else the channel closes when every sender is gone)
    let flush_tx = cfg.managed_instances.then(|| tx.clone());
    drop(tx);

    let mut next_errors = 0;
    loop {
        let now = now_ms();
        let msg = match core.poll(now) {
            Action::CallNext => {
                shipper.settle();
                let _ = go_tx.send(());
                continue;
            }
            Action::Exit => {
                shipper.abandon(&mut core.sink);
                log::debug!("exiting: {}; {}", core.stats.summary(), shipper.stats.summary());
                // (Exit comes ≥ 200 ms before the deadline: room for this.)
                listener::settle(std::time::Duration::from_millis(50));
                return 0;
            }
            Action::Flush { deadline_ms, background: true, .. } => {
                let tx = flush_tx.clone().expect("background flushes are for managed instances");
                if !shipper.flush_in_background(&mut core.sink, deadline_ms, tx) {
                    // No key (dropped, counted) or not come yet (kept): nothing to wait for.
                    shipper.flush(&mut core.sink, now);
                    core.flushed(now_ms());
                }
                continue;
            }
            Action::Flush { deadline_ms, final_flush, .. } => {
                let done = shipper.flush(&mut core.sink, deadline_ms);
                log::debug!("flush (final: {final_flush}) complete: {done}");
                core.flushed(now_ms());
                continue;
            }
            Action::Wait(None) => match rx.recv() {
                Ok(m) => m,
                Err(_) => return 1,
            },
            Action::Wait(Some(until)) => {
                let wait = (until - now).max(0) as u64;
                match rx.recv_timeout(std::time::Duration::from_millis(wait)) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return 1,
                }
            }
        };
        match msg {
            Msg::Batch(b) => core.on_records(&b.records, b.rejected),
            Msg::Event(Ok(ev)) => {
                next_errors = 0;
                if let Event::Unknown(t) = &ev {
                    log::warn!("ignoring unknown event from next: {t}");
                }
                let invoke = matches!(ev, Event::Invoke { .. });
                if invoke {
                    crash::test_at_invoke(crash_test.as_deref());
                }
                core.on_event(ev, now_ms());
                if invoke {
                    shipper.warm_up(now_ms(), core.invocation_cutoff());
                }
                // SHUTDOWN: every socket with a deadline (a background flush's too) ends in time.
                if let Some(cut) = core.io_cutoff() {
                    net::cut_at(cut);
                }
            }
            Msg::Event(Err(e)) => {
                next_errors += 1;
                log::error!("next failed: {e}");
                if next_errors >= 3 {
                    let _ = api.report_error("exit/error", "Extension.NextFailed", &format!("next failed: {e}"));
                    return 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                let _ = go_tx.send(()); // poll again
            }
            Msg::Subscribed(outcome) => core.set_telemetry_active(outcome.log_and_active()),
            Msg::Flushed(parcel) => {
                let done = shipper.landed(parcel, &mut core.sink);
                log::debug!("background flush complete: {done}");
                core.flushed(now_ms());
                if let Some(cut) = core.io_cutoff() {
                    net::cut_at(cut); // (after SHUTDOWN: the final flush's, later)
                }
            }
        }
    }
}

/// A panic (a bug) is reported to the platform as `init/error` or
/// `exit/error` before the process aborts, with its message. Builds with
/// `panic=immediate-abort` skip the hook: there the trap's signal is reported
/// ([`crash`], armed here for every build; one report per process).
fn crash_reporter(api: &RuntimeApi, runtime_api: &str) {
    crash::arm(runtime_api, api.id());
    let api = api.clone_handle();
    std::panic::set_hook(Box::new(move |info| {
        if !crash::claim() {
            return;
        }
        let msg = format!("slimcap crashed: {info}");
        eprintln!("[slimcap] ERROR {msg}");
        let _ = api.report_error(crash::error_path(), "Extension.Crash", &msg);
    }));
}
