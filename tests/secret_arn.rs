//! `DD_API_KEY_SECRET_ARN` end to end: the real slimcap binary under the
//! Lambda platform emulator, a fake Secrets Manager on 127.0.0.1 (reached
//! through `AWS_ENDPOINT_URL_SECRETS_MANAGER`, as the AWS SDKs allow) and the
//! fake Datadog intake. The emulator gives the process the usual
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
//!
//! * The key from the secret is what the intake receives, the fetch happens
//!   after the first `next` (not on init's path) and exactly once.
//! * A refused fetch: one error line, no secret in it, payloads dropped, the
//!   function unaffected.
//! * A slow fetch: payloads are kept (not dropped) until the key comes.
//! * Nothing secret is printed, even at trace level.
//!
//! (The signature itself is checked in `shell::secrets`'s unit tests, which
//! recompute it from what the fake received.)

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET_ARN: &str = "arn:aws:secretsmanager:eu-west-3:123456789012:secret:dd-api-key-Q1w2E3";
const SM_KEY: &str = "sm0123456789abcdef0123456789abcd";
// What the emulator gives the process (tests/emulator/src/emulator.rs).
const AWS_SECRET: &str = "emulator/secret/example";
const AWS_TOKEN: &str = "emulator-session-token";

struct SmRequest {
    started_ms: f64,
    headers: HashMap<String, String>,
}

/// A fake Secrets Manager: answers each request with the next of `answers`
/// (`delay_ms`, status, body), the last one repeated.
struct FakeSm {
    url: String,
    requests: Arc<Mutex<Vec<SmRequest>>>,
}

fn fake_sm(answers: Vec<(u64, u16, String)>) -> FakeSm {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(s) = conn else { return };
            let (delay, status, body) = answers[n.min(answers.len() - 1)].clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut r = BufReader::new(s);
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    return;
                }
                let started_ms = now_ms();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 {
                        return;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut req_body = vec![0; len];
                let _ = r.read_exact(&mut req_body);
                seen.lock().unwrap().push(SmRequest {
                    started_ms,
                    headers,
                });
                std::thread::sleep(Duration::from_millis(delay));
                let mut s = r.into_inner();
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    FakeSm { url, requests }
}

fn secret_answer(secret_string: &str) -> String {
    let escaped = secret_string.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{{\"ARN\":\"{SECRET_ARN}\",\"Name\":\"dd-api-key\",\"SecretString\":\"{escaped}\",\"VersionId\":\"v1\"}}")
}

/// Emulator config: no `DD_API_KEY`, the secret ARN, the fake endpoint.
fn sm_config(intake: &FakeIntake, sm: &FakeSm, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("DD_API_KEY_SECRET_ARN", SECRET_ARN),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", sm.url.as_str()),
        ("DD_SERVERLESS_FLUSH_STRATEGY", "end"),
    ];
    env.extend_from_slice(extra);
    let mut c = config(intake, &env);
    c.env.retain(|(k, _)| k != "DD_API_KEY");
    c
}

fn ok(out: &InvokeOutcome) {
    assert!(
        out.error.is_none() && out.extension_errors.is_empty(),
        "{out:?}"
    );
}

fn shut_down(emu: &Emulator) {
    let sd = emu.shutdown("spindown");
    assert!(
        !sd.killed && sd.exit_code(NAME) == Some(0),
        "{sd:?}\n{:#?}",
        output(emu)
    );
}

/// Nothing secret in the output: not the key, not the AWS credentials.
fn nothing_secret_printed(emu: &Emulator) {
    for line in output(emu) {
        for secret in [SM_KEY, AWS_SECRET, AWS_TOKEN] {
            assert!(!line.contains(secret), "{secret:?} printed: {line}");
        }
    }
}

/// When the platform answered the extension's telemetry subscribe (test
/// clock): the last step of the extension's init before its first `next`.
fn subscribed_ms(emu: &Emulator) -> f64 {
    emu.wire()
        .iter()
        .find(|w| w.method == "PUT" && w.path.ends_with("/telemetry"))
        .and_then(|w| w.answered_ms)
        .expect("an answered subscribe")
}

