//! The extension's lifecycle against the platform emulator: register,
//! subscribe, next, SHUTDOWN, init/error, managed instances, and what the
//! platform may throw at it. Runs the real binary (see tests/common).

mod common;
use common::*;
use std::time::Duration;

fn requests<'a>(wire: &'a [WireEvent], path_end: &str) -> Vec<&'a WireEvent> {
    wire.iter().filter(|w| w.path.ends_with(path_end)).collect()
}

#[test]
fn cold_start_three_invocations_and_shutdown() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &[]));
    for i in 0..3 {
        let out = emu.invoke(Invocation::new(30).log(&format!("line {i}")));
        assert!(out.error.is_none(), "{out:?}");
        assert!(out.extension_errors.is_empty(), "{out:?}");
    }
    let sd = emu.shutdown("spindown");
    assert!(!sd.killed, "SIGKILLed at the deadline: {sd:?}");
    assert_eq!(sd.exit_code(NAME), Some(0), "{sd:?}\n{:#?}", output(&emu));
    assert!(sd.elapsed_ms < sd.deadline_ms - sd.started_ms, "{sd:?}");

    let wire = emu.wire();
    // register: first request, exact file name, accountId feature, events
    let reg = &wire[0];
    assert!(reg.path.ends_with("/2020-01-01/extension/register"), "{reg:?}");
    assert_eq!(reg.method, "POST");
    assert_eq!(reg.header("Lambda-Extension-Name"), Some(NAME));
    assert_eq!(reg.header("Lambda-Extension-Accept-Feature"), Some("accountId"));
    assert_eq!(reg.body_json().unwrap()["events"], serde_json::json!(["INVOKE", "SHUTDOWN"]));
    assert_eq!(reg.status, Some(200));
    let id = reg.answer_header("Lambda-Extension-Identifier").unwrap().to_string();

    // subscribe: after register, before the first next, with the identifier and all buffering fields
    let subs = requests(&wire, "/2022-07-01/telemetry");
    assert_eq!(subs.len(), 1);
    let sub = subs[0];
    assert_eq!(sub.method, "PUT");
    assert_eq!(sub.header("Lambda-Extension-Identifier"), Some(id.as_str()));
    assert_eq!(sub.header("Content-Type"), Some("application/json"));
    let body = sub.body_json().unwrap();
    assert_eq!(body["schemaVersion"], "2022-12-13");
    assert_eq!(body["types"], serde_json::json!(["platform", "function", "extension"]));
    assert_eq!(body["buffering"]["maxItems"], 1000);
    assert_eq!(body["buffering"]["maxBytes"], 262144);
    assert_eq!(body["buffering"]["timeoutMs"], 25);
    assert_eq!(body["destination"]["protocol"], "HTTP");
    assert_eq!(sub.status, Some(200));
    let nexts = requests(&wire, "/event/next");
    assert!(sub.seq < nexts[0].seq, "subscribe awaited before the first next");
    // 3 invocations + shutdown = 4 events, plus the first next
    assert_eq!(nexts.len(), 4, "{nexts:?}");
    assert!(nexts.iter().all(|n| n.header("Lambda-Extension-Identifier") == Some(id.as_str())));

    // the listener was bound before subscribing: the first delivery succeeded at once
    let deliveries = emu.deliveries();
    assert!(!deliveries.is_empty());
    let bad: Vec<_> = deliveries.iter().filter(|d| !d.ok()).map(|d| (d.started_ms, d.status, d.error.clone(), d.records.clone())).collect();
    assert!(bad.is_empty(), "failed deliveries: {bad:?}; shutdown: {sd:?}; all: {:?}; output: {:#?}; wire: {:#?}", deliveries.iter().map(|d| (d.started_ms, d.finished_ms, d.status, d.types())).collect::<Vec<_>>(), emu.output().iter().map(|l| (l.at_ms, l.line.clone())).collect::<Vec<_>>(), wire.iter().map(|w| (w.started_ms, w.at_ms, w.answered_ms, w.path.clone(), w.answer_str())).collect::<Vec<_>>());
    assert!(deliveries.iter().all(|d| d.attempt == 1));
    // init events (emitted before the subscribe) were replayed to it
    let types: Vec<String> = deliveries.iter().flat_map(|d| d.types()).collect();
    for t in ["platform.initStart", "platform.start", "platform.runtimeDone", "platform.report", "function"] {
        assert!(types.iter().any(|x| x == t), "{t} not delivered: {types:?}");
    }
}

