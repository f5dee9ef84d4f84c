//! Enhanced metrics (`aws.lambda.enhanced.*`) as a state machine fed by
//! INVOKE, telemetry records and SHUTDOWN; output is a `SketchPayload`
//! protobuf body for `POST /api/beta/sketches`.
//!
//! Every metric is a distribution, as in Datadog's extension. Points are
//! aggregated into one [`Sketch`] per (metric, cold_start, 10-second bucket)
//! (the agent's bucketing; the other tags are the same for the whole
//! sandbox), and one protobuf `Sketch` per (metric, cold_start) carries one
//! `Dogsketch` per bucket.
//!
//! Decisions (and their trade-offs):
//! * Point time: the record's `time` (else the latest time seen), so late
//!   records (a `platform.report` delivered during the next invocation) land
//!   in the bucket they describe. INVOKE and SHUTDOWN use the caller's clock.
//! * `cold_start:true` only on the points of the sandbox's first request
//!   (the first request id seen via INVOKE or `platform.start`) and on
//!   `init_duration`; `shutdowns`/`unused_init` carry `cold_start:false`.
//!   Proactive initialisation is not detected.
//! * Sandbox tags learned from telemetry (`runtime` from `initStart`'s
//!   `runtimeVersion`, `init_type` from `initializationType`) are added when
//!   a payload is built, unless the caller's static tags already carry that
//!   key; so the order of INVOKE and `initStart` does not matter.
//! * All tags are lower-cased (Datadog's intake lower-cases tags anyway; the
//!   extension lower-cases its values).
//! * `host` is left empty, as Datadog's extension does for its distribution
//!   points: Lambda has no host; the function is identified by its tags.
//! * `out_of_memory` counts once per request id, from whichever signal comes
//!   first: `errorType` `Runtime.OutOfMemory` (runtimeDone or report),
//!   `maxMemoryUsedMB == memorySizeMB`, or a runtime's OOM log line (the
//!   substrings Datadog's agent looks for).
//! * Memory is bounded: at most [`MAX_OPEN_REQUESTS`] requests remembered,
//!   [`MAX_SERIES`] (metric, cold, bucket) sketches, and [`MAX_PENDING_BYTES`]
//!   of payloads put back after a failed send (oldest dropped, counted).

use std::collections::{BTreeMap, VecDeque};

use crate::wire::proto;
use crate::datadog::sketch::Sketch;
use crate::lambda::telemetry::{Kind, Record};

pub const INVOCATIONS: &str = "aws.lambda.enhanced.invocations";
pub const ERRORS: &str = "aws.lambda.enhanced.errors";
pub const TIMEOUTS: &str = "aws.lambda.enhanced.timeouts";
pub const OUT_OF_MEMORY: &str = "aws.lambda.enhanced.out_of_memory";
pub const INIT_DURATION: &str = "aws.lambda.enhanced.init_duration";
pub const DURATION: &str = "aws.lambda.enhanced.duration";
pub const BILLED_DURATION: &str = "aws.lambda.enhanced.billed_duration";
pub const RUNTIME_DURATION: &str = "aws.lambda.enhanced.runtime_duration";
pub const POST_RUNTIME_DURATION: &str = "aws.lambda.enhanced.post_runtime_duration";
pub const PRODUCED_BYTES: &str = "aws.lambda.enhanced.produced_bytes";
pub const MAX_MEMORY_USED: &str = "aws.lambda.enhanced.max_memory_used";
pub const MEMORY_SIZE: &str = "aws.lambda.enhanced.memorysize";
pub const ESTIMATED_COST: &str = "aws.lambda.enhanced.estimated_cost";
pub const SHUTDOWNS: &str = "aws.lambda.enhanced.shutdowns";
pub const UNUSED_INIT: &str = "aws.lambda.enhanced.unused_init";

/// Per-request price (USD) and per GB-second prices by architecture.
pub const BASE_INVOCATION_PRICE: f64 = 0.0000002;
pub const X86_64_PRICE_PER_GB_S: f64 = 0.0000166667;
pub const ARM64_PRICE_PER_GB_S: f64 = 0.0000133334;

/// The intake takes at most this many sketches per payload.
pub const MAX_SKETCHES_PER_PAYLOAD: usize = 1000;
/// Bucket width of the agent's aggregation.
pub const BUCKET_SECONDS: i64 = 10;
pub const MAX_OPEN_REQUESTS: usize = 256;
pub const MAX_SERIES: usize = 4096;
pub const MAX_PENDING_BYTES: usize = 1 << 20;

/// What the caller knows at construction.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Static tags as `"k:v"`: functionname, region, account_id, memorysize,
    /// architecture, resource, executedversion, env/service/version, DD_TAGS
    /// (and runtime/init_type when known from the environment).
    pub tags: Vec<String>,
    /// The function runs on arm64 (price per GB-s); else x86_64.
    pub arm64: bool,
    /// Lambda Managed Instances: count invocations at `platform.start`
    /// (there is no INVOKE event).
    pub managed_instances: bool,
}

