//! Telemetry delivery: retries, drops, faults, batching, managed instances,
//! several extensions.

use lambda_emulator::fake::{
    register_raw, simple_extension, subscription_body, ExtClient, TelemetryListener,
};
use lambda_emulator::*;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const S: Duration = Duration::from_secs(5);

fn ext(
    name: &'static str,
    l: &TelemetryListener,
    schema: &'static str,
    post_ms: u64,
) -> ExtensionSpec {
    let l = l.clone();
    ExtensionSpec::thread(name, move |env| {
        let l2 = l.clone();
        simple_extension(&env.api(), name, schema, &l, |ev| {
            if ev["eventType"] == "INVOKE" {
                let rid = ev["requestId"].as_str().unwrap().to_string();
                l2.wait_type("platform.runtimeDone", Some(&rid), S);
                std::thread::sleep(Duration::from_millis(post_ms));
            }
        })
        .unwrap();
    })
}

#[test]
fn failed_deliveries_are_retried_then_dropped_with_logs_dropped() {
    let l = TelemetryListener::start();
    l.set_status(500);
    let cfg = Config {
        extensions: vec![ext("r", &l, "2022-12-13", 0)],
        delivery_retries: 2,
        delivery_backoff_ms: 10,
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    assert!(emu.wait_for(S, |e| e.deliveries().iter().any(|d| d.dropped)));
    let d = emu.deliveries();
    let first_drop = d.iter().position(|d| d.dropped).unwrap();
    assert_eq!(d[first_drop].attempt, 3);
    assert_eq!(d[first_drop - 1].attempt, 2);
    assert_eq!(
        d[first_drop].records,
        d[first_drop - 2].records,
        "retries resend the same batch"
    );
    assert_eq!(d[first_drop].status, Some(500));
    let dropped_n = d[first_drop].records.len();
    // backoff between attempts
    assert!(d[first_drop].started_ms - d[first_drop - 1].finished_ms >= 19.0);
    l.set_status(200);
    emu.invoke(Invocation::new(5));
    let ld = l
        .wait_type("platform.logsDropped", None, S)
        .expect("logsDropped delivered");
    assert_eq!(
        ld["record"]["droppedRecords"].as_u64().unwrap() as usize,
        dropped_n
    );
    assert!(ld["record"]["droppedBytes"].as_u64().unwrap() > 0);
    assert!(ld["record"]["reason"].as_str().unwrap().len() > 10);
    emu.shutdown("spindown");
}

#[test]
fn injected_mid_body_aborts_are_retried_without_loss() {
    let l = TelemetryListener::start();
    let cfg = Config {
        extensions: vec![ext("f", &l, "2022-12-13", 0)],
        faults: Faults {
            delivery_fail_first_n: 2,
            ..Faults::default()
        },
        delivery_backoff_ms: 5,
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    let o = emu.invoke(Invocation::new(5));
    emu.shutdown("spindown");
    let d = emu.deliveries();
    assert!(d[0].error.as_deref().unwrap().contains("injected"));
    assert!(d[1].error.as_deref().unwrap().contains("injected"));
    assert!(d[2].ok());
    assert!(!d.iter().any(|d| d.dropped));
    let types = l.types();
    assert_eq!(
        types.iter().filter(|t| *t == "platform.initStart").count(),
        1,
        "truncated bodies not parsed as batches"
    );
    assert!(l
        .wait_type("platform.report", Some(&o.request_id), S)
        .is_some());
}

#[test]
fn batches_respect_max_items() {
    let l = TelemetryListener::start();
    let l2 = l.clone();
    let spec = ExtensionSpec::thread("big", move |env| {
        let mut c = ExtClient::register(&env.api(), "big", &["INVOKE", "SHUTDOWN"]).unwrap();
        let r = c
            .subscribe(&subscription_body(
                &l2.uri(),
                "2022-12-13",
                &["function"],
                1000,
                1_048_576,
                1000,
            ))
            .unwrap();
        assert_eq!(r.status, 200);
        loop {
            let ev = c.next().unwrap();
            if ev["eventType"] == "INVOKE" {
                l2.wait_type("function", None, S);
                // wait for all lines
                let until = now_ms() + 5000.0;
                while l2.records().len() < 2500 && now_ms() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            if ev["eventType"] == "SHUTDOWN" {
                break;
            }
        }
    });
    let emu = Emulator::start(Config {
        extensions: vec![spec],
        ..Config::default()
    })
    .unwrap();
    assert!(emu.wait_init(S).ok);
    let mut inv = Invocation::new(50);
    for i in 0..2500 {
        inv = inv.log(&format!("line {i}"));
    }
    let o = emu.invoke(inv);
    assert!(o.error.is_none());
    emu.shutdown("spindown");
    let recs = l.records();
    assert_eq!(recs.len(), 2500);
    assert!(l
        .batches()
        .iter()
        .all(|(_, b)| b.as_array().unwrap().len() <= 1000));
    assert!(l.batches().len() >= 3);
    assert_eq!(recs[0]["record"], "line 0\n");
    assert_eq!(recs[2499]["record"], "line 2499\n");
    let d = emu.deliveries();
    assert!(d.iter().all(|d| d.records.len() <= 1000 && d.ok()));
}

#[test]
fn two_extensions_init_waits_for_both_and_post_runtime_is_the_slowest() {
    let l1 = TelemetryListener::start();
    let l2 = TelemetryListener::start();
    let slow_reg = {
        let l = l2.clone();
        ExtensionSpec::thread("slow", move |env| {
            std::thread::sleep(Duration::from_millis(100));
            let l3 = l.clone();
            simple_extension(&env.api(), "slow", "2025-01-29", &l, |ev| {
                if ev["eventType"] == "INVOKE" {
                    l3.wait_type("platform.runtimeDone", ev["requestId"].as_str(), S);
                    std::thread::sleep(Duration::from_millis(60));
                }
            })
            .unwrap();
        })
    };
    let cfg = Config {
        extensions: vec![ext("fast", &l1, "2022-12-13", 0), slow_reg],
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    let init = emu.wait_init(S);
    assert!(init.ok);
    let slow = init.processes.iter().find(|p| p.name == "slow").unwrap();
    assert!(slow.exec_to_register_ms().unwrap() >= 99.0);
    assert!(init.runtime_started_ms.unwrap() >= slow.registered_ms.unwrap());
    assert_eq!(emu.subscriptions().len(), 2);
    let o = emu.invoke(Invocation::new(10));
    assert!(o.post_runtime_ms.unwrap() >= 59.0);
    emu.shutdown("spindown");
    // each subscriber gets its own schema rendering
    let is1 = l1.wait_type("platform.initStart", None, S).unwrap();
    let is2 = l2.wait_type("platform.initStart", None, S).unwrap();
    assert!(is1["record"].get("functionName").is_none());
    assert_eq!(is2["record"]["functionName"], "emulated-fn");
    assert!(l1
        .wait_type("platform.report", Some(&o.request_id), S)
        .is_some());
    assert!(l2
        .wait_type("platform.report", Some(&o.request_id), S)
        .is_some());
}

#[test]
fn managed_instances_rules() {
    let results = Arc::new(Mutex::new(Vec::<(String, u16, String)>::new()));
    let r2 = results.clone();
    let l = TelemetryListener::start();
    let l2 = l.clone();
    let spec = ExtensionSpec::thread("mi", move |env| {
        let api = env.api();
        let r = register_raw(&api, "mi", &["INVOKE", "SHUTDOWN"], false).unwrap();
        r2.lock()
            .unwrap()
            .push(("register-invoke".into(), r.status, r.text()));
        let mut c = ExtClient::register(&api, "mi", &["SHUTDOWN"]).unwrap();
        let r = c
            .subscribe(&subscription_body(
                &l2.uri(),
                "2022-12-13",
                &["platform"],
                1000,
                262144,
                25,
            ))
            .unwrap();
        r2.lock()
            .unwrap()
            .push(("sub-old".into(), r.status, r.text()));
        let r = c
            .subscribe(&subscription_body(
                &l2.uri(),
                "2025-01-29",
                &["platform", "function"],
                1000,
                262144,
                25,
            ))
            .unwrap();
        r2.lock()
            .unwrap()
            .push(("sub-new".into(), r.status, r.text()));
        loop {
            let ev = c.next().unwrap();
            r2.lock().unwrap().push((
                "event".into(),
                0,
                ev["eventType"].as_str().unwrap().to_string(),
            ));
            if ev["eventType"] == "SHUTDOWN" {
                break;
            }
        }
    });
    let cfg = Config {
        mode: Mode::ManagedInstances,
        extensions: vec![spec],
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    let outs = emu.invoke_many(vec![
        Invocation::new(150).log("a"),
        Invocation::new(150).log("b"),
        Invocation::new(150).status(InvokeStatus::Error),
    ]);
    // concurrent: every invocation started before any ended
    let first_end = outs.iter().map(|o| o.runtime_done_ms).fold(f64::MAX, f64::min);
    assert!(outs.iter().all(|o| o.started_ms < first_end), "{outs:?}");
    assert!(outs
        .iter()
        .all(|o| o.error.is_none() && o.report_duration_ms >= 149.0));
    assert!(emu.freezes().is_empty(), "managed instances never freeze");
    for o in &outs {
        let rep = l
            .wait_type("platform.report", Some(&o.request_id), S)
            .unwrap();
        let m = rep["record"]["metrics"].as_object().unwrap();
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            vec!["durationMs"],
            "MI report carries only durationMs"
        );
    }
    emu.shutdown("spindown");
    let res = results.lock().unwrap().clone();
    assert_eq!(res[0].1, 403);
    assert!(res[0].2.contains("Extension.InvalidEventType"));
    assert_eq!(res[1].1, 400);
    assert!(res[1].2.contains("ValidationError"));
    assert_eq!(res[2].1, 200);
    let evs: Vec<&str> = res
        .iter()
        .filter(|r| r.0 == "event")
        .map(|r| r.2.as_str())
        .collect();
    assert_eq!(evs, vec!["SHUTDOWN"]);
    let is = l.wait_type("platform.initStart", None, S).unwrap();
    assert_eq!(
        is["record"]["initializationType"],
        "lambda-managed-instances"
    );
    assert_eq!(is["record"]["functionName"], "emulated-fn");
    assert_eq!(is["record"]["instanceMaxMemory"], 128u64 * 1024 * 1024);
    let starts = l
        .records()
        .into_iter()
        .filter(|r: &Value| r["type"] == "platform.start")
        .count();
    assert_eq!(starts, 3);
}

/// Managed instances emit exactly the records of AWS's managed-instances
/// emulator (aws-lambda-runtime-interface-emulator,
/// internal/lambda-managed-instances: rapid/handlers.go runtimeInitWithTelemetry
/// sends the agents' `platform.extension` after the runtime's init and before
/// `initReport`; aws-lambda-rie/test/rie_test.go:466-477 expects per invocation
/// `platform.start` and `platform.report` with the responseLatency and
/// responseDuration spans): no `platform.runtimeDone`, concurrently for
/// concurrent invocations. See shared/docs/lambda-platform.md.
#[test]
fn managed_instances_emit_lambdas_record_sequence() {
    let l = TelemetryListener::start();
    let l2 = l.clone();
    let spec = ExtensionSpec::thread("mi", move |env| {
        let mut c = ExtClient::register(&env.api(), "mi", &["SHUTDOWN"]).unwrap();
        let body = subscription_body(&l2.uri(), "2025-01-29", &["platform", "function"], 1000, 262144, 25);
        assert_eq!(c.subscribe(&body).unwrap().status, 200);
        while c.next().unwrap()["eventType"] != "SHUTDOWN" {}
    });
    let cfg = Config {
        mode: Mode::ManagedInstances,
        extensions: vec![spec],
        // slow enough that the subscription (made right after register, which
        // the runtime's start waits for) lands before the runtime's line at +500 ms
        runtime_init_ms: 1000,
        init_log_lines: vec!["runtime: loading handler".into()],
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    let outs = emu.invoke_many(vec![
        Invocation::new(60).log("ok"),
        Invocation::new(60).log("failing").status(InvokeStatus::Error),
        Invocation::new(60).status(InvokeStatus::Timeout),
    ]);
    assert!(outs.iter().all(|o| o.error.is_none()), "{outs:?}");
    for o in &outs {
        assert!(l.wait_type("platform.report", Some(&o.request_id), S).is_some(), "{o:?}");
    }
    emu.shutdown("spindown");
    let recs = l.records();
    let types: Vec<String> = recs.iter().map(|r| r["type"].as_str().unwrap().to_string()).collect();
    // INIT: the runtime's line between the subscription and initRuntimeDone,
    // platform.extension only after initRuntimeDone (not at register)
    let init: Vec<&str> = types.iter().take(6).map(String::as_str).collect();
    assert_eq!(
        init,
        [
            "platform.initStart",
            "platform.telemetrySubscription",
            "function",
            "platform.initRuntimeDone",
            "platform.extension",
            "platform.initReport",
        ],
        "{types:?}"
    );
    let ext = &recs[4]["record"];
    assert_eq!((ext["name"].as_str(), ext["state"].as_str()), (Some("mi"), Some("Ready")), "{ext}");
    assert_eq!(types.iter().filter(|t| *t == "platform.extension").count(), 1, "{types:?}");
    assert!(!types.iter().any(|t| t == "platform.runtimeDone"), "{types:?}");
    // per invocation: start then report, nothing else from the platform
    for (o, (status, error)) in outs.iter().zip([
        ("success", None),
        ("error", None),
        ("timeout", Some("Sandbox.Timeout")),
    ]) {
        let mine: Vec<&Value> = recs
            .iter()
            .filter(|r| r["record"]["requestId"] == o.request_id.as_str())
            .collect();
        let ty: Vec<&str> = mine.iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(ty, ["platform.start", "platform.report"], "{o:?}");
        let rep = &mine[1]["record"];
        assert_eq!(rep["status"], status, "{rep}");
        assert_eq!(rep["errorType"].as_str(), error, "{rep}");
        let m = rep["metrics"].as_object().unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["durationMs"], "{rep}");
        let spans: Vec<&str> = rep["spans"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(spans, ["responseLatency", "responseDuration"], "{rep}");
        let latency = rep["spans"][0]["durationMs"].as_f64().unwrap();
        assert!(latency > 0.0 && latency <= m["durationMs"].as_f64().unwrap(), "{rep}");
    }
    // concurrently: every platform.start before the first platform.report
    let last_start = types.iter().rposition(|t| t == "platform.start").unwrap();
    let first_report = types.iter().position(|t| t == "platform.report").unwrap();
    assert!(last_start < first_report, "{types:?}");
}

/// On demand is unchanged: platform.extension at register, runtimeDone per
/// invocation before its report.
#[test]
fn on_demand_keeps_runtime_done_and_extension_at_register() {
    let l = TelemetryListener::start();
    let cfg = Config {
        extensions: vec![ext("od", &l, "2025-01-29", 0)],
        runtime_init_ms: 300,
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    let o = emu.invoke(Invocation::new(10));
    assert!(l.wait_type("platform.runtimeDone", Some(&o.request_id), S).is_some());
    emu.shutdown("spindown");
    assert!(l.wait_type("platform.report", Some(&o.request_id), S).is_some());
    let types: Vec<String> = l.records().iter().map(|r| r["type"].as_str().unwrap().to_string()).collect();
    let pos = |ty: &str| types.iter().position(|x| x == ty).unwrap_or_else(|| panic!("{ty} missing in {types:?}"));
    assert!(pos("platform.extension") < pos("platform.telemetrySubscription"), "{types:?}");
    assert!(pos("platform.runtimeDone") < pos("platform.report"), "{types:?}");
}
