//! Extensions API (2020-01-01) and Telemetry API (2022-07-01) messages:
//! request bodies we send and answers we parse. No I/O here.

use crate::wire::json;

/// The answer to `register`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    pub function_name: Option<String>,
    pub function_version: Option<String>,
    pub handler: Option<String>,
    pub account_id: Option<String>,
}

/// An event returned by `event/next`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Invoke {
        request_id: String,
        deadline_ms: i64,
        invoked_function_arn: Option<String>,
    },
    Shutdown {
        reason: String,
        deadline_ms: i64,
    },
    /// An event type this build does not know (or an unparseable body).
    Unknown(String),
}

/// What went wrong talking to the Runtime API (both shells).
#[derive(Debug)]
pub enum ApiError {
    /// The platform answered, with this status and body.
    Status(u16, String),
    /// Transport failure (connection refused, reset, ...).
    Io(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status(s, b) => write!(f, "HTTP {s}: {}", b.trim()),
            ApiError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// How a `PUT telemetry` went.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscribeOutcome {
    Subscribed,
    /// 403 `Telemetry.SubscriptionClosed`: the window closed; no telemetry
    /// will come for the life of the sandbox.
    Closed,
    /// 202: an old emulator without a Telemetry API.
    NotSupported,
    /// Any other answer or a transport error.
    Failed(String),
}

impl SubscribeOutcome {
    /// Logs the outcome (once per subscribe); true when telemetry will come.
    pub fn log_and_active(&self) -> bool {
        match self {
            SubscribeOutcome::Subscribed => {
                log::debug!("subscribed to the Telemetry API");
                true
            }
            SubscribeOutcome::Closed => {
                log::error!("telemetry subscribe refused: the subscription window had closed (403 Telemetry.SubscriptionClosed); no telemetry for this sandbox");
                false
            }
            SubscribeOutcome::NotSupported => {
                log::warn!("the platform has no Telemetry API (202): running without telemetry");
                false
            }
            SubscribeOutcome::Failed(e) => {
                log::error!("telemetry subscribe failed: {e}; running without telemetry");
                false
            }
        }
    }
}

pub fn register_body(managed_instances: bool) -> &'static str {
    if managed_instances {
        // INVOKE is refused (403 Extension.InvalidEventType) on managed instances.
        r#"{"events":["SHUTDOWN"]}"#
    } else {
        r#"{"events":["INVOKE","SHUTDOWN"]}"#
    }
}

pub fn parse_registration(body: &[u8]) -> Registration {
    let mut r = Registration::default();
    json::for_each_field(body, |k, v| match k {
        "functionName" => r.function_name = v.as_string(),
        "functionVersion" => r.function_version = v.as_string(),
        "handler" => r.handler = v.as_string(),
        "accountId" => r.account_id = v.as_string(),
        _ => {}
    });
    r
}

pub fn parse_event(body: &[u8]) -> Event {
    let (mut ty, mut rid, mut deadline, mut arn, mut reason) = (None, None, 0i64, None, None);
    let ok = json::for_each_field(body, |k, v| match k {
        "eventType" => ty = v.as_string(),
        "requestId" => rid = v.as_string(),
        "deadlineMs" => deadline = v.as_f64().map(|d| d as i64).unwrap_or(0),
        "invokedFunctionArn" => arn = v.as_string(),
        "shutdownReason" => reason = v.as_string(),
        _ => {}
    });
    let ty = match (ok, ty) {
        (true, Some(t)) => t,
        _ => return Event::Unknown(String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()),
    };
    if ty.eq_ignore_ascii_case("INVOKE") {
        Event::Invoke { request_id: rid.unwrap_or_default(), deadline_ms: deadline, invoked_function_arn: arn }
    } else if ty.eq_ignore_ascii_case("SHUTDOWN") {
        Event::Shutdown { reason: reason.unwrap_or_default(), deadline_ms: deadline }
    } else {
        Event::Unknown(ty)
    }
}