#[derive(Debug)]
struct Request {
    /// [`id_hash`] of `id`: the lookup compares this first.
    hash: u64,
    id: String,
    runtime_ms: Option<f64>,
    oom: bool,
}

/// The enhanced-metrics state machine. See the module docs.
#[derive(Debug)]
pub struct Metrics {
    tags: Vec<String>,
    arm64: bool,
    managed: bool,
    /// Learned from `platform.initStart` (`runtime:...`, `init_type:...`).
    learned: Vec<String>,
    series: BTreeMap<(&'static str, bool, i64), Sketch>,
    requests: VecDeque<Request>,
    first_request: Option<String>,
    current: Option<String>,
    invoked: bool,
    init_duration_sent: bool,
    oom_outside_request: bool,
    last_ms: i64,
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    dropped_payloads: u64,
    dropped_sketches: u64,
}

impl Metrics {
    pub fn new(opts: Options) -> Self {
        Metrics {
            tags: opts.tags.iter().map(|t| t.to_lowercase()).collect(),
            arm64: opts.arm64,
            managed: opts.managed_instances,
            learned: Vec::new(),
            series: BTreeMap::new(),
            requests: VecDeque::new(),
            first_request: None,
            current: None,
            invoked: false,
            init_duration_sent: false,
            oom_outside_request: false,
            last_ms: 0,
            pending: VecDeque::new(),
            pending_bytes: 0,
            dropped_payloads: 0,
            dropped_sketches: 0,
        }
    }

    /// An INVOKE event from `next`, at the caller's clock `now_ms`.
    pub fn on_invoke(&mut self, request_id: &str, now_ms: i64) {
        self.last_ms = now_ms;
        self.start_request(request_id);
        if !self.managed {
            self.invoked = true;
            let cold = self.is_cold(Some(request_id));
            self.add(INVOCATIONS, 1.0, cold, now_ms);
        }
    }

    /// SHUTDOWN, at the caller's clock `now_ms`.
    pub fn on_shutdown(&mut self, now_ms: i64) {
        self.last_ms = now_ms;
        self.add(SHUTDOWNS, 1.0, false, now_ms);
        if !self.invoked {
            self.add(UNUSED_INIT, 1.0, false, now_ms);
        }
    }

    /// One telemetry record (any type; the irrelevant ones are ignored).
    pub fn on_record(&mut self, rec: &Record) {
        let t = rec.time_ms.unwrap_or(self.last_ms);
        self.last_ms = t;
        match &rec.kind {
            Kind::InitStart {
                initialization_type,
                runtime_version,
                ..
            } => {
                if let Some(rt) = runtime_version.as_deref().and_then(runtime_tag) {
                    self.learn("runtime", &rt);
                }
                if let Some(it) = initialization_type {
                    self.learn("init_type", it);
                }
            }
            Kind::InitReport {
                duration_ms: Some(ms),
                ..
            } => self.init_duration(*ms, t),
            Kind::Start {
                request_id: Some(rid),
                ..
            } => {
                self.start_request(rid);
                if self.managed {
                    self.invoked = true;
                    let cold = self.is_cold(Some(rid));
                    self.add(INVOCATIONS, 1.0, cold, t);
                }
            }
            Kind::RuntimeDone {
                request_id,
                status,
                error_type,
                duration_ms,
                produced_bytes,
                ..
            } => {
                let rid = request_id.as_deref();
                let cold = self.is_cold(rid);
                self.outcome(status.as_deref(), cold, t);
                if is_oom_error_type(error_type.as_deref()) {
                    self.out_of_memory(rid, t);
                }
                if let Some(ms) = *duration_ms {
                    self.add(RUNTIME_DURATION, ms, cold, t);
                    if let Some(rid) = rid {
                        self.request(rid).runtime_ms = Some(ms);
                    }
                }
                if let Some(b) = *produced_bytes {
                    self.add(PRODUCED_BYTES, b as f64, cold, t);
                }
            }
            Kind::Report {
                request_id,
                status,
                error_type,
                duration_ms,
                billed_duration_ms,
                memory_size_mb,
                max_memory_used_mb,
                init_duration_ms,
                response_latency_ms,
                ..
            } => {
                let rid = request_id.as_deref();
                let cold = self.is_cold(rid);
                if self.managed {
                    // Managed instances send no platform.runtimeDone: the report
                    // stands in for it, as in bottlecap's
                    // handle_managed_instance_report (lifecycle/invocation/processor.rs:944-966:
                    // runtime duration = the responseLatency span, else durationMs;
                    // then on_platform_runtime_done, :574-582: errors, timeouts).
                    self.outcome(status.as_deref(), cold, t);
                    if let Some(ms) = response_latency_ms.or(*duration_ms) {
                        self.add(RUNTIME_DURATION, ms, cold, t);
                    }
                }
                if let Some(ms) = *duration_ms {
                    self.add(DURATION, ms / 1000.0, cold, t);
                    let runtime = rid.and_then(|r| self.request(r).runtime_ms);
                    if let Some(runtime) = runtime {
                        self.add(POST_RUNTIME_DURATION, ms - runtime, cold, t);
                    }
                }
                if let Some(ms) = *billed_duration_ms {
                    self.add(BILLED_DURATION, ms / 1000.0, cold, t);
                }
                if let Some(mb) = *memory_size_mb {
                    self.add(MEMORY_SIZE, mb as f64, cold, t);
                }
                if let Some(mb) = *max_memory_used_mb {
                    self.add(MAX_MEMORY_USED, mb as f64, cold, t);
                }
                if let (Some(billed), Some(mem)) = (*billed_duration_ms, *memory_size_mb) {
                    self.add(ESTIMATED_COST, self.cost(billed, mem), cold, t);
                }
                let full = matches!((max_memory_used_mb, memory_size_mb), (Some(u), Some(m)) if u >= m && *m > 0);
                if full || is_oom_error_type(error_type.as_deref()) {
                    self.out_of_memory(rid, t);
                }
                if let Some(ms) = *init_duration_ms {
                    self.init_duration(ms, t);
                }
            }
            Kind::Function(log) if is_oom_line(&log.message) => {
                let rid = log.request_id.clone().or_else(|| self.current.clone());
                self.out_of_memory(rid.as_deref(), t);
            }
            _ => {}
        }
    }

