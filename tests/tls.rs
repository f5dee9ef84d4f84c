//! The HTTPS path end to end: slimcap ships to an intake over TLS 1.3,
//! verifying its certificate against the CA bundle named by SSL_CERT_FILE
//! (the way it reads Amazon Linux's bundle on Lambda). The intake is a small
//! Python TLS server; the CA and the server certificate are made with the
//! openssl command line for each run.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SERVER: &str = r#"
import http.server, ssl, sys, json
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        rec = {"path": self.path, "key": self.headers.get("DD-API-KEY"), "bytes": len(body),
               "tls": self.connection.version()}
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1] + "/server.pem", sys.argv[1] + "/server.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

fn sh(dir: &Path, cmd: &str) {
    let ok = Command::new("sh").arg("-c").arg(cmd).current_dir(dir).stderr(Stdio::null()).status().expect("sh");
    assert!(ok.success(), "failed: {cmd}");
}

/// Starts the Python TLS server on `dir`'s server.pem/server.key, logging
/// what it receives to `log`; returns it and its `https://localhost:PORT`.
fn tls_server(dir: &Path, log: &Path, stderr: Stdio) -> (Child, String) {
    let mut server = Command::new("python3")
        .arg("-c")
        .arg(SERVER)
        .arg(dir)
        .arg(log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().expect("server port");
    (server, format!("https://localhost:{port}"))
}

#[test]
fn ships_over_tls13_verifying_the_ca_bundle() {
    let dir = tempdir();
    // A CA and a server certificate for localhost signed by it (ECDSA P-256).
    sh(&dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=slimcap-test-ca");
    sh(&dir, "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=localhost");
    sh(&dir, "printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf");
    let log = dir.join("requests.jsonl");
    let (mut server, url) = tls_server(&dir, &log, Stdio::inherit());

    let intake = FakeIntake::start(); // unused: the TLS server is the intake here
    let ca = dir.join("ca.pem").display().to_string();
    let emu = start(config(
        &intake,
        &[("DD_DD_URL", &url), ("DD_LOGS_CONFIG_LOGS_DD_URL", &url), ("SSL_CERT_FILE", &ca)],
    ));
    emu.invoke(Invocation::new(20).log("over tls"));
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0));

    let got = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = server.kill();
    let recs: Vec<serde_json::Value> = got.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(recs.iter().any(|r| r["path"] == "/api/beta/sketches"), "{got}\n{:#?}", output(&emu));
    assert!(recs.iter().any(|r| r["path"] == "/api/v2/logs"), "{got}");
    assert!(recs.iter().all(|r| r["tls"] == "TLSv1.3" && r["key"] == "test-api-key-0123456789"), "{got}");
    assert!(intake.requests().is_empty());
}

#[test]
fn an_untrusted_certificate_is_refused_and_the_function_unaffected() {
    let dir = tempdir();
    sh(&dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=trusted-ca");
    sh(&dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.pem -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost");
    let log = dir.join("requests.jsonl");
    let (mut server, url) = tls_server(&dir, &log, Stdio::null()); // (its handshake errors are expected)
    let intake = FakeIntake::start();
    let ca = dir.join("ca.pem").display().to_string();
    let emu = start(config(
        &intake,
        &[("DD_DD_URL", &url), ("DD_LOGS_CONFIG_LOGS_DD_URL", &url), ("SSL_CERT_FILE", &ca)],
    ));
    let out = emu.invoke(Invocation::new(10));
    assert!(out.extension_errors.is_empty(), "{out:?}");
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0));
    assert!(!sd.killed);
    std::thread::sleep(Duration::from_millis(50));
    let _ = server.kill();
    assert!(std::fs::read_to_string(&log).unwrap_or_default().is_empty(), "nothing accepted over an untrusted connection");
    assert!(output(&emu).iter().any(|l| l.contains("UnknownIssuer") || l.contains("certificate")), "{:#?}", output(&emu));
}
