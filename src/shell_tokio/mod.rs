//! The A/B shell (cargo feature `tokio`): the same core under the stack most
//! Rust Lambda extensions are built on: a multi-thread tokio runtime, a hyper
//! server for the telemetry listener, reqwest (hyper + rustls/ring, trusting
//! the system CA bundle like the std shell: `SSL_CERT_FILE` or the usual
//! bundle paths, see [`https_client_builder`]) for the
//! Runtime API and the Datadog intake, serde/serde_json for the Extensions
//! API messages.
//!
//! Behaviour is that of `crate::shell` (same core, same sink, same flush
//! policy, same order of calls): only the I/O differs. Tasks replace the
//! threads: the core loop runs in the `block_on` future; a poller task makes
//! the `next` long-poll when the core allows it; the listener task accepts
//! telemetry connections (one task each). They meet at one bounded channel.
//!
//! As in a typical extension (`#[tokio::main]`), the runtime and its worker
//! threads start before anything else, and the HTTP client (with its rustls
//! configuration and root store) is built before `register`. That is the
//! point of the comparison: it is what such extensions pay on the
//! cold-start path. Not meant for release.

mod listener;
use crate::shell::{configure, crash, Launch};
mod runtime_api;
mod secrets;
mod ship;

use crate::config::SubscribeMode;
use crate::lambda::core::{Action, Core};
use crate::datadog::sink::Datadog;
use crate::lambda::extapi::{Event, SubscribeOutcome};
use crate::datadog::flush::{FlushControl, Strategy};
use crate::lambda::telemetry::Batch;
use crate::lambda::extapi::ApiError;
use runtime_api::RuntimeApi;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Everything that reaches the core loop.
pub enum Msg {
    Batch(Batch),
    Event(Result<Event, ApiError>),
    Subscribed(SubscribeOutcome),
}

/// Capacity of the listener → core queue, in batches (as the std shell).
const QUEUE_BATCHES: usize = 256;

pub use crate::shell::now_ms;

/// `#[tokio::main]` spelled out, so that the exit does not wait on a
/// blocking task (a DNS lookup in flight) for longer than the budget allows.
pub fn run() -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("[slimcap] ERROR tokio runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(main_loop());
    rt.shutdown_timeout(Duration::from_millis(50));
    code
}

