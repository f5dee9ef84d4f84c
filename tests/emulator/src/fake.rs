//! Building blocks for tiny fake extensions written inside tests (std
//! `TcpStream` only): an Extensions/Telemetry API client and a telemetry
//! listener that records what the platform delivers.

use crate::http::{self, ClientConn, Response};
use crate::util::now_ms;
use serde_json::{json, Value};
use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Resolve `host:port` (the `AWS_LAMBDA_RUNTIME_API` value).
pub fn api_addr(api: &str) -> io::Result<SocketAddr> {
    api.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad AWS_LAMBDA_RUNTIME_API"))
}

/// Raw one-shot call to the Runtime API (own connection, closed afterwards).
pub fn call(
    api: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    http::request(
        api_addr(api)?,
        method,
        path,
        headers,
        body,
        Some(Duration::from_secs(30)),
    )
}

/// POST register with full control. Returns the raw response.
pub fn register_raw(
    api: &str,
    name: &str,
    events: &[&str],
    account_feature: bool,
) -> io::Result<Response> {
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    let mut hs = vec![
        ("Lambda-Extension-Name", name),
        ("Content-Type", "application/json"),
    ];
    if account_feature {
        hs.push(("Lambda-Extension-Accept-Feature", "accountId"));
    }
    call(api, "POST", "/2020-01-01/extension/register", &hs, &body)
}

/// A registered extension.
pub struct ExtClient {
    pub api: String,
    pub id: String,
    pub name: String,
    pub register_response: Response,
    next_conn: Option<ClientConn>,
}

impl ExtClient {
    /// Register (`events` e.g. `["INVOKE","SHUTDOWN"]`); error unless 200.
    pub fn register(api: &str, name: &str, events: &[&str]) -> io::Result<ExtClient> {
        let r = register_raw(api, name, events, true)?;
        if r.status != 200 {
            return Err(io::Error::other(format!(
                "register: {} {}",
                r.status,
                r.text()
            )));
        }
        let id = r
            .header("Lambda-Extension-Identifier")
            .ok_or_else(|| io::Error::other("no Lambda-Extension-Identifier"))?
            .to_string();
        Ok(ExtClient {
            api: api.into(),
            id,
            name: name.into(),
            register_response: r,
            next_conn: None,
        })
    }

    /// `GET event/next` on a kept-alive connection, no client timeout.
    pub fn next_raw(&mut self) -> io::Result<Response> {
        if self.next_conn.is_none() {
            self.next_conn = Some(ClientConn::connect(
                api_addr(&self.api)?,
                Duration::from_secs(5),
            )?);
        }
        let c = self.next_conn.as_mut().unwrap();
        let host = self.api.clone();
        let r = c.request(
            "GET",
            "/2020-01-01/extension/event/next",
            &host,
            &[("Lambda-Extension-Identifier", &self.id)],
            b"",
        );
        if r.is_err() {
            self.next_conn = None;
        }
        r
    }

    /// Next event as JSON; error unless 200.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> io::Result<Value> {
        let r = self.next_raw()?;
        if r.status != 200 {
            return Err(io::Error::other(format!("next: {} {}", r.status, r.text())));
        }
        serde_json::from_slice(&r.body).map_err(io::Error::other)
    }

    /// `PUT /2022-07-01/telemetry` with this extension's identifier.
    pub fn subscribe(&self, body: &Value) -> io::Result<Response> {
        let b = serde_json::to_vec(body).unwrap();
        call(
            &self.api,
            "PUT",
            "/2022-07-01/telemetry",
            &[
                ("Content-Type", "application/json"),
                ("Lambda-Extension-Identifier", &self.id),
            ],
            &b,
        )
    }

    /// `POST init/error` (`init = true`) or `exit/error`.
    pub fn report_error(&self, init: bool, error_type: &str) -> io::Result<Response> {
        let path = if init {
            "/2020-01-01/extension/init/error"
        } else {
            "/2020-01-01/extension/exit/error"
        };
        let body = serde_json::to_vec(
            &json!({"errorMessage": "fake failure", "errorType": error_type, "stackTrace": []}),
        )
        .unwrap();
        call(
            &self.api,
            "POST",
            path,
            &[
                ("Lambda-Extension-Identifier", &self.id),
                ("Lambda-Extension-Function-Error-Type", error_type),
            ],
            &body,
        )
    }
}

/// A subscription request body.
pub fn subscription_body(
    uri: &str,
    schema: &str,
    types: &[&str],
    max_items: u64,
    max_bytes: u64,
    timeout_ms: u64,
) -> Value {
    json!({
        "schemaVersion": schema,
        "destination": {"protocol": "HTTP", "URI": uri},
        "types": types,
        "buffering": {"maxItems": max_items, "maxBytes": max_bytes, "timeoutMs": timeout_ms},
    })
}

#[derive(Default)]
struct ListenerState {
    batches: Vec<(f64, Value)>,
    raw: Vec<(f64, Vec<u8>)>,
    status: u16,
    delay_ms: u64,
}

/// A telemetry listener: answers deliveries (200 by default), keeps every
/// batch. Bind it before subscribing, as a real extension must.
#[derive(Clone)]
pub struct TelemetryListener {
    pub addr: SocketAddr,
    inner: Arc<(Mutex<ListenerState>, Condvar)>,
}