    /// `errors` for any status but success, and `timeouts` for a timeout.
    fn outcome(&mut self, status: Option<&str>, cold: bool, t: i64) {
        if let Some(status) = status {
            if !status.eq_ignore_ascii_case("success") {
                self.add(ERRORS, 1.0, cold, t);
            }
            if status.eq_ignore_ascii_case("timeout") {
                self.add(TIMEOUTS, 1.0, cold, t);
            }
        }
    }

    /// Whether anything is waiting to be shipped.
    pub fn pending(&self) -> bool {
        !self.series.is_empty() || !self.pending.is_empty()
    }

    /// The next protobuf body for `/api/beta/sketches` (at most
    /// [`MAX_SKETCHES_PER_PAYLOAD`] sketches), or `None` when nothing is left.
    /// Drains what it returns: call until `None`; hand a body whose send
    /// failed back with [`Metrics::put_back`].
    pub fn take_payload(&mut self) -> Option<Vec<u8>> {
        if let Some(p) = self.pending.pop_front() {
            self.pending_bytes -= p.len();
            return Some(p);
        }
        if self.series.is_empty() {
            return None;
        }
        let mut tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        for t in &self.learned {
            let key = tag_key(t);
            if !self.tags.iter().any(|s| tag_key(s) == key) {
                tags.push(t);
            }
        }
        let mut out = Vec::with_capacity(256 * self.series.len().min(64));
        let mut written = 0;
        while written < MAX_SKETCHES_PER_PAYLOAD {
            let Some((&(metric, cold, _), _)) = self.series.first_key_value() else {
                break;
            };
            let mut points = Vec::new();
            while let Some(e) = self.series.first_entry() {
                if (e.key().0, e.key().1) != (metric, cold) {
                    break;
                }
                let ts = e.key().2;
                points.push((ts, e.remove()));
            }
            let cold_tag = if cold {
                "cold_start:true"
            } else {
                "cold_start:false"
            };
            let all_tags = tags.iter().copied().chain([cold_tag]);
            proto::write_sketch(
                &mut out,
                metric,
                "",
                all_tags,
                points.iter().map(|(t, s)| (*t, s)),
            );
            written += 1;
        }
        Some(out)
    }

    /// Gives back a body from [`Metrics::take_payload`] whose send failed;
    /// it is returned first by the next `take_payload`. Several bodies go
    /// back last-taken first (or stop sending at the first failure), so the
    /// front is always the oldest. Past [`MAX_PENDING_BYTES`] the oldest
    /// bodies are dropped (counted), keeping at least one.
    pub fn put_back(&mut self, payload: Vec<u8>) {
        self.pending_bytes += payload.len();
        self.pending.push_front(payload);
        while self.pending_bytes > MAX_PENDING_BYTES && self.pending.len() > 1 {
            let old = self.pending.pop_front().unwrap_or_default();
            self.pending_bytes -= old.len();
            self.dropped_payloads += 1;
        }
    }

