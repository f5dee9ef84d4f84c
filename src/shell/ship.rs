//! Ships buffered payloads to the Datadog intake over HTTPS (`shell::net`:
//! rustls, TLS 1.3), one kept-alive connection per intake host.
//!
//! * Timeouts, retries and drops follow `crate::deliver` (I/O-free, shared
//!   with the tokio shell): a flush never outlives its deadline, 429/5xx and
//!   transport errors are retried ≤ 3 times, other 4xx drop the payload;
//!   whatever is not delivered is put back for the next flush.
//! * While the function runs (after INVOKE) a warm-up thread opens the TCP
//!   and TLS connections (handshake only, no request), so the flush after
//!   `runtimeDone` does not pay the handshake. The warm-up is joined before
//!   `next`: nothing is in flight at a freeze.
//! * No API key: nothing is sent; payloads are dropped and counted, with one
//!   clear error line (the function keeps running; see README).
//! * No request compression: gzip would link ~40 KB of deflate code for
//!   payloads that are small and travel inside the AWS region.

use super::net::Client;
use crate::datadog::Datadog;
use crate::deliver::{Delivery, Verdict};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone)]
pub struct ShipStats {
    pub sent_payloads: u64,
    pub sent_bytes: u64,
    pub retries: u64,
    pub dropped_payloads: u64,
}

pub struct Shipper {
    /// `None` while the warm-up thread holds it.
    client: Option<Client>,
    api_key: Option<String>,
    sketches_url: String,
    logs_url: String,
    origins: [String; 2],
    last_contact_ms: i64,
    warmer: Option<JoinHandle<Client>>,
    /// The key on its way from Secrets Manager (`DD_API_KEY_SECRET_ARN`).
    key_fetch: Option<JoinHandle<Result<String, String>>>,
    pub stats: ShipStats,
}

/// Connections idle longer than this are assumed closed by the intake.
const WARM_AFTER_IDLE_MS: i64 = 20_000;
const WARM_TIMEOUT: Duration = Duration::from_secs(2);

impl Shipper {
    pub fn new(api_key: Option<String>, metrics_url: &str, logs_url: &str) -> Shipper {
        Shipper {
            client: Some(Client::new()),
            api_key,
            sketches_url: format!("{metrics_url}/api/beta/sketches"),
            logs_url: format!("{logs_url}/api/v2/logs"),
            origins: [metrics_url.to_string(), logs_url.to_string()],
            last_contact_ms: 0,
            warmer: None,
            key_fetch: None,
            stats: ShipStats::default(),
        }
    }

    pub fn set_api_key(&mut self, api_key: Option<String>) {
        self.api_key = api_key;
    }

    /// The key comes from `fetch` (see `shell::secrets`): flushes wait for it
    /// within their deadline and keep the payloads while it is pending.
    pub fn await_api_key(&mut self, fetch: JoinHandle<Result<String, String>>) {
        self.key_fetch = Some(fetch);
    }