#[test]
fn key_from_the_secret_reaches_the_intake() {
    let intake = FakeIntake::start();
    let sm = fake_sm(vec![(
        0,
        200,
        secret_answer(&format!("{{\"DD_API_KEY\":\"{SM_KEY}\",\"note\":\"x\"}}")),
    )]);
    let emu = start(sm_config(&intake, &sm, &[("DD_LOG_LEVEL", "trace")]));
    for i in 0..2 {
        ok(&emu.invoke(Invocation::new(20).log(&format!("line {i}"))));
    }
    shut_down(&emu);

    let reqs = sm.requests.lock().unwrap();
    assert_eq!(reqs.len(), 1, "one GetSecretValue call");
    let h = &reqs[0].headers;
    assert_eq!(
        h.get("x-amz-target").map(String::as_str),
        Some("secretsmanager.GetSecretValue")
    );
    assert_eq!(
        h.get("x-amz-security-token").map(String::as_str),
        Some(AWS_TOKEN)
    );
    let auth = h.get("authorization").expect("Authorization");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAEMULATOREXAMPLE/"),
        "{auth}"
    );
    assert!(
        auth.contains("/eu-west-3/secretsmanager/aws4_request, "),
        "the ARN's region: {auth}"
    );
    // Not on the init path. The shell starts the fetch once the first
    // `next` is written; across processes the tests can only see that it
    // came after the subscribe (the emulator may read the `next`, sent on a
    // fresh connection, a little after the fetch began on a loaded machine).
    assert!(
        reqs[0].started_ms >= subscribed_ms(&emu),
        "fetched during the extension's init"
    );

    let sent = intake.requests();
    assert!(
        sent.iter().any(|r| r.path_only() == "/api/beta/sketches"),
        "{sent:?}"
    );
    assert!(sent
        .iter()
        .any(|r| r.path_only() == "/api/v2/logs" && r.text().contains("line 0")));
    for r in &sent {
        assert_eq!(
            r.header("DD-API-KEY"),
            Some(SM_KEY),
            "{} {}",
            r.method,
            r.path
        );
    }
    let out = output(&emu);
    assert!(
        !out.iter().any(|l| l.contains("DD_API_KEY is not set")),
        "{out:#?}"
    );
    assert!(!out.iter().any(|l| l.contains("ERROR")), "{out:#?}");
    nothing_secret_printed(&emu);
}

#[test]
fn refused_fetch_one_error_line_payloads_dropped() {
    let intake = FakeIntake::start();
    let denied = r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::123456789012:assumed-role/r/fn is not authorized to perform: secretsmanager:GetSecretValue"}"#;
    let sm = fake_sm(vec![(0, 400, denied.to_string())]);
    let emu = start(sm_config(&intake, &sm, &[]));
    for _ in 0..2 {
        let o = emu.invoke(Invocation::new(10).log("x"));
        ok(&o);
        assert!(o.post_runtime_ms.unwrap() < 3000.0, "{o:?}");
    }
    shut_down(&emu);
    assert_eq!(sm.requests.lock().unwrap().len(), 1, "a 4xx is not retried");
    assert!(intake.requests().is_empty(), "{:?}", intake.requests());
    let out = output(&emu);
    let errors: Vec<&String> = out.iter().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{out:#?}");
    assert!(
        errors[0].contains("DD_API_KEY_SECRET_ARN") && errors[0].contains("AccessDeniedException"),
        "{errors:?}"
    );
    assert!(
        !out.iter().any(|l| l.contains("DD_API_KEY is not set")),
        "{out:#?}"
    );
    nothing_secret_printed(&emu);
}

#[test]
fn slow_fetch_keeps_payloads_until_the_key_comes() {
    let intake = FakeIntake::start();
    let sm = fake_sm(vec![(1500, 200, secret_answer(SM_KEY))]);
    let emu = start(sm_config(&intake, &sm, &[("DD_FLUSH_TIMEOUT", "1")]));
    ok(&emu.invoke(Invocation::new(10).log("first invocation")));
    // Give the key time to arrive; the next flush ships what was kept.
    std::thread::sleep(Duration::from_millis(1200));
    ok(&emu.invoke(Invocation::new(10).log("second invocation")));
    shut_down(&emu);
    // Off the init path: INIT ended long before the 1.5 s answer came.
    let sm_started = sm.requests.lock().unwrap()[0].started_ms;
    let init = emu.wait_init(Duration::from_secs(1));
    let init_done = init.init_done_ms.expect("INIT ended");
    assert!(sm_started >= subscribed_ms(&emu), "fetched during the extension's init");
    assert!(
        init_done < sm_started + 1000.0,
        "INIT ended at {init_done} ms, the fetch began at {sm_started} ms"
    );
    let sent = intake.requests();
    let logs: String = sent
        .iter()
        .filter(|r| r.path_only() == "/api/v2/logs")
        .map(|r| r.text())
        .collect();
    assert!(
        logs.contains("first invocation") && logs.contains("second invocation"),
        "{sent:?}"
    );
    for r in &sent {
        assert_eq!(r.header("DD-API-KEY"), Some(SM_KEY));
    }
    let out = output(&emu);
    assert!(
        out.iter()
            .any(|l| l.contains("has not come yet: keeping the payloads")),
        "{out:#?}"
    );
    nothing_secret_printed(&emu);
}