/// The `PUT telemetry` body: always all three buffering fields.
pub fn subscribe_body(
    schema: &str,
    port: u16,
    types: &[&str],
    max_items: u32,
    max_bytes: u32,
    timeout_ms: u32,
) -> String {
    let mut t = String::new();
    for (i, ty) in types.iter().enumerate() {
        if i > 0 {
            t.push(',');
        }
        t.push('"');
        t.push_str(ty);
        t.push('"');
    }
    format!(
        r#"{{"schemaVersion":"{schema}","destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:{port}/"}},"types":[{t}],"buffering":{{"maxItems":{max_items},"maxBytes":{max_bytes},"timeoutMs":{timeout_ms}}}}}"#
    )
}

/// Schema to subscribe with: managed instances accept only 2025-01-29.
pub fn schema(managed_instances: bool) -> &'static str {
    if managed_instances {
        "2025-01-29"
    } else {
        "2022-12-13"
    }
}

pub fn subscribe_outcome(status: u16, body: &str) -> SubscribeOutcome {
    match status {
        200 => SubscribeOutcome::Subscribed,
        202 => SubscribeOutcome::NotSupported,
        403 if body.contains("SubscriptionClosed") => SubscribeOutcome::Closed,
        _ => SubscribeOutcome::Failed(format!("HTTP {status}: {}", body.trim())),
    }
}

