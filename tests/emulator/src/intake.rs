//! A fake Datadog intake: an HTTP/1.1 keep-alive server on 127.0.0.1:0
//! that records every request and answers as told.

use crate::http::{self, Request};
use crate::util::now_ms;
use serde_json::Value;
use std::io::{BufReader, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How the intake answers (switchable at any time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntakeMode {
    /// 202 `{}` (and 200 `{"valid":true}` for `GET /api/v1/validate`). Default.
    Accept,
    /// This status with a Datadog-like error body (403, 413, 429, 500, ...).
    Status(u16),
    /// Wait `delay_ms`, then answer `status`.
    Slow { delay_ms: u64, status: u16 },
    /// Read the request, then close the connection without answering.
    Reset,
    /// Read the request and never answer while this mode holds (the
    /// connection stays open); when the mode changes, close it unanswered.
    Hang,
    /// Read the request, then close the write side (FIN, no answer) and keep
    /// reading until the client closes.
    HalfClose,
}

/// One request the intake received.
#[derive(Clone, Debug)]
pub struct IntakeRequest {
    /// When its request line arrived (test clock ms).
    pub started_ms: f64,
    /// When the request was fully read (test clock ms).
    pub at_ms: f64,
    /// When the answer was sent (taken just before writing it; None for Reset).
    pub answered_ms: Option<f64>,
    /// Connection number (same = same keep-alive connection).
    pub conn: u64,
    pub method: String,
    /// Path including any query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Body as sent.
    pub raw_body: Vec<u8>,
    /// Body after undoing `Content-Encoding` gzip/deflate (else = raw_body).
    pub body: Vec<u8>,
    /// Set when the body could not be decoded (e.g. zstd, corrupt gzip).
    pub decode_error: Option<String>,
    /// Status answered (None for Reset).
    pub status: Option<u16>,
}

impl IntakeRequest {
    pub fn header(&self, k: &str) -> Option<&str> {
        http::header(&self.headers, k)
    }
    /// Path without the query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct IntakeState {
    mode: IntakeMode,
    requests: Vec<IntakeRequest>,
}

/// The fake intake. Dropping it stops accepting (open connections linger until closed by the client).
pub struct FakeIntake {
    addr: SocketAddr,
    inner: Arc<(Mutex<IntakeState>, Condvar)>,
    conns: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeIntake {
    /// Bind 127.0.0.1:0 and serve.
    pub fn start() -> FakeIntake {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind fake intake");
        let addr = l.local_addr().unwrap();
        let inner = Arc::new((
            Mutex::new(IntakeState {
                mode: IntakeMode::Accept,
                requests: vec![],
            }),
            Condvar::new(),
        ));
        let conns = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (i2, c2, s2) = (inner.clone(), conns.clone(), stop.clone());
        std::thread::Builder::new()
            .name("fake-intake".into())
            .spawn(move || {
                for s in l.incoming() {
                    if s2.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(s) = s else { continue };
                    let _ = s.set_nodelay(true);
                    let n = c2.fetch_add(1, Ordering::Relaxed) + 1;
                    let i3 = i2.clone();
                    std::thread::spawn(move || serve(s, n, i3));
                }
            })
            .unwrap();
        FakeIntake {
            addr,
            inner,
            conns,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_mode(&self, m: IntakeMode) {
        self.inner.0.lock().unwrap().mode = m;
    }

    pub fn mode(&self) -> IntakeMode {
        self.inner.0.lock().unwrap().mode
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<IntakeRequest> {
        self.inner.0.lock().unwrap().requests.clone()
    }

    /// Requests whose path (without query) starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<IntakeRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path_only().starts_with(prefix))
            .collect()
    }

    /// Number of TCP connections accepted so far (keep-alive checks).
    pub fn connections(&self) -> u64 {
        self.conns.load(Ordering::Relaxed)
    }

    pub fn clear(&self) {
        self.inner.0.lock().unwrap().requests.clear();
    }

    /// Wait until `pred(requests)` holds; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[IntakeRequest]) -> bool) -> bool {
        let until = now_ms() + timeout.as_secs_f64() * 1000.0;
        let (m, cv) = &*self.inner;
        let mut st = m.lock().unwrap();
        loop {
            if pred(&st.requests) {
                return true;
            }
            let left = until - now_ms();
            if left <= 0.0 {
                return false;
            }
            st = cv
                .wait_timeout(st, Duration::from_secs_f64(left.min(50.0) / 1000.0))
                .unwrap()
                .0;
        }
    }

    /// Wait until at least `n` requests arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |r| r.len() >= n)
    }
}

impl Drop for FakeIntake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

/// Undo Content-Encoding.
pub fn decode_body(encoding: Option<&str>, raw: &[u8]) -> Result<Vec<u8>, String> {
    let enc = encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Vec::new();
    match enc.as_str() {
        "" | "identity" => Ok(raw.to_vec()),
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(raw)
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| format!("gzip: {e}")),
        "deflate" => {
            // HTTP "deflate" is zlib; some clients send raw deflate.
            if flate2::read::ZlibDecoder::new(raw)
                .read_to_end(&mut out)
                .is_ok()
            {
                Ok(out)
            } else {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut out)
                    .map(|_| out)
                    .map_err(|e| format!("deflate: {e}"))
            }
        }
        other => Err(format!(
            "unsupported content-encoding {other:?} (raw body kept)"
        )),
    }
}

fn error_body(status: u16) -> &'static [u8] {
    match status {
        400 => br#"{"errors":["Bad Request"]}"#,
        403 => br#"{"errors":["Forbidden"]}"#,
        413 => br#"{"errors":["Payload too large"]}"#,
        429 => br#"{"errors":["Too Many Requests"]}"#,
        s if s >= 500 => br#"{"errors":["Internal Server Error"]}"#,
        _ => b"{}",
    }
}

