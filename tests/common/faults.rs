//! Fault scenarios against a misbehaving intake (issue 8, part A), shared by
//! `tests/faults.rs` (which asserts on them) and `examples/reliability.rs`
//! (which prints the table of `size-reports/reliability.md`).
//!
//! One scenario: slimcap (the release binary) under the emulator, the fake
//! intake switched to a fault, a few invocations that each log one line,
//! then either the intake recovers (one more invocation, SHUTDOWN) or
//! SHUTDOWN comes while the fault holds, in the middle of a flush. Measured:
//! invocations the emulator saw overrun their deadline because slimcap's
//! `next` came late, whether SHUTDOWN had to SIGKILL, and which logged lines
//! arrived (in a 2xx-answered request) against what slimcap reported dropped.
#![allow(dead_code)]

use lambda_emulator::*;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Accepts, reads the request, never answers.
    Hang,
    /// Reads the request, closes its side (FIN) without answering.
    HalfClose,
    /// Answers 202, but after 4 s (longer than a 3 s function's deadline).
    Slow,
    /// Nothing listens: connections are refused.
    Refused,
}

pub const FAULTS: [Fault; 4] = [Fault::Hang, Fault::HalfClose, Fault::Slow, Fault::Refused];
/// `DD_SERVERLESS_FLUSH_STRATEGY` values (None: the default, adaptive).
pub const STRATEGIES: [Option<&str>; 4] = [Some("end"), Some("end,1000"), Some("periodically,1000"), None];

/// Each invocation's runtime: past the 1 s interval of `end,1000` and
/// `periodically,1000`, so that every strategy flushes into the fault.
pub const RUNTIME_MS: u64 = 1_100;

#[derive(Clone, Debug)]
pub struct Scenario {
    pub fault: Fault,
    pub strategy: Option<&'static str>,
    /// Function timeout (INVOKE deadline = start + this).
    pub timeout_ms: u64,
    pub managed: bool,
    /// Invocations while the fault holds.
    pub invocations: usize,
    /// SHUTDOWN while the fault holds (in the middle of a flush) instead of
    /// recovering first.
    pub shutdown_in_fault: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub invocations: usize,
    /// Invocations the platform timed out because slimcap's `next` was late.
    pub timed_out_by_extension: usize,
    pub extension_errors: Vec<String>,
    /// The longest post-runtime time (runtimeDone → slimcap's `next`), on demand.
    pub post_runtime_max_ms: f64,
    pub killed: bool,
    pub exit_code: Option<i32>,
    pub shutdown_ms: f64,
    pub lines_logged: usize,
    /// Distinct logged lines that arrived in a 2xx-answered request.
    pub lines_arrived: usize,
    /// From slimcap's exit line: payloads dropped (refused for good, or not
    /// delivered by the exit), and its invocation count.
    pub dropped_reported: Option<u64>,
    pub invocations_reported: Option<u64>,
    pub output: Vec<String>,
}

impl Outcome {
    /// Every logged line arrived, or slimcap reported dropping payloads.
    pub fn accounted(&self) -> bool {
        self.lines_arrived == self.lines_logged || self.dropped_reported.is_some_and(|d| d > 0)
    }
}

/// A URL where nothing listens.
fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn mode(f: Fault) -> IntakeMode {
    match f {
        Fault::Hang => IntakeMode::Hang,
        Fault::HalfClose => IntakeMode::HalfClose,
        Fault::Slow => IntakeMode::Slow { delay_ms: 4_000, status: 202 },
        Fault::Refused => IntakeMode::Accept,
    }
}

/// The number after `what` in `line` ("... 3 payloads dropped" → 3).
fn number_before(line: &str, what: &str) -> Option<u64> {
    let head = &line[..line.find(what)?];
    head.trim_end().rsplit(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

pub fn run(ext: ExtensionSpec, sc: &Scenario) -> Outcome {
    let intake = FakeIntake::start();
    let url = if sc.fault == Fault::Refused { refused_url() } else { intake.url() };
    let mut c = Config { extensions: vec![ext], ..Config::default() };
    c.env = vec![
        ("DD_API_KEY".into(), "test-api-key-0123456789".into()),
        ("DD_DD_URL".into(), url.clone()),
        ("DD_LOGS_CONFIG_LOGS_DD_URL".into(), url),
        ("SLIMCAP_TELEMETRY_PORT".into(), "0".into()),
        ("DD_LOG_LEVEL".into(), "debug".into()),
    ];
    if let Some(s) = sc.strategy {
        c.env.push(("DD_SERVERLESS_FLUSH_STRATEGY".into(), s.into()));
    }
    c.function.timeout_ms = sc.timeout_ms;
    c.shutdown_budget_ms = 2_000;
    if sc.managed {
        c.mode = Mode::ManagedInstances;
    }
    let emu = Emulator::start(c).expect("emulator start");
    let init = emu.wait_init(Duration::from_secs(10));
    assert!(init.ok, "INIT failed: {init:?}");
    intake.set_mode(mode(sc.fault));

    let mut out = Outcome::default();
    let mut logged = vec![];
    let mut invs = vec![];
    for i in 0..sc.invocations {
        let line = format!("fault-line {i}");
        invs.push(Invocation::new(RUNTIME_MS).log(&line));
        logged.push(line);
    }
    let mut outcomes = vec![];
    if sc.managed {
        outcomes.extend(emu.invoke_many(invs));
        // Wait for the timer flush (every 10 s) to be under way: a request in
        // (or, refused, the time it takes to start).
        if sc.fault == Fault::Refused {
            std::thread::sleep(Duration::from_millis(10_500));
        } else {
            intake.wait_until(Duration::from_secs(15), |r| !r.is_empty());
        }
    } else {
        for inv in invs {
            outcomes.push(emu.invoke(inv));
        }
    }
    if !sc.shutdown_in_fault {
        intake.set_mode(IntakeMode::Accept);
        let line = format!("fault-line {}", sc.invocations);
        let inv = Invocation::new(RUNTIME_MS).log(&line);
        logged.push(line);
        if sc.managed {
            outcomes.extend(emu.invoke_many(vec![inv]));
        } else {
            outcomes.push(emu.invoke(inv));
        }
    }
    let sd = emu.shutdown("spindown");
    out.invocations = outcomes.len();
    for o in &outcomes {
        out.post_runtime_max_ms = out.post_runtime_max_ms.max(o.post_runtime_ms.unwrap_or(0.0));
        if !o.extension_errors.is_empty() {
            out.timed_out_by_extension += 1;
            out.extension_errors.extend(o.extension_errors.iter().cloned());
        }
    }
    out.killed = sd.killed;
    out.exit_code = sd.exit_code("slimcap");
    out.shutdown_ms = sd.elapsed_ms;
    out.lines_logged = logged.len();
    let reqs = intake.requests();
    let arrived: std::collections::HashSet<String> = reqs
        .iter()
        .filter(|r| r.path_only() == "/api/v2/logs" && matches!(r.status, Some(s) if (200..300).contains(&s)))
        .filter_map(|r| r.json())
        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["message"]["message"].as_str().map(String::from))
        .collect();
    out.lines_arrived = logged.iter().filter(|l| arrived.contains(*l)).count();
    out.output = emu.output().into_iter().map(|l| l.line).collect();
    if let Some(exit) = out.output.iter().find(|l| l.contains("exiting: ")) {
        out.dropped_reported = number_before(exit, "payloads dropped");
        out.invocations_reported = number_before(exit, "invocations;");
    }
    out
}