    /// Payloads dropped after failed sends, and sketches dropped because
    /// [`MAX_SERIES`] was reached.
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_payloads, self.dropped_sketches)
    }

    /// Adds a value to any distribution (e.g. the extension's own counters),
    /// tagged like the enhanced metrics with `cold_start:false`.
    pub fn distribution(&mut self, metric: &'static str, value: f64, time_ms: i64) {
        self.add(metric, value, false, time_ms);
    }

    fn add(&mut self, metric: &'static str, value: f64, cold: bool, time_ms: i64) {
        let bucket = time_ms.div_euclid(BUCKET_SECONDS * 1000) * BUCKET_SECONDS;
        let key = (metric, cold, bucket);
        if self.series.len() >= MAX_SERIES && !self.series.contains_key(&key) {
            // Drop the oldest bucket's sketch to make room.
            let oldest = self.series.keys().min_by_key(|k| k.2).copied();
            if let Some(k) = oldest {
                self.series.remove(&k);
                self.dropped_sketches += 1;
            }
        }
        self.series.entry(key).or_default().insert(value);
    }

    fn cost(&self, billed_ms: f64, memory_mb: u64) -> f64 {
        let price = if self.arm64 {
            ARM64_PRICE_PER_GB_S
        } else {
            X86_64_PRICE_PER_GB_S
        };
        BASE_INVOCATION_PRICE + billed_ms / 1000.0 * (memory_mb as f64 / 1024.0) * price
    }

    fn init_duration(&mut self, ms: f64, t: i64) {
        if !self.init_duration_sent {
            self.init_duration_sent = true;
            self.add(INIT_DURATION, ms / 1000.0, true, t);
        }
    }

    fn out_of_memory(&mut self, rid: Option<&str>, t: i64) {
        let first = match rid {
            Some(rid) => !std::mem::replace(&mut self.request(rid).oom, true),
            None => !std::mem::replace(&mut self.oom_outside_request, true),
        };
        if first {
            let cold = self.is_cold(rid);
            self.add(OUT_OF_MEMORY, 1.0, cold, t);
        }
    }

    fn start_request(&mut self, rid: &str) {
        if self.first_request.is_none() {
            self.first_request = Some(rid.to_string());
        }
        if self.current.as_deref() != Some(rid) {
            self.current = Some(rid.to_string());
        }
        self.request(rid);
    }

    fn is_cold(&self, rid: Option<&str>) -> bool {
        rid.is_some() && self.first_request.as_deref() == rid
    }

    fn request(&mut self, rid: &str) -> &mut Request {
        // A new request id is compared with every remembered one (up to
        // MAX_OPEN_REQUESTS): hashes first, not 256 string comparisons.
        let hash = id_hash(rid);
        let i = match self
            .requests
            .iter()
            .rposition(|r| r.hash == hash && r.id == rid)
        {
            Some(i) => i,
            None => {
                if self.requests.len() >= MAX_OPEN_REQUESTS {
                    self.requests.pop_front();
                }
                self.requests.push_back(Request {
                    hash,
                    id: rid.to_string(),
                    runtime_ms: None,
                    oom: false,
                });
                self.requests.len() - 1
            }
        };
        &mut self.requests[i]
    }

    fn learn(&mut self, key: &str, value: &str) {
        let tag = format!("{key}:{value}").to_lowercase();
        self.learned.retain(|t| tag_key(t) != key);
        self.learned.push(tag);
    }
}

/// FNV-1a: cheap, and good enough to tell request ids apart before comparing them.
fn id_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn tag_key(tag: &str) -> &str {
    tag.split(':').next().unwrap_or(tag)
}

fn is_oom_error_type(e: Option<&str>) -> bool {
    e.is_some_and(|e| e.eq_ignore_ascii_case("Runtime.OutOfMemory"))
}

/// The out-of-memory messages of the common runtimes (the substrings
/// Datadog's agent matches).
const OOM_LINES: [&str; 7] = [
    "fatal error: runtime: out of memory",       // Go
    "java.lang.OutOfMemoryError",                // Java
    "JavaScript heap out of memory",             // Node.js
    "Runtime exited with error: signal: killed", // any runtime killed at the limit
    "MemoryError",                               // Python
    "failed to allocate memory (NoMemoryError)", // Ruby
    "OutOfMemoryException",                      // .NET
];

/// Whether a function log line reports that the runtime ran out of memory.
pub fn is_oom_line(line: &str) -> bool {
    // One cheap pass rejects almost every line: each pattern contains one of these.
    (line.contains("emory") || line.contains("killed"))
        && OOM_LINES.iter().any(|p| line.contains(p))
}