fn serve(s: TcpStream, conn: u64, inner: Arc<(Mutex<IntakeState>, Condvar)>) {
    let Ok(rs) = s.try_clone() else { return };
    let mut r = BufReader::new(rs);
    let mut w = s;
    loop {
        let (req, started): (Request, f64) = match http::read_request_timed(&mut r) {
            Ok(Some(q)) => q,
            Ok(None) => return,
            Err(_) => {
                let _ =
                    http::write_response(&mut w, 400, &[], br#"{"errors":["Bad Request"]}"#, true);
                return;
            }
        };
        let at = now_ms();
        let (body, decode_error) = match decode_body(req.header("content-encoding"), &req.body) {
            Ok(b) => (b, None),
            Err(e) => (req.body.clone(), Some(e)),
        };
        let mode = inner.0.lock().unwrap().mode;
        let idx = {
            let mut st = inner.0.lock().unwrap();
            st.requests.push(IntakeRequest {
                started_ms: started,
                at_ms: at,
                answered_ms: None,
                conn,
                method: req.method.clone(),
                path: req.path.clone(),
                headers: req.headers.clone(),
                raw_body: req.body.clone(),
                body,
                decode_error,
                status: None,
            });
            st.requests.len() - 1
        };
        let (status, body): (u16, Vec<u8>) = match mode {
            IntakeMode::Hang => {
                let mut st = inner.0.lock().unwrap();
                inner.1.notify_all();
                while st.mode == IntakeMode::Hang {
                    st = inner.1.wait_timeout(st, Duration::from_millis(50)).unwrap().0;
                }
                drop(st);
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            IntakeMode::HalfClose => {
                let _ = w.shutdown(Shutdown::Write);
                inner.1.notify_all();
                let mut buf = [0u8; 4096];
                while matches!(r.get_mut().read(&mut buf), Ok(n) if n > 0) {}
                return;
            }
            IntakeMode::Reset => {
                let _ = w.shutdown(Shutdown::Both);
                inner.1.notify_all();
                return;
            }
            IntakeMode::Accept => {
                if req.method == "GET" && req.path.starts_with("/api/v1/validate") {
                    (200, br#"{"valid":true}"#.to_vec())
                } else {
                    (202, b"{}".to_vec())
                }
            }
            IntakeMode::Status(s) => (s, error_body(s).to_vec()),
            IntakeMode::Slow { delay_ms, status } => {
                std::thread::sleep(Duration::from_millis(delay_ms));
                (
                    status,
                    if status < 300 {
                        b"{}".to_vec()
                    } else {
                        error_body(status).to_vec()
                    },
                )
            }
        };
        let close = req.wants_close();
        // Record the answer before sending it, so a client that saw the
        // answer also sees it in requests().
        {
            let mut st = inner.0.lock().unwrap();
            if let Some(r) = st.requests.get_mut(idx) {
                r.status = Some(status);
                r.answered_ms = Some(now_ms());
            }
            inner.1.notify_all();
        }
        let ok = http::write_response(
            &mut w,
            status,
            &[("Content-Type".into(), "application/json".into())],
            &body,
            close,
        )
        .is_ok();
        if !ok || close {
            return;
        }
    }
}
