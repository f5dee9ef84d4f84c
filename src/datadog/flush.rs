//! When to flush: `DD_SERVERLESS_FLUSH_STRATEGY` as a state machine fed by
//! invocation starts and flushes, with explicit `now_ms` (epoch ms).
//!
//! | strategy | waits for runtimeDone | flushes |
//! |---|---|---|
//! | `end` | yes | after each invocation's `platform.runtimeDone` |
//! | `end,<ms>` | only when a flush is due | after runtimeDone, at most once per `<ms>` |
//! | `periodically,<ms>` | never | at the invocation start once `<ms>` has passed since the last flush |
//! | unset (adaptive) | as the mode | `end` for the first 20 invocations; then, while the last 20 came < 120 s apart on average, `periodically,20000`; else `end` |
//!
//! Every flush happens at an invocation boundary, before `next`, so it
//! never spans a freeze (the SHUTDOWN flush is the core's business).
//!
//! Trade-offs:
//! * Waiting for `platform.runtimeDone` costs the telemetry buffering delay
//!   (≥ 25 ms) in billed post-runtime time, so it is done only when this
//!   invocation will flush at its end: `end,<ms>` skips the wait while the
//!   interval has not passed at INVOKE (data then leaves at a later end).
//! * The adaptive window is a rolling 20 invocations (as Datadog's
//!   extension), so a function that slows down goes back to `end`.
//! * `continuously,<ms>` (Datadog: flush without blocking `next`) cannot be
//!   done without spanning freezes: it is read as `periodically,<ms>`, with
//!   a warning.

/// Invocations observed before the adaptive default may leave `end`.
pub const ADAPTIVE_LOOKBACK: usize = 20;
/// Average gap below which the adaptive default flushes periodically.
pub const ADAPTIVE_MAX_AVG_GAP_MS: i64 = 120_000;
/// Period of the adaptive default's periodic mode.
pub const ADAPTIVE_PERIOD_MS: i64 = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `end` (`min_interval_ms` 0) or `end,<ms>`.
    End { min_interval_ms: i64 },
    /// `periodically,<ms>`.
    Periodically { interval_ms: i64 },
    /// Unset: Datadog's adaptive default.
    Adaptive,
}

impl Strategy {
    /// Parses `DD_SERVERLESS_FLUSH_STRATEGY`. An invalid value yields the
    /// default ([`Strategy::Adaptive`]) and one warning line to log.
    pub fn parse(value: Option<&str>) -> (Strategy, Option<String>) {
        let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return (Strategy::Adaptive, None);
        };
        let (name, arg) = match raw.split_once(',') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (raw, None),
        };
        let ms = arg.map(|a| a.parse::<i64>().ok().filter(|&ms| ms > 0));
        let lower = name.to_ascii_lowercase();
        match (lower.as_str(), ms) {
            ("end", None) => (Strategy::End { min_interval_ms: 0 }, None),
            ("end", Some(Some(ms))) => (Strategy::End { min_interval_ms: ms }, None),
            ("periodically", Some(Some(ms))) => (Strategy::Periodically { interval_ms: ms }, None),
            ("continuously", Some(Some(ms))) => (
                Strategy::Periodically { interval_ms: ms },
                Some(format!(
                    "DD_SERVERLESS_FLUSH_STRATEGY={raw:?}: flushing while the sandbox may freeze \
                     loses data; using periodically,{ms} (flush at invocation starts)"
                )),
            ),
            _ => (
                Strategy::Adaptive,
                Some(format!(
                    "ignoring DD_SERVERLESS_FLUSH_STRATEGY={raw:?}: expected end, end,<ms> or \
                     periodically,<ms>; using the default (end, then every 20 s for frequent invocations)"
                )),
            ),
        }
    }
}

/// The concrete behaviour for the current invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    End { min_interval_ms: i64 },
    Periodically { interval_ms: i64 },
}

