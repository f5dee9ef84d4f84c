//! Sans-I/O pieces shared by the three variants (`src/bin/*.rs`): request text for the
//! Extensions/Telemetry API calls, response and request parsing with httparse. Only the I/O
//! model (threads vs smol) differs between the binaries.

use std::net::SocketAddr;

/// `AWS_LAMBDA_RUNTIME_API` (`host:port`, an IP literal on Lambda) and the extension name
/// (the executable's file name, as Lambda requires).
pub fn env() -> Option<(String, String)> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").ok().filter(|s| !s.is_empty())?;
    let name = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string))
        .unwrap_or_else(|| "probe".into());
    Some((api, name))
}

pub fn runtime_addr(api: &str) -> Option<SocketAddr> {
    api.parse().ok()
}

/// `SLIMCAP_TELEMETRY_PORT`, 8124 by default (slimcap's default).
pub fn telemetry_port() -> u16 {
    std::env::var("SLIMCAP_TELEMETRY_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8124)
}

fn request(method: &str, api: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {api}\r\n");
    for (k, v) in headers {
        r.push_str(k);
        r.push_str(": ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    r.push_str(body);
    r.into_bytes()
}

pub fn register_req(api: &str, name: &str) -> Vec<u8> {
    request(
        "POST",
        api,
        "/2020-01-01/extension/register",
        &[
            ("Lambda-Extension-Name", name),
            ("Lambda-Extension-Accept-Feature", "accountId"),
            ("Content-Type", "application/json"),
        ],
        r#"{"events":["INVOKE","SHUTDOWN"]}"#,
    )
}

pub fn subscribe_req(api: &str, id: &str, port: u16) -> Vec<u8> {
    let body = format!(
        r#"{{"schemaVersion":"2022-12-13","destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:{port}/"}},"types":["platform","function"],"buffering":{{"maxItems":1000,"maxBytes":262144,"timeoutMs":25}}}}"#
    );
    request(
        "PUT",
        api,
        "/2022-07-01/telemetry",
        &[("Lambda-Extension-Identifier", id), ("Content-Type", "application/json")],
        &body,
    )
}

pub fn next_req(api: &str, id: &str) -> Vec<u8> {
    request("GET", api, "/2020-01-01/extension/event/next", &[("Lambda-Extension-Identifier", id)], "")
}

pub struct Response {
    pub status: u16,
    pub id: Option<String>,
    pub body: Vec<u8>,
}

/// One complete response at the start of `buf`: `Ok(Some((response, bytes used)))`,
/// `Ok(None)` when more bytes are needed.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, &'static str> {
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut hs);
    let head = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("bad response"),
    };
    let (mut len, mut id) = (0usize, None);
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()).ok_or("bad length")?;
        } else if h.name.eq_ignore_ascii_case("lambda-extension-identifier") {
            id = std::str::from_utf8(h.value).ok().map(str::to_string);
        }
    }
    if buf.len() < head + len {
        return Ok(None);
    }
    let status = r.code.unwrap_or(0);
    Ok(Some((Response { status, id, body: buf[head..head + len].to_vec() }, head + len)))
}

pub fn is_shutdown(event: &[u8]) -> bool {
    event.windows(8).any(|w| w == b"SHUTDOWN")
}

/// The telemetry listener's side: one complete request at the start of `buf`.
pub enum Post {
    NeedMore,
    /// records in the batch (top-level objects of the JSON array), bytes used, keep-alive
    Done { records: usize, used: usize, keep_alive: bool },
    Bad,
}

pub const MAX_REQUEST: usize = 4 << 20;

pub fn parse_post(buf: &[u8]) -> Post {
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Request::new(&mut hs);
    let head = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return if buf.len() > 64 * 1024 { Post::Bad } else { Post::NeedMore },
        Err(_) => return Post::Bad,
    };
    let mut len = 0usize;
    let mut keep_alive = r.version == Some(1);
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()) {
                Some(n) => len = n,
                None => return Post::Bad,
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    if len > MAX_REQUEST || r.method != Some("POST") {
        return Post::Bad;
    }
    if buf.len() < head + len {
        return Post::NeedMore;
    }
    Post::Done { records: count_records(&buf[head..head + len]), used: head + len, keep_alive }
}

/// Top-level objects of a JSON array (strings skipped), the same scan in every variant.
fn count_records(body: &[u8]) -> usize {
    let (mut depth, mut n, mut in_str, mut esc) = (0i32, 0usize, false, false);
    for &b in body {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                if b == b'{' && depth == 1 {
                    n += 1;
                }
                depth += 1;
            }
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    n
}

pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
pub const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
pub const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

pub fn die(what: &str) -> ! {
    eprintln!("[probe] ERROR {what}");
    std::process::exit(1)
}
