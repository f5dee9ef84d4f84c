//! The Extensions and Telemetry API calls over plain HTTP to
//! `AWS_LAMBDA_RUNTIME_API`, with ureq. Request bodies and answer parsing
//! live in `crate::extapi`; this file only moves bytes.

use crate::extapi::{self, Event, Registration, SubscribeOutcome};
use std::io::Read;

pub struct RuntimeApi {
    agent: ureq::Agent,
    base: String,
    id: String,
}

/// What went wrong talking to the Runtime API.
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

fn read_body(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    let mut s = String::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(1 << 20)
        .read_to_string(&mut s);
    s
}

impl RuntimeApi {
    pub fn new(runtime_api: &str) -> RuntimeApi {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections_per_host(4)
            .build()
            .into();
        RuntimeApi { agent, base: format!("http://{runtime_api}"), id: String::new() }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A second handle on the same registration (own connection pool entry),
    /// for the concurrent-subscribe thread.
    pub fn clone_handle(&self) -> RuntimeApi {
        RuntimeApi { agent: self.agent.clone(), base: self.base.clone(), id: self.id.clone() }
    }

    pub fn register(&mut self, name: &str, managed_instances: bool) -> Result<Registration, ApiError> {
        let url = format!("{}/2020-01-01/extension/register", self.base);
        let mut resp = self
            .agent
            .post(&url)
            .header("Lambda-Extension-Name", name)
            .header("Lambda-Extension-Accept-Feature", "accountId")
            .header("Content-Type", "application/json")
            .send(extapi::register_body(managed_instances))
            .map_err(|e| ApiError::Io(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = read_body(&mut resp);
        if status != 200 {
            return Err(ApiError::Status(status, body));
        }
        let id = resp
            .headers()
            .get("lambda-extension-identifier")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if id.is_empty() {
            return Err(ApiError::Status(status, "no Lambda-Extension-Identifier in the answer".into()));
        }
        self.id = id;
        Ok(extapi::parse_registration(body.as_bytes()))
    }

    /// Long-polls `event/next` (no client timeout: the platform holds it).
    pub fn next(&self) -> Result<Event, ApiError> {
        let url = format!("{}/2020-01-01/extension/event/next", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .header("Lambda-Extension-Identifier", &self.id)
            .call()
            .map_err(|e| ApiError::Io(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = read_body(&mut resp);
        if status != 200 {
            return Err(ApiError::Status(status, body));
        }
        Ok(extapi::parse_event(body.as_bytes()))
    }

    pub fn subscribe(&self, body: &str) -> SubscribeOutcome {
        let url = format!("{}/2022-07-01/telemetry", self.base);
        let res = self
            .agent
            .put(&url)
            .header("Lambda-Extension-Identifier", &self.id)
            .header("Content-Type", "application/json")
            .send(body);
        match res {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let body = read_body(&mut resp);
                extapi::subscribe_outcome(status, &body)
            }
            Err(e) => SubscribeOutcome::Failed(e.to_string()),
        }
    }

    /// `init/error` or `exit/error` (`which`), best effort.
    pub fn report_error(&self, which: &str, error_type: &str, message: &str) -> Result<(), ApiError> {
        let url = format!("{}/2020-01-01/extension/{which}", self.base);
        let mut resp = self
            .agent
            .post(&url)
            .header("Lambda-Extension-Identifier", &self.id)
            .header("Lambda-Extension-Function-Error-Type", error_type)
            .header("Content-Type", "application/json")
            .send(extapi::error_body(error_type, message))
            .map_err(|e| ApiError::Io(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = read_body(&mut resp);
        if status / 100 != 2 {
            return Err(ApiError::Status(status, body));
        }
        Ok(())
    }
}
