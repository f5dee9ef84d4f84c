//! The extension's lifecycle as a state machine, free of I/O.
//!
//! The shell feeds it inputs (events from `next`, telemetry records, the
//! passage of time) and asks [`Core::poll`] what to do: wait for input, flush,
//! call `next`, or exit. Every decision that matters to users is made here:
//! when `next` may be called (never while a flush is under way, because the
//! sandbox freezes once everyone waits in `next`), how long to wait for
//! `platform.runtimeDone`, and how to spend the SHUTDOWN budget.

use crate::lambda::extapi::Event;
use crate::lambda::telemetry::{Kind, Record};

/// How long to wait at SHUTDOWN for the last `platform.report` (Datadog: 300 ms).
pub const SHUTDOWN_REPORT_WAIT_MS: i64 = 300;
/// Exit at least this long before the SHUTDOWN deadline.
pub const SHUTDOWN_MARGIN_MS: i64 = 200;
/// Managed instances never freeze: flush on a timer.
pub const MANAGED_FLUSH_INTERVAL_MS: i64 = 10_000;
/// Work at an invocation boundary (the wait for `runtimeDone`, a flush) ends
/// this long before the invocation's `deadlineMs`, so that `next` reaches the
/// platform in time even on a loaded machine: the settling of the warm-up,
/// the poller's wakeup and the `next` request itself fit in it with room.
pub const INVOKE_MARGIN_MS: i64 = 200;
/// A flush with less time than this does not start: its payloads stay kept.
pub const MIN_FLUSH_MS: i64 = 20;

/// How long a flush at an invocation boundary may run, as the epoch-ms time
/// it must be over by: `DD_FLUSH_TIMEOUT` after `now`, but never past the
/// invocation's deadline minus [`INVOKE_MARGIN_MS`] (`deadline_ms` 0: none
/// known). `None`: too little time is left, do not flush (keep everything).
pub fn boundary_flush_deadline(now_ms: i64, deadline_ms: i64, flush_timeout_ms: i64) -> Option<i64> {
    let mut end = now_ms + flush_timeout_ms;
    if deadline_ms > 0 {
        end = end.min(deadline_ms - INVOKE_MARGIN_MS);
    }
    (end - now_ms >= MIN_FLUSH_MS).then_some(end)
}

/// What the shell should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Wait for input, at most until this epoch-ms time (`None`: no bound).
    Wait(Option<i64>),
    /// Ship what is buffered; give up at this epoch-ms time. Then call
    /// [`Core::flushed`] and poll again. `background` (the Managed Instances
    /// timer flush): run it off the thread that handles SHUTDOWN and call
    /// [`Core::flushed`] when it ends; until then the core starts no other
    /// flush, and at SHUTDOWN waits for it (the shell cuts its sockets at
    /// [`Core::io_cutoff`]).
    Flush { deadline_ms: i64, final_flush: bool, background: bool },
    /// Let the `next` long-poll go out (the shell then blocks in it).
    CallNext,
    /// Exit the process with status 0.
    Exit,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Registered; the first `next` has not gone out yet.
    Init,
    /// `next` is out; the sandbox may be frozen.
    InNext,
    /// An INVOKE is being handled.
    Invoking { request_id: String, deadline_ms: i64, runtime_done: bool },
    /// The invocation's work is done (flushed if due): `next` goes out at the next poll.
    ReadyForNext,
    /// SHUTDOWN received.
    ShuttingDown { deadline_ms: i64, report_wait_until: i64, flushed: bool, cut_in_flight_at: i64 },
    Done,
}

/// Counters, also handy for tests and the final log line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub batches: u64,
    pub records: u64,
    pub rejected: u64,
    pub unknown: u64,
    pub logs_dropped_by_platform: u64,
    pub invocations: u64,
    pub function_logs: u64,
    pub extension_logs: u64,
    pub platform: u64,
}

impl Stats {
    /// For the exit log line (written out: with `-Zfmt-debug=shallow` the
    /// derived `Debug` prints only `Stats`).
    pub fn summary(&self) -> String {
        format!(
            "{} invocations; telemetry: {} batches, {} records ({} function logs, {} extension logs, \
             {} platform, {} unknown, {} rejected), {} logs dropped by the platform",
            self.invocations,
            self.batches,
            self.records,
            self.function_logs,
            self.extension_logs,
            self.platform,
            self.unknown,
            self.rejected,
            self.logs_dropped_by_platform
        )
    }
}

