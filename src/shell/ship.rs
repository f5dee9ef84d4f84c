//! Ships buffered payloads to the Datadog intake over HTTPS (`shell::net`:
//! rustls, TLS 1.3), one kept-alive connection per intake host.
//!
//! * Timeouts, retries and drops follow `crate::datadog::deliver` (I/O-free, shared
//!   with the tokio shell): a flush never outlives its deadline, 429/5xx and
//!   transport errors are retried ≤ 3 times, other 4xx drop the payload;
//!   whatever is not delivered is put back for the next flush.
//! * Metrics and logs go to two hosts, each with its own client: a flush
//!   hands the logs to a worker thread while it sends the metrics, so it
//!   costs one intake round trip, not two back to back.
//! * While the function runs (after INVOKE) a warm-up thread per host opens
//!   the TCP and TLS connections (handshake only, no request), so the flush
//!   after `runtimeDone` does not pay the handshake. The warm-up threads are
//!   joined, and the logs worker is waited for, before `next`: nothing is in
//!   flight at a freeze.
//! * No API key: nothing is sent; payloads are dropped and counted, with one
//!   clear error line (the function keeps running; see README).
//! * No request compression: gzip would link ~40 KB of deflate code for
//!   payloads that are small and travel inside the AWS region.

use super::net::Client;
use crate::datadog::sink::Datadog;
use crate::datadog::deliver::{Delivery, ShipStats, Verdict};
use crate::datadog::logs::{Batch, Logs};
use super::Msg;
use std::sync::mpsc::SyncSender;
use crate::datadog::metrics::Metrics;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A job for the worker thread, and what a logs job hands back.
type Job = Box<dyn FnOnce() + Send>;
type Done = (Lane, Logs, bool);

#[derive(Default)]
struct Handoff {
    job: Option<Job>,
    done: Option<Done>,
}
type Slot = Arc<(Mutex<Handoff>, Condvar)>;

/// Waits until `take` gets something out of the slot.
fn wait_for<T>(slot: &Slot, take: impl Fn(&mut Handoff) -> Option<T>) -> T {
    let mut h = slot.0.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(t) = take(&mut h) {
            return t;
        }
        h = slot.1.wait(h).unwrap_or_else(PoisonError::into_inner);
    }
}

fn put(slot: &Slot, set: impl FnOnce(&mut Handoff)) {
    set(&mut slot.0.lock().unwrap_or_else(PoisonError::into_inner));
    slot.1.notify_one();
}

/// The thread that ships the logs while the flush sends the metrics, and
/// the Managed Instances timer flush (so that the thread that reacts to
/// SHUTDOWN is never the one blocked in a socket): started at the first job,
/// then parked between jobs (a thread per flush cost ~0.2 ms on loopback;
/// an mpsc channel ~13 KB of code). It owns nothing between jobs: the lanes
/// and the payloads travel to it and back.
fn start_worker() -> Slot {
    let slot = Slot::default();
    let s = slot.clone();
    std::thread::spawn(move || {
        super::crash::altstack(); // long-lived: a stack overflow here is reported too
        loop {
            wait_for(&s, |h| h.job.take())();
        }
    });
    slot
}

/// A background flush: the lanes and every payload taken from the sink go
/// to the worker; it comes back (through [`Msg::Flushed`]) with what was
/// not delivered, which [`Shipper::landed`] puts back.
pub struct Parcel {
    lanes: [Lane; 2],
    metrics: Vec<Vec<u8>>,
    logs: Vec<Batch>,
}

/// Sends `items` in order until one is not delivered; removes what was
/// delivered or refused. True when nothing is left.
fn ship_list<T>(lane: &mut Lane, items: &mut Vec<T>, body: impl Fn(&T) -> &[u8], key: &str, deadline_ms: i64) -> bool {
    let mut n = 0;
    while let Some(item) = items.get(n) {
        if let Verdict::Keep | Verdict::RetryAfter(_) = lane.send(key, body(item), deadline_ms) {
            break;
        }
        n += 1;
    }
    items.drain(..n);
    items.is_empty()
}

/// One intake host (metrics or logs): its endpoint, its own kept-alive
/// client and warm-up, so a flush can ship to both hosts at once.
#[derive(Default)]
struct Lane {
    url: String,
    origin: String,
    content_type: &'static str,
    /// `None` while the warm-up thread holds it.
    client: Option<Client>,
    warmer: Option<JoinHandle<Client>>,
    last_contact_ms: i64,
    /// Folded into `Shipper::stats` after each flush.
    stats: ShipStats,
}