    /// Takes the fetched key once it has come (polling until `wait_until_ms`:
    /// cheaper in bytes than a channel). Returns true while it is pending.
    fn key_pending(&mut self, wait_until_ms: i64) -> bool {
        let Some(h) = &self.key_fetch else { return false };
        while !h.is_finished() {
            if super::now_ms() >= wait_until_ms {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let Some(h) = self.key_fetch.take() else { return false };
        match h.join().unwrap_or_else(|_| Err("the fetch thread failed".into())) {
            Ok(key) => {
                log::debug!("API key read from DD_API_KEY_SECRET_ARN");
                self.set_api_key(Some(key));
            }
            Err(e) => log::error!(
                "DD_API_KEY_SECRET_ARN: could not read the API key from Secrets Manager: {e}; metrics and logs will be dropped, not sent to Datadog (the function itself is not affected)"
            ),
        }
        false
    }

    /// Opens the intake connections in the background (called after INVOKE).
    pub fn warm_up(&mut self, now_ms: i64) {
        if self.key_pending(now_ms) {
            return;
        }
        if self.api_key.is_none() || self.warmer.is_some() || now_ms - self.last_contact_ms < WARM_AFTER_IDLE_MS {
            return;
        }
        let Some(mut client) = self.client.take() else { return };
        // Connections idle this long were likely closed by the intake (or broken by a freeze).
        client.close_idle();
        let origins = self.origins.clone();
        self.last_contact_ms = now_ms;
        self.warmer = Some(std::thread::spawn(move || {
            let deadline = Instant::now() + WARM_TIMEOUT;
            for origin in origins.iter() {
                if let Err(e) = client.preconnect(origin, deadline) {
                    log::debug!("warm-up of {origin}: {e}");
                }
            }
            client
        }));
    }

    /// Waits for the warm-up (bounded by its timeout): call before `next`.
    pub fn settle(&mut self) {
        if let Some(h) = self.warmer.take() {
            self.client = Some(h.join().unwrap_or_default());
        }
    }

    /// Ships everything buffered in `dd`, giving up at `deadline_ms`.
    /// Returns true when nothing is left.
    pub fn flush(&mut self, dd: &mut Datadog, deadline_ms: i64) -> bool {
        self.settle();
        if self.key_pending(deadline_ms - 5) {
            log::warn!("the API key from DD_API_KEY_SECRET_ARN has not come yet: keeping the payloads");
            return false;
        }
        if self.api_key.is_none() {
            let n = dd.drop_all();
            self.stats.dropped_payloads += n;
            if n > 0 {
                log::debug!("no API key: dropped {n} payloads");
            }
            return true;
        }
        let mut all = true;
        if let Some(m) = &mut dd.metrics {
            while let Some(body) = m.take_payload() {
                match self.send(&self.sketches_url.clone(), "application/x-protobuf", &body, deadline_ms) {
                    Verdict::Delivered => {}
                    Verdict::Refused => self.stats.dropped_payloads += 1,
                    _ => {
                        m.put_back(body);
                        all = false;
                        break;
                    }
                }
            }
        }
        if let Some(l) = &mut dd.logs {
            while let Some(batch) = l.take_batch() {
                match self.send(&self.logs_url.clone(), "application/json", batch.json(), deadline_ms) {
                    // Its memory serves the next batch (no fresh allocation per flush).
                    Verdict::Delivered => l.recycle(batch),
                    Verdict::Refused => self.stats.dropped_payloads += 1,
                    _ => {
                        l.put_back(batch);
                        all = false;
                        break;
                    }
                }
            }
        }
        all
    }

    /// Delivers one payload: `Delivered`, `Refused` or `Keep`.
    fn send(&mut self, url: &str, content_type: &str, body: &[u8], deadline_ms: i64) -> Verdict {
        let key = self.api_key.as_deref().unwrap_or("");
        let mut headers = vec![("DD-API-KEY", key), ("Content-Type", content_type)];
        if content_type == "application/json" {
            headers.push(("DD-PROTOCOL", "agent-json"));
        }
        let mut delivery = Delivery::new(deadline_ms);
        loop {
            let Some(timeout) = delivery.attempt(super::now_ms()) else { return Verdict::Keep };
            let deadline = Instant::now() + Duration::from_millis(timeout);
            let client = self.client.get_or_insert_with(Client::new);
            let (status, why) = match client.send("POST", url, &headers, body, Some(deadline)) {
                Ok(r) => {
                    self.last_contact_ms = super::now_ms();
                    (Some(r.status), format!("HTTP {}", r.status))
                }
                Err(e) => (None, e.to_string()),
            };
            let verdict = delivery.verdict(status, super::now_ms());
            match verdict {
                Verdict::Delivered => {
                    self.stats.sent_payloads += 1;
                    self.stats.sent_bytes += body.len() as u64;
                }
                Verdict::Refused => log::error!("intake refused {} bytes to {url}: {why}; dropped", body.len()),
                Verdict::Keep => {
                    self.stats.retries += 1;
                    log::warn!("intake {url}: {why}; keeping {} bytes for the next flush", body.len());
                }
                Verdict::RetryAfter(ms) => {
                    self.stats.retries += 1;
                    log::debug!("intake {url}: {why}; retrying in {ms} ms");
                    std::thread::sleep(Duration::from_millis(ms));
                    continue;
                }
            }
            return verdict;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_from_a_pending_fetch() {
        let mut s = Shipper::new(None, "http://127.0.0.1:9", "http://127.0.0.1:9");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        s.await_api_key(std::thread::spawn(move || {
            let _ = rx.recv();
            Ok("k1".to_string())
        }));
        assert!(s.key_pending(super::super::now_ms() + 20), "not finished yet");
        assert!(s.api_key.is_none());
        tx.send(()).unwrap();
        assert!(!s.key_pending(super::super::now_ms() + 5000));
        assert_eq!(s.api_key.as_deref(), Some("k1"));
        assert!(!s.key_pending(0), "resolved once");

        let mut s = Shipper::new(None, "http://127.0.0.1:9", "http://127.0.0.1:9");
        s.await_api_key(std::thread::spawn(|| Err("nope".to_string())));
        assert!(!s.key_pending(super::super::now_ms() + 5000));
        assert!(s.api_key.is_none() && s.key_fetch.is_none());
    }
}