#[test]
fn next_waits_for_runtime_done_and_report_comes_after_next() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &[]));
    let out = emu.invoke(Invocation::new(20));
    let next_at = out.extensions_next_ms.unwrap();
    // runtimeDone was delivered (and answered) before the extension went back to next
    // (the emulator records a delivery once it has read our 200, which may come
    // after our next: wait for the record, then compare the times)
    let is_rd = |d: &Delivery| d.records.iter().any(|r| r["type"] == "platform.runtimeDone" && r["record"]["requestId"] == out.request_id.as_str());
    emu.wait_for(Duration::from_secs(2), |e| e.deliveries().iter().any(is_rd));
    let rd = emu.deliveries().into_iter().find(is_rd).expect("runtimeDone delivered");
    // (started, not finished: the emulator stamps "finished" after reading our
    // 200, which races with our next)
    assert!(rd.started_ms <= next_at, "runtimeDone {rd:?} after next {next_at}");
    // the report for it arrives only after that next (at the next invocation or SHUTDOWN)
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0));
    let report = emu
        .deliveries()
        .into_iter()
        .find(|d| d.records.iter().any(|r| r["type"] == "platform.report"))
        .expect("report delivered at shutdown");
    assert!(report.started_ms >= next_at);
    // and no flush to the intake was in flight while the sandbox was frozen
    // (a request fully received inside a freeze was sent while frozen)
    for r in intake.requests() {
        let end = r.at_ms;
        assert!(
            !emu.spans_freeze(r.at_ms - 0.001, end),
            "intake {} {} [{}, {end}] during a freeze: {:?}; invocation {out:?}",
            r.method,
            r.path,
            r.at_ms,
            emu.freezes()
        );
    }
}

#[test]
fn shutdown_reasons_in_any_case_exit_zero_quickly() {
    for reason in ["spindown", "TIMEOUT", "Failure", "something-new"] {
        let intake = FakeIntake::start();
        let emu = start(config(&intake, &[]));
        emu.invoke(Invocation::new(5));
        let sd = emu.shutdown(reason);
        assert_eq!(sd.exit_code(NAME), Some(0), "reason {reason}: {sd:?}");
        assert!(!sd.killed);
        // well within the deadline (300 ms report wait at most, plus a flush)
        assert!(sd.elapsed_ms < 1500.0 * slow_factor() as f64, "reason {reason}: {sd:?}");
    }
}

#[test]
fn shutdown_without_any_invocation() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &[]));
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0));
    assert!(!sd.killed);
}

#[test]
fn concurrent_subscribe_survives_either_outcome() {
    for runtime_init_ms in [0, 50] {
        let intake = FakeIntake::start();
        let mut c = config(&intake, &[("SLIMCAP_SUBSCRIBE", "concurrent")]);
        c.runtime_init_ms = runtime_init_ms;
        let emu = start(c);
        let out = emu.invoke(Invocation::new(10));
        assert!(out.error.is_none() && out.extension_errors.is_empty(), "{out:?}");
        let sd = emu.shutdown("spindown");
        assert_eq!(sd.exit_code(NAME), Some(0), "{sd:?}");
        let wire = emu.wire();
        let sub = requests(&wire, "/2022-07-01/telemetry");
        assert_eq!(sub.len(), 1);
        let status = sub[0].status;
        assert!(matches!(status, Some(200) | Some(403)), "{status:?}");
        if status == Some(403) {
            assert!(output(&emu).iter().any(|l| l.contains("SubscriptionClosed")));
        }
    }
}

#[test]
fn subscription_closed_403_is_survived_without_waiting_for_telemetry() {
    // Make the window close before the subscribe: runtime ready at once, and
    // the concurrent subscribe races the first next. Whatever the outcome, if
    // it was refused the extension must not wait for a runtimeDone that cannot come.
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[("SLIMCAP_SUBSCRIBE", "concurrent")]);
    c.runtime_init_ms = 0;
    let emu = start(c);
    for _ in 0..2 {
        let out = emu.invoke(Invocation::new(10));
        assert!(out.extension_errors.is_empty(), "{out:?}");
        assert!(out.post_runtime_ms.unwrap() < 1000.0, "{out:?}");
    }
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0));
}