/// What decides whether to flush; implemented by the Datadog side
/// (`crate::datadog::flush`) and by simple policies in tests.
pub trait FlushPolicy {
    /// Whether `next` must wait for this invocation's `platform.runtimeDone`.
    fn wait_for_runtime_done(&self) -> bool;
    /// Flush now, at an invocation boundary (before `next`)?
    fn flush_at_boundary(&mut self, now_ms: i64, runtime_done: bool) -> bool;
    /// Called when an invocation starts.
    fn on_invoke(&mut self, now_ms: i64);
    /// Called after a flush.
    fn on_flushed(&mut self, now_ms: i64);
}

/// Flush after every invocation's runtimeDone (the `end` strategy).
pub struct FlushAtEnd;
impl FlushPolicy for FlushAtEnd {
    fn wait_for_runtime_done(&self) -> bool {
        true
    }
    fn flush_at_boundary(&mut self, _: i64, runtime_done: bool) -> bool {
        runtime_done
    }
    fn on_invoke(&mut self, _: i64) {}
    fn on_flushed(&mut self, _: i64) {}
}

/// Receives everything the core learns (enhanced metrics, logs). The
/// Datadog side implements it; `pending()` tells whether a flush has work.
pub trait Sink {
    fn on_invoke(&mut self, request_id: &str, now_ms: i64);
    fn on_record(&mut self, rec: &Record, current_request: Option<&str>);
    fn on_shutdown(&mut self, now_ms: i64);
    fn pending(&self) -> bool;
}

/// A sink that keeps nothing (telemetry counted only).
pub struct NullSink;
impl Sink for NullSink {
    fn on_invoke(&mut self, _: &str, _: i64) {}
    fn on_record(&mut self, _: &Record, _: Option<&str>) {}
    fn on_shutdown(&mut self, _: i64) {}
    fn pending(&self) -> bool {
        false
    }
}

pub struct Core<P: FlushPolicy, S: Sink> {
    managed: bool,
    phase: Phase,
    pub policy: P,
    pub sink: S,
    pub stats: Stats,
    /// Request ids that started but whose `platform.report` has not arrived.
    awaiting_report: Vec<String>,
    /// Last request id seen (for logs that carry none).
    last_request: Option<String>,
    next_timer_flush: i64,
    /// Upper bound for one flush at an invocation boundary (`DD_FLUSH_TIMEOUT`).
    pub flush_timeout_ms: i64,
    /// False once we know no telemetry will come (subscribe refused): then
    /// `next` never waits for a `platform.runtimeDone` that cannot arrive.
    telemetry_active: bool,
    /// `platform.initReport` arrived (a SHUTDOWN right after INIT waits for it:
    /// it carries `init_duration`).
    init_report_seen: bool,
    /// A background flush is under way (Managed Instances timer flush).
    in_flight: bool,
}

impl<P: FlushPolicy, S: Sink> Core<P, S> {
    pub fn new(managed_instances: bool, policy: P, sink: S) -> Self {
        Core {
            managed: managed_instances,
            phase: Phase::Init,
            policy,
            sink,
            stats: Stats::default(),
            awaiting_report: Vec::new(),
            last_request: None,
            next_timer_flush: 0,
            flush_timeout_ms: 30_000,
            telemetry_active: true,
            init_report_seen: false,
            in_flight: false,
        }
    }

    /// After SHUTDOWN: the epoch-ms time by which every socket must be done,
    /// else `None`. A background flush under way when SHUTDOWN came is cut
    /// halfway to the latest exit: a request stuck on its connection must not
    /// take the whole budget from the final flush, which has the other half
    /// (on a fresh connection) for what it did not deliver.
    pub fn io_cutoff(&self) -> Option<i64> {
        match &self.phase {
            Phase::ShuttingDown { cut_in_flight_at, .. } if self.in_flight => Some(*cut_in_flight_at),
            Phase::ShuttingDown { deadline_ms, .. } => Some(deadline_ms - SHUTDOWN_MARGIN_MS),
            _ => None,
        }
    }