/// The flush decisions. See the module docs.
#[derive(Debug, Clone)]
pub struct FlushControl {
    strategy: Strategy,
    mode: Mode,
    last_flush_ms: i64,
    /// Ring of the latest invocation start times (adaptive only).
    times: [i64; ADAPTIVE_LOOKBACK],
    seen: usize,
    wait_for_runtime_done: bool,
}

impl FlushControl {
    /// `now_ms`: the start of the extension (periodic intervals count from
    /// it). `end,<ms>` counts as if a flush had happened `<ms>` earlier, so
    /// the first invocation (the cold start) flushes at its end: "at most once
    /// per `<ms>`" must not hold its data back for `<ms>`.
    pub fn new(strategy: Strategy, now_ms: i64) -> Self {
        let mode = match strategy {
            Strategy::End { min_interval_ms } => Mode::End { min_interval_ms },
            Strategy::Periodically { interval_ms } => Mode::Periodically { interval_ms },
            Strategy::Adaptive => Mode::End { min_interval_ms: 0 },
        };
        let last_flush_ms = match mode {
            Mode::End { min_interval_ms } => now_ms.saturating_sub(min_interval_ms),
            Mode::Periodically { .. } => now_ms,
        };
        FlushControl {
            strategy,
            mode,
            last_flush_ms,
            times: [0; ADAPTIVE_LOOKBACK],
            seen: 0,
            wait_for_runtime_done: true,
        }
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The behaviour chosen at the latest invocation start.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// An invocation started (INVOKE received): re-evaluates the adaptive
    /// mode and whether this invocation waits for `platform.runtimeDone`.
    pub fn on_invoke(&mut self, now_ms: i64) {
        if self.strategy == Strategy::Adaptive {
            self.times[self.seen % ADAPTIVE_LOOKBACK] = now_ms;
            self.seen += 1;
            self.mode = Mode::End { min_interval_ms: 0 };
            if self.seen >= ADAPTIVE_LOOKBACK {
                // After the write, the oldest of the last 20 sits at the next slot.
                let oldest = self.times[self.seen % ADAPTIVE_LOOKBACK];
                let avg_gap = (now_ms - oldest) / (ADAPTIVE_LOOKBACK as i64 - 1);
                if avg_gap < ADAPTIVE_MAX_AVG_GAP_MS {
                    self.mode = Mode::Periodically {
                        interval_ms: ADAPTIVE_PERIOD_MS,
                    };
                }
            }
        }
        self.wait_for_runtime_done = match self.mode {
            Mode::End { min_interval_ms } => now_ms - self.last_flush_ms >= min_interval_ms,
            Mode::Periodically { .. } => false,
        };
    }

    /// Whether `next` must wait for this invocation's `platform.runtimeDone`
    /// (decided at [`FlushControl::on_invoke`]; true before any INVOKE).
    pub fn wait_for_runtime_done(&self) -> bool {
        self.wait_for_runtime_done
    }

    /// `platform.runtimeDone` of the current invocation arrived: flush now?
    pub fn should_flush_at_runtime_done(&self, now_ms: i64) -> bool {
        match self.mode {
            Mode::End { min_interval_ms } => now_ms - self.last_flush_ms >= min_interval_ms,
            Mode::Periodically { .. } => false,
        }
    }

    /// At the start of an invocation (after [`FlushControl::on_invoke`],
    /// before `next`): flush now?
    pub fn should_flush_at_invocation_start(&self, now_ms: i64) -> bool {
        match self.mode {
            Mode::End { .. } => false,
            Mode::Periodically { interval_ms } => now_ms - self.last_flush_ms >= interval_ms,
        }
    }

    /// At an invocation boundary, before `next` (`runtime_done`: this
    /// invocation's runtimeDone has arrived): flush now?
    pub fn should_flush_at_boundary(&self, now_ms: i64, runtime_done: bool) -> bool {
        (runtime_done && self.should_flush_at_runtime_done(now_ms))
            || self.should_flush_at_invocation_start(now_ms)
    }

    /// A flush finished (or was abandoned) at `now_ms`.
    pub fn on_flushed(&mut self, now_ms: i64) {
        self.last_flush_ms = now_ms;
    }
}

impl crate::lambda::core::FlushPolicy for FlushControl {
    fn wait_for_runtime_done(&self) -> bool {
        FlushControl::wait_for_runtime_done(self)
    }
    fn flush_at_boundary(&mut self, now_ms: i64, runtime_done: bool) -> bool {
        self.should_flush_at_boundary(now_ms, runtime_done)
    }
    fn on_invoke(&mut self, now_ms: i64) {
        FlushControl::on_invoke(self, now_ms)
    }
    fn on_flushed(&mut self, now_ms: i64) {
        FlushControl::on_flushed(self, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn parse(v: &str) -> (Strategy, bool) {
        let (s, w) = Strategy::parse(Some(v));
        (s, w.is_some())
    }

    #[test]
    fn parsing() {
        assert_eq!(Strategy::parse(None), (Strategy::Adaptive, None));
        assert_eq!(Strategy::parse(Some("  ")), (Strategy::Adaptive, None));
        assert_eq!(parse("end"), (Strategy::End { min_interval_ms: 0 }, false));
        assert_eq!(
            parse(" END "),
            (Strategy::End { min_interval_ms: 0 }, false)
        );
        assert_eq!(
            parse("end,5000"),
            (
                Strategy::End {
                    min_interval_ms: 5000
                },
                false
            )
        );
        assert_eq!(
            parse("end, 5000"),
            (
                Strategy::End {
                    min_interval_ms: 5000
                },
                false
            )
        );
        assert_eq!(
            parse("periodically,60000"),
            (Strategy::Periodically { interval_ms: 60000 }, false)
        );
        assert_eq!(
            parse("continuously,1000"),
            (Strategy::Periodically { interval_ms: 1000 }, true)
        );
        for bad in [
            "periodically",
            "periodically,",
            "periodically,abc",
            "end,-5",
            "end,0",
            "sometimes",
            "end,1,2",
        ] {
            assert_eq!(parse(bad), (Strategy::Adaptive, true), "{bad}");
        }
        let (_, w) = Strategy::parse(Some("nope"));
        assert!(w.unwrap().contains("DD_SERVERLESS_FLUSH_STRATEGY=\"nope\""));
    }

    #[test]
    fn end_flushes_after_every_runtime_done() {
        let mut f = FlushControl::new(Strategy::End { min_interval_ms: 0 }, T0);
        for i in 0..3 {
            let t = T0 + i * 1000;
            f.on_invoke(t);
            assert!(f.wait_for_runtime_done());
            assert!(!f.should_flush_at_invocation_start(t));
            assert!(!f.should_flush_at_boundary(t + 5, false));
            assert!(f.should_flush_at_runtime_done(t + 10));
            assert!(f.should_flush_at_boundary(t + 10, true));
            f.on_flushed(t + 20);
        }
    }

    #[test]
    fn end_with_interval_flushes_at_most_once_per_interval() {
        let mut f = FlushControl::new(
            Strategy::End {
                min_interval_ms: 5000,
            },
            T0,
        );
        // First invocation 6 s after start: due, waits, flushes.
        f.on_invoke(T0 + 6000);
        assert!(f.wait_for_runtime_done());
        assert!(f.should_flush_at_runtime_done(T0 + 6100));
        f.on_flushed(T0 + 6200);
        // 1 s later: not due; does not wait for runtimeDone nor flush.
        f.on_invoke(T0 + 7200);
        assert!(!f.wait_for_runtime_done());
        assert!(!f.should_flush_at_boundary(T0 + 7300, true));
        // Due again 5 s after the last flush.
        f.on_invoke(T0 + 11_300);
        assert!(f.wait_for_runtime_done());
        assert!(f.should_flush_at_boundary(T0 + 11_400, true));
        assert!(!f.should_flush_at_boundary(T0 + 11_400, false));
    }

    #[test]
    fn end_with_interval_flushes_the_first_invocation() {
        let mut f = FlushControl::new(Strategy::End { min_interval_ms: 60_000 }, T0);
        f.on_invoke(T0 + 50);
        assert!(f.wait_for_runtime_done());
        assert!(f.should_flush_at_boundary(T0 + 100, true));
        f.on_flushed(T0 + 110);
        f.on_invoke(T0 + 1000);
        assert!(!f.wait_for_runtime_done());
        assert!(!f.should_flush_at_boundary(T0 + 1100, true));
    }

    #[test]
    fn periodically_flushes_at_invocation_start() {
        let mut f = FlushControl::new(
            Strategy::Periodically {
                interval_ms: 10_000,
            },
            T0,
        );
        f.on_invoke(T0 + 1000);
        assert!(!f.wait_for_runtime_done());
        assert!(!f.should_flush_at_invocation_start(T0 + 1000));
        assert!(!f.should_flush_at_runtime_done(T0 + 1100));
        f.on_invoke(T0 + 10_000);
        assert!(f.should_flush_at_invocation_start(T0 + 10_000));
        assert!(f.should_flush_at_boundary(T0 + 10_000, false));
        f.on_flushed(T0 + 10_050);
        f.on_invoke(T0 + 15_000);
        assert!(!f.should_flush_at_boundary(T0 + 15_000, true));
        f.on_invoke(T0 + 20_050);
        assert!(f.should_flush_at_boundary(T0 + 20_050, false));
    }

    #[test]
    fn adaptive_switches_to_periodic_for_frequent_invocations() {
        let mut f = FlushControl::new(Strategy::Adaptive, T0);
        // 19 invocations 1 s apart: still `end`.
        for i in 0..19 {
            let t = T0 + i * 1000;
            f.on_invoke(t);
            assert_eq!(f.mode(), Mode::End { min_interval_ms: 0 }, "invocation {i}");
            assert!(f.wait_for_runtime_done());
            assert!(f.should_flush_at_runtime_done(t + 10));
            f.on_flushed(t + 20);
        }
        // The 20th: periodic every 20 s, no wait for runtimeDone.
        f.on_invoke(T0 + 19_000);
        assert_eq!(
            f.mode(),
            Mode::Periodically {
                interval_ms: 20_000
            }
        );
        assert!(!f.wait_for_runtime_done());
        assert!(!f.should_flush_at_boundary(T0 + 19_000, true)); // flushed 1 s ago
        f.on_invoke(T0 + 38_030);
        assert!(f.should_flush_at_boundary(T0 + 38_030, false));
        f.on_flushed(T0 + 38_040);
        f.on_invoke(T0 + 39_000);
        assert!(!f.should_flush_at_boundary(T0 + 39_000, true));
    }

    #[test]
    fn adaptive_stays_end_for_rare_invocations_and_reverts() {
        let mut f = FlushControl::new(Strategy::Adaptive, T0);
        for i in 0..25 {
            f.on_invoke(T0 + i * 121_000);
            assert_eq!(f.mode(), Mode::End { min_interval_ms: 0 });
        }
        // Rolling window: 20 fast ones switch to periodic...
        let base = T0 + 25 * 121_000;
        for i in 0..20 {
            f.on_invoke(base + i * 1000);
        }
        assert_eq!(
            f.mode(),
            Mode::Periodically {
                interval_ms: 20_000
            }
        );
        // ...and a long pause brings the average back over 120 s.
        f.on_invoke(base + 19_000 + 3_000_000);
        assert_eq!(f.mode(), Mode::End { min_interval_ms: 0 });
        assert!(f.wait_for_runtime_done());
    }

    #[test]
    fn adaptive_boundary_at_exactly_120_s_average_stays_end() {
        let mut f = FlushControl::new(Strategy::Adaptive, T0);
        for i in 0..20 {
            f.on_invoke(T0 + i * 120_000);
        }
        assert_eq!(f.mode(), Mode::End { min_interval_ms: 0 });
        let mut g = FlushControl::new(Strategy::Adaptive, T0);
        for i in 0..20 {
            g.on_invoke(T0 + i * 119_999);
        }
        assert_eq!(
            g.mode(),
            Mode::Periodically {
                interval_ms: 20_000
            }
        );
    }
}
