//! The Extensions and Telemetry API calls with reqwest, bodies with serde,
//! as typical Rust extensions write them. Answers map onto the core's types
//! (`crate::lambda::extapi`), with the std shell's semantics.

use crate::config::Config;
use crate::lambda::extapi::{self, ApiError, Event, Registration, SubscribeOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A cheap-to-clone handle (reqwest's client is reference-counted).
#[derive(Clone)]
pub struct RuntimeApi {
    client: reqwest::Client,
    base: String,
    id: String,
}

#[derive(Serialize)]
struct RegisterRequest {
    events: &'static [&'static str],
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegisterResponse {
    function_name: Option<String>,
    function_version: Option<String>,
    handler: Option<String>,
    account_id: Option<String>,
}

/// The `PUT telemetry` body.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    schema_version: &'static str,
    destination: Destination,
    types: &'static [&'static str],
    buffering: Buffering,
}

#[derive(Serialize, Clone)]
struct Destination {
    protocol: &'static str,
    #[serde(rename = "URI")]
    uri: String,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Buffering {
    max_items: u32,
    max_bytes: u32,
    timeout_ms: u32,
}

impl SubscribeRequest {
    pub fn new(cfg: &Config, port: u16) -> SubscribeRequest {
        SubscribeRequest {
            schema_version: extapi::schema(cfg.managed_instances),
            destination: Destination {
                protocol: "HTTP",
                uri: format!("http://sandbox.localdomain:{port}/"),
            },
            types: cfg.telemetry_types(),
            buffering: Buffering {
                max_items: cfg.buffer_max_items,
                max_bytes: cfg.buffer_max_bytes,
                timeout_ms: cfg.buffer_timeout_ms,
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorRequest<'a> {
    error_message: &'a str,
    error_type: &'a str,
    stack_trace: [&'a str; 0],
}

/// `event/next` answer → core event, with `extapi::parse_event`'s rules:
/// case-insensitive `eventType`; a field of the wrong type reads as absent;
/// no `eventType` (or not JSON) → `Unknown` with the start of the body.
fn to_event(body: &[u8]) -> Event {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return Event::Unknown(
                String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            )
        }
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let Some(ty) = s("eventType") else {
        return Event::Unknown(String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    };
    let deadline_ms = v
        .get("deadlineMs")
        .and_then(Value::as_f64)
        .map(|d| d as i64)
        .unwrap_or(0);
    if ty.eq_ignore_ascii_case("INVOKE") {
        Event::Invoke {
            request_id: s("requestId").unwrap_or_default(),
            deadline_ms,
            invoked_function_arn: s("invokedFunctionArn"),
        }
    } else if ty.eq_ignore_ascii_case("SHUTDOWN") {
        Event::Shutdown {
            reason: s("shutdownReason").unwrap_or_default(),
            deadline_ms,
        }
    } else {
        Event::Unknown(ty)
    }
}

/// The `register` answer's body → the core's `Registration` (any field may be missing).
pub fn registration(body: &[u8]) -> Registration {
    let r: RegisterResponse = serde_json::from_slice(body).unwrap_or_default();
    Registration {
        function_name: r.function_name,
        function_version: r.function_version,
        handler: r.handler,
        account_id: r.account_id,
    }
}

async fn body_text(resp: reqwest::Response) -> String {
    resp.text().await.unwrap_or_default()
}

impl RuntimeApi {
    pub fn new(runtime_api: &str) -> RuntimeApi {
        // No client timeout: `next` is held by the platform for as long as it likes.
        // No proxy: the Runtime API is local, whatever HTTP_PROXY the function sets.
        // No root certificates: plain HTTP (and no CA bundle read before `register`).
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .pool_max_idle_per_host(4)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        RuntimeApi {
            client,
            base: format!("http://{runtime_api}"),
            id: String::new(),
        }
    }

    /// The same registration on a new client (for use outside the main runtime).
    pub fn fresh(&self) -> RuntimeApi {
        let mut api = RuntimeApi::new(self.base.trim_start_matches("http://"));
        api.id = self.id.clone();
        api
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub async fn register(
        &mut self,
        name: &str,
        managed_instances: bool,
    ) -> Result<Registration, ApiError> {
        let events: &'static [&'static str] = if managed_instances {
            &["SHUTDOWN"]
        } else {
            &["INVOKE", "SHUTDOWN"]
        };
        let resp = self
            .client
            .post(format!("{}/2020-01-01/extension/register", self.base))
            .header("Lambda-Extension-Name", name)
            .header("Lambda-Extension-Accept-Feature", "accountId")
            .json(&RegisterRequest { events })
            .send()
            .await
            .map_err(|e| ApiError::Io(super::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let id = resp
            .headers()
            .get("lambda-extension-identifier")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.unwrap_or_default();
        if status != 200 {
            return Err(ApiError::Status(
                status,
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        if id.is_empty() {
            return Err(ApiError::Status(
                status,
                "no Lambda-Extension-Identifier in the answer".into(),
            ));
        }
        self.id = id;
        Ok(registration(&body))
    }

    /// Adopts an identifier obtained by the registration stage (`src/bin/slimcap-stage.rs`).
    pub fn set_id(&mut self, id: String) {
        self.id = id;
    }

    /// Long-polls `event/next`.
    pub async fn next(&self) -> Result<Event, ApiError> {
        let resp = self
            .client
            .get(format!("{}/2020-01-01/extension/event/next", self.base))
            .header("Lambda-Extension-Identifier", &self.id)
            .send()
            .await
            .map_err(|e| ApiError::Io(super::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Io(super::error_chain(&e)))?;
        if status != 200 {
            return Err(ApiError::Status(
                status,
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        Ok(to_event(&body))
    }

    pub async fn subscribe(&self, req: &SubscribeRequest) -> SubscribeOutcome {
        let res = self
            .client
            .put(format!("{}/2022-07-01/telemetry", self.base))
            .header("Lambda-Extension-Identifier", &self.id)
            .json(req)
            .send()
            .await;
        match res {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = body_text(resp).await;
                extapi::subscribe_outcome(status, &body)
            }
            Err(e) => SubscribeOutcome::Failed(super::error_chain(&e)),
        }
    }

    /// `init/error` or `exit/error` (`which`), best effort.
    pub async fn report_error(
        &self,
        which: &str,
        error_type: &str,
        message: &str,
    ) -> Result<(), ApiError> {
        let resp = self
            .client
            .post(format!("{}/2020-01-01/extension/{which}", self.base))
            .header("Lambda-Extension-Identifier", &self.id)
            .header("Lambda-Extension-Function-Error-Type", error_type)
            .json(&ErrorRequest {
                error_message: message,
                error_type,
                stack_trace: [],
            })
            .send()
            .await
            .map_err(|e| ApiError::Io(super::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = body_text(resp).await;
        if status / 100 != 2 {
            return Err(ApiError::Status(status, body));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_match_extapi() {
        for body in [
            &br#"{"eventType":"INVOKE","deadlineMs":1700000000123,"requestId":"3da1","invokedFunctionArn":"arn:aws:lambda:us-east-1:1:function:f","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1"}}"#[..],
            br#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1700000002123}"#,
            br#"{"eventType":"shutdown","shutdownReason":"Weird","deadlineMs":5}"#,
            br#"{"eventType":"RESTORE"}"#,
            br#"{"eventType":"INVOKE","requestId":7,"deadlineMs":"x"}"#,
            b"garbage",
            b"[1,2]",
            b"{}",
        ] {
            assert_eq!(to_event(body), extapi::parse_event(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn bodies_match_extapi() {
        let (cfg, _) = Config::from_lookup(|_| None);
        let ours = serde_json::to_value(SubscribeRequest::new(&cfg, 8124)).unwrap();
        let theirs: Value = serde_json::from_str(&extapi::subscribe_body(
            extapi::schema(false),
            8124,
            cfg.telemetry_types(),
            cfg.buffer_max_items,
            cfg.buffer_max_bytes,
            cfg.buffer_timeout_ms,
        ))
        .unwrap();
        assert_eq!(ours, theirs);
        let e = serde_json::to_value(ErrorRequest {
            error_message: "m \"q\"",
            error_type: "T",
            stack_trace: [],
        })
        .unwrap();
        let theirs: Value = serde_json::from_str(&extapi::error_body("T", "m \"q\"")).unwrap();
        assert_eq!(e, theirs);
        for managed in [false, true] {
            let events: &'static [&'static str] = if managed {
                &["SHUTDOWN"]
            } else {
                &["INVOKE", "SHUTDOWN"]
            };
            let ours = serde_json::to_value(RegisterRequest { events }).unwrap();
            let theirs: Value = serde_json::from_str(extapi::register_body(managed)).unwrap();
            assert_eq!(ours, theirs);
        }
    }
}