/// `runtime` tag from `initStart.runtimeVersion` (`python:3.12.v16` →
/// `python3.12`, `nodejs:20.v13` → `nodejs20.x`, `provided:al2023.v28` →
/// `provided.al2023`), matching the `AWS_Lambda_<runtime>` names that
/// Datadog's extension reports.
pub fn runtime_tag(runtime_version: &str) -> Option<String> {
    let (family, rest) = runtime_version.split_once(':')?;
    let version = rest.split(".v").next().unwrap_or(rest);
    if family.is_empty() || version.is_empty() {
        return None;
    }
    Some(match family {
        "nodejs" => format!("nodejs{version}.x"),
        "provided" => format!("provided.{version}"),
        _ => format!("{family}{version}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto::tests::{decode, Dogsketch};
    use crate::lambda::telemetry::Log;

    const T0: i64 = 1_700_000_000_000; // a multiple of 10 s
    const RID1: &str = "11111111-aaaa";
    const RID2: &str = "22222222-bbbb";

    fn static_tags() -> Vec<String> {
        [
            "functionname:My-Func",
            "region:us-east-1",
            "account_id:123456789012",
            "memorysize:128",
        ]
        .map(String::from)
        .to_vec()
    }
    fn metrics() -> Metrics {
        Metrics::new(Options {
            tags: static_tags(),
            ..Options::default()
        })
    }
    fn rec(t: i64, kind: Kind) -> Record {
        Record {
            time_ms: Some(t),
            kind,
        }
    }
    fn start(t: i64, rid: &str) -> Record {
        rec(
            t,
            Kind::Start {
                request_id: Some(rid.into()),
                version: Some("$LATEST".into()),
            },
        )
    }
    fn runtime_done(t: i64, rid: &str, status: &str, error: Option<&str>, ms: f64) -> Record {
        rec(
            t,
            Kind::RuntimeDone {
                request_id: Some(rid.into()),
                status: Some(status.into()),
                error_type: error.map(String::from),
                duration_ms: Some(ms),
                produced_bytes: Some(42),
                spans: vec![],
            },
        )
    }
    fn report(t: i64, rid: &str, ms: f64, billed: f64, used: u64, init: Option<f64>) -> Record {
        rec(
            t,
            Kind::Report {
                request_id: Some(rid.into()),
                status: Some("success".into()),
                error_type: None,
                duration_ms: Some(ms),
                billed_duration_ms: Some(billed),
                memory_size_mb: Some(128),
                max_memory_used_mb: Some(used),
                init_duration_ms: init,
                restore_duration_ms: None,
                response_latency_ms: None,
            },
        )
    }
    fn init_start(t: i64) -> Record {
        rec(
            t,
            Kind::InitStart {
                initialization_type: Some("on-demand".into()),
                phase: Some("init".into()),
                runtime_version: Some("python:3.12.v16".into()),
                runtime_version_arn: None,
                function_name: None,
                function_version: None,
                instance_id: None,
                instance_max_memory: None,
            },
        )
    }
    fn init_report(t: i64, ms: f64) -> Record {
        rec(
            t,
            Kind::InitReport {
                initialization_type: Some("on-demand".into()),
                phase: Some("init".into()),
                status: None,
                error_type: None,
                duration_ms: Some(ms),
            },
        )
    }
    fn log(t: i64, msg: &str, rid: Option<&str>) -> Record {
        rec(
            t,
            Kind::Function(Log {
                message: msg.into(),
                request_id: rid.map(String::from),
                ..Log::default()
            }),
        )
    }

    /// (metric, cold_start) → decoded dogsketches, after draining everything.
    struct Out(Vec<(String, Vec<String>, Vec<Dogsketch>)>);
    impl Out {
        fn drain(m: &mut Metrics) -> Out {
            let mut v = Vec::new();
            while let Some(body) = m.take_payload() {
                for s in decode(&body).sketches {
                    assert_eq!(s.host, "");
                    v.push((s.metric, s.tags, s.dogsketches));
                }
            }
            Out(v)
        }
        fn get(&self, metric: &str, cold: bool) -> Vec<&Dogsketch> {
            let tag = format!("cold_start:{cold}");
            self.0
                .iter()
                .filter(|(m, tags, _)| m == metric && tags.contains(&tag))
                .flat_map(|(_, _, d)| d)
                .collect()
        }
        /// (count, sum) over both cold_start values.
        fn total(&self, metric: &str) -> (i64, f64) {
            let mut r = (0, 0.0);
            for d in self
                .get(metric, true)
                .into_iter()
                .chain(self.get(metric, false))
            {
                r.0 += d.cnt;
                r.1 += d.sum;
            }
            r
        }
        fn has(&self, metric: &str) -> bool {
            self.total(metric).0 > 0
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    /// Cold start (init 250 ms) then a successful invocation.
    #[test]
    fn cold_start_success() {
        let mut m = metrics();
        m.on_record(&init_start(T0));
        m.on_record(&init_report(T0 + 250, 250.0));
        m.on_invoke(RID1, T0 + 300);
        m.on_record(&start(T0 + 301, RID1));
        m.on_record(&runtime_done(T0 + 400, RID1, "success", None, 99.0));
        m.on_record(&report(T0 + 420, RID1, 110.5, 111.0, 64, Some(249.0)));
        let o = Out::drain(&mut m);

        let inv = o.get(INVOCATIONS, true);
        assert_eq!((inv.len(), inv[0].cnt, inv[0].sum), (1, 1, 1.0));
        assert_eq!(inv[0].ts, T0 / 1000);
        assert!(o.get(INVOCATIONS, false).is_empty());
        assert!(!o.has(ERRORS) && !o.has(TIMEOUTS) && !o.has(OUT_OF_MEMORY));
        // initReport wins; the report's initDurationMs is only a fallback.
        assert_eq!(o.total(INIT_DURATION), (1, 0.25));
        assert_eq!(o.get(INIT_DURATION, true).len(), 1);
        assert_eq!(o.total(RUNTIME_DURATION), (1, 99.0));
        assert_eq!(o.total(PRODUCED_BYTES), (1, 42.0));
        assert_eq!(o.total(DURATION), (1, 0.1105));
        assert_eq!(o.total(BILLED_DURATION), (1, 0.111));
        assert!(close(o.total(POST_RUNTIME_DURATION).1, 11.5));
        assert_eq!(o.total(MEMORY_SIZE), (1, 128.0));
        assert_eq!(o.total(MAX_MEMORY_USED), (1, 64.0));
        let cost = 0.0000002 + 0.111 * 0.125 * 0.0000166667;
        assert!(close(o.total(ESTIMATED_COST).1, cost));
        assert!(
            o.get(DURATION, true).len() == 1,
            "report points of the first request are cold"
        );

        // Tags: static (lower-cased), learned, cold_start.
        let (_, tags, _) = o.0.iter().find(|(n, _, _)| n == INVOCATIONS).unwrap();
        for t in [
            "functionname:my-func",
            "region:us-east-1",
            "runtime:python3.12",
            "init_type:on-demand",
            "cold_start:true",
        ] {
            assert!(tags.iter().any(|x| x == t), "{t} missing from {tags:?}");
        }
        assert!(m.take_payload().is_none() && !m.pending());
    }

    /// Second (warm) invocation: cold_start false; init_duration not repeated.
    #[test]
    fn warm_invocation_and_init_fallback() {
        let mut m = metrics();
        m.on_invoke(RID1, T0);
        m.on_record(&runtime_done(T0 + 50, RID1, "success", None, 40.0));
        // No initReport: the first report's initDurationMs is used, once.
        m.on_record(&report(T0 + 60, RID1, 45.0, 46.0, 60, Some(300.0)));
        m.on_invoke(RID2, T0 + 15_000);
        m.on_record(&runtime_done(T0 + 15_050, RID2, "success", None, 30.0));
        m.on_record(&report(T0 + 15_060, RID2, 35.0, 36.0, 61, Some(999.0)));
        m.on_record(&init_report(T0 + 15_070, 123.0)); // late: ignored
        let o = Out::drain(&mut m);
        assert_eq!(o.total(INIT_DURATION), (1, 0.3));
        let warm = o.get(INVOCATIONS, false);
        assert_eq!(
            (warm.len(), warm[0].cnt, warm[0].ts),
            (1, 1, T0 / 1000 + 10)
        );
        assert_eq!(o.get(INVOCATIONS, true).len(), 1);
        assert_eq!(o.get(DURATION, false)[0].sum, 0.035);
        assert!(close(o.get(POST_RUNTIME_DURATION, false)[0].sum, 5.0));
        assert_eq!(o.total(DURATION).0, 2);
    }

    #[test]
    fn error_invocation() {
        let mut m = metrics();
        m.on_invoke(RID1, T0);
        m.on_record(&runtime_done(
            T0 + 5,
            RID1,
            "error",
            Some("Runtime.ExitError"),
            5.0,
        ));
        m.on_record(&report(T0 + 9, RID1, 6.0, 7.0, 50, None));
        let o = Out::drain(&mut m);
        assert_eq!(o.total(ERRORS), (1, 1.0));
        assert!(!o.has(TIMEOUTS) && !o.has(OUT_OF_MEMORY) && !o.has(INIT_DURATION));
    }

    #[test]
    fn timeout_invocation() {
        let mut m = metrics();
        m.on_invoke(RID1, T0);
        m.on_record(&runtime_done(
            T0 + 3000,
            RID1,
            "timeout",
            Some("Sandbox.Timeout"),
            3000.0,
        ));
        let o = Out::drain(&mut m);
        assert_eq!(o.total(ERRORS), (1, 1.0));
        assert_eq!(o.total(TIMEOUTS), (1, 1.0));
        assert!(!o.has(OUT_OF_MEMORY));
    }

    /// Every OOM signal for one request counts once.
    #[test]
    fn out_of_memory_once_per_request() {
        let mut m = metrics();
        m.on_invoke(RID1, T0);
        m.on_record(&log(
            T0 + 1,
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            None,
        ));
        m.on_record(&runtime_done(
            T0 + 2,
            RID1,
            "error",
            Some("Runtime.OutOfMemory"),
            2.0,
        ));
        m.on_record(&report(T0 + 3, RID1, 3.0, 3.0, 128, None));
        let o = Out::drain(&mut m);
        assert_eq!(o.total(OUT_OF_MEMORY), (1, 1.0));
        assert_eq!(o.get(OUT_OF_MEMORY, true).len(), 1);
        assert_eq!(o.total(ERRORS), (1, 1.0));
    }

    #[test]
    fn out_of_memory_each_signal_alone() {
        // errorType only.
        let mut m = metrics();
        m.on_invoke(RID1, T0);
        m.on_record(&runtime_done(
            T0 + 2,
            RID1,
            "error",
            Some("Runtime.OutOfMemory"),
            2.0,
        ));
        assert_eq!(Out::drain(&mut m).total(OUT_OF_MEMORY), (1, 1.0));
        // maxMemoryUsed == memorySize only.
        let mut m = metrics();
        m.on_invoke(RID1, T0);
        m.on_record(&report(T0 + 3, RID1, 3.0, 3.0, 128, None));
        assert_eq!(Out::drain(&mut m).total(OUT_OF_MEMORY), (1, 1.0));
        // A log line with its own request id, for two requests.
        let mut m = metrics();
        m.on_record(&log(T0, "Traceback...\nMemoryError", Some(RID1)));
        m.on_record(&log(
            T0,
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
            Some(RID2),
        ));
        m.on_record(&log(T0, "java.lang.OutOfMemoryError again", Some(RID2)));
        assert_eq!(Out::drain(&mut m).total(OUT_OF_MEMORY), (2, 2.0));
    }

    #[test]
    fn oom_lines() {
        for l in [
            "fatal error: runtime: out of memory",
            "RequestId: x Error: Runtime exited with error: signal: killed",
            "Unhandled exception. System.OutOfMemoryException: Insufficient memory",
            "failed to allocate memory (NoMemoryError)",
        ] {
            assert!(is_oom_line(l), "{l}");
        }
        for l in [
            "memory is fine",
            "killed the bug",
            "",
            "{\"level\":\"info\"}",
        ] {
            assert!(!is_oom_line(l), "{l}");
        }
    }

    #[test]
    fn shutdown_and_unused_init() {
        let mut m = metrics();
        m.on_shutdown(T0);
        let o = Out::drain(&mut m);
        assert_eq!(o.total(SHUTDOWNS), (1, 1.0));
        assert_eq!(o.total(UNUSED_INIT), (1, 1.0));

        let mut m = metrics();
        m.on_invoke(RID1, T0);
        m.on_shutdown(T0 + 1);
        let o = Out::drain(&mut m);
        assert_eq!(o.get(SHUTDOWNS, false).len(), 1);
        assert!(!o.has(UNUSED_INIT));
    }

    #[test]
    fn managed_instances_count_platform_start() {
        let mut m = Metrics::new(Options {
            tags: static_tags(),
            arm64: true,
            managed_instances: true,
        });
        m.on_record(&start(T0, RID1));
        m.on_record(&start(T0 + 1, RID2));
        let mut r = report(T0 + 2, RID1, 100.0, 100.0, 1, None);
        if let Kind::Report {
            billed_duration_ms,
            memory_size_mb,
            max_memory_used_mb,
            ..
        } = &mut r.kind
        {
            (*billed_duration_ms, *memory_size_mb, *max_memory_used_mb) = (None, None, None);
        }
        m.on_record(&r);
        m.on_shutdown(T0 + 3);
        let o = Out::drain(&mut m);
        assert_eq!(o.total(INVOCATIONS), (2, 2.0));
        assert_eq!(o.get(INVOCATIONS, true).len(), 1);
        assert_eq!(o.total(DURATION), (1, 0.1));
        assert!(!o.has(ESTIMATED_COST) && !o.has(UNUSED_INIT) && !o.has(MEMORY_SIZE));
        // no responseLatency span: the report's durationMs is the runtime duration
        assert_eq!(o.total(RUNTIME_DURATION), (1, 100.0));
        assert!(!o.has(ERRORS) && !o.has(POST_RUNTIME_DURATION));
    }

    /// Managed instances: no platform.runtimeDone; errors, timeouts and
    /// runtime_duration come from platform.report (status, the responseLatency
    /// span), as bottlecap's handle_managed_instance_report does
    /// (bottlecap/src/lifecycle/invocation/processor.rs:944-966, then
    /// on_platform_runtime_done :574-582).
    #[test]
    fn managed_instances_outcome_from_the_report() {
        let mut m = Metrics::new(Options {
            tags: static_tags(),
            managed_instances: true,
            ..Options::default()
        });
        let mi_report = |t, rid: &str, status: &str, error: Option<&str>, ms, latency| {
            rec(
                t,
                Kind::Report {
                    request_id: Some(rid.into()),
                    status: Some(status.into()),
                    error_type: error.map(String::from),
                    duration_ms: Some(ms),
                    billed_duration_ms: None,
                    memory_size_mb: None,
                    max_memory_used_mb: None,
                    init_duration_ms: None,
                    restore_duration_ms: None,
                    response_latency_ms: Some(latency),
                },
            )
        };
        for (i, rid) in [RID1, RID2, "r3"].into_iter().enumerate() {
            m.on_record(&start(T0 + i as i64, rid));
        }
        m.on_record(&mi_report(T0 + 5, RID1, "success", None, 50.0, 40.0));
        m.on_record(&mi_report(T0 + 6, RID2, "error", Some("Runtime.Unknown"), 30.0, 20.0));
        m.on_record(&mi_report(T0 + 7, "r3", "timeout", Some("Sandbox.Timeout"), 900.0, 800.0));
        let o = Out::drain(&mut m);
        assert_eq!(o.total(INVOCATIONS), (3, 3.0));
        assert_eq!(o.total(ERRORS), (2, 2.0));
        assert_eq!(o.total(TIMEOUTS), (1, 1.0));
        assert_eq!(o.total(RUNTIME_DURATION), (3, 860.0));
        assert!(!o.has(POST_RUNTIME_DURATION) && !o.has(OUT_OF_MEMORY));
        // On demand the same reports add no errors or runtime duration (runtimeDone does).
        let mut od = metrics();
        od.on_record(&mi_report(T0, RID1, "error", None, 30.0, 20.0));
        let o = Out::drain(&mut od);
        assert!(!o.has(ERRORS) && !o.has(RUNTIME_DURATION));
    }

    #[test]
    fn arm64_cost() {
        let mut m = Metrics::new(Options {
            arm64: true,
            ..Options::default()
        });
        m.on_record(&report(T0, RID1, 1000.0, 1000.0, 64, None));
        let cost = 0.0000002 + 1.0 * 0.125 * 0.0000133334;
        assert!(close(Out::drain(&mut m).total(ESTIMATED_COST).1, cost));
    }

    /// Points aggregate per 10 s bucket into one sketch with several dogsketches.
    #[test]
    fn buckets_and_aggregation() {
        let mut m = metrics();
        for i in 0..30 {
            let rid = format!("r{i}");
            m.on_invoke(&rid, T0 + i * 1000);
            m.on_record(&runtime_done(
                T0 + i * 1000 + 5,
                &rid,
                "success",
                None,
                (i + 1) as f64,
            ));
        }
        let body = m.take_payload().unwrap();
        assert!(m.take_payload().is_none());
        let p = decode(&body);
        let warm: Vec<_> = p
            .sketches
            .iter()
            .filter(|s| {
                s.metric == RUNTIME_DURATION && s.tags.iter().any(|t| t == "cold_start:false")
            })
            .collect();
        assert_eq!(warm.len(), 1);
        let ds = &warm[0].dogsketches;
        assert_eq!(
            ds.iter().map(|d| d.ts).collect::<Vec<_>>(),
            [T0 / 1000, T0 / 1000 + 10, T0 / 1000 + 20]
        );
        assert_eq!(ds.iter().map(|d| d.cnt).collect::<Vec<_>>(), [9, 10, 10]);
        assert_eq!((ds[2].min, ds[2].max, ds[2].sum), (21.0, 30.0, 255.0));
    }

    #[test]
    fn put_back_is_returned_first_and_bounded() {
        let mut m = metrics();
        m.on_invoke(RID1, T0);
        let a = m.take_payload().unwrap();
        m.on_invoke(RID2, T0 + 1);
        m.put_back(a.clone());
        assert!(m.pending());
        assert_eq!(m.take_payload().unwrap(), a);
        let b = m.take_payload().unwrap();
        assert_ne!(a, b);
        assert!(m.take_payload().is_none());

        // Taken x1, x2, x3; put back last-taken first: x3, x2, x1. Over the
        // bound, the oldest (x1, at the front) goes.
        for x in [3u8, 2, 1] {
            m.put_back(vec![x; MAX_PENDING_BYTES / 2]);
        }
        assert_eq!(m.dropped(), (1, 0));
        assert_eq!(m.take_payload().unwrap()[0], 2);
        assert_eq!(m.take_payload().unwrap()[0], 3);
        assert!(m.take_payload().is_none());
    }

    #[test]
    fn many_series_split_payloads() {
        let mut m = metrics();
        let names: Vec<&'static str> = (0..1500)
            .map(|i| &*Box::leak(format!("custom.m{i}").into_boxed_str()))
            .collect();
        for n in &names {
            m.distribution(n, 1.0, T0);
        }
        let mut counts = Vec::new();
        while let Some(b) = m.take_payload() {
            counts.push(decode(&b).sketches.len());
        }
        assert_eq!(counts, [1000, 500]);
    }

    #[test]
    fn runtime_tags() {
        assert_eq!(
            runtime_tag("python:3.12.v16").as_deref(),
            Some("python3.12")
        );
        assert_eq!(runtime_tag("nodejs:20.v13").as_deref(), Some("nodejs20.x"));
        assert_eq!(runtime_tag("java:21.v9").as_deref(), Some("java21"));
        assert_eq!(
            runtime_tag("provided:al2023.v28").as_deref(),
            Some("provided.al2023")
        );
        assert_eq!(runtime_tag("garbage"), None);
    }

    #[test]
    fn static_runtime_tag_wins() {
        let mut tags = static_tags();
        tags.push("runtime:Custom".into());
        let mut m = Metrics::new(Options {
            tags,
            ..Options::default()
        });
        m.on_record(&init_start(T0));
        m.on_invoke(RID1, T0);
        let body = m.take_payload().unwrap();
        let tags = &decode(&body).sketches[0].tags;
        assert_eq!(
            tags.iter()
                .filter(|t| t.starts_with("runtime:"))
                .collect::<Vec<_>>(),
            ["runtime:custom"]
        );
    }
}