pub struct Shipper {
    /// Metrics, then logs.
    lanes: [Lane; 2],
    worker: Option<Slot>,
    /// Payloads out with a background flush (counted as lost if we exit first).
    in_flight: usize,
    api_key: Option<String>,
    /// The key on its way from Secrets Manager (`DD_API_KEY_SECRET_ARN`).
    key_fetch: Option<JoinHandle<Result<String, String>>>,
    pub stats: ShipStats,
}

/// Connections idle longer than this are assumed closed by the intake.
const WARM_AFTER_IDLE_MS: i64 = 20_000;
const WARM_TIMEOUT_MS: i64 = 2_000;

impl Shipper {
    pub fn new(api_key: Option<String>, metrics_url: &str, logs_url: &str) -> Shipper {
        Shipper {
            lanes: [
                Lane::new(metrics_url, "/api/beta/sketches", "application/x-protobuf"),
                Lane::new(logs_url, "/api/v2/logs", "application/json"),
            ],
            api_key,
            key_fetch: None,
            worker: None,
            in_flight: 0,
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
            Ok(key) if !crate::config::header_safe(&key) => log::error!(
                "DD_API_KEY_SECRET_ARN: {}", crate::config::UNSAFE_KEY
            ),
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

    /// Opens the intake connections in the background (called after INVOKE),
    /// one thread per host, giving up by `cutoff_ms` (the invocation's).
    pub fn warm_up(&mut self, now_ms: i64, cutoff_ms: Option<i64>) {
        if self.key_pending(now_ms) || self.api_key.is_none() {
            return;
        }
        let limit = cutoff_ms.map_or(WARM_TIMEOUT_MS, |c| (c - now_ms).clamp(0, WARM_TIMEOUT_MS));
        for lane in &mut self.lanes {
            lane.warm_up(now_ms, Duration::from_millis(limit as u64));
        }
    }

    /// The Managed Instances timer flush, on the worker thread: takes every
    /// payload out of `dd` and ships it by `deadline_ms` (or the cutoff set
    /// at SHUTDOWN); `tx` gets [`Msg::Flushed`] at the end, to be handed to
    /// [`Shipper::landed`]. Returns false, having started nothing, when there
    /// is no key or it has not come yet (then a plain flush applies).
    pub fn flush_in_background(&mut self, dd: &mut Datadog, deadline_ms: i64, tx: SyncSender<Msg>) -> bool {
        let Some(key) = self.api_key.clone().filter(|_| !self.key_pending(0)) else { return false };
        let mut p = Parcel { lanes: std::mem::take(&mut self.lanes), metrics: vec![], logs: vec![] };
        if let Some(m) = &mut dd.metrics {
            p.metrics.extend(std::iter::from_fn(|| m.take_payload()));
        }
        if let Some(l) = &mut dd.logs {
            p.logs.extend(std::iter::from_fn(|| l.take_batch()));
        }
        self.in_flight = p.metrics.len() + p.logs.len();
        let w = self.worker.get_or_insert_with(start_worker);
        put(w, |h| {
            h.job = Some(Box::new(move || {
                let [ml, ll] = &mut p.lanes;
                if ship_list(ml, &mut p.metrics, |b| b, &key, deadline_ms) {
                    ship_list(ll, &mut p.logs, Batch::json, &key, deadline_ms);
                }
                let _ = tx.send(Msg::Flushed(Box::new(p)));
            }))
        });
        true
    }

    /// A background flush is back: its lanes return, what it did not deliver
    /// goes back to `dd` (oldest first). Returns true when all was delivered.
    pub fn landed(&mut self, p: Box<Parcel>, dd: &mut Datadog) -> bool {
        let Parcel { lanes, metrics, logs } = *p;
        self.lanes = lanes;
        self.in_flight = 0;
        let all = metrics.is_empty() && logs.is_empty();
        if let Some(m) = &mut dd.metrics {
            metrics.into_iter().rev().for_each(|b| m.put_back(b));
        }
        if let Some(l) = &mut dd.logs {
            logs.into_iter().rev().for_each(|b| l.put_back(b));
        }
        for lane in &mut self.lanes {
            self.stats.add(&std::mem::take(&mut lane.stats));
        }
        all
    }

    /// At exit: counts what was never sent (kept payloads, a background
    /// flush still out) as dropped, and says so once.
    pub fn abandon(&mut self, dd: &mut Datadog) {
        let n = dd.drop_all() + self.in_flight as u64;
        if n > 0 {
            self.stats.dropped_payloads += n;
            log::warn!("exiting with {n} payloads not delivered (intake unreachable or too slow before the deadline); dropped");
        }
    }

    /// Waits for the warm-up (bounded by its timeout): call before `next`.
    pub fn settle(&mut self) {
        for lane in &mut self.lanes {
            lane.settle();
        }
    }

    /// Ships everything buffered in `dd`, giving up at `deadline_ms`: the
    /// logs on the worker thread while this one sends the metrics (when both
    /// have something), and waits for it before returning.
    /// Returns true when nothing is left.
    pub fn flush(&mut self, dd: &mut Datadog, deadline_ms: i64) -> bool {
        self.settle();
        if self.key_pending(deadline_ms - 5) {
            log::warn!("the API key from DD_API_KEY_SECRET_ARN has not come yet: keeping the payloads");
            return false;
        }
        let Some(key) = &self.api_key else {
            let n = dd.drop_all();
            self.stats.dropped_payloads += n;
            if n > 0 {
                log::debug!("no API key: dropped {n} payloads");
            }
            return true;
        };
        let [ml, ll] = &mut self.lanes;
        let both = dd.metrics.as_ref().is_some_and(Metrics::pending) && dd.logs.as_ref().is_some_and(|l| !l.is_empty());
        // When both have something, the logs go to the worker first: both intakes at once.
        let mut handed = None;
        if let Some(logs) = dd.logs.take_if(|_| both) {
            let w = self.worker.get_or_insert_with(start_worker);
            let (s, mut lane, mut logs, key) = (w.clone(), std::mem::take(ll), logs, key.clone());
            put(w, |h| {
                h.job = Some(Box::new(move || {
                    let all = lane.ship_logs(&mut logs, &key, deadline_ms);
                    put(&s, |h| h.done = Some((lane, logs, all)));
                }))
            });
            handed = Some(w);
        }
        let mut all = dd.metrics.as_mut().is_none_or(|m| ml.ship_metrics(m, key, deadline_ms));
        match handed {
            Some(w) => {
                let (lane, logs, done) = wait_for(w, |h| h.done.take());
                (*ll, dd.logs, all) = (lane, Some(logs), all & done);
            }
            None => all &= dd.logs.as_mut().is_none_or(|l| ll.ship_logs(l, key, deadline_ms)),
        }
        for lane in &mut self.lanes {
            self.stats.add(&std::mem::take(&mut lane.stats));
        }
        all
    }
}

impl Lane {
    fn new(base: &str, path: &str, content_type: &'static str) -> Lane {
        Lane {
            url: format!("{base}{path}"),
            origin: base.to_string(),
            content_type,
            client: Some(Client::new()),
            warmer: None,
            last_contact_ms: 0,
            stats: ShipStats::default(),
        }
    }

    fn warm_up(&mut self, now_ms: i64, limit: Duration) {
        if self.warmer.is_some() || now_ms - self.last_contact_ms < WARM_AFTER_IDLE_MS {
            return;
        }
        let Some(mut client) = self.client.take() else { return };
        // Connections idle this long were likely closed by the intake (or broken by a freeze).
        client.close_idle();
        let origin = self.origin.clone();
        self.last_contact_ms = now_ms;
        self.warmer = Some(std::thread::spawn(move || {
            if let Err(e) = client.preconnect(&origin, Instant::now() + limit) {
                log::debug!("warm-up of {origin}: {e}");
            }
            client
        }));
    }

    fn settle(&mut self) {
        if let Some(h) = self.warmer.take() {
            self.client = Some(h.join().unwrap_or_default());
        }
    }

    /// Sends the sketches payloads until one is not delivered (put back).
    fn ship_metrics(&mut self, m: &mut Metrics, key: &str, deadline_ms: i64) -> bool {
        while let Some(body) = m.take_payload() {
            match self.send(key, &body, deadline_ms) {
                Verdict::Delivered | Verdict::Refused => {}
                _ => {
                    m.put_back(body);
                    return false;
                }
            }
        }
        true
    }

    /// Sends the logs batches until one is not delivered (put back).
    fn ship_logs(&mut self, l: &mut Logs, key: &str, deadline_ms: i64) -> bool {
        while let Some(batch) = l.take_batch() {
            match self.send(key, batch.json(), deadline_ms) {
                // Its memory serves the next batch (no fresh allocation per flush).
                Verdict::Delivered => l.recycle(batch),
                Verdict::Refused => {}
                _ => {
                    l.put_back(batch);
                    return false;
                }
            }
        }
        true
    }

    /// Delivers one payload: `Delivered`, `Refused` or `Keep`.
    fn send(&mut self, key: &str, body: &[u8], deadline_ms: i64) -> Verdict {
        let url = &self.url;
        let mut headers = vec![("DD-API-KEY", key), ("Content-Type", self.content_type)];
        if self.content_type == "application/json" {
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
            self.stats.note(verdict, url, body.len(), &why);
            match verdict {
                Verdict::RetryAfter(ms) => std::thread::sleep(Duration::from_millis(ms)),
                v => return v,
            }
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
