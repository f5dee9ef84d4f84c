//! Sans-I/O HTTP/1.1 client messages: a request writer and a response
//! reader on top of httparse, for the few requests slimcap makes (the
//! Runtime API on loopback, the Datadog intake, Secrets Manager).
//!
//! Why not ureq, which the first versions used: measured in
//! size-reports/flags.md, ureq's resolver spawned a thread (2 MiB stack
//! mapping) for every connect, even to an IP literal: ~180 µs before
//! `register`, on the function's cold-start path; and it links ~150 KiB of
//! HTTP client code plus rustls' TLS 1.2 code, which it enables
//! unconditionally. These ~200 lines do what slimcap needs.

/// A response head and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may be reused.
    pub keep_alive: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Serializes a request. `host` is the `Host` header (`host[:port]`).
pub fn request(method: &str, host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = request_head(method, host, path, headers, body.len());
    out.extend_from_slice(body);
    out
}

/// The request line and headers (with `Content-Length: body_len`) of
/// [`request`], for a body written separately (no copy of a large body).
pub fn request_head(method: &str, host: &str, path: &str, headers: &[(&str, &str)], body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for part in [method, " ", path, " HTTP/1.1\r\nHost: ", host, "\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    for (k, v) in headers {
        for part in [*k, ": ", *v, "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    if body_len > 0 || method != "GET" {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Splits `http(s)://host[:port][/base]` into (tls, host, port, base path).
pub fn split_url(url: &str) -> Option<(bool, &str, u16, &str)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return None;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], authority[i + 1..].parse().ok()?),
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return None;
    }
    Some((tls, host, port, path.trim_end_matches('/')))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Not a response we can frame.
    Malformed,
    /// Over the size limit.
    TooLarge,
}

/// Accumulates response bytes; [`ResponseReader::poll`] yields the response
/// once complete. `eof` marks the end of the stream (for bodies delimited by
/// the connection's close).
pub struct ResponseReader {
    buf: Vec<u8>,
    limit: usize,
    head_request: bool,
}

const MAX_HEADERS: usize = 32;

impl ResponseReader {
    /// `limit`: the largest head + body accepted. `head_request`: the request
    /// was a HEAD (no body follows).
    pub fn new(limit: usize, head_request: bool) -> Self {
        ResponseReader { buf: Vec::new(), limit, head_request }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The response if complete; `Ok(None)` if more bytes are needed (and
    /// `eof` is false).
    pub fn poll(&mut self, eof: bool) -> Result<Option<Response>, Error> {
        if self.buf.len() > self.limit {
            return Err(Error::TooLarge);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return if eof { Err(Error::Malformed) } else { Ok(None) },
            Err(_) => return Err(Error::Malformed),
        };
        let status = resp.code.unwrap_or(0);
        let mut keep_alive = resp.version == Some(1);
        let (mut length, mut chunked) = (None, false);
        let mut out_headers = Vec::with_capacity(resp.headers.len());
        for h in resp.headers.iter() {
            let v = String::from_utf8_lossy(h.value).trim().to_string();
            if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(v.parse::<usize>().map_err(|_| Error::Malformed)?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = v.to_ascii_lowercase();
                keep_alive = if v.contains("close") { false } else { keep_alive || v.contains("keep-alive") };
            }
            out_headers.push((h.name.to_string(), v));
        }
        if (100..200).contains(&status) {
            // Interim answer (100 Continue): drop it and read on.
            self.buf.drain(..head_len);
            return self.poll(eof);
        }
        let rest = &self.buf[head_len..];
        let no_body = self.head_request || status == 204 || status == 304;
        let body = if no_body {
            Vec::new()
        } else if chunked {
            match dechunk(rest)? {
                Some(b) => b,
                None if eof => return Err(Error::Malformed),
                None => return Ok(None),
            }
        } else if let Some(n) = length {
            if rest.len() < n {
                return if eof { Err(Error::Malformed) } else { Ok(None) };
            }
            rest[..n].to_vec()
        } else {
            // Delimited by the close.
            if !eof {
                return Ok(None);
            }
            keep_alive = false;
            rest.to_vec()
        };
        Ok(Some(Response { status, headers: out_headers, body, keep_alive }))
    }
}

fn dechunk(mut buf: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut body = Vec::new();
    loop {
        let (used, size) = match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete(x)) => x,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Error::Malformed),
        };
        let size = usize::try_from(size).map_err(|_| Error::TooLarge)?;
        buf = &buf[used..];
        if size == 0 {
            // Trailers end with an empty line.
            let mut rest = buf;
            loop {
                let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
                rest = &rest[eol + 2..];
                if eol == 0 {
                    return Ok(Some(body));
                }
            }
        }
        if buf.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[..size]);
        buf = &buf[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_requests() {
        let r = request("POST", "127.0.0.1:9001", "/a", &[("X-A", "1")], b"{}");
        assert_eq!(r, b"POST /a HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n{}");
        let r = request("GET", "h", "/next", &[], b"");
        assert_eq!(r, b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn urls() {
        assert_eq!(split_url("https://api.datadoghq.com"), Some((true, "api.datadoghq.com", 443, "")));
        assert_eq!(split_url("http://127.0.0.1:8080/base/"), Some((false, "127.0.0.1", 8080, "/base")));
        assert_eq!(split_url("http://[::1]:81"), Some((false, "[::1]", 81, "")));
        assert_eq!(split_url("ftp://x"), None);
        assert_eq!(split_url("http://:80"), None);
        assert_eq!(split_url("http://h:x"), None);
    }

    fn read(bytes: &[u8], cut: usize, eof: bool) -> Result<Option<Response>, Error> {
        let mut r = ResponseReader::new(1 << 20, false);
        r.feed(&bytes[..cut]);
        if cut < bytes.len() {
            assert_eq!(r.poll(false), Ok(None), "cut {cut}");
            r.feed(&bytes[cut..]);
        }
        r.poll(eof)
    }

    #[test]
    fn reads_responses_split_anywhere() {
        let cl = b"HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: abc\r\nContent-Length: 5\r\n\r\nhello";
        let ch = b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        for cut in 1..cl.len() {
            let r = read(cl, cut, false).unwrap().unwrap();
            assert_eq!((r.status, r.body.as_slice(), r.keep_alive), (200, &b"hello"[..], true));
            assert_eq!(r.header("lambda-extension-identifier"), Some("abc"));
        }
        for cut in 1..ch.len() {
            let r = read(ch, cut, false).unwrap().unwrap();
            assert_eq!((r.status, r.body.as_slice()), (202, &b"abcde"[..]));
        }
    }

    #[test]
    fn close_delimited_continue_and_errors() {
        let r = read(b"HTTP/1.0 200 OK\r\n\r\nall of it", 28, true).unwrap().unwrap();
        assert_eq!((r.body.as_slice(), r.keep_alive), (&b"all of it"[..], false));
        let r = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 86, false)
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.keep_alive), (403, false));
        assert_eq!(read(b"garbage\r\n\r\n", 11, false), Err(Error::Malformed));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort";
        assert_eq!(read(short, short.len(), true), Err(Error::Malformed));
        let mut r = ResponseReader::new(10, false);
        r.feed(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(r.poll(false), Err(Error::TooLarge));
    }
}