#[test]
fn old_emulator_202_means_no_telemetry_and_no_waiting() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[]);
    c.faults.subscribe_answer_202 = true;
    let emu = start(c);
    let out = emu.invoke(Invocation::new(10));
    assert!(out.post_runtime_ms.unwrap() < 500.0, "{out:?}");
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0));
    assert!(output(&emu).iter().any(|l| l.contains("202") || l.contains("no Telemetry API")));
}

#[test]
fn register_failure_exits_nonzero_with_a_clear_message() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[]);
    c.faults.register_status = Some(500);
    let emu = Emulator::start(c).expect("start");
    let init = emu.wait_init(Duration::from_secs(10));
    assert!(!init.ok);
    assert!(emu.wait_for(Duration::from_secs(5), |e| e.processes().iter().all(|p| p.exited_ms.is_some())));
    let p = &emu.processes()[0];
    assert_ne!(p.exit_code, Some(0), "{p:?}");
    assert!(output(&emu).iter().any(|l| l.contains("register") && l.contains("500")), "{:#?}", output(&emu));
}

#[test]
fn unknown_event_from_next_is_ignored() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[]);
    c.faults.next_unknown_event = true;
    let emu = start(c);
    let out = emu.invoke(Invocation::new(10));
    assert!(out.error.is_none() && out.extension_errors.is_empty(), "{out:?}");
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0));
    assert!(output(&emu).iter().any(|l| l.contains("unknown event")));
}

#[test]
fn bad_configuration_goes_to_init_error() {
    let intake = FakeIntake::start();
    let c = config(&intake, &[("DD_DD_URL", "http://")]);
    let emu = Emulator::start(c).expect("start");
    let init = emu.wait_init(Duration::from_secs(10));
    assert!(!init.ok, "{init:?}");
    let wire = emu.wire();
    let err = requests(&wire, "/init/error");
    assert_eq!(err.len(), 1, "{wire:?}");
    assert_eq!(err[0].header("Lambda-Extension-Function-Error-Type"), Some("Extension.ConfigInvalid"));
    let body = err[0].body_json().unwrap();
    assert!(body["errorMessage"].as_str().unwrap().contains("DD_DD_URL"), "{body}");
    assert_eq!(body["errorType"], "Extension.ConfigInvalid");
    assert!(emu.wait_for(Duration::from_secs(5), |e| e.processes()[0].exited_ms.is_some()));
}

#[test]
fn invalid_values_warn_and_never_print_the_key() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &[("DD_FLUSH_TIMEOUT", "soon"), ("DD_LOG_LEVEL", "debug")]));
    emu.invoke(Invocation::new(5));
    emu.shutdown("spindown");
    let out = output(&emu);
    assert!(out.iter().any(|l| l.contains("DD_FLUSH_TIMEOUT")), "{out:#?}");
    assert!(out.iter().all(|l| !l.contains("test-api-key-0123456789")), "{out:#?}");
}

#[test]
fn managed_instances_register_shutdown_only_and_use_schema_2025() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[]);
    c.mode = Mode::ManagedInstances;
    let emu = start(c);
    let outs = emu.invoke_many(vec![Invocation::new(30), Invocation::new(40), Invocation::new(20)]);
    assert!(outs.iter().all(|o| o.error.is_none()), "{outs:?}");
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0), "{sd:?}");
    assert!(!sd.killed);
    let wire = emu.wire();
    assert_eq!(wire[0].body_json().unwrap()["events"], serde_json::json!(["SHUTDOWN"]));
    assert_eq!(wire[0].status, Some(200));
    let sub = requests(&wire, "/2022-07-01/telemetry");
    assert_eq!(sub[0].body_json().unwrap()["schemaVersion"], "2025-01-29");
    assert_eq!(sub[0].status, Some(200));
    // the final flush carried the three invocations
    assert!(intake.requests_to("/api/beta/sketches").len() >= 1);
}

#[test]
fn delivery_failures_are_retried_and_nothing_is_lost() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[]);
    c.faults.delivery_fail_first_n = 2;
    let emu = start(c);
    let out = emu.invoke(Invocation::new(20).log("after the failures"));
    assert!(out.extension_errors.is_empty(), "{out:?}");
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0));
    assert!(emu.deliveries().iter().any(|d| d.attempt > 1));
    assert!(!emu.deliveries().iter().any(|d| d.dropped));
}