async fn main_loop() -> i32 {
    // --- the cold-start critical path: straight to register ---
    let Some(Launch {
        runtime_api,
        managed,
        name,
        staged,
    }) = Launch::from_env()
    else {
        return 1;
    };
    let mut api = RuntimeApi::new(&runtime_api);
    let registration = match staged {
        Some((id, answer)) => {
            api.set_id(id);
            Ok(runtime_api::registration(answer.as_bytes()))
        }
        None => api.register(&name, managed).await,
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
    let (crash_test, cfg) = configure();
    log::debug!(
        "registered as {name:?} (id {}), function {} (tokio shell)",
        api.id(),
        registration.function_name.as_deref().unwrap_or("?")
    );
    if let Err(msg) = cfg.validate() {
        log::error!("{msg}");
        if let Err(e) = api
            .report_error("init/error", "Extension.ConfigInvalid", &msg)
            .await
        {
            log::error!("init/error failed: {e}");
        }
        return 1;
    }

    let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE_BATCHES);

    // Bind the listener before subscribing: the platform starts delivering at once.
    // Bodies reach 2 × maxBytes plus overhead; accept the platform's largest
    // (maxBytes 1 MiB) whatever we asked for, so no batch is ever refused.
    let body_limit = 2 * (cfg.buffer_max_bytes as usize).max(1 << 20) + 256 * 1024;
    let port = match listener::start(cfg.telemetry_port, body_limit, tx.clone()).await {
        Ok(p) => Some(p),
        Err(e) => {
            log::error!(
                "telemetry listener on port {} failed: {e}; running without telemetry",
                cfg.telemetry_port
            );
            None
        }
    };

    let (strategy, bad_strategy) = Strategy::parse(cfg.flush_strategy.as_deref());
    if let Some(w) = bad_strategy {
        log::warn!("{w}");
    }
    let policy = FlushControl::new(strategy, now_ms());
    let mut core = Core::new(
        cfg.managed_instances,
        policy,
        Datadog::new(&cfg, &registration),
    );
    // SHUTDOWN's cutoff, from the poller task to a flush under way.
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(i64::MAX);
    let mut shipper = ship::Shipper::new(cfg.api_key.clone(), &cfg.metrics_url, &cfg.logs_url, cut_rx);
    // DD_API_KEY_SECRET_ARN: fetched once the first `next` is handed to the
    // poller task (not on init's path; reqwest has no hook for "written", so
    // unlike the std shell the fetch may start a few µs before the `next`).
    let mut key_secret = if cfg.api_key.is_none() {
        cfg.api_key_secret_arn.clone()
    } else {
        None
    };
    if let Some(e) = cfg.api_key_error() {
        log::error!("{e}");
    }
    core.flush_timeout_ms = cfg.flush_timeout_ms as i64;

    if let Some(port) = port {
        let req = runtime_api::SubscribeRequest::new(&cfg, port);
        match cfg.subscribe_mode {
            SubscribeMode::Awaited => {
                let outcome = api.subscribe(&req).await;
                core.set_telemetry_active(outcome.log_and_active());
            }
            SubscribeMode::Concurrent => {
                let api = api.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(Msg::Subscribed(api.subscribe(&req).await)).await;
                });
            }
        }
    } else {
        core.set_telemetry_active(false);
    }
    core.init_done(now_ms());
    crash::INIT_DONE.store(true, Ordering::Relaxed);

    // The `next` poller: one long-poll each time the core allows it.
    let (go_tx, mut go_rx) = mpsc::unbounded_channel::<()>();
    {
        let tx = tx.clone();
        let poller = api.clone();
        tokio::spawn(async move {
            while go_rx.recv().await.is_some() {
                let ev = poller.next().await;
                if let Ok(Event::Shutdown { deadline_ms, .. }) = &ev {
                    let _ = cut_tx.send(deadline_ms - crate::lambda::core::SHUTDOWN_MARGIN_MS);
                }
                let stop = matches!(ev, Ok(Event::Shutdown { .. }));
                if tx.send(Msg::Event(ev)).await.is_err() || stop {
                    break;
                }
            }
        });
    }
    drop(tx);

    let mut next_errors = 0;
    loop {
        let now = now_ms();
        let msg = match core.poll(now) {
            Action::CallNext => {
                shipper.settle().await;
                let _ = go_tx.send(());
                if let Some(arn) = key_secret.take() {
                    shipper.await_api_key(secrets::spawn_fetch(arn));
                }
                continue;
            }
            Action::Exit => {
                shipper.abandon(&mut core.sink);
                log::debug!("exiting: {}; {}", core.stats.summary(), shipper.stats.summary());
                // (Exit comes ≥ 200 ms before the deadline: room for this.)
                listener::settle(Duration::from_millis(50)).await;
                return 0;
            }
            // (The Managed Instances timer flush runs here too: the poller
            // task cuts it off at SHUTDOWN through the shipper's cutoff.)
            Action::Flush {
                deadline_ms,
                final_flush,
                ..
            } => {
                let done = shipper.flush(&mut core.sink, deadline_ms).await;
                log::debug!("flush (final: {final_flush}) complete: {done}");
                core.flushed(now_ms());
                continue;
            }
            Action::Wait(None) => match rx.recv().await {
                Some(m) => m,
                None => return 1,
            },
            Action::Wait(Some(until)) => {
                let wait = Duration::from_millis((until - now).max(0) as u64);
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(m)) => m,
                    Ok(None) => return 1,
                    Err(_) => continue,
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
                    shipper.warm_up(now_ms(), core.invocation_cutoff()).await;
                }
            }
            Msg::Event(Err(e)) => {
                next_errors += 1;
                log::error!("next failed: {e}");
                if next_errors >= 3 {
                    let _ = api
                        .report_error(
                            "exit/error",
                            "Extension.NextFailed",
                            &format!("next failed: {e}"),
                        )
                        .await;
                    return 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = go_tx.send(()); // poll again
            }
            Msg::Subscribed(outcome) => core.set_telemetry_active(outcome.log_and_active()),
        }
    }
}

/// A panic (a bug) is reported to the platform as `init/error` or
/// `exit/error` before the process ends (as the std shell; signals, and
/// `panic=immediate-abort`'s trap, go through `shell::crash`). The hook may run
/// on a runtime thread, where nothing can block on a future: the report goes
/// out from a thread of its own, on a fresh current-thread runtime and client.
fn crash_reporter(api: &RuntimeApi, runtime_api: &str) {
    crash::arm(runtime_api, api.id());
    let api = api.clone();
    std::panic::set_hook(Box::new(move |info| {
        if !crash::claim() {
            return;
        }
        let msg = format!("slimcap crashed: {info}");
        eprintln!("[slimcap] ERROR {msg}");
        let which = crash::error_path();
        let api = api.fresh();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(api.report_error(which, "Extension.Crash", &msg));
            }
        })
        .join();
    }));
}

/// A reqwest builder for HTTPS (intake, Secrets Manager) trusting the system
/// CA bundle the std shell trusts: `SSL_CERT_FILE`, else the first of Amazon
/// Linux's and Debian's bundle paths. Read when the client is built (after
/// `register`); no bundle means no trusted roots (HTTPS then fails, loudly).
pub fn https_client_builder() -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder().tls_built_in_root_certs(false);
    let paths = std::env::var("SSL_CERT_FILE").ok().into_iter().chain(
        [
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/ssl/certs/ca-bundle.crt",
        ]
        .map(String::from),
    );
    for p in paths {
        if let Ok(pem) = std::fs::read(&p) {
            match reqwest::Certificate::from_pem_bundle(&pem) {
                Ok(certs) => {
                    for c in certs {
                        b = b.add_root_certificate(c);
                    }
                }
                Err(e) => log::warn!("CA bundle {p}: {e}"),
            }
            break;
        }
    }
    b
}

/// An error with its causes (`a: b: c`): reqwest's own message hides the
/// reason ("error sending request"), the cause says what failed (a refused
/// certificate, a reset). Never holds headers.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}
