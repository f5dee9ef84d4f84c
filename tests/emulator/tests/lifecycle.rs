//! On-demand lifecycle: INIT ordering, invocations, freeze, shutdown, with
//! fake extensions written here (threads) on std TcpStream.

use lambda_emulator::fake::{simple_extension, ExtClient, TelemetryListener};
use lambda_emulator::*;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const S: Duration = Duration::from_secs(5);

/// A well-behaved extension: waits for runtimeDone of each INVOKE, then
/// spends `post_ms` before calling next again.
fn good_ext(listener: TelemetryListener, post_ms: u64, schema: &'static str) -> ExtensionSpec {
    ExtensionSpec::thread("good-ext", move |env| {
        let l = listener.clone();
        simple_extension(&env.api(), "good-ext", schema, &listener, |ev| {
            if ev["eventType"] == "INVOKE" {
                let rid = ev["requestId"].as_str().unwrap().to_string();
                assert!(
                    l.wait_type("platform.runtimeDone", Some(&rid), S).is_some(),
                    "runtimeDone must come"
                );
                std::thread::sleep(Duration::from_millis(post_ms));
            }
        })
        .expect("extension loop");
    })
}

fn types_of(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn full_on_demand_lifecycle() {
    let listener = TelemetryListener::start();
    let cfg = Config {
        extensions: vec![good_ext(listener.clone(), 30, "2022-12-13")],
        runtime_init_ms: 40,
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    let init = emu.wait_init(S);
    assert!(init.ok, "{init:?}");
    let p = &init.processes[0];
    let reg = p.registered_ms.unwrap();
    // runtime starts only after every extension registered
    assert!(init.runtime_started_ms.unwrap() >= reg);
    assert!(init.runtime_ready_ms.unwrap() - init.runtime_started_ms.unwrap() >= 39.0);
    // INIT ends when runtime ready and the extension called next
    assert!(init.init_done_ms.unwrap() >= p.first_next_ms.unwrap());
    assert!(init.init_done_ms.unwrap() >= init.runtime_ready_ms.unwrap());
    // on demand the INVOKE that caused INIT follows at once: no freeze yet
    assert!(!emu.is_frozen());
    assert!(emu.freezes().is_empty());

    let sub = emu.subscriber().expect("subscribed");
    assert_eq!(sub.schema, "2022-12-13");
    assert_eq!(sub.addr.port(), listener.port());
    assert_eq!(sub.timeout_ms, 25);

    // initStart was emitted before the extension started, and is replayed.
    let first = listener.wait_type("platform.initStart", None, S).unwrap();
    assert_eq!(first["record"]["initializationType"], "on-demand");
    assert_eq!(first["record"]["phase"], "init");
    assert!(
        first["record"].get("functionName").is_none(),
        "2022-12-13 has no functionName"
    );

    let o1 = emu.invoke(Invocation::new(60).log("hello from fn").log("second line"));
    assert!(o1.error.is_none(), "{o1:?}");
    assert_eq!(o1.status, "success");
    assert_eq!(o1.event["eventType"], "INVOKE");
    assert_eq!(
        o1.event["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:emulated-fn"
    );
    assert!(o1.event["deadlineMs"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(o1.event["tracing"]["value"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    let post = o1.post_runtime_ms.unwrap();
    assert!((29.0..1000.0).contains(&post), "post runtime {post}");
    assert!(o1.runtime_done_ms - o1.started_ms >= 59.0);
    assert!(
        (o1.report_duration_ms - (o1.extensions_next_ms.unwrap() - o1.started_ms)).abs() < 0.01
    );
    assert_eq!(o1.billed_duration_ms, o1.report_duration_ms.ceil() as u64);
    assert!(o1.init_duration_ms.is_some());

    // runtimeDone was delivered before the extension called next again.
    let batches = listener.batches();
    let rd_at = batches
        .iter()
        .find(|(_, b)| {
            b.as_array()
                .unwrap()
                .iter()
                .any(|r| r["type"] == "platform.runtimeDone")
        })
        .map(|(t, _)| *t)
        .unwrap();
    assert!(rd_at <= o1.extensions_next_ms.unwrap());
    let rd = listener
        .wait_type("platform.runtimeDone", Some(&o1.request_id), S)
        .unwrap();
    assert_eq!(rd["record"]["status"], "success");
    assert!(rd["record"]["metrics"]["durationMs"].as_f64().unwrap() >= 59.0);
    assert_eq!(rd["record"]["metrics"]["producedBytes"], 8);
    assert_eq!(rd["record"]["spans"][0]["name"], "responseLatency");
    let fun: Vec<Value> = listener
        .records()
        .into_iter()
        .filter(|r| r["type"] == "function")
        .collect();
    assert_eq!(fun.len(), 2);
    assert_eq!(fun[0]["record"], "hello from fn\n");

    // The report of invocation 1 is emitted when the sandbox freezes, so it is
    // not delivered before the next thaw.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !listener.types().contains(&"platform.report".to_string()),
        "report delivered while frozen"
    );
    let o2 = emu.invoke(Invocation::new(20).status(InvokeStatus::Error));
    assert_eq!(o2.status, "error");
    assert!(o2.init_duration_ms.is_none());
    let rep1 = listener
        .wait_type("platform.report", Some(&o1.request_id), S)
        .expect("report 1");
    let m = &rep1["record"]["metrics"];
    assert_eq!(m["memorySizeMB"], 128);
    assert_eq!(m["billedDurationMs"], o1.billed_duration_ms);
    assert!((m["durationMs"].as_f64().unwrap() - o1.report_duration_ms).abs() < 0.01);
    assert!(m["initDurationMs"].as_f64().unwrap() > 0.0);
    // the report reached the listener after invocation 2 started (at the thaw)
    let rep_at = listener
        .batches()
        .iter()
        .find(|(_, b)| {
            b.as_array()
                .unwrap()
                .iter()
                .any(|r| r["type"] == "platform.report")
        })
        .unwrap()
        .0;
    assert!(rep_at >= o2.started_ms);

    // Freezes: after INIT, after each invocation; no delivery spans one.
    let fr = emu.freezes();
    assert_eq!(fr.len(), 2, "{fr:?}");
    assert!(fr[0].end_ms.is_some() && fr[1].end_ms.is_none());
    assert!((fr[0].start_ms - o1.extensions_next_ms.unwrap()).abs() < 0.01);
    assert!(emu.deliveries_spanning_freeze().is_empty());
    // no delivery attempt ever starts inside a freeze
    for d in emu.deliveries() {
        assert!(
            !fr.iter()
                .any(|f| f.start_ms < d.started_ms && d.started_ms < f.end_ms.unwrap_or(f64::MAX)),
            "{d:?}"
        );
    }

    let sd = emu.shutdown("spindown");
    assert!(!sd.killed);
    assert_eq!(sd.processes[0].exit_code, Some(0));
    assert!(sd.elapsed_ms < 1500.0);
    let rep2 = listener.records().into_iter().find(|r| {
        r["type"] == "platform.report" && r["record"]["requestId"] == o2.request_id.as_str()
    });
    assert!(rep2.is_some(), "last report delivered at shutdown");
    // SHUTDOWN event on the wire
    let wire = emu.wire();
    let sd_ev = wire
        .iter()
        .rev()
        .find(|w| w.path.ends_with("/event/next") && w.answer_str().contains("SHUTDOWN"))
        .unwrap()
        .answer_json()
        .unwrap();
    assert_eq!(sd_ev["shutdownReason"], "spindown");
    let dl = sd_ev["deadlineMs"].as_f64().unwrap();
    let expect = lambda_emulator::util::to_unix_ms(sd.started_ms) + 2000.0;
    assert!((dl - expect).abs() < 5.0);
    // shutdown is idempotent
    assert_eq!(emu.shutdown("again").reason, "spindown");
    // after shutdown, invoke is refused
    assert!(emu.invoke(Invocation::new(1)).error.is_some());
}

#[test]
fn init_event_order_and_replay() {
    let listener = TelemetryListener::start();
    let cfg = Config {
        extensions: vec![good_ext(listener.clone(), 0, "2022-12-13")],
        // a slow runtime, so the subscription lands before initRuntimeDone
        runtime_init_ms: 300,
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    emu.invoke(Invocation::new(5));
    emu.shutdown("spindown");
    let t = types_of(&listener.records());
    let pos = |ty: &str| {
        t.iter()
            .position(|x| x == ty)
            .unwrap_or_else(|| panic!("{ty} missing in {t:?}"))
    };
    assert!(pos("platform.initStart") < pos("platform.extension"));
    assert!(pos("platform.extension") < pos("platform.telemetrySubscription"));
    assert!(pos("platform.telemetrySubscription") < pos("platform.initRuntimeDone"));
    assert!(pos("platform.initRuntimeDone") < pos("platform.initReport"));
    assert!(pos("platform.initReport") < pos("platform.start"));
    assert!(pos("platform.start") < pos("platform.runtimeDone"));
    assert!(pos("platform.runtimeDone") < pos("platform.report"));
    // every record is well-formed
    for r in listener.records() {
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
        assert!(r.get("record").is_some());
    }
    // wire order: register, subscribe, next
    let w = emu.wire();
    assert!(w[0].path.ends_with("/extension/register"));
    assert_eq!(w[0].header("Lambda-Extension-Name"), Some("good-ext"));
    assert_eq!(w[0].status, Some(200));
    let id = w[0].answer_header("Lambda-Extension-Identifier").unwrap();
    assert_eq!(id.len(), 36);
    let body = w[0].answer_json().unwrap();
    assert_eq!(body["functionName"], "emulated-fn");
    assert_eq!(body["functionVersion"], "$LATEST");
    assert_eq!(body["handler"], "index.handler");
    assert_eq!(body["accountId"], "123456789012");
    assert!(w[1].path.ends_with("/2022-07-01/telemetry") && w[1].status == Some(200));
    assert!(w[2].path.ends_with("/event/next"));
}

#[test]
fn subscription_window_closes_after_first_next() {
    let status = Arc::new(Mutex::new(None::<(u16, String)>));
    let s2 = status.clone();
    let spec = ExtensionSpec::thread("late", move |env| {
        let mut c = ExtClient::register(&env.api(), "late", &["INVOKE", "SHUTDOWN"]).unwrap();
        let api = env.api();
        let id = c.id.clone();
        let s3 = s2.clone();
        // call next first, subscribe afterwards: too late
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let l = TelemetryListener::start();
            let body = lambda_emulator::fake::subscription_body(
                &l.uri(),
                "2022-12-13",
                &["platform"],
                1000,
                262144,
                25,
            );
            let b = serde_json::to_vec(&body).unwrap();
            let r = lambda_emulator::fake::call(
                &api,
                "PUT",
                "/2022-07-01/telemetry",
                &[("Lambda-Extension-Identifier", &id)],
                &b,
            )
            .unwrap();
            *s3.lock().unwrap() = Some((r.status, r.text()));
        });
        loop {
            let ev = c.next().unwrap();
            if ev["eventType"] == "SHUTDOWN" {
                break;
            }
        }
        h.join().unwrap();
    });
    let emu = Emulator::start(Config {
        extensions: vec![spec],
        runtime_init_ms: 0,
        ..Config::default()
    })
    .unwrap();
    assert!(emu.wait_init(S).ok);
    assert!(emu.wait_for(S, |_| status.lock().unwrap().is_some()));
    let (code, text) = status.lock().unwrap().clone().unwrap();
    assert_eq!(code, 403);
    assert!(text.contains("Telemetry.SubscriptionClosed"), "{text}");
    assert!(emu.subscriber().is_none());
    emu.shutdown("spindown");
}

#[test]
fn timeout_needs_reset_and_shutdown_reason() {
    let listener = TelemetryListener::start();
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen2 = seen.clone();
    let l2 = listener.clone();
    let spec = ExtensionSpec::thread("tx", move |env| {
        simple_extension(&env.api(), "tx", "2022-12-13", &l2, |ev| {
            seen2.lock().unwrap().push(ev.clone())
        })
        .unwrap();
    });
    let emu = Emulator::start(Config {
        extensions: vec![spec],
        ..Config::default()
    })
    .unwrap();
    assert!(emu.wait_init(S).ok);
    let o = emu.invoke(Invocation::new(30).status(InvokeStatus::Timeout));
    assert_eq!(o.status, "timeout");
    assert_eq!(o.error_type.as_deref(), Some("Sandbox.Timeout"));
    assert!(o.needs_reset);
    assert!(emu
        .invoke(Invocation::new(1))
        .error
        .unwrap()
        .contains("reset"));
    let sd = emu.shutdown("timeout");
    assert!(!sd.killed);
    let rd = listener
        .wait_type("platform.runtimeDone", Some(&o.request_id), S)
        .unwrap();
    assert_eq!(rd["record"]["status"], "timeout");
    assert!(listener
        .wait_type("platform.report", Some(&o.request_id), S)
        .is_some());
    let ev = seen.lock().unwrap().clone();
    assert_eq!(ev.last().unwrap()["shutdownReason"], "timeout");
}

#[test]
fn out_of_memory_and_json_log_format() {
    let listener = TelemetryListener::start();
    let cfg = Config {
        extensions: vec![good_ext(listener.clone(), 0, "2022-12-13")],
        log_format: LogFormat::Json,
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    let o = emu.invoke(
        Invocation::new(10)
            .log("plain")
            .log(r#"{"level":"ERROR","message":"boom"}"#)
            .status(InvokeStatus::OutOfMemory),
    );
    assert_eq!(o.error_type.as_deref(), Some("Runtime.OutOfMemory"));
    assert!(o.needs_reset);
    emu.shutdown("failure");
    let rep = listener
        .wait_type("platform.report", Some(&o.request_id), S)
        .unwrap();
    assert_eq!(rep["record"]["errorType"], "Runtime.OutOfMemory");
    assert_eq!(rep["record"]["metrics"]["maxMemoryUsedMB"], 128);
    let fun: Vec<Value> = listener
        .records()
        .into_iter()
        .filter(|r| r["type"] == "function")
        .collect();
    assert_eq!(fun[0]["record"]["message"], "plain");
    assert_eq!(fun[0]["record"]["level"], "INFO");
    assert_eq!(fun[0]["record"]["requestId"], o.request_id.as_str());
    assert_eq!(fun[1]["record"]["level"], "ERROR");
    assert_eq!(fun[1]["record"]["message"], "boom");
}

#[test]
fn extension_that_calls_next_early_sees_report_only_after_thaw() {
    // A bad extension: calls next straight away on INVOKE, without waiting
    // for runtimeDone. The invocation still ends only after runtimeDone.
    let listener = TelemetryListener::start();
    let l2 = listener.clone();
    let spec = ExtensionSpec::thread("eager", move |env| {
        simple_extension(&env.api(), "eager", "2022-12-13", &l2, |_| {}).unwrap();
    });
    let emu = Emulator::start(Config {
        extensions: vec![spec],
        ..Config::default()
    })
    .unwrap();
    assert!(emu.wait_init(S).ok);
    let o = emu.invoke(Invocation::new(50));
    // the extension called next before the runtime was done
    assert!(o.extensions_next_ms.unwrap() < o.runtime_done_ms);
    assert_eq!(o.post_runtime_ms, Some(0.0));
    assert!((o.report_duration_ms - (o.runtime_done_ms - o.started_ms)).abs() < 0.01);
    let sd = emu.shutdown("spindown");
    assert!(!sd.killed);
    assert!(listener
        .wait_type("platform.report", Some(&o.request_id), S)
        .is_some());
}

#[test]
fn delivery_left_unanswered_at_freeze_is_flagged() {
    use std::io::BufReader;
    use std::net::TcpListener;
    // A careless listener: hands the batch on first, answers 150 ms later.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                while let Ok(Some(req)) = http::read_request(&mut r) {
                    let v: Value = serde_json::from_slice(&req.body).unwrap();
                    let _ = tx.send(v);
                    std::thread::sleep(Duration::from_millis(150));
                    if http::write_response(&mut w, 200, &[], b"", false).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let rx = Mutex::new(rx);
    let spec = ExtensionSpec::thread("careless", move |env| {
        let mut c = ExtClient::register(&env.api(), "careless", &["INVOKE", "SHUTDOWN"]).unwrap();
        let uri = format!("http://sandbox.localdomain:{port}/");
        let body = lambda_emulator::fake::subscription_body(
            &uri,
            "2022-12-13",
            &["platform"],
            1000,
            262144,
            25,
        );
        assert_eq!(c.subscribe(&body).unwrap().status, 200);
        let rx = rx.lock().unwrap();
        loop {
            let ev = c.next().unwrap();
            if ev["eventType"] == "SHUTDOWN" {
                break;
            }
            let rid = ev["requestId"].as_str().unwrap().to_string();
            // wait for runtimeDone, then go straight to next (before the
            // listener answered the platform)
            while let Ok(b) = rx.recv_timeout(S) {
                let done = b.as_array().unwrap().iter().any(|r| {
                    r["type"] == "platform.runtimeDone" && r["record"]["requestId"] == rid.as_str()
                });
                if done {
                    break;
                }
            }
        }
    });
    let emu = Emulator::start(Config {
        extensions: vec![spec],
        ..Config::default()
    })
    .unwrap();
    assert!(emu.wait_init(S).ok);
    let o = emu.invoke(Invocation::new(20));
    assert!(o.error.is_none());
    emu.wait_for(S, |e| {
        e.deliveries()
            .iter()
            .any(|d| d.types().contains(&"platform.runtimeDone".into()))
    });
    let spanning = emu.deliveries_spanning_freeze();
    assert_eq!(spanning.len(), 1, "{:?}", emu.deliveries());
    assert!(spanning[0]
        .types()
        .contains(&"platform.runtimeDone".to_string()));
    assert!(spanning[0].ok());
    emu.shutdown("spindown");
}
