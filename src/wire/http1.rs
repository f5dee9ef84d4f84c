//! Sans-I/O HTTP/1.1 server-side request framing for the telemetry listener,
//! on top of `httparse`.
//!
//! [`RequestReader`] owns one connection's receive buffer. The shell reads
//! socket bytes into [`RequestReader::spare`] (then [`RequestReader::filled`])
//! or hands them over with [`RequestReader::feed`], and calls
//! [`RequestReader::next`] until it returns [`Event::NeedMore`]:
//!
//! * [`Event::Request`]: a complete request (method, path, keep-alive
//!   decision, body decoded from `Content-Length` or chunked framing). The
//!   body borrows the buffer: no copy for `Content-Length`, and chunked bodies
//!   are decoded in place. Pipelined requests come out one per call.
//! * [`Event::Continue`]: the client sent `Expect: 100-continue` and waits:
//!   write [`CONTINUE`], then keep reading.
//! * [`Event::TooLarge`]: head or body over the limit: answer 413 and close.
//! * [`Event::Bad`]: malformed: answer 400 and close.
//! * [`Event::Closed`]: the previous request asked to close (or was
//!   HTTP/1.0 without keep-alive): close without reading further.
//!
//! After `TooLarge`, `Bad` or `Closed` the reader stays in that state.
//! Unsupported on purpose (the platform never sends them): transfer codings
//! other than `chunked` (400), request targets other than what httparse
//! accepts, more than [`MAX_HEADERS`] headers (400). A request with both
//! `Content-Length` and `Transfer-Encoding`, or conflicting `Content-Length`s,
//! is rejected (400) rather than guessed at (request smuggling).

use std::fmt::Write as _;