/// One `Extension.Crash` report to `path_end`, none to the other error path;
/// its message: the panic's (panic hook) or the signal's (static builds,
/// `panic=immediate-abort`: the trap's SIGILL, or SIGTRAP on aarch64).
fn assert_one_crash_report(emu: &Emulator, path_end: &str, messages: &[&str]) {
    let wire = emu.wire();
    let errs: Vec<_> = wire.iter().filter(|w| w.path.ends_with("/init/error") || w.path.ends_with("/exit/error")).collect();
    assert_eq!(errs.len(), 1, "{errs:?}\n{:#?}", output(emu));
    assert!(errs[0].path.ends_with(path_end), "{:?}", errs[0]);
    assert_eq!(errs[0].header("Lambda-Extension-Function-Error-Type"), Some("Extension.Crash"));
    let body = errs[0].body_json().unwrap();
    let msg = body["errorMessage"].as_str().unwrap();
    assert!(messages.iter().any(|m| msg.contains(m)), "{body}");
    assert_eq!(body["errorType"], "Extension.Crash");
    // the handler re-raised: the exit status still names the signal
    let p = &emu.processes()[0];
    assert!(p.signal.is_some(), "{p:?}");
}

#[test]
fn a_crash_after_init_is_reported_with_exit_error() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &[("SLIMCAP_CRASH_TEST", "1")]));
    let _ = emu.invoke(Invocation::new(10));
    assert!(emu.wait_for(Duration::from_secs(5), |e| e.processes()[0].exited_ms.is_some()));
    assert_one_crash_report(&emu, "/exit/error", &["SLIMCAP_CRASH_TEST", "crashed: SIGILL", "crashed: SIGTRAP"]);
}

#[test]
fn a_crash_during_init_is_reported_with_init_error() {
    let intake = FakeIntake::start();
    let emu = Emulator::start(config(&intake, &[("SLIMCAP_CRASH_TEST", "init")])).expect("start");
    let init = emu.wait_init(Duration::from_secs(10));
    assert!(!init.ok, "{init:?}");
    assert!(emu.wait_for(Duration::from_secs(5), |e| e.processes()[0].exited_ms.is_some()));
    assert_one_crash_report(&emu, "/init/error", &["SLIMCAP_CRASH_TEST", "crashed: SIGILL", "crashed: SIGTRAP"]);
}

/// The signal handler runs on an alternate stack: a stack overflow (SIGSEGV
/// on the guard page) is reported too, on every build.
#[test]
fn a_stack_overflow_is_reported_with_exit_error() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &[("SLIMCAP_CRASH_TEST", "overflow")]));
    let _ = emu.invoke(Invocation::new(10));
    assert!(emu.wait_for(Duration::from_secs(5), |e| e.processes()[0].exited_ms.is_some()));
    assert_one_crash_report(&emu, "/exit/error", &["crashed: SIGSEGV"]);
    assert_eq!(emu.processes()[0].signal, Some(11));
}

/// The registration stage (src/bin/slimcap-stage.rs) registers, then execs
/// the core in the same process: one registration, the same identifier on
/// every later call, and the whole lifecycle works.
#[test]
fn the_registration_stage_hands_over_to_the_core() {
    let stage = std::env::var_os("SLIMCAP_STAGE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_slimcap-stage")));
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[("SLIMCAP_CORE", bin().to_str().unwrap())]);
    c.extensions = vec![ExtensionSpec::process_named(NAME, stage, &[])];
    let emu = start(c);
    let out = emu.invoke(Invocation::new(10).log("staged"));
    assert!(out.error.is_none() && out.extension_errors.is_empty(), "{out:?}");
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0), "{sd:?}\n{:#?}", output(&emu));
    let wire = emu.wire();
    let regs = requests(&wire, "/extension/register");
    assert_eq!(regs.len(), 1, "registered once");
    assert_eq!(regs[0].header("Lambda-Extension-Name"), Some(NAME));
    let id = regs[0].answer_header("Lambda-Extension-Identifier").unwrap();
    let later: Vec<_> = wire.iter().filter(|w| !w.path.ends_with("/register")).collect();
    assert!(later.iter().all(|w| w.header("Lambda-Extension-Identifier") == Some(id)), "{later:?}");
    assert_eq!(requests(&wire, "/2022-07-01/telemetry")[0].status, Some(200));
    let logs: String = intake.requests_to("/api/v2/logs").iter().map(|r| r.text()).collect();
    assert!(logs.contains("staged"));
}