    /// While an invocation runs: when its boundary work must be over
    /// (deadline minus [`INVOKE_MARGIN_MS`]); bounds the intake warm-up.
    pub fn invocation_cutoff(&self) -> Option<i64> {
        match &self.phase {
            Phase::Invoking { deadline_ms, .. } if *deadline_ms > 0 => Some(deadline_ms - INVOKE_MARGIN_MS),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The request in progress, if any.
    pub fn current_request(&self) -> Option<&str> {
        match &self.phase {
            Phase::Invoking { request_id, .. } => Some(request_id),
            _ => self.last_request.as_deref(),
        }
    }

    /// An event from `next`.
    pub fn on_event(&mut self, ev: Event, now_ms: i64) {
        match ev {
            Event::Invoke { request_id, deadline_ms, .. } => {
                self.stats.invocations += 1;
                self.policy.on_invoke(now_ms);
                self.sink.on_invoke(&request_id, now_ms);
                self.expect_report(&request_id);
                self.last_request = Some(request_id.clone());
                self.phase = Phase::Invoking { request_id, deadline_ms, runtime_done: false };
            }
            Event::Shutdown { deadline_ms, .. } => {
                self.sink.on_shutdown(now_ms);
                let latest_exit = deadline_ms - SHUTDOWN_MARGIN_MS;
                let report_wait_until = if !self.waiting_for_reports() {
                    now_ms
                } else {
                    (now_ms + SHUTDOWN_REPORT_WAIT_MS).min(latest_exit)
                };
                let cut_in_flight_at = now_ms + (latest_exit - now_ms) / 2;
                self.phase = Phase::ShuttingDown { deadline_ms, report_wait_until, flushed: false, cut_in_flight_at };
            }
            Event::Unknown(_) => {
                // Not ours to understand: go back to `next` (after any flush due).
                if self.phase == Phase::InNext {
                    self.phase = Phase::ReadyForNext;
                }
            }
        }
    }

    fn expect_report(&mut self, request_id: &str) {
        if !self.awaiting_report.iter().any(|r| r == request_id) {
            if self.awaiting_report.len() >= 64 {
                self.awaiting_report.remove(0);
            }
            self.awaiting_report.push(request_id.to_string());
        }
    }

    /// One parsed telemetry batch.
    pub fn on_records(&mut self, records: &[Record], rejected: usize) {
        self.stats.batches += 1;
        self.stats.rejected += rejected as u64;
        for rec in records {
            self.stats.records += 1;
            match &rec.kind {
                Kind::Function(_) => self.stats.function_logs += 1,
                Kind::Extension(_) => self.stats.extension_logs += 1,
                Kind::Unknown { .. } => self.stats.unknown += 1,
                _ => self.stats.platform += 1,
            }
            match &rec.kind {
                // Managed Instances send no INVOKE: count invocations here.
                Kind::Start { request_id: Some(rid), .. } if self.managed => {
                    self.stats.invocations += 1;
                    self.expect_report(rid);
                }
                Kind::RuntimeDone { request_id: Some(rid), .. } => {
                    if let Phase::Invoking { request_id, runtime_done, .. } = &mut self.phase {
                        if request_id == rid {
                            *runtime_done = true;
                        }
                    }
                }
                Kind::InitReport { .. } => self.init_report_seen = true,
                Kind::Report { request_id: Some(rid), .. } => {
                    self.awaiting_report.retain(|r| r != rid);
                }
                Kind::LogsDropped { dropped_records, .. } => {
                    self.stats.logs_dropped_by_platform += dropped_records.unwrap_or(0);
                }
                _ => {}
            }
            // (Borrowed field by field: no copy of the request id per record.)
            let current = match &self.phase {
                Phase::Invoking { request_id, .. } => Some(request_id.as_str()),
                _ => self.last_request.as_deref(),
            };
            self.sink.on_record(rec, current);
        }
    }

    /// At SHUTDOWN: is a `platform.report` (or the `initReport`) still due?
    fn waiting_for_reports(&self) -> bool {
        // (after an invocation, report.initDurationMs stands in for a late initReport)
        self.telemetry_active
            && (!self.awaiting_report.is_empty() || (!self.init_report_seen && self.last_request.is_none()))
    }

    /// Whether telemetry can arrive (false after a refused subscribe).
    pub fn set_telemetry_active(&mut self, active: bool) {
        self.telemetry_active = active;
    }

    /// Init is over (listener bound, subscribe done or under way).
    pub fn init_done(&mut self, now_ms: i64) {
        self.next_timer_flush = now_ms + MANAGED_FLUSH_INTERVAL_MS;
    }

    /// A flush returned by [`Core::poll`] has finished (or was abandoned).
    pub fn flushed(&mut self, now_ms: i64) {
        self.in_flight = false;
        self.policy.on_flushed(now_ms);
    }

    /// What to do now.
    pub fn poll(&mut self, now_ms: i64) -> Action {
        let waiting_for_reports = self.waiting_for_reports();
        match &mut self.phase {
            Phase::Init => {
                self.phase = Phase::InNext;
                Action::CallNext
            }
            Phase::InNext => {
                // On demand the sandbox may be frozen now: never flush here.
                // Managed instances do not freeze: flush on a timer.
                if self.managed {
                    if now_ms >= self.next_timer_flush && self.sink.pending() && !self.in_flight {
                        self.next_timer_flush = now_ms + MANAGED_FLUSH_INTERVAL_MS;
                        self.in_flight = true;
                        return Action::Flush {
                            deadline_ms: now_ms + MANAGED_FLUSH_INTERVAL_MS / 2,
                            final_flush: false,
                            background: true,
                        };
                    }
                    if now_ms >= self.next_timer_flush {
                        self.next_timer_flush = now_ms + MANAGED_FLUSH_INTERVAL_MS;
                    }
                    return Action::Wait(Some(self.next_timer_flush));
                }
                Action::Wait(None)
            }
            Phase::Invoking { deadline_ms, runtime_done, .. } => {
                // (`next` goes out before the deadline, runtimeDone or not.)
                let cutoff = *deadline_ms - INVOKE_MARGIN_MS;
                let done = *runtime_done
                    || !self.telemetry_active
                    || !self.policy.wait_for_runtime_done()
                    || (*deadline_ms > 0 && now_ms >= cutoff);
                if !done {
                    let until = if *deadline_ms > 0 { Some(cutoff) } else { None };
                    return Action::Wait(until);
                }
                let rd = *runtime_done;
                let end = boundary_flush_deadline(now_ms, *deadline_ms, self.flush_timeout_ms);
                if let Some(end) = end.filter(|_| self.sink.pending() && self.policy.flush_at_boundary(now_ms, rd)) {
                    self.phase = Phase::ReadyForNext;
                    return Action::Flush { deadline_ms: end, final_flush: false, background: false };
                }
                self.phase = Phase::InNext;
                Action::CallNext
            }
            Phase::ReadyForNext => {
                self.phase = Phase::InNext;
                Action::CallNext
            }
            Phase::ShuttingDown { deadline_ms, report_wait_until, flushed, .. } => {
                let latest_exit = *deadline_ms - SHUTDOWN_MARGIN_MS;
                if *flushed || now_ms >= latest_exit {
                    self.phase = Phase::Done;
                    return Action::Exit;
                }
                if self.in_flight {
                    // (its sockets are cut at latest_exit: see io_cutoff)
                    return Action::Wait(Some(latest_exit));
                }
                if waiting_for_reports && now_ms < *report_wait_until {
                    return Action::Wait(Some(*report_wait_until));
                }
                *flushed = true;
                if self.sink.pending() {
                    return Action::Flush { deadline_ms: latest_exit, final_flush: true, background: false };
                }
                self.phase = Phase::Done;
                Action::Exit
            }
            Phase::Done => Action::Exit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::telemetry::Kind;

    /// A sink that always has something to flush.
    struct Busy(bool);
    impl Sink for Busy {
        fn on_invoke(&mut self, _: &str, _: i64) {
            self.0 = true;
        }
        fn on_record(&mut self, _: &Record, _: Option<&str>) {}
        fn on_shutdown(&mut self, _: i64) {}
        fn pending(&self) -> bool {
            self.0
        }
    }

    fn rec(kind: Kind) -> Record {
        Record { time_ms: None, kind }
    }
    fn runtime_done(rid: &str) -> Record {
        rec(Kind::RuntimeDone {
            request_id: Some(rid.into()),
            status: Some("success".into()),
            error_type: None,
            duration_ms: Some(5.0),
            produced_bytes: None,
            spans: vec![],
        })
    }
    fn report(rid: &str) -> Record {
        rec(Kind::Report {
            request_id: Some(rid.into()),
            status: None,
            error_type: None,
            duration_ms: Some(6.0),
            billed_duration_ms: Some(6.0),
            memory_size_mb: Some(128),
            max_memory_used_mb: Some(60),
            init_duration_ms: None,
            restore_duration_ms: None,
            response_latency_ms: None,
        })
    }
    fn invoke(rid: &str, deadline: i64) -> Event {
        Event::Invoke { request_id: rid.into(), deadline_ms: deadline, invoked_function_arn: None }
    }

    #[test]
    fn first_poll_calls_next_then_waits() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        assert_eq!(c.poll(0), Action::CallNext);
        assert_eq!(c.poll(1), Action::Wait(None));
    }

    #[test]
    fn next_waits_for_runtime_done_then_flushes() {
        let mut c = Core::new(false, FlushAtEnd, Busy(false));
        assert_eq!(c.poll(0), Action::CallNext);
        c.on_event(invoke("a", 10_000), 100);
        assert_eq!(c.poll(100), Action::Wait(Some(10_000 - INVOKE_MARGIN_MS)));
        c.on_records(&[runtime_done("other")], 0);
        assert_eq!(c.poll(101), Action::Wait(Some(10_000 - INVOKE_MARGIN_MS)));
        c.on_records(&[runtime_done("a")], 0);
        assert!(matches!(c.poll(150), Action::Flush { final_flush: false, .. }));
        c.flushed(160);
        assert_eq!(c.poll(160), Action::CallNext);
        assert_eq!(c.poll(161), Action::Wait(None));
    }

    #[test]
    fn no_flush_when_nothing_pending() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.poll(0);
        c.on_event(invoke("a", 10_000), 100);
        c.on_records(&[runtime_done("a")], 0);
        assert_eq!(c.poll(150), Action::CallNext);
    }

    #[test]
    fn deadline_bounds_the_wait_for_runtime_done() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.poll(0);
        c.on_event(invoke("a", 1_000), 100);
        // `next` goes out INVOKE_MARGIN_MS before the deadline
        assert_eq!(c.poll(799), Action::Wait(Some(1_000 - INVOKE_MARGIN_MS)));
        assert_eq!(c.poll(800), Action::CallNext);
    }

    #[test]
    fn boundary_flush_deadline_respects_the_invocation() {
        // DD_FLUSH_TIMEOUT alone when the deadline is far (or unknown)
        assert_eq!(boundary_flush_deadline(1_000, 100_000, 30_000), Some(31_000));
        assert_eq!(boundary_flush_deadline(1_000, 0, 30_000), Some(31_000));
        // the deadline minus the margin when it comes first
        assert_eq!(boundary_flush_deadline(1_000, 3_000, 30_000), Some(3_000 - INVOKE_MARGIN_MS));
        // too little left: no flush at all
        assert_eq!(boundary_flush_deadline(1_000, 1_000 + INVOKE_MARGIN_MS + MIN_FLUSH_MS - 1, 30_000), None);
        assert_eq!(boundary_flush_deadline(1_000, 1_000 + INVOKE_MARGIN_MS + MIN_FLUSH_MS, 30_000), Some(1_000 + MIN_FLUSH_MS));
        assert_eq!(boundary_flush_deadline(5_000, 3_000, 30_000), None, "deadline passed");
    }

    #[test]
    fn a_flush_at_the_boundary_ends_before_the_invocation_deadline() {
        let mut c = Core::new(false, FlushAtEnd, Busy(false));
        c.flush_timeout_ms = 30_000;
        c.poll(0);
        c.on_event(invoke("a", 3_000), 100);
        assert_eq!(c.invocation_cutoff(), Some(3_000 - INVOKE_MARGIN_MS));
        c.on_records(&[runtime_done("a")], 0);
        assert_eq!(c.poll(150), Action::Flush { deadline_ms: 2_800, final_flush: false, background: false });
        c.flushed(2_800);
        assert_eq!(c.poll(2_800), Action::CallNext);
        // runtimeDone too close to the deadline: `next` at once, the data kept
        c.on_event(invoke("b", 5_000), 3_000);
        c.on_records(&[runtime_done("b")], 0);
        assert_eq!(c.poll(4_790), Action::CallNext);
        assert!(c.sink.pending());
    }

    #[test]
    fn without_telemetry_next_does_not_wait() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.set_telemetry_active(false);
        c.poll(0);
        c.on_event(invoke("a", 100_000), 100);
        assert_eq!(c.poll(100), Action::CallNext);
    }