/// Most headers accepted in one request head (or trailer section).
pub const MAX_HEADERS: usize = 32;
/// Default limit for the request line plus headers (and for trailers).
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;
/// Longest accepted chunk-size line (size plus extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// Minimum free space offered by [`RequestReader::spare`].
const READ_CHUNK: usize = 16 * 1024;

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What [`RequestReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Nothing complete yet: read more bytes.
    NeedMore,
    /// Send [`CONTINUE`], then read more bytes. Returned once per request.
    Continue,
    Request(Request<'a>),
    /// Head over `max_head` or body over `max_body`: answer 413, close.
    TooLarge,
    /// Malformed request: answer 400, close.
    Bad(&'static str),
    /// The last request was not keep-alive: close the connection.
    Closed,
}

/// A complete request; borrows the reader's buffer until the next call.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as sent (`/`, `/telemetry?x=1`, ...).
    pub path: &'a str,
    /// HTTP/1.`minor_version` (0 or 1).
    pub minor_version: u8,
    /// Whether the connection may carry another request after the answer.
    pub keep_alive: bool,
    /// The request had `Expect: 100-continue` (HTTP/1.1 only).
    pub expect_continue: bool,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct Head {
    method: (usize, usize),
    path: (usize, usize),
    minor_version: u8,
    keep_alive: bool,
    expect_continue: bool,
    /// Length of the head (request line + headers + blank line).
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes to go.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines (starting at this offset) until
    /// an empty one.
    Trailers(usize),
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for a complete request head.
    Head,
    /// Head parsed; body of `len` bytes follows it.
    Fixed {
        head: Head,
        len: usize,
    },
    /// Head parsed; chunked body. Offsets are relative to the request start:
    /// decoded bytes are `head.len..dec`, undecoded input starts at `rd`.
    Chunked {
        head: Head,
        dec: usize,
        rd: usize,
        chunk: Chunk,
    },
    TooLarge,
    Bad(&'static str),
    Closed,
}

/// Incremental request framing for one connection. See the module docs.
#[derive(Debug)]
pub struct RequestReader {
    /// Initialized storage; `buf[..len]` holds received bytes.
    buf: Vec<u8>,
    len: usize,
    /// Start of the current request in `buf`.
    start: usize,
    /// Length of a request returned by the last `next`, dropped on the next call.
    consumed: usize,
    state: State,
    max_head: usize,
    max_body: usize,
}

impl RequestReader {
    /// A reader accepting bodies up to `max_body` bytes (decoded size for
    /// chunked bodies) and heads up to [`DEFAULT_MAX_HEAD`].
    pub fn new(max_body: usize) -> Self {
        Self::with_limits(DEFAULT_MAX_HEAD, max_body)
    }

    pub fn with_limits(max_head: usize, max_body: usize) -> Self {
        RequestReader {
            buf: Vec::new(),
            len: 0,
            start: 0,
            consumed: 0,
            state: State::Head,
            max_head,
            max_body,
        }
    }

    /// Free space to read socket bytes into (at least 16 KiB); report how many
    /// were written with [`RequestReader::filled`].
    pub fn spare(&mut self) -> &mut [u8] {
        self.release();
        if self.start > 0 {
            // Compact: move the unconsumed tail to the front. Offsets in
            // `state` are relative to `start`, so nothing else changes.
            self.buf.copy_within(self.start..self.len, 0);
            self.len -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.len < READ_CHUNK {
            let want = (self.len + READ_CHUNK).max(self.buf.len() * 2);
            self.buf.resize(want, 0);
        }
        &mut self.buf[self.len..]
    }

    /// Marks `n` bytes of [`RequestReader::spare`] as received.
    pub fn filled(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// Appends received bytes (copying; [`RequestReader::spare`] avoids the copy).
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
    }

    /// Forgets the connection (for the next one), keeping the buffer unless
    /// a large body grew it past 1 MiB.
    pub fn reset(&mut self) {
        if self.buf.len() > 1 << 20 {
            self.buf = Vec::new();
        }
        (self.len, self.start, self.consumed, self.state) = (0, 0, 0, State::Head);
    }

    /// True when no partial request is buffered: an EOF now is a clean close.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head) && self.start + self.consumed >= self.len
    }

    /// Drops the request returned by the previous `next`.
    fn release(&mut self) {
        self.start = (self.start + self.consumed).min(self.len);
        self.consumed = 0;
    }

    /// Parses as far as the buffered bytes allow. See [`Event`].
    #[allow(clippy::should_implement_trait)] // the event borrows the reader
    pub fn next(&mut self) -> Event<'_> {
        self.release();
        loop {
            match self.state {
                State::TooLarge => return Event::TooLarge,
                State::Bad(why) => return Event::Bad(why),
                State::Closed => return Event::Closed,
                State::Head => match self.parse_head() {
                    Ok(Some(cont)) => {
                        if cont && !self.body_complete() {
                            return Event::Continue;
                        }
                    }
                    Ok(None) => return Event::NeedMore,
                    Err(s) => {
                        self.state = s;
                    }
                },
                State::Fixed { head, len } => {
                    let total = head.len + len;
                    if self.len - self.start < total {
                        return Event::NeedMore;
                    }
                    return self.finish(head, head.len..total, total);
                }
                State::Chunked { .. } => match self.decode_chunks() {
                    Ok(Some((head, dec, rd))) => return self.finish(head, head.len..dec, rd),
                    Ok(None) => return Event::NeedMore,
                    Err(s) => self.state = s,
                },
            }
        }
    }

    fn body_complete(&self) -> bool {
        match self.state {
            State::Fixed { head, len } => self.len - self.start >= head.len + len,
            _ => false,
        }
    }

    /// Returns the request `[start, start + used)` with `body` (relative).
    fn finish(&mut self, head: Head, body: std::ops::Range<usize>, used: usize) -> Event<'_> {
        self.consumed = used;
        self.state = if head.keep_alive {
            State::Head
        } else {
            State::Closed
        };
        let base = self.start;
        let buf = &self.buf[base..base + used];
        let s = |r: (usize, usize)| std::str::from_utf8(&buf[r.0..r.1]).unwrap_or("");
        Event::Request(Request {
            method: s(head.method),
            path: s(head.path),
            minor_version: head.minor_version,
            keep_alive: head.keep_alive,
            expect_continue: head.expect_continue,
            body: &buf[body],
        })
    }

    /// `Ok(None)`: incomplete. `Ok(Some(expect_continue))`: state advanced.
    fn parse_head(&mut self) -> Result<Option<bool>, State> {
        let data = &self.buf[self.start..self.len];
        if data.is_empty() {
            return Ok(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        // Never look past the limit: the outcome then does not depend on how
        // the bytes were split across reads.
        let head_len = match req.parse(&data[..data.len().min(self.max_head)]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if data.len() > self.max_head {
                    Err(State::TooLarge)
                } else {
                    Ok(None)
                };
            }
            Err(httparse::Error::TooManyHeaders) => return Err(State::Bad("too many headers")),
            Err(_) => return Err(State::Bad("malformed request head")),
        };
        if head_len > self.max_head {
            return Err(State::TooLarge);
        }
        let base = data.as_ptr() as usize;
        let span = |s: &str| {
            let at = s.as_ptr() as usize - base;
            (at, at + s.len())
        };
        let (Some(method), Some(path), Some(minor_version)) = (req.method, req.path, req.version)
        else {
            return Err(State::Bad("malformed request head"));
        };
        let (method, path) = (span(method), span(path));

        let mut content_length: Option<u64> = None;
        let (mut chunked, mut close, mut ka, mut expect) = (false, false, false, false);
        for h in req.headers.iter() {
            let name = h.name;
            let value = trim(h.value);
            if name.eq_ignore_ascii_case("content-length") {
                let n = parse_decimal(value).ok_or(State::Bad("invalid content-length"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(State::Bad("conflicting content-length"));
                }
                content_length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if chunked || !value.eq_ignore_ascii_case(b"chunked") {
                    return Err(State::Bad("unsupported transfer-encoding"));
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case("connection") {
                for token in value.split(|&c| c == b',') {
                    let token = trim(token);
                    close |= token.eq_ignore_ascii_case(b"close");
                    ka |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("expect") {
                expect |= value.eq_ignore_ascii_case(b"100-continue");
            }
        }
        if chunked && content_length.is_some() {
            return Err(State::Bad("both content-length and transfer-encoding"));
        }
        let keep_alive = !close && (minor_version >= 1 || ka);
        let expect_continue = expect && minor_version >= 1;
        let head = Head {
            method,
            path,
            minor_version,
            keep_alive,
            expect_continue,
            len: head_len,
        };
        if chunked {
            self.state = State::Chunked {
                head,
                dec: head_len,
                rd: head_len,
                chunk: Chunk::Size,
            };
            return Ok(Some(expect_continue));
        }
        let len = content_length.unwrap_or(0);
        if len > self.max_body as u64 {
            return Err(State::TooLarge);
        }
        self.state = State::Fixed {
            head,
            len: len as usize,
        };
        Ok(Some(expect_continue && len > 0))
    }

    /// Decodes as much chunked input as is buffered, compacting decoded data
    /// in place. `Ok(Some((head, dec_end, used)))` when the body is complete.
    fn decode_chunks(&mut self) -> Result<Option<(Head, usize, usize)>, State> {
        let State::Chunked {
            head,
            mut dec,
            mut rd,
            mut chunk,
        } = self.state
        else {
            return Ok(None);
        };
        let base = self.start;
        let avail = self.len - base;
        let result = loop {
            let data = &self.buf[base + rd..base + avail];
            match chunk {
                Chunk::Size => {
                    match httparse::parse_chunk_size(&data[..data.len().min(MAX_CHUNK_LINE)]) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            if used > MAX_CHUNK_LINE {
                                break Err(State::Bad("chunk-size line too long"));
                            }
                            rd += used;
                            if size == 0 {
                                chunk = Chunk::Trailers(rd);
                            } else if size > (self.max_body - (dec - head.len)) as u64 {
                                break Err(State::TooLarge);
                            } else {
                                chunk = Chunk::Data(size);
                            }
                        }
                        Ok(httparse::Status::Partial) if data.len() <= MAX_CHUNK_LINE => {
                            break Ok(None)
                        }
                        Ok(httparse::Status::Partial) => {
                            break Err(State::Bad("chunk-size line too long"))
                        }
                        Err(_) => break Err(State::Bad("invalid chunk size")),
                    }
                }
                Chunk::Data(rem) => {
                    let n = (data.len() as u64).min(rem) as usize;
                    if n == 0 {
                        break Ok(None);
                    }
                    self.buf.copy_within(base + rd..base + rd + n, base + dec);
                    dec += n;
                    rd += n;
                    chunk = if rem == n as u64 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(rem - n as u64)
                    };
                }
                Chunk::DataEnd => match data {
                    [b'\r', b'\n', ..] => {
                        rd += 2;
                        chunk = Chunk::Size;
                    }
                    [] | [b'\r'] => break Ok(None),
                    _ => break Err(State::Bad("missing CRLF after chunk data")),
                },
                Chunk::Trailers(from) => match data.iter().position(|&c| c == b'\n') {
                    Some(nl) => {
                        let line = &data[..nl];
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        rd += nl + 1;
                        // Size first (the final empty line counts too): a
                        // partial line is refused by the same measure below.
                        if rd - from > self.max_head {
                            break Err(State::TooLarge);
                        }
                        if line.is_empty() {
                            break Ok(Some((head, dec, rd)));
                        }
                        if !line.contains(&b':') {
                            break Err(State::Bad("malformed trailer"));
                        }
                    }
                    None if rd + data.len() - from > self.max_head => break Err(State::TooLarge),
                    None => break Ok(None),
                },
            }
        };
        if let Ok(None) = result {
            self.state = State::Chunked {
                head,
                dec,
                rd,
                chunk,
            };
        }
        result
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Strict decimal: ASCII digits only, at least one. Overflow saturates (a
/// length that large is simply over any limit).
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add((d - b'0') as u64)
    }))
}

/// Reason phrase for the status codes the listener uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A minimal complete response: status line, `Content-Length`, plus
/// `Content-Type: text/plain` when there is a body and `Connection: close`
/// when `!keep_alive`.
pub fn response(status: u16, body: &str, keep_alive: bool) -> Vec<u8> {
    let mut s = String::with_capacity(96 + body.len());
    let _ = write!(s, "HTTP/1.1 {} {}\r\n", status, reason(status));
    if !body.is_empty() {
        s.push_str("Content-Type: text/plain\r\n");
    }
    let _ = write!(s, "Content-Length: {}\r\n", body.len());
    if !keep_alive {
        s.push_str("Connection: close\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of a request, to compare across feeds.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Out {
        Continue,
        Req {
            method: String,
            path: String,
            keep_alive: bool,
            expect: bool,
            body: Vec<u8>,
        },
        TooLarge,
        Bad,
        Closed,
    }

    fn own(e: Event<'_>) -> Option<Out> {
        Some(match e {
            Event::NeedMore => return None,
            Event::Continue => Out::Continue,
            Event::Request(r) => Out::Req {
                method: r.method.into(),
                path: r.path.into(),
                keep_alive: r.keep_alive,
                expect: r.expect_continue,
                body: r.body.to_vec(),
            },
            Event::TooLarge => Out::TooLarge,
            Event::Bad(_) => Out::Bad,
            Event::Closed => Out::Closed,
        })
    }

    /// Feeds `input` in pieces of the given sizes (cycled), draining events
    /// after each piece; stops at the first terminal event.
    fn run(rr: &mut RequestReader, input: &[u8], pieces: &[usize]) -> Vec<Out> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut k = 0;
        loop {
            loop {
                match own(rr.next()) {
                    None => break,
                    Some(o) => {
                        let terminal = matches!(o, Out::TooLarge | Out::Bad | Out::Closed);
                        out.push(o);
                        if terminal {
                            return out;
                        }
                    }
                }
            }
            if i >= input.len() {
                return out;
            }
            let n = pieces[k % pieces.len()].max(1).min(input.len() - i);
            k += 1;
            // Alternate between the two ways of supplying bytes.
            if k % 2 == 0 {
                rr.feed(&input[i..i + n]);
            } else {
                let spare = rr.spare();
                let n = n.min(spare.len());
                spare[..n].copy_from_slice(&input[i..i + n]);
                rr.filled(n);
                i += n;
                continue;
            }
            i += n;
        }
    }

    fn all_at_once(input: &[u8]) -> Vec<Out> {
        run(&mut RequestReader::new(1 << 20), input, &[usize::MAX])
    }

    fn req(method: &str, path: &str, keep_alive: bool, body: &[u8]) -> Out {
        Out::Req {
            method: method.into(),
            path: path.into(),
            keep_alive,
            expect: false,
            body: body.to_vec(),
        }
    }

    /// Every split point (two pieces) and byte-at-a-time give the same events.
    fn assert_split_invariant(input: &[u8], max_body: usize) -> Vec<Out> {
        assert_split_invariant_limits(input, DEFAULT_MAX_HEAD, max_body)
    }

    fn assert_split_invariant_limits(input: &[u8], max_head: usize, max_body: usize) -> Vec<Out> {
        let new = || RequestReader::with_limits(max_head, max_body);
        let whole = run(&mut new(), input, &[usize::MAX]);
        for cut in 1..input.len() {
            let got = run(&mut new(), input, &[cut, usize::MAX]);
            let strip = |v: &[Out]| {
                v.iter()
                    .filter(|o| **o != Out::Continue)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&got), strip(&whole), "cut at {cut}");
        }
        let bytes = run(&mut new(), input, &[1]);
        let strip = |v: &[Out]| {
            v.iter()
                .filter(|o| **o != Out::Continue)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&bytes), strip(&whole), "byte at a time");
        whole
    }

    const TELEMETRY: &[u8] = b"POST / HTTP/1.1\r\nHost: sandbox.localdomain:8124\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 13\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n[{\"a\":\"b\"}, ]";

    #[test]
    fn content_length_request() {
        let out = assert_split_invariant(TELEMETRY, 1 << 20);
        assert_eq!(out, [req("POST", "/", true, b"[{\"a\":\"b\"}, ]")]);
    }

    #[test]
    fn no_body_and_versions() {
        assert_eq!(
            all_at_once(b"GET /x?y=1 HTTP/1.1\r\n\r\n"),
            [req("GET", "/x?y=1", true, b"")]
        );
        // HTTP/1.0: close by default, keep-alive on request.
        assert_eq!(
            all_at_once(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n"),
            [req("GET", "/", false, b""), Out::Closed]
        );
        assert_eq!(
            all_at_once(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
            [req("GET", "/", true, b"")]
        );
        // HTTP/1.1 with Connection: close (in a token list, any case).
        assert_eq!(
            all_at_once(b"POST / HTTP/1.1\r\nConnection: foo, CLOSE\r\nContent-Length: 2\r\n\r\nhiPOST / HTTP/1.1\r\n\r\n"),
            [req("POST", "/", false, b"hi"), Out::Closed]
        );
        // Leading empty lines before a request line are tolerated.
        assert_eq!(
            all_at_once(b"\r\nGET / HTTP/1.1\r\n\r\n"),
            [req("GET", "/", true, b"")]
        );
    }

    #[test]
    fn pipelined_requests() {
        let mut input = Vec::new();
        input.extend_from_slice(TELEMETRY);
        input.extend_from_slice(
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        input.extend_from_slice(b"GET /b HTTP/1.1\r\n\r\n");
        input.extend_from_slice(
            b"POST /c HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz",
        );
        input.extend_from_slice(b"GET /never HTTP/1.1\r\n\r\n");
        let out = assert_split_invariant(&input, 1 << 20);
        assert_eq!(
            out,
            [
                req("POST", "/", true, b"[{\"a\":\"b\"}, ]"),
                req("POST", "/a", true, b"abc"),
                req("GET", "/b", true, b""),
                req("POST", "/c", false, b"z"),
                Out::Closed,
            ]
        );
    }

    #[test]
    fn chunked_bodies() {
        let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n1;ext=1;x=\"y\"\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\nY: 2\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let out = assert_split_invariant(input, 1 << 20);
        assert_eq!(
            out,
            [
                req("POST", "/", true, b"hello 0123456789"),
                req("GET", "/", true, b"")
            ]
        );
        // Empty chunked body.
        assert_eq!(
            all_at_once(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            [req("POST", "/", true, b"")]
        );
    }

    #[test]
    fn chunked_large_body_many_chunks() {
        let mut input = b"POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut expect = Vec::new();
        for i in 0..2000u32 {
            let data: Vec<u8> = (0..(i % 97 + 1))
                .map(|j| b'a' + ((i + j) % 26) as u8)
                .collect();
            input.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            input.extend_from_slice(&data);
            input.extend_from_slice(b"\r\n");
            expect.extend_from_slice(&data);
        }
        input.extend_from_slice(b"0\r\n\r\n");
        for pieces in [&[usize::MAX][..], &[1], &[7, 4093], &[16384]] {
            let out = run(&mut RequestReader::new(1 << 20), &input, pieces);
            assert_eq!(out, [req("POST", "/big", true, &expect)], "{pieces:?}");
        }
    }

    #[test]
    fn body_limits() {
        // Content-Length at the limit passes, over it is refused before the body arrives.
        let mut rr = RequestReader::new(4);
        assert_eq!(
            run(
                &mut rr,
                b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
                &[99]
            ),
            [req("POST", "/", true, b"abcd")]
        );
        let mut rr = RequestReader::new(4);
        assert_eq!(
            run(
                &mut rr,
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                &[99]
            ),
            [Out::TooLarge]
        );
        assert_eq!(rr.next(), Event::TooLarge);
        let mut rr = RequestReader::new(4);
        assert_eq!(
            run(
                &mut rr,
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                &[99]
            ),
            [Out::TooLarge]
        );
        // Chunked: the decoded size counts, across chunks.
        let ok =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n";
        assert_eq!(
            assert_split_invariant(ok, 4),
            [req("POST", "/", true, b"abcd")]
        );
        let over = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n";
        assert_eq!(assert_split_invariant(over, 4), [Out::TooLarge]);
        let huge = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n";
        assert_eq!(all_at_once(huge), [Out::TooLarge]);
    }

    #[test]
    fn head_limits() {
        let mut rr = RequestReader::with_limits(64, 100);
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100));
        assert_eq!(run(&mut rr, long.as_bytes(), &[10]), [Out::TooLarge]);
        let mut rr = RequestReader::with_limits(64, 100);
        assert_eq!(
            run(&mut rr, long.as_bytes(), &[usize::MAX]),
            [Out::TooLarge]
        );
        // A head that never ends stops at the limit, not at memory exhaustion.
        let mut rr = RequestReader::with_limits(64, 100);
        let endless = format!("GET / HTTP/1.1\r\nX: {}", "b".repeat(1000));
        assert_eq!(run(&mut rr, endless.as_bytes(), &[5]), [Out::TooLarge]);
        // Trailers count against the head limit.
        let mut rr = RequestReader::with_limits(64, 100);
        let trailers = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: {}\r\n\r\n",
            "c".repeat(100)
        );
        assert_eq!(run(&mut rr, trailers.as_bytes(), &[3]), [Out::TooLarge]);
        // The final empty line counts too, however the bytes are split
        // (found by the fuzzer: 80 bytes of trailer lines, limit 80).
        let t = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: {}\r\n\r\n",
            "7".repeat(75)
        );
        assert_eq!(
            assert_split_invariant_limits(t.as_bytes(), 80, 100),
            [Out::TooLarge]
        );
        let t = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: {}\r\n\r\n",
            "7".repeat(73)
        );
        assert_eq!(
            assert_split_invariant_limits(t.as_bytes(), 80, 100),
            [req("POST", "/", true, b"")]
        );
        // ...but the framing of many small chunks does not.
        let mut rr = RequestReader::with_limits(64, 1000);
        let mut input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..100 {
            input.extend_from_slice(b"1\r\nx\r\n");
        }
        input.extend_from_slice(b"0\r\nTrailer: abc\r\n\r\n");
        assert_eq!(
            run(&mut rr, &input, &[3]),
            [req("POST", "/", true, &[b'x'; 100])]
        );
        // Too many headers.
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(all_at_once(many.as_bytes()), [Out::Bad]);
    }

    #[test]
    fn expect_continue() {
        let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        let mut rr = RequestReader::new(100);
        rr.feed(head);
        assert_eq!(rr.next(), Event::Continue);
        assert_eq!(rr.next(), Event::NeedMore);
        rr.feed(b"abc");
        match rr.next() {
            Event::Request(r) => {
                assert!(r.expect_continue);
                assert_eq!(r.body, b"abc");
            }
            e => panic!("{e:?}"),
        }
        // Body already there: no Continue needed.
        let mut rr = RequestReader::new(100);
        rr.feed(head);
        rr.feed(b"abc");
        assert!(matches!(rr.next(), Event::Request(r) if r.expect_continue));
        // Chunked with Expect.
        let mut rr = RequestReader::new(100);
        rr.feed(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(rr.next(), Event::Continue);
        rr.feed(b"1\r\nx\r\n0\r\n\r\n");
        assert!(matches!(rr.next(), Event::Request(r) if r.body == b"x"));
        // Too large with Expect: refuse without Continue.
        let mut rr = RequestReader::new(2);
        rr.feed(head);
        assert_eq!(rr.next(), Event::TooLarge);
        // No body: nothing to continue. HTTP/1.0: Expect ignored.
        let mut rr = RequestReader::new(2);
        rr.feed(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        assert!(matches!(rr.next(), Event::Request(r) if r.expect_continue));
        let mut rr = RequestReader::new(9);
        rr.feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert_eq!(rr.next(), Event::NeedMore);
    }

    #[test]
    fn malformed() {
        for input in [
            &b"garbage\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \x01\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
        ] {
            let out = assert_split_invariant(input, 100);
            assert_eq!(out, [Out::Bad], "{:?}", String::from_utf8_lossy(input));
        }
        // Identical duplicate Content-Length is accepted; so is surrounding whitespace.
        assert_eq!(
            all_at_once(b"POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length:  1 \r\n\r\na"),
            [req("POST", "/", true, b"a")]
        );
        // A long chunk-size line (extensions) is refused.
        let long = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\n",
            "e".repeat(2000)
        );
        assert_eq!(
            run(&mut RequestReader::new(100), long.as_bytes(), &[100]),
            [Out::Bad]
        );
        // Bad is sticky.
        let mut rr = RequestReader::new(100);
        rr.feed(b"nonsense\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert!(matches!(rr.next(), Event::Bad(_)));
        assert!(matches!(rr.next(), Event::Bad(_)));
    }

    #[test]
    fn idle_and_buffer_reuse() {
        let mut rr = RequestReader::new(1 << 20);
        assert!(rr.is_idle());
        rr.feed(&TELEMETRY[..10]);
        assert!(!rr.is_idle());
        rr.feed(&TELEMETRY[10..]);
        assert!(matches!(rr.next(), Event::Request(_)));
        assert!(rr.is_idle());
        assert_eq!(rr.next(), Event::NeedMore);
        // Many keep-alive requests on one connection: the buffer does not grow.
        for _ in 0..1000 {
            rr.feed(TELEMETRY);
            assert!(matches!(rr.next(), Event::Request(r) if r.body.len() == 13));
            assert_eq!(rr.next(), Event::NeedMore);
        }
        assert!(rr.buf.len() <= 2 * READ_CHUNK, "{}", rr.buf.len());
        assert!(rr.spare().len() >= READ_CHUNK);
        // reset: a new connection after a bad one (and a half-read request) on the same buffer.
        rr.feed(b"nonsense\r\n\r\nPOST / HT");
        assert!(matches!(rr.next(), Event::Bad(_)));
        let cap = rr.buf.len();
        rr.reset();
        assert!(rr.is_idle() && rr.buf.len() == cap);
        rr.feed(TELEMETRY);
        assert!(matches!(rr.next(), Event::Request(r) if r.body.len() == 13));
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic pseudo-random inputs built from request fragments.
        let frags: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\n",
            b"GET /x HTTP/1.0\r\n",
            b"Content-Length: 3\r\n",
            b"Content-Length: 0\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Connection: close\r\n",
            b"Expect: 100-continue\r\n",
            b"\r\n",
            b"3\r\nabc\r\n",
            b"0\r\n\r\n",
            b"ffff\r\n",
            b"abc",
            b"\n",
            b"\r",
            b":",
            b"\x00\xff",
        ];
        let mut seed = 0x2545F4914F6CDD1Du64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..(rnd() % 12) {
                input.extend_from_slice(frags[(rnd() % frags.len() as u64) as usize]);
            }
            let pieces = [(rnd() % 9 + 1) as usize, (rnd() % 50 + 1) as usize];
            let _ = run(&mut RequestReader::with_limits(128, 64), &input, &pieces);
        }
    }

    #[test]
    fn responses() {
        assert_eq!(
            response(200, "OK", true),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK".to_vec()
        );
        assert_eq!(
            response(413, "", false),
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        );
        assert_eq!(reason(999), "");
        // Our own responses parse as HTTP (sanity via httparse's response parser).
        for (st, body, ka) in [(200, "OK", true), (400, "x", false), (202, "", true)] {
            let r = response(st, body, ka);
            let mut h = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut h);
            let n = match resp.parse(&r).unwrap() {
                httparse::Status::Complete(n) => n,
                _ => panic!(),
            };
            assert_eq!(resp.code, Some(st));
            assert_eq!(&r[n..], body.as_bytes());
        }
    }
}
