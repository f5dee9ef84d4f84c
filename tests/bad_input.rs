//! What the platform (or anything else on the sandbox's loopback) may throw
//! at the telemetry listener: each gets a clear answer, nothing accepted is
//! lost, and the lifecycle goes on.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn listener_addr(emu: &Emulator) -> SocketAddr {
    emu.subscriber().expect("subscribed").addr
}

/// One raw HTTP exchange; returns the status code (None if no answer).
fn post(addr: SocketAddr, body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10 * slow_factor()))).ok()?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn record(i: usize, line: &str) -> String {
    format!(r#"{{"time":"2024-04-24T12:34:56.789Z","type":"function","record":"{line} {i}\n"}}"#)
}

fn started() -> (FakeIntake, Emulator) {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &[]));
    (intake, emu)
}

/// The lifecycle still works after the abuse, and logs sent by hand reached the intake.
fn still_alive(emu: &Emulator, intake: &FakeIntake, marker: &str) {
    let out = emu.invoke(Invocation::new(10).log("after the abuse"));
    assert!(out.error.is_none() && out.extension_errors.is_empty(), "{out:?}");
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0), "{sd:?}");
    assert!(!sd.killed);
    if !marker.is_empty() {
        let logs: String = intake.requests_to("/api/v2/logs").iter().map(|r| r.text()).collect();
        assert!(logs.contains(marker), "{marker} not shipped");
    }
}

#[test]
fn malformed_json_gets_400() {
    let (intake, emu) = started();
    let addr = listener_addr(&emu);
    assert_eq!(post(addr, b"[{\"type\": \"function\", "), Some(400));
    assert_eq!(post(addr, b"{\"not\":\"an array\"}"), Some(400));
    assert_eq!(post(addr, b""), Some(400));
    assert_eq!(post(addr, b"\xff\xfe garbage"), Some(400));
    still_alive(&emu, &intake, "");
}

#[test]
fn odd_records_are_skipped_and_the_rest_kept() {
    let (intake, emu) = started();
    let addr = listener_addr(&emu);
    let body = format!(
        r#"[42, "text", null, {{"no":"type"}}, {{"time":"bad","type":"platform.fromTheFuture","record":{{"x":1}}}}, {{"time":"2024-04-24T12:34:56.789Z","type":"platform.report","record":{{"requestId":7,"metrics":"nope"}}}}, {}]"#,
        record(0, "kept-among-odd-records")
    );
    assert_eq!(post(addr, body.as_bytes()), Some(200));
    still_alive(&emu, &intake, "kept-among-odd-records 0");
}

#[test]
fn ten_thousand_records_in_one_batch() {
    let (intake, emu) = started();
    let addr = listener_addr(&emu);
    let body = format!("[{}]", (0..10_000).map(|i| record(i, "bulk")).collect::<Vec<_>>().join(","));
    assert_eq!(post(addr, body.as_bytes()), Some(200));
    still_alive(&emu, &intake, "");
    let logs: Vec<serde_json::Value> = intake
        .requests_to("/api/v2/logs")
        .iter()
        .flat_map(|r| r.json().and_then(|v| v.as_array().cloned()).unwrap_or_default())
        .collect();
    let bulk = logs.iter().filter(|e| e["message"]["message"].as_str().is_some_and(|m| m.starts_with("bulk "))).count();
    assert_eq!(bulk, 10_000, "every accepted line is shipped");
    assert!(intake.requests_to("/api/v2/logs").iter().all(|r| r.json().unwrap().as_array().unwrap().len() <= 1000));
}

#[test]
fn a_body_of_twice_max_bytes_is_accepted() {
    let (intake, emu) = started();
    let addr = listener_addr(&emu);
    // 2 × maxBytes (262,144) in ~1 KiB records
    let line = "x".repeat(1000);
    let mut recs = Vec::new();
    let mut size = 2;
    let mut i = 0;
    while size < 2 * 262_144 - 1100 {
        let r = record(i, &format!("big{line}"));
        size += r.len() + 1;
        recs.push(r);
        i += 1;
    }
    let body = format!("[{}]", recs.join(","));
    assert!(body.len() > 2 * 262_144 - 1200);
    assert_eq!(post(addr, body.as_bytes()), Some(200));
    still_alive(&emu, &intake, &format!("big{line} {}", i - 1));
}

#[test]
fn a_huge_body_gets_413_and_the_listener_goes_on() {
    let (intake, emu) = started();
    let addr = listener_addr(&emu);
    let body = vec![b' '; 4 << 20];
    assert_eq!(post(addr, &body), Some(413));
    let ok = format!("[{}]", record(1, "after-413"));
    assert_eq!(post(addr, ok.as_bytes()), Some(200));
    still_alive(&emu, &intake, "after-413 1");
}

#[test]
fn a_stalled_half_request_blocks_nothing() {
    let (intake, emu) = started();
    let addr = listener_addr(&emu);
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"time\":")
        .unwrap();
    // another connection is served meanwhile, and the platform's deliveries too
    let ok = format!("[{}]", record(2, "beside-the-stall"));
    assert_eq!(post(addr, ok.as_bytes()), Some(200));
    still_alive(&emu, &intake, "beside-the-stall 2");
    drop(stalled);
}

#[test]
fn chunked_and_keep_alive_requests() {
    let (intake, emu) = started();
    let addr = listener_addr(&emu);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = format!("[{}]", record(3, "chunked"));
    let (a, b) = body.split_at(body.len() / 2);
    let req = format!(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let second = format!("[{}]", record(4, "keepalive"));
    s.write_all(format!("POST / HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{second}", second.len()).as_bytes())
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    still_alive(&emu, &intake, "keepalive 4");
}
