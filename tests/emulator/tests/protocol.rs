//! Extensions/Telemetry API answers: registration rules, identifiers,
//! subscription validation, errors, faults.

use lambda_emulator::fake::{
    self, call, register_raw, subscription_body, ExtClient, TelemetryListener,
};
use lambda_emulator::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const S: Duration = Duration::from_secs(5);

/// Run `f` as the extension `name` during INIT and collect what it returns.
/// The extension then parks in next until SHUTDOWN.
fn probe<T: Send + 'static>(
    cfg: Config,
    name: &'static str,
    f: impl Fn(&str) -> (Option<ExtClient>, T) + Send + Sync + 'static,
) -> (Emulator, T) {
    let out: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
    let o2 = out.clone();
    let spec = ExtensionSpec::thread(name, move |env| {
        let (c, v) = f(&env.api());
        *o2.lock().unwrap() = Some(v);
        if let Some(mut c) = c {
            while let Ok(ev) = c.next() {
                if ev["eventType"] == "SHUTDOWN" {
                    break;
                }
            }
        }
    });
    let mut cfg = cfg;
    cfg.extensions.push(spec);
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_for(S, |_| out.lock().unwrap().is_some()));
    let v = out.lock().unwrap().take().unwrap();
    (emu, v)
}

fn err_type(r: &http::Response) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .map(|v| v["errorType"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn subscribe_validation() {
    let (emu, results) = probe(Config::default(), "val", |api| {
        let c = ExtClient::register(api, "val", &["INVOKE", "SHUTDOWN"]).unwrap();
        let l = TelemetryListener::start();
        let good = subscription_body(&l.uri(), "2022-12-13", &["platform"], 1000, 262144, 25);
        let mut res = vec![];
        let mut try_ = |label: &str, body: Value| {
            let r = c.subscribe(&body).unwrap();
            res.push((label.to_string(), r.status, err_type(&r)));
        };
        let mut b = good.clone();
        b["schemaVersion"] = json!("2021-01-01");
        try_("schema", b);
        let mut b = good.clone();
        b["buffering"]["maxItems"] = json!(999);
        try_("maxItems", b);
        let mut b = good.clone();
        b["buffering"]["maxBytes"] = json!(2_000_000);
        try_("maxBytes", b);
        let mut b = good.clone();
        b["buffering"]["timeoutMs"] = json!(10);
        try_("timeoutMs", b);
        let mut b = good.clone();
        b["types"] = json!(["platform", "bogus"]);
        try_("types", b);
        let mut b = good.clone();
        b["destination"]["protocol"] = json!("TCP");
        try_("protocol", b);
        let mut b = good.clone();
        b["destination"]["URI"] = json!("http://example.com:8080/");
        try_("uri", b);
        // missing identifier -> 403
        let bb = serde_json::to_vec(&good).unwrap();
        let r = call(
            api,
            "PUT",
            "/2022-07-01/telemetry",
            &[("Content-Type", "application/json")],
            &bb,
        )
        .unwrap();
        let noid = (r.status, err_type(&r));
        let r = call(
            api,
            "PUT",
            "/2022-07-01/telemetry",
            &[("Lambda-Extension-Identifier", "nope")],
            &bb,
        )
        .unwrap();
        let badid = (r.status, err_type(&r));
        let _ = try_;
        res.push(("noid".into(), noid.0, noid.1));
        res.push(("badid".into(), badid.0, badid.1));
        let r = c.subscribe(&good).unwrap();
        res.push(("good".into(), r.status, err_type(&r)));
        (Some(c), res)
    });
    let get = |k: &str| results.iter().find(|r| r.0 == k).unwrap().clone();
    for k in [
        "schema",
        "maxItems",
        "maxBytes",
        "timeoutMs",
        "types",
        "protocol",
        "uri",
    ] {
        let r = get(k);
        assert_eq!((r.1, r.2.as_str()), (400, "ValidationError"), "{k}: {r:?}");
    }
    assert_eq!(get("noid").1, 403);
    assert_eq!(get("badid").1, 403);
    assert_eq!(get("good").1, 200);
    assert!(emu.wait_init(S).ok);
    let sub = emu.subscriber().unwrap();
    assert_eq!(sub.types, vec!["platform"]);
    assert_eq!(
        sub.uri,
        format!("http://sandbox.localdomain:{}/", sub.addr.port())
    );
    emu.shutdown("spindown");
}

#[test]
fn identifiers_and_error_endpoints() {
    let (emu, r) = probe(Config::default(), "ids", |api| {
        let c = ExtClient::register(api, "ids", &["INVOKE", "SHUTDOWN"]).unwrap();
        let no_id = call(api, "GET", "/2020-01-01/extension/event/next", &[], b"").unwrap();
        let bad_id = call(
            api,
            "GET",
            "/2020-01-01/extension/event/next",
            &[("Lambda-Extension-Identifier", "x")],
            b"",
        )
        .unwrap();
        let dup = register_raw(api, "ids", &["INVOKE"], false).unwrap();
        let bad_ev = register_raw(api, "other", &["RESTORE"], false).unwrap();
        let exit_err = c.report_error(false, "Extension.Oops").unwrap();
        let unknown = call(api, "GET", "/2020-01-01/nothing", &[], b"").unwrap();
        (
            None,
            (
                no_id.status,
                err_type(&no_id),
                bad_id.status,
                err_type(&bad_id),
                dup.status,
                bad_ev.status,
                exit_err.status,
                unknown.status,
            ),
        )
    });
    assert_eq!(r.0, 403);
    assert_eq!(r.1, "Extension.MissingHeader");
    assert_eq!(r.2, 403);
    assert_eq!(r.3, "Extension.UnknownExtensionIdentifier");
    assert_eq!(r.4, 403, "duplicate registration");
    assert_eq!(r.5, 403, "unknown event type");
    assert_eq!(r.6, 202);
    assert_eq!(r.7, 404);
    let w = emu.wire();
    let ex = w.iter().find(|w| w.path.ends_with("/exit/error")).unwrap();
    assert_eq!(
        ex.header("Lambda-Extension-Function-Error-Type"),
        Some("Extension.Oops")
    );
    assert_eq!(ex.body_json().unwrap()["errorType"], "Extension.Oops");
    assert_eq!(ex.ext.as_deref(), Some("ids"));
}

#[test]
fn wrong_name_is_internal_and_cannot_get_shutdown() {
    let cfg = Config {
        init_timeout_ms: 400,
        ..Config::default()
    };
    let (emu, r) = probe(cfg, "right-name", |api| {
        let with_shutdown =
            register_raw(api, "wrong-name", &["INVOKE", "SHUTDOWN"], false).unwrap();
        let invoke_only = register_raw(api, "wrong-name", &["INVOKE"], false).unwrap();
        // keep the "process" alive so INIT fails by timeout, not by crash
        std::thread::sleep(Duration::from_millis(800));
        (
            None,
            (
                with_shutdown.status,
                err_type(&with_shutdown),
                invoke_only.status,
            ),
        )
    });
    assert_eq!((r.0, r.1.as_str()), (403, "Extension.InvalidEventType"));
    assert_eq!(r.2, 200, "internal extension may register INVOKE");
    // The real file never registered: INIT times out.
    let init = emu.wait_init(S);
    assert!(!init.ok);
    assert_eq!(init.error_type.as_deref(), Some("Sandbox.Timeout"));
    assert!(init.processes[0].registered_ms.is_none());
}

#[test]
fn init_error_fails_init() {
    let (emu, st) = probe(Config::default(), "ie", |api| {
        let c = ExtClient::register(api, "ie", &["INVOKE", "SHUTDOWN"]).unwrap();
        let r = c.report_error(true, "Extension.ConfigInvalid").unwrap();
        (None, r.status)
    });
    assert_eq!(st, 202);
    let init = emu.wait_init(S);
    assert!(!init.ok);
    assert_eq!(init.error_type.as_deref(), Some("Extension.ConfigInvalid"));
    assert!(emu
        .invoke(Invocation::new(1))
        .error
        .unwrap()
        .contains("INIT failed"));
    let rep = emu
        .emitted()
        .into_iter()
        .find(|r| r["type"] == "platform.initReport")
        .unwrap();
    assert_eq!(rep["record"]["status"], "error");
}

#[test]
fn register_fault_and_subscribe_202_fault() {
    let cfg = Config {
        faults: Faults {
            register_status: Some(500),
            ..Faults::default()
        },
        init_timeout_ms: 300,
        ..Config::default()
    };
    let (emu, st) = probe(cfg, "rf", |api| {
        let r = register_raw(api, "rf", &["INVOKE"], false).unwrap();
        (None, r.status)
    });
    assert_eq!(st, 500);
    assert!(!emu.wait_init(S).ok);

    let cfg = Config {
        faults: Faults {
            subscribe_answer_202: true,
            ..Faults::default()
        },
        ..Config::default()
    };
    let (emu, st) = probe(cfg, "s202", |api| {
        let c = ExtClient::register(api, "s202", &["INVOKE", "SHUTDOWN"]).unwrap();
        let l = TelemetryListener::start();
        let r = c
            .subscribe(&subscription_body(
                &l.uri(),
                "2022-12-13",
                &["platform"],
                1000,
                262144,
                25,
            ))
            .unwrap();
        (Some(c), r.status)
    });
    assert_eq!(st, 202);
    assert!(emu.wait_init(S).ok);
    assert!(emu.subscriber().is_none());
    assert!(emu.invoke(Invocation::new(5)).error.is_none());
    assert!(emu.deliveries().is_empty());
    emu.shutdown("spindown");
}

#[test]
fn unknown_event_then_invoke() {
    let cfg = Config {
        faults: Faults {
            next_unknown_event: true,
            ..Faults::default()
        },
        ..Config::default()
    };
    let events = Arc::new(Mutex::new(vec![]));
    let e2 = events.clone();
    let spec = ExtensionSpec::thread("unk", move |env| {
        let mut c = ExtClient::register(&env.api(), "unk", &["INVOKE", "SHUTDOWN"]).unwrap();
        loop {
            let ev = c.next().unwrap();
            let t = ev["eventType"].as_str().unwrap().to_string();
            e2.lock().unwrap().push(t.clone());
            if t == "SHUTDOWN" {
                break;
            }
        }
    });
    let mut cfg = cfg;
    cfg.extensions.push(spec);
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    assert!(emu.invoke(Invocation::new(5)).error.is_none());
    emu.shutdown("spindown");
    assert_eq!(
        *events.lock().unwrap(),
        vec!["FUTURE_EVENT", "INVOKE", "SHUTDOWN"]
    );
}

#[test]
fn schema_2022_07_01_shapes() {
    let l = TelemetryListener::start();
    let l2 = l.clone();
    let spec = ExtensionSpec::thread("old", move |env| {
        fake::simple_extension(&env.api(), "old", "2022-07-01", &l2, |_| {}).unwrap();
    });
    let emu = Emulator::start(Config {
        extensions: vec![spec],
        ..Config::default()
    })
    .unwrap();
    assert!(emu.wait_init(S).ok);
    let o = emu.invoke(Invocation::new(5));
    emu.shutdown("spindown");
    let rd = l
        .wait_type("platform.runtimeDone", Some(&o.request_id), S)
        .unwrap();
    assert!(rd["record"].get("metrics").is_none());
    let is = l.wait_type("platform.initStart", None, S).unwrap();
    assert!(is["record"].get("runtimeVersion").is_none());
    assert!(l
        .wait_type("platform.report", Some(&o.request_id), S)
        .unwrap()["record"]["metrics"]["billedDurationMs"]
        .as_u64()
        .is_some());
}

#[test]
fn unknown_records_fault_adds_unknown_types_and_fields() {
    let l = TelemetryListener::start();
    let l2 = l.clone();
    let spec = ExtensionSpec::thread("tol", move |env| {
        fake::simple_extension(&env.api(), "tol", "2022-12-13", &l2, |_| {}).unwrap();
    });
    let cfg = Config {
        extensions: vec![spec],
        faults: Faults {
            unknown_records: true,
            ..Faults::default()
        },
        ..Config::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    assert!(emu.wait_init(S).ok);
    emu.invoke(Invocation::new(5));
    emu.shutdown("spindown");
    assert!(l.wait_type("platform.futureEvent", None, S).is_some());
    let rep = l.wait_type("platform.report", None, S).unwrap();
    assert!(rep["record"]["futureField"].is_object());
}
