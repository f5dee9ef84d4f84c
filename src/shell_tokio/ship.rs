//! Ships buffered payloads to the Datadog intake with reqwest (rustls),
//! with the std shell's rules: timeouts, retries and drops decided by
//! `crate::datadog::deliver` (I/O-free, shared), undelivered payloads put back; a
//! warm-up task opens the intake connections after INVOKE and is awaited
//! before `next`.

use crate::datadog::sink::Datadog;
use crate::datadog::deliver::{Delivery, ShipStats, Verdict};
use hyper::body::Bytes;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub struct Shipper {
    client: reqwest::Client,
    api_key: Option<String>,
    /// The key on its way from Secrets Manager (`DD_API_KEY_SECRET_ARN`).
    key_rx: Option<oneshot::Receiver<Result<String, String>>>,
    sketches_url: String,
    logs_url: String,
    validate_urls: [String; 2],
    last_contact_ms: i64,
    warmer: Option<JoinHandle<()>>,
    /// The SHUTDOWN cutoff (epoch ms; `i64::MAX` until then), set by the
    /// poller task the moment SHUTDOWN arrives: a flush under way (the
    /// Managed Instances timer flush) ends by it, keeping what it holds.
    cut: watch::Receiver<i64>,
    pub stats: ShipStats,
}

