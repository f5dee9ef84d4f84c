//! The shipping rules both shells follow, as decisions without I/O: one
//! [`Delivery`] per payload and flush tells the shell how long an attempt
//! may take, and what to do after its answer.
//!
//! * An attempt never outlives the flush deadline: its timeout is the time left.
//! * 2xx: delivered. 429, 5xx and transport errors: tried again after a
//!   backoff (20 ms, doubling, ≤ 1 s) while time is left, at most
//!   [`MAX_ATTEMPTS`] attempts; then the payload is kept for the next flush.
//!   The cap matters when the intake is down: `DD_FLUSH_TIMEOUT` defaults to
//!   30 s, and retrying a refused connection until then would add 30 s of
//!   billed post-runtime time to every invocation.
//! * Any other 4xx: refused for good (it would never pass), dropped.

/// What the shipper did, for the exit line (both shells).
#[derive(Debug, Default, Clone)]
pub struct ShipStats {
    pub sent_payloads: u64,
    pub sent_bytes: u64,
    pub retries: u64,
    pub dropped_payloads: u64,
}

impl ShipStats {
    pub fn add(&mut self, o: &ShipStats) {
        self.sent_payloads += o.sent_payloads;
        self.sent_bytes += o.sent_bytes;
        self.retries += o.retries;
        self.dropped_payloads += o.dropped_payloads;
    }

    /// Counts one attempt's verdict on a payload of `len` bytes sent to
    /// `url`, with its log line (`why`: the answer's status or the error).
    pub fn note(&mut self, v: Verdict, url: &str, len: usize, why: &str) {
        match v {
            Verdict::Delivered => {
                self.sent_payloads += 1;
                self.sent_bytes += len as u64;
            }
            Verdict::Refused => {
                self.dropped_payloads += 1;
                log::error!("intake refused {len} bytes to {url}: {why}; dropped");
            }
            Verdict::Keep => {
                self.retries += 1;
                log::warn!("intake {url}: {why}; keeping {len} bytes for the next flush");
            }
            Verdict::RetryAfter(ms) => {
                self.retries += 1;
                log::debug!("intake {url}: {why}; retrying in {ms} ms");
            }
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "intake: {} payloads / {} bytes sent, {} retries, {} payloads dropped",
            self.sent_payloads, self.sent_bytes, self.retries, self.dropped_payloads
        )
    }
}

/// Attempts per payload in one flush (the first one and two retries).
pub const MAX_ATTEMPTS: u32 = 3;
/// Below this much time left, no attempt starts.
const MIN_ATTEMPT_MS: i64 = 5;
const FIRST_BACKOFF_MS: i64 = 20;
const MAX_BACKOFF_MS: i64 = 1000;

/// What the shell does with a payload after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Refused for good (4xx other than 429): drop it.
    Refused,
    /// Not delivered within this flush: put it back for the next one.
    Keep,
    /// Sleep this many ms, then attempt again.
    RetryAfter(u64),
}

/// One payload's delivery within one flush.
#[derive(Debug)]
pub struct Delivery {
    deadline_ms: i64,
    attempts: u32,
    backoff_ms: i64,
}

impl Delivery {
    pub fn new(deadline_ms: i64) -> Delivery {
        Delivery { deadline_ms, attempts: 0, backoff_ms: FIRST_BACKOFF_MS }
    }

    /// Starts an attempt: its timeout in ms, or `None` when too little time
    /// is left (keep the payload).
    pub fn attempt(&mut self, now_ms: i64) -> Option<u64> {
        let left = self.deadline_ms - now_ms;
        if left < MIN_ATTEMPT_MS {
            return None;
        }
        self.attempts += 1;
        Some(left as u64)
    }

