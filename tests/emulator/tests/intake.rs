//! The fake Datadog intake.

use lambda_emulator::http::ClientConn;
use lambda_emulator::intake::{FakeIntake, IntakeMode};
use std::io::Write;
use std::time::Duration;

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
fn records_decodes_and_keeps_alive() {
    let fi = FakeIntake::start();
    assert!(fi.url().starts_with("http://127.0.0.1:"));
    let mut c = ClientConn::connect(fi.addr(), Duration::from_secs(2)).unwrap();
    let host = fi.addr().to_string();
    let logs = br#"[{"message":"hi","status":"info"}]"#;
    let r = c
        .request(
            "POST",
            "/api/v2/logs",
            &host,
            &[
                ("DD-API-KEY", "k"),
                ("Content-Encoding", "gzip"),
                ("Content-Type", "application/json"),
            ],
            &gzip(logs),
        )
        .unwrap();
    assert_eq!(r.status, 202);
    let r = c
        .request(
            "POST",
            "/api/beta/sketches",
            &host,
            &[("Content-Encoding", "deflate")],
            &zlib(b"\x0a\x01x"),
        )
        .unwrap();
    assert_eq!(r.status, 202);
    let r = c
        .request(
            "GET",
            "/api/v1/validate",
            &host,
            &[("DD-API-KEY", "k")],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"valid":true}"#);
    let r = c
        .request(
            "POST",
            "/api/v2/series",
            &host,
            &[("Content-Encoding", "zstd")],
            b"\x28\xb5\x2f\xfdjunk",
        )
        .unwrap();
    assert_eq!(r.status, 202);
    assert!(fi.wait_for(4, Duration::from_secs(2)));
    let reqs = fi.requests();
    assert_eq!(fi.connections(), 1, "one keep-alive connection");
    assert!(reqs.iter().all(|r| r.conn == reqs[0].conn));
    assert_eq!(reqs[0].path, "/api/v2/logs");
    assert_eq!(reqs[0].header("dd-api-key"), Some("k"));
    assert_eq!(reqs[0].body, logs.to_vec());
    assert_ne!(reqs[0].raw_body, reqs[0].body);
    assert_eq!(reqs[0].json().unwrap()[0]["message"], "hi");
    assert_eq!(reqs[1].body, b"\x0a\x01x".to_vec());
    assert!(reqs[3].decode_error.is_some());
    assert_eq!(reqs[3].body, reqs[3].raw_body);
    assert_eq!(fi.requests_to("/api/v2/").len(), 2);
}

#[test]
fn answer_modes() {
    let fi = FakeIntake::start();
    let send = |fi: &FakeIntake| {
        lambda_emulator::http::request(
            fi.addr(),
            "POST",
            "/api/v2/logs",
            &[],
            b"[]",
            Some(Duration::from_secs(2)),
        )
    };
    for s in [403u16, 413, 429, 500] {
        fi.set_mode(IntakeMode::Status(s));
        let r = send(&fi).unwrap();
        assert_eq!(r.status, s);
        assert!(r.text().contains("errors"));
    }
    fi.set_mode(IntakeMode::Slow {
        delay_ms: 150,
        status: 202,
    });
    let t = lambda_emulator::now_ms();
    assert_eq!(send(&fi).unwrap().status, 202);
    assert!(lambda_emulator::now_ms() - t >= 149.0);
    fi.set_mode(IntakeMode::Reset);
    assert!(send(&fi).is_err());
    fi.set_mode(IntakeMode::Accept);
    assert_eq!(send(&fi).unwrap().status, 202);
    let reqs = fi.requests();
    assert_eq!(reqs.len(), 7);
    assert_eq!(reqs[5].status, None, "reset request has no answer");
    assert_eq!(reqs[6].status, Some(202));
    fi.clear();
    assert!(fi.requests().is_empty());
}

#[test]
fn started_ms_is_when_the_request_line_arrived() {
    use std::io::Write as _;
    let fi = FakeIntake::start();
    let mut s = std::net::TcpStream::connect(fi.addr()).unwrap();
    let t0 = lambda_emulator::now_ms();
    s.write_all(b"POST /api/v2/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[")
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    s.write_all(b"]").unwrap();
    assert!(fi.wait_until(Duration::from_secs(2), |r| r
        .iter()
        .any(|r| r.status.is_some())));
    let r = &fi.requests()[0];
    assert!(r.started_ms >= t0 && r.started_ms < t0 + 100.0);
    assert!(r.at_ms - r.started_ms >= 100.0, "{r:?}");
    assert_eq!(r.body, b"[]".to_vec());
}