    #[test]
    fn shutdown_waits_for_last_report_then_final_flush() {
        let mut c = Core::new(false, FlushAtEnd, Busy(false));
        c.poll(0);
        c.on_event(invoke("a", 10_000), 100);
        c.on_records(&[runtime_done("a")], 0);
        assert!(matches!(c.poll(110), Action::Flush { .. }));
        c.flushed(111);
        assert_eq!(c.poll(111), Action::CallNext);
        c.on_event(Event::Shutdown { reason: "spindown".into(), deadline_ms: 3_000 }, 1_000);
        // report for "a" still missing: wait up to 300 ms
        assert_eq!(c.poll(1_000), Action::Wait(Some(1_300)));
        c.on_records(&[report("a")], 0);
        assert_eq!(c.poll(1_050), Action::Flush { deadline_ms: 2_800, final_flush: true, background: false });
        c.flushed(1_100);
        assert_eq!(c.poll(1_100), Action::Exit);
        assert!(c.is_done());
    }

    #[test]
    fn shutdown_report_wait_is_bounded() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.poll(0);
        c.on_event(invoke("a", 10_000), 100);
        c.on_records(&[runtime_done("a")], 0);
        c.poll(110);
        c.on_event(Event::Shutdown { reason: "SPINDOWN".into(), deadline_ms: 1_400 }, 1_000);
        // 300 ms wait capped by deadline - margin = 1_200
        assert_eq!(c.poll(1_000), Action::Wait(Some(1_200)));
        assert_eq!(c.poll(1_200), Action::Exit);
    }

    #[test]
    fn shutdown_without_invocations_exits_once_init_report_is_in() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.poll(0);
        c.on_records(
            &[rec(Kind::InitReport {
                initialization_type: None,
                phase: None,
                status: None,
                error_type: None,
                duration_ms: Some(50.0),
            })],
            0,
        );
        c.on_event(Event::Shutdown { reason: "whatever".into(), deadline_ms: 2_000 }, 10);
        assert_eq!(c.poll(10), Action::Exit);
    }

    #[test]
    fn shutdown_right_after_init_waits_for_the_init_report() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.poll(0);
        c.on_event(Event::Shutdown { reason: "spindown".into(), deadline_ms: 2_000 }, 10);
        assert_eq!(c.poll(10), Action::Wait(Some(310)));
        assert_eq!(c.poll(310), Action::Exit);
        // without telemetry there is nothing to wait for
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.set_telemetry_active(false);
        c.poll(0);
        c.on_event(Event::Shutdown { reason: "spindown".into(), deadline_ms: 2_000 }, 10);
        assert_eq!(c.poll(10), Action::Exit);
    }

    #[test]
    fn unknown_event_goes_back_to_next() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.poll(0);
        c.on_event(Event::Unknown("RESTORE".into()), 10);
        assert_eq!(c.poll(10), Action::CallNext);
    }

    #[test]
    fn managed_instances_flush_on_a_timer() {
        let mut c = Core::new(true, FlushAtEnd, Busy(true));
        c.init_done(0);
        assert_eq!(c.poll(0), Action::CallNext);
        assert_eq!(c.poll(1), Action::Wait(Some(MANAGED_FLUSH_INTERVAL_MS)));
        assert!(matches!(c.poll(MANAGED_FLUSH_INTERVAL_MS), Action::Flush { final_flush: false, .. }));
        // platform.start tracks reports for the shutdown wait
        c.on_records(
            &[rec(Kind::Start { request_id: Some("m1".into()), version: None })],
            0,
        );
        c.flushed(MANAGED_FLUSH_INTERVAL_MS + 10);
        c.on_event(Event::Shutdown { reason: "spindown".into(), deadline_ms: 20_000 }, 11_000);
        assert_eq!(c.poll(11_000), Action::Wait(Some(11_300)));
    }

    #[test]
    fn managed_timer_flush_runs_in_the_background_and_shutdown_waits_for_it() {
        let mut c = Core::new(true, FlushAtEnd, Busy(true));
        c.init_done(0);
        c.poll(0);
        let t = MANAGED_FLUSH_INTERVAL_MS;
        assert_eq!(
            c.poll(t),
            Action::Flush { deadline_ms: t + MANAGED_FLUSH_INTERVAL_MS / 2, final_flush: false, background: true }
        );
        // not over yet: no second timer flush, however long it takes
        assert_eq!(c.poll(2 * t), Action::Wait(Some(3 * t)));
        assert_eq!(c.io_cutoff(), None);
        // SHUTDOWN while it runs: its sockets are cut halfway to deadline - margin, the core waits
        c.on_event(Event::Shutdown { reason: "spindown".into(), deadline_ms: 2 * t + 2_000 }, 2 * t);
        let latest = 2 * t + 2_000 - SHUTDOWN_MARGIN_MS;
        assert_eq!(c.io_cutoff(), Some(2 * t + 900));
        assert_eq!(c.poll(2 * t + 1), Action::Wait(Some(latest)));
        // it ends: the final flush gets what is left of the budget, the cutoff moves to the latest exit
        c.flushed(2 * t + 500);
        assert_eq!(c.io_cutoff(), Some(latest));
        assert_eq!(c.poll(2 * t + 500), Action::Flush { deadline_ms: latest, final_flush: true, background: false });
        c.flushed(2 * t + 600);
        assert_eq!(c.poll(2 * t + 600), Action::Exit);

        // a background flush that never reports back: exit at deadline - margin all the same
        let mut c = Core::new(true, FlushAtEnd, Busy(true));
        c.init_done(0);
        c.poll(0);
        assert!(matches!(c.poll(t), Action::Flush { background: true, .. }));
        c.on_event(Event::Shutdown { reason: "spindown".into(), deadline_ms: t + 2_000 }, t + 1);
        assert_eq!(c.poll(t + 1), Action::Wait(Some(t + 1_800)));
        assert_eq!(c.poll(t + 1_800), Action::Exit);
    }

    #[test]
    fn managed_instances_count_invocations_from_platform_start() {
        let start = |rid: &str| rec(Kind::Start { request_id: Some(rid.into()), version: None });
        let mut c = Core::new(true, FlushAtEnd, NullSink);
        c.on_records(&[start("m1"), start("m2"), report("m1")], 0);
        assert_eq!(c.stats.invocations, 2);
        // on demand, INVOKE counts them (platform.start is not counted again)
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.poll(0);
        c.on_event(invoke("a", 10_000), 1);
        c.on_records(&[start("a")], 0);
        assert_eq!(c.stats.invocations, 1);
    }

    #[test]
    fn stats_count_kinds() {
        let mut c = Core::new(false, FlushAtEnd, NullSink);
        c.on_records(
            &[
                runtime_done("a"),
                rec(Kind::Unknown { type_: "platform.future".into() }),
                rec(Kind::Function(Default::default())),
                rec(Kind::LogsDropped { reason: None, dropped_records: Some(7), dropped_bytes: None }),
            ],
            2,
        );
        assert_eq!(c.stats.records, 4);
        assert_eq!(c.stats.rejected, 2);
        assert_eq!(c.stats.unknown, 1);
        assert_eq!(c.stats.function_logs, 1);
        assert_eq!(c.stats.logs_dropped_by_platform, 7);
    }
}