    /// After an attempt: `status` is the HTTP answer's, `None` a transport
    /// error (refused, reset, timed out, TLS).
    pub fn verdict(&mut self, status: Option<u16>, now_ms: i64) -> Verdict {
        match status {
            Some(s) if s / 100 == 2 => return Verdict::Delivered,
            Some(s) if s != 429 && s < 500 => return Verdict::Refused,
            _ => {}
        }
        let wait = self.backoff_ms;
        if self.deadline_ms - now_ms <= wait + MIN_ATTEMPT_MS || self.attempts >= MAX_ATTEMPTS {
            return Verdict::Keep;
        }
        self.backoff_ms = (wait * 2).min(MAX_BACKOFF_MS);
        Verdict::RetryAfter(wait as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a delivery against answers given in order (one per attempt),
    /// each attempt taking `took` ms; returns the verdicts and the timeouts.
    fn run(deadline: i64, took: i64, answers: &[Option<u16>]) -> (Vec<Verdict>, Vec<u64>) {
        let mut d = Delivery::new(deadline);
        let (mut now, mut verdicts, mut timeouts) = (0, vec![], vec![]);
        for a in answers {
            let Some(t) = d.attempt(now) else {
                verdicts.push(Verdict::Keep);
                break;
            };
            timeouts.push(t);
            now += took;
            let v = d.verdict(*a, now);
            verdicts.push(v);
            match v {
                Verdict::RetryAfter(ms) => now += ms as i64,
                _ => break,
            }
        }
        (verdicts, timeouts)
    }

    #[test]
    fn success_and_refusal_end_at_once() {
        assert_eq!(run(1000, 1, &[Some(202)]).0, [Verdict::Delivered]);
        for s in [400, 401, 403, 404, 413] {
            assert_eq!(run(1000, 1, &[Some(s)]).0, [Verdict::Refused], "{s}");
        }
    }

    #[test]
    fn retryable_answers_back_off_then_keep_after_three_attempts() {
        let (v, t) = run(10_000, 1, &[Some(500), None, Some(429), Some(202)]);
        assert_eq!(v, [Verdict::RetryAfter(20), Verdict::RetryAfter(40), Verdict::Keep]);
        assert_eq!(t, [10_000, 9_979, 9_938], "each timeout is the time left");
        let (v, _) = run(10_000, 1, &[Some(503), Some(202)]);
        assert_eq!(v, [Verdict::RetryAfter(20), Verdict::Delivered]);
    }

    #[test]
    fn never_past_the_deadline() {
        // No time for an attempt.
        assert_eq!(run(4, 1, &[Some(202)]).0, [Verdict::Keep]);
        // Not enough left for the backoff and another attempt.
        assert_eq!(run(30, 5, &[None, Some(202)]).0, [Verdict::Keep]);
        let (v, t) = run(60, 5, &[None, None]);
        assert_eq!(v, [Verdict::RetryAfter(20), Verdict::Keep]);
        assert_eq!(t, [60, 35]);
    }

    #[test]
    fn stats_count_each_verdict() {
        let mut st = ShipStats::default();
        for v in [Verdict::Delivered, Verdict::RetryAfter(20), Verdict::Keep, Verdict::Refused, Verdict::Delivered] {
            st.note(v, "https://x/api/v2/logs", 100, "HTTP 500");
        }
        assert_eq!((st.sent_payloads, st.sent_bytes, st.retries, st.dropped_payloads), (2, 200, 2, 1));
        let mut total = ShipStats::default();
        total.add(&st);
        total.add(&st);
        assert_eq!((total.sent_payloads, total.sent_bytes, total.retries, total.dropped_payloads), (4, 400, 4, 2));
    }

    #[test]
    fn backoff_is_capped() {
        let mut d = Delivery::new(i64::MAX);
        let mut waits = vec![];
        for _ in 0..8 {
            d.attempts = 0; // look at the backoff alone
            d.attempt(0);
            if let Verdict::RetryAfter(ms) = d.verdict(None, 0) {
                waits.push(ms);
            }
        }
        assert_eq!(waits, [20, 40, 80, 160, 320, 640, 1000, 1000]);
    }
}