/// Resolves at the cutoff once one is set (never before).
async fn cutoff(mut rx: watch::Receiver<i64>) {
    loop {
        let c = *rx.borrow_and_update();
        if c != i64::MAX {
            return tokio::time::sleep(Duration::from_millis((c - super::now_ms()).max(0) as u64)).await;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

const WARM_AFTER_IDLE_MS: i64 = 20_000;
const WARM_TIMEOUT: Duration = Duration::from_secs(2);

impl Shipper {
    pub fn new(api_key: Option<String>, metrics_url: &str, logs_url: &str, cut: watch::Receiver<i64>) -> Shipper {
        let client = super::https_client_builder()
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Shipper {
            client,
            api_key,
            key_rx: None,
            sketches_url: format!("{metrics_url}/api/beta/sketches"),
            logs_url: format!("{logs_url}/api/v2/logs"),
            validate_urls: [
                format!("{metrics_url}/api/v1/validate"),
                format!("{logs_url}/api/v1/validate"),
            ],
            last_contact_ms: 0,
            warmer: None,
            cut,
            stats: ShipStats::default(),
        }
    }

    /// The key will arrive on `rx` (see `super::secrets`): flushes wait for
    /// it within their deadline and keep the payloads while it is pending.
    pub fn await_api_key(&mut self, rx: oneshot::Receiver<Result<String, String>>) {
        self.key_rx = Some(rx);
    }

    /// Takes the pending key if it has come (waiting until `wait_until_ms`).
    /// Returns true while it is still pending.
    async fn key_pending(&mut self, wait_until_ms: i64) -> bool {
        let Some(rx) = &mut self.key_rx else {
            return false;
        };
        let wait = Duration::from_millis((wait_until_ms - super::now_ms()).max(0) as u64);
        let got = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("the fetch task stopped".into()),
            Err(_) => return true,
        };
        self.key_rx = None;
        match got {
            Ok(key) if !crate::config::header_safe(&key) => {
                log::error!("DD_API_KEY_SECRET_ARN: {}", crate::config::UNSAFE_KEY)
            }
            Ok(key) => {
                log::debug!("API key read from DD_API_KEY_SECRET_ARN");
                self.api_key = Some(key);
            }
            Err(e) => log::error!(
                "DD_API_KEY_SECRET_ARN: could not read the API key from Secrets Manager: {e}; metrics and logs will be dropped, not sent to Datadog (the function itself is not affected)"
            ),
        }
        false
    }

    /// Opens the intake connections in the background (called after INVOKE).
    pub async fn warm_up(&mut self, now_ms: i64, cutoff_ms: Option<i64>) {
        if self.key_pending(now_ms).await {
            return;
        }
        let Some(key) = self.api_key.clone() else {
            return;
        };
        if self.warmer.is_some() || now_ms - self.last_contact_ms < WARM_AFTER_IDLE_MS {
            return;
        }
        let client = self.client.clone();
        let urls = self.validate_urls.clone();
        self.last_contact_ms = now_ms;
        // (over by the invocation's cutoff: `settle` awaits it before `next`)
        let limit = cutoff_ms.map_or(WARM_TIMEOUT, |c| WARM_TIMEOUT.min(Duration::from_millis((c - now_ms).max(0) as u64)));
        self.warmer = Some(tokio::spawn(async move {
            let _ = tokio::time::timeout(limit, async move {
            for url in urls.iter() {
                if let Ok(r) = client
                    .get(url)
                    .header("DD-API-KEY", &key)
                    .timeout(WARM_TIMEOUT)
                    .send()
                    .await
                {
                    let _ = r.bytes().await;
                }
            }
            })
            .await;
        }));
    }

    /// Waits for the warm-up (bounded by its timeouts): call before `next`.
    pub async fn settle(&mut self) {
        if let Some(h) = self.warmer.take() {
            let _ = h.await;
        }
    }

    /// At exit: counts what was never sent as dropped, and says so once.
    pub fn abandon(&mut self, dd: &mut Datadog) {
        let n = dd.drop_all();
        if n > 0 {
            self.stats.dropped_payloads += n;
            log::warn!("exiting with {n} payloads not delivered (intake unreachable or too slow before the deadline); dropped");
        }
    }

    /// Ships everything buffered in `dd`, giving up at `deadline_ms`.
    /// Returns true when nothing is left.
    pub async fn flush(&mut self, dd: &mut Datadog, deadline_ms: i64) -> bool {
        self.settle().await;
        if self.key_pending(deadline_ms - 5).await {
            log::warn!(
                "the API key from DD_API_KEY_SECRET_ARN has not come yet: keeping the payloads"
            );
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
                let url = self.sketches_url.clone();
                match self
                    .send(&url, "application/x-protobuf", &body, deadline_ms)
                    .await
                {
                    Verdict::Delivered | Verdict::Refused => {}
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
                let url = self.logs_url.clone();
                match self
                    .send(&url, "application/json", &batch.to_json(), deadline_ms)
                    .await
                {
                    Verdict::Delivered | Verdict::Refused => {}
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
    async fn send(&mut self, url: &str, content_type: &str, body: &[u8], deadline_ms: i64) -> Verdict {
        let key = self.api_key.clone().unwrap_or_default();
        let len = body.len();
        let body = Bytes::copy_from_slice(body);
        let mut delivery = Delivery::new(deadline_ms.min(*self.cut.borrow()));
        loop {
            let Some(timeout) = delivery.attempt(super::now_ms()) else {
                return Verdict::Keep;
            };
            let mut req = self
                .client
                .post(url)
                .header("DD-API-KEY", &key)
                .header("Content-Type", content_type)
                .timeout(Duration::from_millis(timeout))
                .body(body.clone());
            if content_type == "application/json" {
                req = req.header("DD-PROTOCOL", "agent-json");
            }
            let answer = async {
                let r = req.send().await?;
                let status = r.status().as_u16();
                r.bytes().await.map(|_| status)
            };
            let (status, why) = tokio::select! {
                a = answer => match a {
                    Ok(status) => {
                        self.last_contact_ms = super::now_ms();
                        (Some(status), format!("HTTP {status}"))
                    }
                    Err(e) => (None, super::error_chain(&e)),
                },
                _ = cutoff(self.cut.clone()) => (None, "cut off at SHUTDOWN".to_string()),
            };
            let verdict = delivery.verdict(status, super::now_ms());
            self.stats.note(verdict, url, len, &why);
            match verdict {
                Verdict::RetryAfter(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                v => return v,
            }
        }
    }
}