/// Body of `init/error` / `exit/error`.
pub fn error_body(error_type: &str, message: &str) -> String {
    let mut s = String::from(r#"{"errorMessage":"#);
    json::write_str(&mut s, message);
    s.push_str(r#","errorType":"#);
    json::write_str(&mut s, error_type);
    s.push_str(r#","stackTrace":[]}"#);
    s
}

/// The `init/error` / `exit/error` request a crash (signal) handler sends:
/// built ahead, since a handler may not allocate, then patched in place.
/// `Connection: close`; the message names the signal.
pub struct CrashRequest {
    pub bytes: Vec<u8>,
    /// Where `init` (or `exit`) sits in the path, and the signal name in the body.
    path_at: usize,
    sig_at: usize,
}

/// Longest signal name [`CrashRequest::patch`] takes ("SIGSEGV").
const SIG_SLOT: usize = 7;

impl CrashRequest {
    pub fn new(host: &str, id: &str) -> CrashRequest {
        let ty = "Extension.Crash";
        // error_body(ty, "slimcap crashed: SIGNAME"), spelled out (checked by a test).
        const BODY: &str = r#"{"errorMessage":"slimcap crashed: SIGNAME","errorType":"Extension.Crash","stackTrace":[]}"#;
        let mut bytes = crate::wire::httpc::request_head(
            "POST",
            host,
            "/2020-01-01/extension/init/error",
            &[
                ("Lambda-Extension-Identifier", id),
                ("Lambda-Extension-Function-Error-Type", ty),
                ("Content-Type", "application/json"),
                ("Connection", "close"),
            ],
            BODY.len(),
        );
        let path_at = "POST /2020-01-01/extension/".len();
        let sig_at = bytes.len() + r#"{"errorMessage":"slimcap crashed: "#.len();
        bytes.extend_from_slice(BODY.as_bytes());
        CrashRequest { bytes, path_at, sig_at }
    }

    /// Sets `exit/error` (after init) or `init/error`, and the signal's name
    /// (≤ 7 bytes; a shorter one is padded with JSON whitespace after the
    /// string, so the length stays). No allocation, no panic: signal-safe.
    pub fn patch(&mut self, exit: bool, signal: &str) {
        let verb: &[u8; 4] = if exit { b"exit" } else { b"init" };
        if let Some(p) = self.bytes.get_mut(self.path_at..self.path_at + 4) {
            p.copy_from_slice(verb);
        }
        let name = signal.as_bytes();
        if let Some(slot) = self.bytes.get_mut(self.sig_at..self.sig_at + SIG_SLOT + 1) {
            for (i, b) in slot.iter_mut().enumerate() {
                *b = match i.cmp(&name.len().min(SIG_SLOT)) {
                    std::cmp::Ordering::Less => name[i],
                    std::cmp::Ordering::Equal => b'"',
                    std::cmp::Ordering::Greater => b' ',
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        let e = parse_event(br#"{"eventType":"INVOKE","deadlineMs":1700000000123,"requestId":"3da1","invokedFunctionArn":"arn:aws:lambda:us-east-1:1:function:f","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1"}}"#);
        assert_eq!(
            e,
            Event::Invoke {
                request_id: "3da1".into(),
                deadline_ms: 1700000000123,
                invoked_function_arn: Some("arn:aws:lambda:us-east-1:1:function:f".into())
            }
        );
        let e = parse_event(br#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1700000002123}"#);
        assert_eq!(e, Event::Shutdown { reason: "spindown".into(), deadline_ms: 1700000002123 });
        let e = parse_event(br#"{"eventType":"shutdown","shutdownReason":"Weird","deadlineMs":5}"#);
        assert!(matches!(e, Event::Shutdown { .. }));
        assert_eq!(parse_event(br#"{"eventType":"RESTORE"}"#), Event::Unknown("RESTORE".into()));
        assert!(matches!(parse_event(b"garbage"), Event::Unknown(_)));
        assert!(matches!(parse_event(b"[1,2]"), Event::Unknown(_)));
    }

    #[test]
    fn registration() {
        let r = parse_registration(br#"{"functionName":"f","functionVersion":"$LATEST","handler":"h","accountId":"123"}"#);
        assert_eq!(r.function_name.as_deref(), Some("f"));
        assert_eq!(r.account_id.as_deref(), Some("123"));
        assert_eq!(parse_registration(b"{}"), Registration::default());
    }

    #[test]
    fn subscribe() {
        let b = subscribe_body("2022-12-13", 8124, &["platform", "function"], 1000, 262144, 25);
        assert_eq!(
            b,
            r#"{"schemaVersion":"2022-12-13","destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8124/"},"types":["platform","function"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25}}"#
        );
        assert_eq!(subscribe_outcome(200, "OK"), SubscribeOutcome::Subscribed);
        assert_eq!(subscribe_outcome(202, ""), SubscribeOutcome::NotSupported);
        assert_eq!(
            subscribe_outcome(403, r#"{"errorType":"Telemetry.SubscriptionClosed"}"#),
            SubscribeOutcome::Closed
        );
        assert!(matches!(subscribe_outcome(400, "bad"), SubscribeOutcome::Failed(_)));
    }

    #[test]
    fn error_bodies_escape() {
        assert_eq!(
            error_body("Extension.ConfigInvalid", "bad \"url\"\n"),
            r#"{"errorMessage":"bad \"url\"\n","errorType":"Extension.ConfigInvalid","stackTrace":[]}"#
        );
    }

    #[test]
    fn crash_request() {
        let mut r = CrashRequest::new("127.0.0.1:9001", "id-1");
        let text = |r: &CrashRequest| String::from_utf8(r.bytes.clone()).unwrap();
        let t = text(&r);
        assert!(t.starts_with("POST /2020-01-01/extension/init/error HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"), "{t}");
        assert!(t.contains("\r\nLambda-Extension-Identifier: id-1\r\n"));
        assert!(t.contains("\r\nLambda-Extension-Function-Error-Type: Extension.Crash\r\n"));
        assert!(t.contains("\r\nConnection: close\r\n"));
        let len = r.bytes.len();
        for (exit, sig) in [(true, "SIGILL"), (false, "SIGSEGV"), (true, "SIGTRAP"), (true, "SIGLONGNAME")] {
            r.patch(exit, sig);
            assert_eq!(r.bytes.len(), len);
            let t = text(&r);
            let (head, body) = t.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(if exit { "POST /2020-01-01/extension/exit/error " } else { "POST /2020-01-01/extension/init/error " }));
            assert!(head.ends_with(&format!("\r\nContent-Length: {}", body.len())), "{head}");
            let msg = format!("slimcap crashed: {}", &sig[..sig.len().min(7)]);
            assert_eq!(body.replacen("\" ,", "\",", 1), error_body("Extension.Crash", &msg), "{body}");
            assert!(crate::wire::json::for_each_field(body.as_bytes(), |_, _| {}), "{body}");
        }
    }
}
