//! The Extensions and Telemetry API calls over plain HTTP to
//! `AWS_LAMBDA_RUNTIME_API` (a loopback `host:port`): one kept-alive
//! connection per handle, no resolver thread, no TLS. Request bodies and
//! answer parsing live in `crate::lambda::extapi`; this file only moves bytes.

use super::net::Client;
use crate::lambda::extapi::{self, ApiError, Event, Registration, SubscribeOutcome};
use crate::wire::httpc::Response;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RuntimeApi {
    client: Mutex<Client>,
    base: String,
    id: String,
}

/// Bound for the calls that answer at once (register, subscribe, errors).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl RuntimeApi {
    pub fn new(runtime_api: &str) -> RuntimeApi {
        RuntimeApi { client: Mutex::new(Client::new()), base: format!("http://{runtime_api}"), id: String::new() }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Adopts an identifier obtained by the registration stage.
    pub fn set_id(&mut self, id: String) {
        self.id = id;
    }

    /// A second handle on the same registration (its own connection), for
    /// the poller and the concurrent-subscribe thread.
    pub fn clone_handle(&self) -> RuntimeApi {
        RuntimeApi { client: Mutex::new(Client::new()), base: self.base.clone(), id: self.id.clone() }
    }

    /// One request; `sent` runs once it is written, before the answer is read.
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Option<Duration>,
        sent: &mut dyn FnMut(),
    ) -> Result<Response, ApiError> {
        let url = format!("{}{path}", self.base);
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        client.send_then(method, &url, headers, body, deadline, sent).map_err(|e| ApiError::Io(e.to_string()))
    }

    pub fn register(&mut self, name: &str, managed_instances: bool) -> Result<Registration, ApiError> {
        let resp = self.call(
            "POST",
            "/2020-01-01/extension/register",
            &[
                ("Lambda-Extension-Name", name),
                ("Lambda-Extension-Accept-Feature", "accountId"),
                ("Content-Type", "application/json"),
            ],
            extapi::register_body(managed_instances).as_bytes(),
            Some(CALL_TIMEOUT),
            &mut || {},
        )?;
        if resp.status != 200 {
            return Err(ApiError::Status(resp.status, resp.text()));
        }
        let id = resp.header("lambda-extension-identifier").unwrap_or("").to_string();
        if id.is_empty() {
            return Err(ApiError::Status(resp.status, "no Lambda-Extension-Identifier in the answer".into()));
        }
        self.id = id;
        Ok(extapi::parse_registration(&resp.body))
    }

    /// Long-polls `event/next` (no client timeout: the platform holds it);
    /// `sent` runs once the request is out, while the platform holds it.
    pub fn next(&self, sent: &mut dyn FnMut()) -> Result<Event, ApiError> {
        let resp = self.call(
            "GET",
            "/2020-01-01/extension/event/next",
            &[("Lambda-Extension-Identifier", &self.id)],
            b"",
            None,
            sent,
        )?;
        if resp.status != 200 {
            return Err(ApiError::Status(resp.status, resp.text()));
        }
        Ok(extapi::parse_event(&resp.body))
    }

    pub fn subscribe(&self, body: &str) -> SubscribeOutcome {
        let res = self.call(
            "PUT",
            "/2022-07-01/telemetry",
            &[("Lambda-Extension-Identifier", &self.id), ("Content-Type", "application/json")],
            body.as_bytes(),
            Some(CALL_TIMEOUT),
            &mut || {},
        );
        match res {
            Ok(resp) => extapi::subscribe_outcome(resp.status, &resp.text()),
            Err(e) => SubscribeOutcome::Failed(e.to_string()),
        }
    }

    /// `init/error` or `exit/error` (`which`), best effort.
    pub fn report_error(&self, which: &str, error_type: &str, message: &str) -> Result<(), ApiError> {
        let resp = self.call(
            "POST",
            &format!("/2020-01-01/extension/{which}"),
            &[
                ("Lambda-Extension-Identifier", &self.id),
                ("Lambda-Extension-Function-Error-Type", error_type),
                ("Content-Type", "application/json"),
            ],
            extapi::error_body(error_type, message).as_bytes(),
            Some(CALL_TIMEOUT),
            &mut || {},
        )?;
        if resp.status / 100 != 2 {
            return Err(ApiError::Status(resp.status, resp.text()));
        }
        Ok(())
    }
}