impl TelemetryListener {
    pub fn start() -> TelemetryListener {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind listener");
        let addr = l.local_addr().unwrap();
        let inner = Arc::new((
            Mutex::new(ListenerState {
                status: 200,
                ..Default::default()
            }),
            Condvar::new(),
        ));
        let inner2 = inner.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let inner = inner2.clone();
                std::thread::spawn(move || serve(s, inner));
            }
        });
        TelemetryListener { addr, inner }
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// `http://sandbox.localdomain:PORT/`
    pub fn uri(&self) -> String {
        format!("http://sandbox.localdomain:{}/", self.port())
    }
    /// Status to answer from now on.
    pub fn set_status(&self, s: u16) {
        self.inner.0.lock().unwrap().status = s;
    }
    /// Delay before answering.
    pub fn set_delay_ms(&self, ms: u64) {
        self.inner.0.lock().unwrap().delay_ms = ms;
    }
    /// Every batch received (receive time, JSON array), including ones answered with errors.
    pub fn batches(&self) -> Vec<(f64, Value)> {
        self.inner.0.lock().unwrap().batches.clone()
    }
    /// Every record received, flattened.
    pub fn records(&self) -> Vec<Value> {
        self.batches()
            .into_iter()
            .flat_map(|(_, b)| b.as_array().cloned().unwrap_or_default())
            .collect()
    }
    /// Record types received, in order.
    pub fn types(&self) -> Vec<String> {
        self.records()
            .iter()
            .map(|r| r["type"].as_str().unwrap_or("").to_string())
            .collect()
    }
    /// Wait until a record satisfying `pred` arrived.
    pub fn wait_record(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let until = now_ms() + timeout.as_secs_f64() * 1000.0;
        let (m, cv) = &*self.inner;
        let mut st = m.lock().unwrap();
        loop {
            if let Some(r) = st
                .batches
                .iter()
                .flat_map(|(_, b)| b.as_array().cloned().unwrap_or_default())
                .find(|r| pred(r))
            {
                return Some(r);
            }
            let left = until - now_ms();
            if left <= 0.0 {
                return None;
            }
            st = cv
                .wait_timeout(st, Duration::from_secs_f64(left.min(50.0) / 1000.0))
                .unwrap()
                .0;
        }
    }
    /// Wait for a record of type `ty` (and optional requestId).
    pub fn wait_type(
        &self,
        ty: &str,
        request_id: Option<&str>,
        timeout: Duration,
    ) -> Option<Value> {
        self.wait_record(timeout, |r| {
            r["type"] == ty
                && request_id
                    .map(|id| r["record"]["requestId"] == id)
                    .unwrap_or(true)
        })
    }
}

fn serve(s: TcpStream, inner: Arc<(Mutex<ListenerState>, Condvar)>) {
    let Ok(rs) = s.try_clone() else { return };
    let mut r = BufReader::new(rs);
    let mut w = s;
    loop {
        let req = match http::read_request(&mut r) {
            Ok(Some(q)) => q,
            _ => return,
        };
        let (status, delay) = {
            let st = inner.0.lock().unwrap();
            (st.status, st.delay_ms)
        };
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        // Answer first, then hand the batch on (as a careful extension does:
        // otherwise the extension may call next, and freeze, before the
        // platform got its answer).
        let wrote = http::write_response(&mut w, status, &[], b"", false).is_ok();
        let t = now_ms();
        {
            let mut st = inner.0.lock().unwrap();
            st.raw.push((t, req.body.clone()));
            if let Ok(v) = serde_json::from_slice::<Value>(&req.body) {
                st.batches.push((t, v));
            }
            inner.1.notify_all();
        }
        if !wrote {
            return;
        }
    }
}

/// A complete well-behaved extension loop for in-thread use: register
/// (INVOKE+SHUTDOWN), bind a listener, subscribe (schema, all types), then
/// call next until SHUTDOWN. `on_event` sees each event. At SHUTDOWN it
/// waits up to 300 ms for the `platform.report` of the last INVOKE (as real
/// extensions do), then returns the client.
pub fn simple_extension(
    api: &str,
    name: &str,
    schema: &str,
    listener: &TelemetryListener,
    mut on_event: impl FnMut(&Value),
) -> io::Result<ExtClient> {
    let mut c = ExtClient::register(api, name, &["INVOKE", "SHUTDOWN"])?;
    let body = subscription_body(
        &listener.uri(),
        schema,
        &["platform", "function", "extension"],
        1000,
        262_144,
        25,
    );
    let r = c.subscribe(&body)?;
    if r.status != 200 {
        return Err(io::Error::other(format!(
            "subscribe: {} {}",
            r.status,
            r.text()
        )));
    }
    let mut last_rid: Option<String> = None;
    loop {
        let ev = c.next()?;
        on_event(&ev);
        if ev["eventType"] == "INVOKE" {
            last_rid = ev["requestId"].as_str().map(String::from);
        }
        if ev["eventType"] == "SHUTDOWN" {
            if let Some(rid) = &last_rid {
                listener.wait_type("platform.report", Some(rid), Duration::from_millis(300));
            }
            return Ok(c);
        }
    }
}
