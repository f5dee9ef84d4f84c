//! The registration stage: a tiny program that only calls `register`, then
//! `execve`s the full slimcap binary in the same process.
//!
//! Lambda starts the function's runtime once every extension has called
//! `register`, so everything before it is on the cold-start path; with an
//! 8 MiB read-ahead, exec'ing the ~1 MB binary reads the whole file first
//! (size-reports/ab.md). This stage is a few dozen KB: it registers as soon
//! as it runs, and the big file is read after `register`, while the runtime
//! initialises. Same PID, so the platform sees one extension.
//!
//! Layer layout: this file is `extensions/slimcap`; the full binary is
//! `slimcap/slimcap-core` beside it (`/opt/slimcap/slimcap-core`), or
//! `SLIMCAP_CORE`. The identifier and the `register` answer reach it in
//! `SLIMCAP_EXTENSION_ID` and `SLIMCAP_REGISTRATION`. If `register` fails
//! here, the core is exec'd without them and registers (and reports) itself.
//!
//! Deliberately without formatting machinery or the slimcap library.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;

fn main() {
    let argv0 = std::env::args_os().next().unwrap_or_else(|| OsString::from("slimcap"));
    let core = std::env::var_os("SLIMCAP_CORE").unwrap_or_else(|| OsString::from("/opt/slimcap/slimcap-core"));
    let mut cmd = std::process::Command::new(&core);
    // (Lambda passes no arguments; by hand, `--help`/`--version` reach the core.)
    cmd.arg0(&argv0).args(std::env::args_os().skip(1));
    if let Some((id, body)) = register(&argv0) {
        cmd.env("SLIMCAP_EXTENSION_ID", id).env("SLIMCAP_REGISTRATION", body);
    }
    let err = cmd.exec();
    let _ = std::io::stderr().write_all(b"[slimcap] ERROR cannot exec the slimcap core (SLIMCAP_CORE): ");
    let _ = std::io::stderr().write_all(err.to_string().as_bytes());
    let _ = std::io::stderr().write_all(b"\n");
    std::process::exit(1);
}

/// `register`; returns the identifier and the answer's body.
fn register(argv0: &OsString) -> Option<(String, String)> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").ok()?;
    let managed = std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE")
        .map(|v| v.eq_ignore_ascii_case("lambda-managed-instances"))
        .unwrap_or(false);
    let name = std::path::Path::new(argv0).file_name()?.to_str()?;
    let body: &str = if managed { r#"{"events":["SHUTDOWN"]}"# } else { r#"{"events":["INVOKE","SHUTDOWN"]}"# };
    let mut req = String::with_capacity(256);
    for part in [
        "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: ",
        &api,
        "\r\nLambda-Extension-Name: ",
        name,
        "\r\nLambda-Extension-Accept-Feature: accountId\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ",
        if managed { "23" } else { "32" },
        "\r\n\r\n",
        body,
    ] {
        req.push_str(part);
    }
    let mut s = TcpStream::connect(api.as_str()).ok()?;
    s.write_all(req.as_bytes()).ok()?;
    // Read the head and a Content-Length body (not to EOF: the platform may keep the connection).
    let mut resp = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let (head, body) = loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 || resp.len() > 64 * 1024 {
            return None;
        }
        resp.extend_from_slice(&buf[..n]);
        let text = std::str::from_utf8(&resp).ok()?;
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                break (head, &body[..len]);
            }
        }
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    let id = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("lambda-extension-identifier").then(|| v.trim().to_string())
    })?;
    (!id.is_empty()).then(|| (id, body.to_string()))
}
