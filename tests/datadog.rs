//! What reaches Datadog, end to end: the real slimcap binary under the Lambda
//! platform emulator, shipping to the fake intake (tests/emulator). Every
//! assertion is on what the intake received (decoded independently: prost
//! for the sketches, serde_json for the logs) or on what the platform saw.
//!
//! * Enhanced metrics: every `aws.lambda.enhanced.*` metric of
//!   shared/docs/datadog-intake.md for scripted cold start, success, error,
//!   timeout and out-of-memory invocations; cnt/sum/min/max, quantiles from
//!   the bins within 1 %, tags, `cold_start:true` only for the first request.
//! * Logs: content, order, request ids, statuses (JSON log levels, failed
//!   `runtimeDone`), `DD_LOGS_ENABLED=false`.
//! * Flush strategies: `end`, `end,<ms>`, `periodically,<ms>`, the adaptive
//!   default; no intake request in flight across a freeze; SHUTDOWN drain.
//! * Intake failures: 500/429 then recovery, 403, 413, slow, reset, dead
//!   port, no API key; the key never printed.
//!
//! Robust on a loaded machine: timing is asserted only as causality (this
//! request came before that `next`) or as generous bounds that prove a
//! mechanism (a flush bounded by a 1 s `DD_FLUSH_TIMEOUT` ends in seconds,
//! not the intake's 4 s answer time). Speed is measured by scripts/perf.sh.

mod common;
#[path = "common/sketches.rs"]
mod sketches;

use common::*;
use serde_json::Value;
use sketches::{accepted_points, agg, Point};
use std::time::Duration;

const KEY: &str = "test-api-key-0123456789";
const SKETCHES: &str = "/api/beta/sketches";
const LOGS: &str = "/api/v2/logs";
const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:emulated-fn";

const INVOCATIONS: &str = "aws.lambda.enhanced.invocations";
const ERRORS: &str = "aws.lambda.enhanced.errors";
const TIMEOUTS: &str = "aws.lambda.enhanced.timeouts";
const OUT_OF_MEMORY: &str = "aws.lambda.enhanced.out_of_memory";
const INIT_DURATION: &str = "aws.lambda.enhanced.init_duration";
const DURATION: &str = "aws.lambda.enhanced.duration";
const BILLED_DURATION: &str = "aws.lambda.enhanced.billed_duration";
const RUNTIME_DURATION: &str = "aws.lambda.enhanced.runtime_duration";
const POST_RUNTIME_DURATION: &str = "aws.lambda.enhanced.post_runtime_duration";
const PRODUCED_BYTES: &str = "aws.lambda.enhanced.produced_bytes";
const MAX_MEMORY_USED: &str = "aws.lambda.enhanced.max_memory_used";
const MEMORY_SIZE: &str = "aws.lambda.enhanced.memorysize";
const ESTIMATED_COST: &str = "aws.lambda.enhanced.estimated_cost";
const SHUTDOWNS: &str = "aws.lambda.enhanced.shutdowns";
const UNUSED_INIT: &str = "aws.lambda.enhanced.unused_init";
const ALL_METRICS: [&str; 15] = [
    INVOCATIONS,
    ERRORS,
    TIMEOUTS,
    OUT_OF_MEMORY,
    INIT_DURATION,
    DURATION,
    BILLED_DURATION,
    RUNTIME_DURATION,
    POST_RUNTIME_DURATION,
    PRODUCED_BYTES,
    MAX_MEMORY_USED,
    MEMORY_SIZE,
    ESTIMATED_COST,
    SHUTDOWNS,
    UNUSED_INIT,
];

// ------------------------------------------------------------------ helpers

fn accepted(r: &IntakeRequest) -> bool {
    matches!(r.status, Some(s) if (200..300).contains(&s))
}

/// One log entry as the intake received it.
#[derive(Clone, Debug)]
struct Entry {
    msg: String,
    rid: Option<String>,
    status: String,
    ts: Option<i64>,
    raw: Value,
}

fn entries_of(r: &IntakeRequest) -> Vec<Entry> {
    let v = r
        .json()
        .unwrap_or_else(|| panic!("logs body is not JSON: {}", r.text()));
    let arr = v.as_array().expect("logs body is a JSON array");
    assert!(
        !arr.is_empty() && arr.len() <= 1000,
        "{} entries",
        arr.len()
    );
    assert!(r.body.len() <= 5 << 20);
    arr.iter()
        .map(|e| Entry {
            msg: e["message"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("no message.message: {e}"))
                .to_string(),
            rid: e["message"]["lambda"]["request_id"]
                .as_str()
                .map(String::from),
            status: e["status"]
                .as_str()
                .unwrap_or_else(|| panic!("no status: {e}"))
                .to_string(),
            ts: e["timestamp"].as_i64(),
            raw: e.clone(),
        })
        .collect()
}

/// Entries of every accepted logs request, in arrival order.
fn accepted_logs(reqs: &[IntakeRequest]) -> Vec<Entry> {
    reqs.iter()
        .filter(|r| r.path_only() == LOGS && accepted(r))
        .flat_map(entries_of)
        .collect()
}

fn points(intake: &FakeIntake) -> Vec<Point> {
    accepted_points(&intake.requests())
}

/// The record of the first emitted event of type `ty` for request `rid`.
fn record(emu: &Emulator, ty: &str, rid: &str) -> Value {
    emu.emitted()
        .into_iter()
        .find(|e| e["type"] == ty && e["record"]["requestId"] == rid)
        .unwrap_or_else(|| panic!("no {ty} emitted for {rid}"))["record"]
        .clone()
}

fn init_report_ms(emu: &Emulator) -> f64 {
    let e = emu
        .emitted()
        .into_iter()
        .find(|e| e["type"] == "platform.initReport")
        .expect("initReport emitted");
    e["record"]["metrics"]["durationMs"].as_f64().unwrap()
}

/// Lines slimcap printed never contain the key; neither do the bodies it sent.
fn key_never_leaks(emu: &Emulator, intake: &FakeIntake) {
    for l in output(emu) {
        assert!(!l.contains(KEY), "the API key was printed: {l}");
    }
    for r in intake.requests() {
        assert!(
            !r.text().contains(KEY) && !r.path.contains(KEY),
            "the API key is in a body: {r:?}"
        );
        assert_eq!(r.header("DD-API-KEY"), Some(KEY), "{} {}", r.method, r.path);
    }
}

/// SHUTDOWN: clean exit 0 within the deadline, everything delivered to the
/// extension, the key never printed.
fn finish(emu: &Emulator, intake: &FakeIntake, reason: &str) -> ShutdownOutcome {
    let sd = emu.shutdown(reason);
    assert!(
        !sd.killed,
        "SIGKILLed at the deadline: {sd:?}\n{:#?}",
        output(emu)
    );
    assert_eq!(sd.exit_code(NAME), Some(0), "{sd:?}\n{:#?}", output(emu));
    assert!(sd.elapsed_ms < sd.deadline_ms - sd.started_ms, "{sd:?}");
    key_never_leaks(emu, intake);
    sd
}

/// No intake request was on the wire while the sandbox was frozen: each
/// was answered before the extension's `next` that let the freeze begin.
fn no_request_spans_a_freeze(emu: &Emulator, intake: &FakeIntake) {
    for r in intake.requests() {
        let end = r.answered_ms.unwrap_or(r.at_ms);
        assert!(
            !emu.spans_freeze(r.started_ms, end),
            "intake {} {} [{}, {end}] overlaps a freeze: {:?}",
            r.method,
            r.path,
            r.started_ms,
            emu.freezes()
        );
    }
}

fn ok(out: &InvokeOutcome) {
    assert!(
        out.error.is_none() && out.extension_errors.is_empty(),
        "{out:?}"
    );
}

/// [INVOKE, the extension's next] of an invocation.
fn window(out: &InvokeOutcome) -> (f64, f64) {
    (
        out.started_ms,
        out.extensions_next_ms
            .unwrap_or_else(|| panic!("no next: {out:?}")),
    )
}

fn in_window<'a>(reqs: &'a [IntakeRequest], path: &str, w: (f64, f64)) -> Vec<&'a IntakeRequest> {
    reqs.iter()
        .filter(|r| r.path_only() == path && r.started_ms >= w.0 && r.started_ms <= w.1)
        .collect()
}

fn has_line(reqs: &[&IntakeRequest], line: &str) -> bool {
    reqs.iter()
        .filter(|r| accepted(r))
        .flat_map(|r| entries_of(r))
        .any(|e| e.msg == line)
}

fn count_line(entries: &[Entry], line: &str) -> usize {
    entries.iter().filter(|e| e.msg == line).count()
}

/// Architecture and price per GB-s the binary under test reports.
fn arch() -> (&'static str, f64) {
    let arm = std::env::var("SLIMCAP_RUNNER")
        .map(|r| r.contains("aarch64"))
        .unwrap_or(false)
        || (std::env::var_os("SLIMCAP_RUNNER").is_none() && cfg!(target_arch = "aarch64"));
    if arm {
        ("arm64", 0.0000133334)
    } else {
        ("x86_64", 0.0000166667)
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

/// The distribution of `metric` (restricted to one cold_start value if
/// given) holds exactly `want`: count, sum, min, max, and every quantile
/// read back from the bins within 1 % of the exact one.
fn check(p: &[Point], metric: &str, cold: Option<bool>, want: &[f64]) {
    let a = agg(p, metric, cold);
    let what = format!("{metric} (cold_start {cold:?})");
    assert_eq!(
        a.cnt as usize,
        want.len(),
        "{what}: count; got {a:?}, want {want:?}"
    );
    if want.is_empty() {
        return;
    }
    let mut sorted = want.to_vec();
    sorted.sort_by(f64::total_cmp);
    let sum: f64 = want.iter().sum();
    assert!(close(a.sum, sum, 1e-9), "{what}: sum {} want {sum}", a.sum);
    assert!(
        close(a.min, sorted[0], 1e-12),
        "{what}: min {} want {}",
        a.min,
        sorted[0]
    );
    assert!(
        close(a.max, *sorted.last().unwrap(), 1e-12),
        "{what}: max {} want {:?}",
        a.max,
        sorted.last()
    );
    for q in [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] {
        let rank = (q * (sorted.len() as f64 - 1.0)).round() as usize;
        let exact = sorted[rank];
        let got = a.quantile(q);
        assert!(
            (got - exact).abs() <= 0.01 * exact.abs(),
            "{what}: p{} from the bins {got} vs exact {exact} (more than 1 % off)",
            q * 100.0
        );
    }
}

fn env_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("DD_SERVERLESS_FLUSH_STRATEGY", "end")];
    v.extend_from_slice(extra);
    v
}

// ------------------------------------------------------------ enhanced metrics

/// A cold start then success, success, error and out-of-memory invocations.
#[test]
fn metrics_cold_start_success_error_and_out_of_memory() {
    let intake = FakeIntake::start();
    let mut c = config(
        &intake,
        &env_with(&[
            ("DD_ENV", "Test"),
            ("DD_SERVICE", "svc"),
            ("DD_VERSION", "1.2.3"),
            ("DD_TAGS", "team:core tier:one"),
        ]),
    );
    c.function.version = "7".into();
    let emu = start(c);

    let mut a = Invocation::new(40).log("hello").memory_used(50);
    a.produced_bytes = 100;
    let mut b = Invocation::new(25).memory_used(60);
    b.produced_bytes = 200;
    let mut e = Invocation::new(30)
        .status(InvokeStatus::Error)
        .memory_used(70);
    e.produced_bytes = 300;
    e.error_type = Some("Runtime.ExitError".into());
    let oom = Invocation::new(20).status(InvokeStatus::OutOfMemory); // maxMemoryUsed = memory size
    let outs: Vec<InvokeOutcome> = [a, b, e, oom].into_iter().map(|i| emu.invoke(i)).collect();
    for o in &outs {
        ok(o);
    }
    assert!(outs[3].needs_reset);
    finish(&emu, &intake, "failure");
    no_request_spans_a_freeze(&emu, &intake);

    let p = points(&intake);
    let (arch, price) = arch();
    // Expected values from the records the platform emitted.
    let rid: Vec<&str> = outs.iter().map(|o| o.request_id.as_str()).collect();
    let rd: Vec<Value> = rid
        .iter()
        .map(|r| record(&emu, "platform.runtimeDone", r)["metrics"].clone())
        .collect();
    let rep: Vec<Value> = rid
        .iter()
        .map(|r| record(&emu, "platform.report", r)["metrics"].clone())
        .collect();
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    let runtime: Vec<f64> = rd.iter().map(|m| f(m, "durationMs")).collect();
    let dur: Vec<f64> = rep.iter().map(|m| f(m, "durationMs")).collect();
    let billed: Vec<f64> = rep.iter().map(|m| f(m, "billedDurationMs")).collect();
    let mem: Vec<f64> = rep.iter().map(|m| f(m, "memorySizeMB")).collect();
    let used: Vec<f64> = rep.iter().map(|m| f(m, "maxMemoryUsedMB")).collect();
    assert_eq!(used, [50.0, 60.0, 70.0, 128.0]);
    let secs = |v: &[f64]| v.iter().map(|x| x / 1000.0).collect::<Vec<_>>();
    let post: Vec<f64> = dur.iter().zip(&runtime).map(|(d, r)| d - r).collect();
    let cost: Vec<f64> = billed
        .iter()
        .zip(&mem)
        .map(|(b, m)| 0.0000002 + b / 1000.0 * (m / 1024.0) * price)
        .collect();

    check(&p, INVOCATIONS, None, &[1.0; 4]);
    check(&p, INVOCATIONS, Some(true), &[1.0]);
    check(&p, ERRORS, None, &[1.0, 1.0]); // the error and the out-of-memory
    check(&p, ERRORS, Some(true), &[]);
    check(&p, TIMEOUTS, None, &[]);
    check(&p, OUT_OF_MEMORY, None, &[1.0]); // once, though errorType and memory both say so
    check(&p, OUT_OF_MEMORY, Some(true), &[]);
    check(
        &p,
        INIT_DURATION,
        Some(true),
        &[init_report_ms(&emu) / 1000.0],
    );
    check(&p, INIT_DURATION, Some(false), &[]);
    check(&p, DURATION, None, &secs(&dur));
    check(&p, DURATION, Some(true), &secs(&dur[..1]));
    check(&p, BILLED_DURATION, None, &secs(&billed));
    check(&p, BILLED_DURATION, Some(true), &secs(&billed[..1]));
    check(&p, RUNTIME_DURATION, None, &runtime);
    check(&p, RUNTIME_DURATION, Some(true), &runtime[..1]);
    check(&p, POST_RUNTIME_DURATION, None, &post);
    check(&p, POST_RUNTIME_DURATION, Some(true), &post[..1]);
    check(&p, PRODUCED_BYTES, None, &[100.0, 200.0, 300.0, 8.0]);
    check(&p, PRODUCED_BYTES, Some(true), &[100.0]);
    check(&p, MAX_MEMORY_USED, None, &used);
    check(&p, MAX_MEMORY_USED, Some(true), &used[..1]);
    check(&p, MEMORY_SIZE, None, &[128.0; 4]);
    check(&p, MEMORY_SIZE, Some(true), &[128.0]);
    check(&p, ESTIMATED_COST, None, &cost);
    check(&p, ESTIMATED_COST, Some(true), &cost[..1]);
    check(&p, SHUTDOWNS, Some(false), &[1.0]);
    check(&p, SHUTDOWNS, None, &[1.0]);
    check(&p, UNUSED_INIT, None, &[]);

    // Tags on every point; nothing but the documented metrics.
    let now_s = (lambda_emulator::util::to_unix_ms(now_ms()) / 1000.0) as i64;
    for pt in &p {
        assert!(
            ALL_METRICS.contains(&pt.metric.as_str()),
            "unexpected metric {}",
            pt.metric
        );
        assert_eq!(pt.host, "", "{pt:?}");
        for t in [
            "functionname:emulated-fn",
            "region:us-east-1",
            "account_id:123456789012",
            "memorysize:128",
            "runtime:provided.al2023",
            &format!("architecture:{arch}"),
            "init_type:on-demand",
            "resource:emulated-fn",
            "executedversion:7",
            "env:test",
            "service:svc",
            "version:1.2.3",
            "team:core",
            "tier:one",
        ] {
            assert!(
                pt.tags.iter().any(|x| x == t),
                "{t} missing on {} {:?}",
                pt.metric,
                pt.tags
            );
        }
        assert_eq!(
            pt.tags
                .iter()
                .filter(|t| t.starts_with("cold_start:"))
                .count(),
            1,
            "{pt:?}"
        );
        assert_eq!(pt.d.ts % 10, 0, "10 s buckets: {pt:?}");
        assert!(
            (now_s - 120..=now_s).contains(&pt.d.ts),
            "ts {} vs now {now_s}",
            pt.d.ts
        );
    }
}

#[test]
fn metrics_timeout() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &env_with(&[])));
    let out = emu.invoke(
        Invocation::new(60)
            .status(InvokeStatus::Timeout)
            .log("still running"),
    );
    assert!(out.error.is_none() && out.needs_reset, "{out:?}");
    finish(&emu, &intake, "timeout");

    let p = points(&intake);
    let rid = out.request_id.as_str();
    let rd = record(&emu, "platform.runtimeDone", rid)["metrics"]["durationMs"]
        .as_f64()
        .unwrap();
    let rep = record(&emu, "platform.report", rid)["metrics"].clone();
    let dur = rep["durationMs"].as_f64().unwrap();
    check(&p, INVOCATIONS, Some(true), &[1.0]);
    check(&p, INVOCATIONS, None, &[1.0]);
    check(&p, ERRORS, Some(true), &[1.0]);
    check(&p, TIMEOUTS, Some(true), &[1.0]);
    check(&p, TIMEOUTS, None, &[1.0]);
    check(&p, OUT_OF_MEMORY, None, &[]);
    check(&p, RUNTIME_DURATION, Some(true), &[rd]);
    check(&p, DURATION, Some(true), &[dur / 1000.0]);
    check(&p, POST_RUNTIME_DURATION, Some(true), &[dur - rd]);
    check(
        &p,
        BILLED_DURATION,
        Some(true),
        &[rep["billedDurationMs"].as_f64().unwrap() / 1000.0],
    );
    check(&p, MAX_MEMORY_USED, Some(true), &[64.0]);
    check(&p, SHUTDOWNS, Some(false), &[1.0]);
    check(&p, UNUSED_INIT, None, &[]);

    // The END line says so, with status error.
    let logs = accepted_logs(&intake.requests());
    let end: Vec<&Entry> = logs.iter().filter(|e| e.msg.starts_with("END ")).collect();
    assert_eq!(end.len(), 1, "{end:?}");
    assert_eq!(
        end[0].msg,
        format!(
            "END RequestId: {rid} Task timed out after {:.2} seconds",
            rd / 1000.0
        )
    );
    assert_eq!(end[0].status, "error");
}

#[test]
fn metrics_shutdown_without_invocation_is_an_unused_init() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &[]));
    // A sandbox spun down unused has idled for minutes: let the INIT records
    // (buffered 25 ms by the platform) reach the extension first. (SHUTDOWN
    // right at the end of INIT may flush before initReport arrives: the
    // extension waits at SHUTDOWN only for a missing platform.report.)
    assert!(emu.wait_for(Duration::from_secs(5), |e| e
        .delivered_records()
        .iter()
        .any(|r| r["type"] == "platform.initReport")));
    std::thread::sleep(Duration::from_millis(50));
    finish(&emu, &intake, "spindown");
    let p = points(&intake);
    check(&p, SHUTDOWNS, Some(false), &[1.0]);
    check(&p, UNUSED_INIT, Some(false), &[1.0]);
    check(&p, INVOCATIONS, None, &[]);
    check(
        &p,
        INIT_DURATION,
        Some(true),
        &[init_report_ms(&emu) / 1000.0],
    );
}

#[test]
fn enhanced_metrics_disabled_sends_logs_only() {
    let intake = FakeIntake::start();
    let emu = start(config(
        &intake,
        &env_with(&[("DD_ENHANCED_METRICS", "false")]),
    ));
    ok(&emu.invoke(Invocation::new(10).log("only a log")));
    finish(&emu, &intake, "spindown");
    assert!(intake.requests_to(SKETCHES).is_empty());
    assert_eq!(
        count_line(&accepted_logs(&intake.requests()), "only a log"),
        1
    );
}

// ------------------------------------------------------------------- logs

/// Function lines and START/END/REPORT, in order, with request ids,
/// statuses, timestamps and the Datadog attributes.
#[test]
fn logs_content_and_order() {
    let intake = FakeIntake::start();
    let emu = start(config(
        &intake,
        &env_with(&[("DD_ENV", "test"), ("DD_SERVICE", "svc")]),
    ));
    let o1 = emu.invoke(Invocation::new(40).log("alpha").log("beta \"quoted\"\ttab"));
    let mut failing = Invocation::new(30).log("gamma").status(InvokeStatus::Error);
    failing.error_type = Some("Runtime.ExitError".into());
    let o2 = emu.invoke(failing);
    ok(&o1);
    ok(&o2);
    finish(&emu, &intake, "spindown");
    let reqs = intake.requests();
    for r in reqs.iter().filter(|r| r.path_only() == LOGS) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("DD-PROTOCOL"), Some("agent-json"));
    }
    let all = accepted_logs(&reqs);
    let (r1, r2) = (o1.request_id.as_str(), o2.request_id.as_str());
    let rep1 = record(&emu, "platform.report", r1)["metrics"].clone();
    let rep2 = record(&emu, "platform.report", r2)["metrics"].clone();
    let report = |rid: &str, m: &Value, init: Option<f64>| {
        let mut s = format!(
            "REPORT RequestId: {rid} Duration: {:.2} ms Billed Duration: {} ms Memory Size: 128 MB Max Memory Used: 64 MB",
            m["durationMs"].as_f64().unwrap(),
            m["billedDurationMs"].as_u64().unwrap()
        );
        if let Some(i) = init {
            s += &format!(" Init Duration: {i:.2} ms");
        }
        s
    };
    let want = [
        (
            format!("START RequestId: {r1} Version: $LATEST"),
            r1,
            "info",
        ),
        ("alpha".to_string(), r1, "info"),
        ("beta \"quoted\"\ttab".to_string(), r1, "info"),
        (format!("END RequestId: {r1}"), r1, "info"),
        (
            report(r1, &rep1, rep1["initDurationMs"].as_f64()),
            r1,
            "info",
        ),
        (
            format!("START RequestId: {r2} Version: $LATEST"),
            r2,
            "info",
        ),
        ("gamma".to_string(), r2, "info"),
        (
            format!("END RequestId: {r2} Task failed: Runtime.ExitError"),
            r2,
            "error",
        ),
        (report(r2, &rep2, None), r2, "info"),
    ];
    assert!(
        rep1["initDurationMs"].is_number(),
        "first report carries the init duration"
    );
    // Ours, in order (the extension's own stderr lines are shipped too; skip them).
    let mine: Vec<&Entry> = all
        .iter()
        .filter(|e| !e.msg.starts_with("[slimcap]") && !e.msg.starts_with("INIT_START"))
        .collect();
    let got: Vec<(&str, Option<&str>, &str)> = mine
        .iter()
        .map(|e| (e.msg.as_str(), e.rid.as_deref(), e.status.as_str()))
        .collect();
    let want: Vec<(&str, Option<&str>, &str)> = want
        .iter()
        .map(|(m, r, s)| (m.as_str(), Some(*r), *s))
        .collect();
    assert_eq!(got, want);
    // INIT_START comes first.
    let init = all.iter().position(|e| {
        e.msg
            .starts_with("INIT_START Runtime Version: provided:al2023.v100")
    });
    assert_eq!(
        init,
        Some(0),
        "{:#?}",
        all.iter().map(|e| &e.msg).collect::<Vec<_>>()
    );
    // Timestamps: the records' times, in order.
    let ts: Vec<i64> = mine.iter().map(|e| e.ts.expect("timestamp")).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    let start_unix = lambda_emulator::util::to_unix_ms(o1.started_ms) as i64;
    assert!(
        ts[0] >= start_unix - 5 && ts[8] <= lambda_emulator::util::to_unix_ms(now_ms()) as i64,
        "{ts:?} vs {start_unix}"
    );
    for e in &all {
        assert_eq!(e.raw["hostname"], ARN, "{:?}", e.raw);
        assert_eq!(e.raw["message"]["lambda"]["arn"], ARN);
        assert_eq!(e.raw["ddsource"], "lambda");
        assert_eq!(e.raw["service"], "svc");
        let tags = e.raw["ddtags"].as_str().unwrap();
        for t in [
            "env:test",
            "functionname:emulated-fn",
            "region:us-east-1",
            "service:svc",
        ] {
            assert!(tags.split(',').any(|x| x == t), "{t} not in {tags}");
        }
    }
}

/// JSON log format: the level comes from the record's `level`/`status`,
/// the request id from its `requestId`, else the invocation in progress.
#[test]
fn logs_json_format_levels() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &env_with(&[]));
    c.log_format = LogFormat::Json;
    let emu = start(c);
    let out = emu.invoke(
        Invocation::new(60)
            .log(r#"{"level":"ERROR","message":"boom"}"#)
            .log(r#"{"level":"WARN","message":"careful"}"#)
            .log(r#"{"status":"debug","message":"details"}"#)
            .log(r#"{"level":"INFO","message":"elsewhere","requestId":"other-request"}"#)
            .log("plain text line"),
    );
    ok(&out);
    finish(&emu, &intake, "spindown");
    let all = accepted_logs(&intake.requests());
    let rid = out.request_id.as_str();
    let want = [
        ("boom", "error", rid),
        ("careful", "warn", rid),
        ("details", "debug", rid),
        ("elsewhere", "info", "other-request"),
        ("plain text line", "info", rid),
    ];
    let fun: Vec<&Entry> = all
        .iter()
        .filter(|e| {
            serde_json::from_str::<Value>(&e.msg)
                .is_ok_and(|v| want.iter().any(|w| v["message"] == w.0))
        })
        .collect();
    assert_eq!(
        fun.len(),
        want.len(),
        "{:#?}",
        all.iter().map(|e| &e.msg).collect::<Vec<_>>()
    );
    for (e, (msg, status, r)) in fun.iter().zip(want) {
        // The message is the record's JSON text, which the intake parses.
        let v: Value = serde_json::from_str(&e.msg).unwrap();
        assert_eq!(v["message"], msg);
        assert_eq!(e.status, status, "{msg}");
        assert_eq!(e.rid.as_deref(), Some(r), "{msg}");
    }
    // Platform lines still plain text.
    assert!(all.iter().any(|e| e.msg == format!("END RequestId: {rid}")));
}

#[test]
fn logs_disabled_subscribes_to_platform_only_and_sends_no_logs() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &env_with(&[("DD_LOGS_ENABLED", "false")])));
    assert_eq!(emu.subscriber().expect("subscribed").types, ["platform"]);
    for _ in 0..2 {
        ok(&emu.invoke(Invocation::new(10).log("not shipped")));
    }
    finish(&emu, &intake, "spindown");
    assert!(
        intake.requests_to(LOGS).is_empty(),
        "{:?}",
        intake.requests_to(LOGS)
    );
    check(&points(&intake), INVOCATIONS, None, &[1.0, 1.0]);
}

// --------------------------------------------------------- flush strategies

/// One sandbox under `env`: an invocation per duration (ms), the i-th logging
/// `line {i}`, then SHUTDOWN; no intake request may span a freeze. Returns
/// the intake, the outcomes and every intake request.
fn flush_run(
    env: &[(&str, &str)],
    durations: impl IntoIterator<Item = u64>,
) -> (FakeIntake, Vec<InvokeOutcome>, Vec<IntakeRequest>) {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, env));
    let outs: Vec<InvokeOutcome> = durations
        .into_iter()
        .enumerate()
        .map(|(i, ms)| emu.invoke(Invocation::new(ms).log(&format!("line {i}"))))
        .collect();
    finish(&emu, &intake, "spindown");
    no_request_spans_a_freeze(&emu, &intake);
    let reqs = intake.requests();
    (intake, outs, reqs)
}

/// `end`: exactly one flush per invocation, after its runtimeDone and
/// before its `next`, carrying that invocation's lines.
#[test]
fn flush_end_once_per_invocation_before_next() {
    let (intake, outs, reqs) = flush_run(&env_with(&[]), [30; 5]);
    for (i, o) in outs.iter().enumerate() {
        ok(o);
        let w = window(o);
        let sk = in_window(&reqs, SKETCHES, w);
        assert_eq!(sk.len(), 1, "invocation {i}: {sk:?}");
        assert!(
            sk[0].started_ms >= o.runtime_done_ms,
            "flushed before runtimeDone: {o:?}"
        );
        let logs = in_window(&reqs, LOGS, w);
        assert!(
            has_line(&logs, &format!("line {i}")),
            "invocation {i}'s line not flushed at its end"
        );
        for r in sk.iter().chain(&logs) {
            assert!(
                r.answered_ms.unwrap() <= w.1,
                "answer after next: {r:?} {o:?}"
            );
        }
    }
    // One kept-alive connection (warm-up and flushes share it).
    assert!(
        intake.connections() <= 2,
        "{} connections",
        intake.connections()
    );
}

/// `end,<ms>`: at invocation ends, at most once per `<ms>`; the first
/// invocation flushes (nothing was flushed before it).
#[test]
fn flush_end_with_interval_at_most_once_per_interval() {
    const MS: f64 = 500.0;
    let (intake, outs, reqs) =
        flush_run(&[("DD_SERVERLESS_FLUSH_STRATEGY", "end,500")], [100; 10]);
    let mut flush_starts = vec![];
    for o in &outs {
        ok(o);
        let sk = in_window(&reqs, SKETCHES, window(o));
        assert!(sk.len() <= 1, "{sk:?}");
        if let Some(r) = sk.first() {
            assert!(
                r.started_ms >= o.runtime_done_ms,
                "an end flush comes after runtimeDone: {o:?}"
            );
            flush_starts.push(r.started_ms);
        }
    }
    assert!(
        !in_window(&reqs, SKETCHES, window(&outs[0])).is_empty(),
        "the first invocation flushes at its end"
    );
    assert!(
        flush_starts.len() >= 2 && flush_starts.len() < outs.len(),
        "{flush_starts:?}"
    );
    for w in flush_starts.windows(2) {
        assert!(
            w[1] - w[0] >= MS - 5.0,
            "flushes {} ms apart: {flush_starts:?}",
            w[1] - w[0]
        );
    }
    let logs = accepted_logs(&reqs);
    for i in 0..10 {
        assert_eq!(count_line(&logs, &format!("line {i}")), 1);
    }
    check(&points(&intake), INVOCATIONS, None, &[1.0; 10]);
}

/// `periodically,<ms>`: never waits for runtimeDone; flushes at invocation
/// starts once `<ms>` has passed.
#[test]
fn flush_periodically_never_waits_for_runtime_done() {
    const MS: f64 = 400.0;
    let (intake, outs, reqs) =
        flush_run(&[("DD_SERVERLESS_FLUSH_STRATEGY", "periodically,400")], [300; 6]);
    let mut flush_starts = vec![];
    for o in &outs {
        ok(o);
        let w = window(o);
        // Back in next while the function still runs (300 ms).
        assert!(w.1 < o.runtime_done_ms, "waited for runtimeDone: {o:?}");
        let sk = in_window(&reqs, SKETCHES, w);
        assert!(sk.len() <= 1);
        flush_starts.extend(sk.iter().map(|r| r.started_ms));
    }
    assert!(
        !flush_starts.is_empty() && flush_starts.len() < outs.len(),
        "{flush_starts:?}"
    );
    for w in flush_starts.windows(2) {
        assert!(w[1] - w[0] >= MS - 5.0, "{flush_starts:?}");
    }
    let logs = accepted_logs(&reqs);
    for i in 0..6 {
        assert_eq!(count_line(&logs, &format!("line {i}")), 1);
    }
    check(&points(&intake), INVOCATIONS, None, &[1.0; 6]);
}

/// Unset: `end` for the first invocations; once 20 came less than 120 s
/// apart on average, every 20 s (so not at these invocations' ends, and
/// without waiting for runtimeDone).
#[test]
fn flush_adaptive_default_switches_from_end_to_periodic() {
    let (intake, outs, reqs) = flush_run(&[], (0..22).map(|i| if i < 19 { 5 } else { 300 }));
    for (i, o) in outs.iter().enumerate() {
        ok(o);
        let sk = in_window(&reqs, SKETCHES, window(o));
        if i < 19 {
            // (The 20th invocation fills the window of 20: periodic from there, as flush.rs documents.)
            assert_eq!(sk.len(), 1, "invocation {i} should flush at its end");
            assert!(sk[0].started_ms >= o.runtime_done_ms);
        } else {
            assert!(sk.is_empty(), "invocation {i} flushed: {sk:?}");
            assert!(
                window(o).1 < o.runtime_done_ms,
                "invocation {i} waited for runtimeDone: {o:?}"
            );
        }
    }
    let logs = accepted_logs(&reqs);
    for i in 0..22 {
        assert_eq!(count_line(&logs, &format!("line {i}")), 1, "line {i}");
    }
    check(&points(&intake), INVOCATIONS, None, &[1.0; 22]);
}

/// Nothing flushed during the invocations: everything arrives at SHUTDOWN,
/// including the last invocation's REPORT, within the deadline.
#[test]
fn shutdown_drains_everything_buffered() {
    let intake = FakeIntake::start();
    let emu = start(config(
        &intake,
        &[("DD_SERVERLESS_FLUSH_STRATEGY", "periodically,3600000")],
    ));
    let outs: Vec<InvokeOutcome> = (0..3)
        .map(|i| emu.invoke(Invocation::new(20).log(&format!("line {i}"))))
        .collect();
    for o in &outs {
        ok(o);
    }
    assert!(intake.requests_to(SKETCHES).is_empty() && intake.requests_to(LOGS).is_empty());
    let sd = finish(&emu, &intake, "spindown");
    // Every platform record reached the extension (its own last stderr
    // lines, printed while it exits, are the only thing that may not).
    assert_eq!(sd.undelivered_records, 0, "{sd:?}");
    let reqs = intake.requests();
    for r in reqs.iter().filter(|r| r.path_only() != "/api/v1/validate") {
        assert!(r.started_ms >= sd.started_ms && accepted(r), "{r:?}");
        assert!(r.answered_ms.unwrap() <= sd.deadline_ms);
    }
    let logs = accepted_logs(&reqs);
    for (i, o) in outs.iter().enumerate() {
        let rid = &o.request_id;
        assert_eq!(count_line(&logs, &format!("line {i}")), 1);
        assert_eq!(
            logs.iter()
                .filter(|e| e.msg.starts_with(&format!("START RequestId: {rid}")))
                .count(),
            1
        );
        assert_eq!(
            logs.iter()
                .filter(|e| e.msg == format!("END RequestId: {rid}"))
                .count(),
            1
        );
        assert_eq!(
            logs.iter()
                .filter(|e| e.msg.starts_with(&format!("REPORT RequestId: {rid}")))
                .count(),
            1,
            "REPORT {i}"
        );
    }
    let p = points(&intake);
    check(&p, INVOCATIONS, None, &[1.0; 3]);
    assert_eq!(agg(&p, DURATION, None).cnt, 3, "the last report waited for");
    check(&p, SHUTDOWNS, None, &[1.0]);
}

// ------------------------------------------------------------ intake failures

/// 500 and 429 are retried within the flush; past its deadline the data is
/// kept and arrives at the next flush, once.
#[test]
fn intake_500_and_429_then_recovery_lose_nothing() {
    for status in [500u16, 429] {
        let intake = FakeIntake::start();
        let emu = start(config(&intake, &env_with(&[("DD_FLUSH_TIMEOUT", "1")])));
        intake.set_mode(IntakeMode::Status(status));
        let o1 = emu.invoke(Invocation::new(20).log("during the outage"));
        ok(&o1);
        // Bounded by DD_FLUSH_TIMEOUT (1 s), whatever the intake says.
        assert!(o1.post_runtime_ms.unwrap() < 5000.0, "{o1:?}");
        let failed: Vec<_> = intake
            .requests_to(SKETCHES)
            .into_iter()
            .filter(|r| r.status == Some(status))
            .collect();
        assert!(failed.len() >= 2, "HTTP {status} not retried: {failed:?}");
        intake.set_mode(IntakeMode::Accept);
        let o2 = emu.invoke(Invocation::new(20).log("after the outage"));
        ok(&o2);
        finish(&emu, &intake, "spindown");
        no_request_spans_a_freeze(&emu, &intake);
        let reqs = intake.requests();
        // The kept data left with the next invocation's flush, not only at SHUTDOWN.
        let w2 = in_window(&reqs, LOGS, window(&o2));
        assert!(
            has_line(&w2, "during the outage"),
            "HTTP {status}: kept logs not sent at the next flush"
        );
        let sk2: Vec<IntakeRequest> = in_window(&reqs, SKETCHES, window(&o2))
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(
            agg(&accepted_points(&sk2), INVOCATIONS, None).cnt,
            2,
            "HTTP {status}"
        );
        let logs = accepted_logs(&reqs);
        assert_eq!(count_line(&logs, "during the outage"), 1);
        assert_eq!(count_line(&logs, "after the outage"), 1);
        check(&points(&intake), INVOCATIONS, None, &[1.0, 1.0]);
    }
}

/// Metrics and logs go to two hosts, shipped in parallel: one intake down
/// does not hold back the other's delivery; what it did not take is kept and
/// arrives once at the next flush.
#[test]
fn one_intake_down_the_other_still_delivers() {
    for metrics_down in [true, false] {
        let (mi, li) = (FakeIntake::start(), FakeIntake::start());
        let logs_url = li.url();
        let env = env_with(&[("DD_FLUSH_TIMEOUT", "1"), ("DD_LOGS_CONFIG_LOGS_DD_URL", &logs_url)]);
        let emu = start(config(&mi, &env));
        let (down, up) = if metrics_down { (&mi, &li) } else { (&li, &mi) };
        down.set_mode(IntakeMode::Status(500));
        let o1 = emu.invoke(Invocation::new(20).log("during the outage"));
        ok(&o1);
        let w1 = window(&o1);
        let (mreqs, lreqs) = (mi.requests(), li.requests());
        let sk1: Vec<IntakeRequest> = in_window(&mreqs, SKETCHES, w1).into_iter().cloned().collect();
        let logs1: Vec<IntakeRequest> = in_window(&lreqs, LOGS, w1).into_iter().cloned().collect();
        assert!(!sk1.is_empty() && !logs1.is_empty(), "metrics down: {metrics_down}");
        if metrics_down {
            assert!(sk1.iter().all(|r| !accepted(r)), "{sk1:?}");
            assert_eq!(count_line(&accepted_logs(&logs1), "during the outage"), 1, "logs held back");
        } else {
            assert!(accepted_logs(&logs1).is_empty(), "{logs1:?}");
            assert_eq!(agg(&accepted_points(&sk1), INVOCATIONS, None).cnt, 1, "metrics held back");
        }
        down.set_mode(IntakeMode::Accept);
        let o2 = emu.invoke(Invocation::new(20).log("after the outage"));
        ok(&o2);
        finish(&emu, &mi, "spindown");
        key_never_leaks(&emu, &li);
        no_request_spans_a_freeze(&emu, &mi);
        no_request_spans_a_freeze(&emu, &li);
        let (mreqs, lreqs) = (mi.requests(), li.requests());
        // Each kind went to its own host only.
        assert!(mreqs.iter().all(|r| r.path_only() == SKETCHES), "{mreqs:?}");
        assert!(lreqs.iter().all(|r| r.path_only() == LOGS), "{lreqs:?}");
        // The kept payload left with the second invocation's flush, once.
        let w2 = window(&o2);
        if metrics_down {
            let sk2: Vec<IntakeRequest> = in_window(&mreqs, SKETCHES, w2).into_iter().cloned().collect();
            assert_eq!(agg(&accepted_points(&sk2), INVOCATIONS, None).cnt, 2);
        } else {
            assert!(has_line(&in_window(&lreqs, LOGS, w2), "during the outage"));
        }
        let logs = accepted_logs(&lreqs);
        assert_eq!(count_line(&logs, "during the outage"), 1);
        assert_eq!(count_line(&logs, "after the outage"), 1);
        check(&points(&mi), INVOCATIONS, None, &[1.0, 1.0]);
        assert!(up.requests().iter().all(accepted));
    }
}

/// 403 (bad key) and 413 (too large) are not retried: the payload is dropped
/// with an error line; the extension and the function go on.
#[test]
fn intake_403_and_413_drop_with_a_log_line() {
    for status in [403u16, 413] {
        let intake = FakeIntake::start();
        let emu = start(config(&intake, &env_with(&[])));
        intake.set_mode(IntakeMode::Status(status));
        let o1 = emu.invoke(Invocation::new(20).log("refused"));
        ok(&o1);
        // Once each, not retried.
        let sk = in_window(&intake.requests(), SKETCHES, window(&o1)).len();
        assert_eq!(sk, 1, "HTTP {status}");
        intake.set_mode(IntakeMode::Accept);
        let o2 = emu.invoke(Invocation::new(20).log("accepted"));
        ok(&o2);
        finish(&emu, &intake, "spindown");
        let out = output(&emu);
        let lines: Vec<&String> = out
            .iter()
            .filter(|l| l.contains(&format!("HTTP {status}")) && l.contains("dropped"))
            .collect();
        assert!(lines.len() >= 2, "HTTP {status}: {out:#?}"); // sketches and logs
        assert!(lines.iter().all(|l| l.contains("ERROR")));
        let logs = accepted_logs(&intake.requests());
        assert_eq!(count_line(&logs, "refused"), 0);
        assert_eq!(count_line(&logs, "accepted"), 1);
        // Only the second invocation's count made it.
        check(&points(&intake), INVOCATIONS, None, &[1.0]);
    }
}

/// A slow intake: the flush is abandoned at DD_FLUSH_TIMEOUT, the extension
/// goes back to `next`, and the data is sent again at the next flush.
#[test]
fn intake_slow_flush_is_abandoned_and_delivered_later() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &env_with(&[("DD_FLUSH_TIMEOUT", "1")])));
    ok(&emu.invoke(Invocation::new(20).log("before")));
    intake.set_mode(IntakeMode::Slow {
        delay_ms: 4000,
        status: 202,
    });
    let o2 = emu.invoke(Invocation::new(20).log("while slow"));
    ok(&o2);
    let w2 = window(&o2);
    // Gave up at ~1 s, not after the intake's 4 s.
    assert!(o2.post_runtime_ms.unwrap() < 3500.0, "{o2:?}");
    intake.set_mode(IntakeMode::Accept);
    let o3 = emu.invoke(Invocation::new(20).log("after"));
    ok(&o3);
    finish(&emu, &intake, "spindown");
    let reqs = intake.requests();
    let slow: Vec<&IntakeRequest> = in_window(&reqs, SKETCHES, w2);
    assert!(!slow.is_empty());
    for r in &slow {
        // The intake answered after the extension had moved on: it abandoned the request.
        assert!(r.answered_ms.map_or(true, |a| a > w2.1), "{r:?} {o2:?}");
    }
    let w3 = in_window(&reqs, LOGS, window(&o3));
    assert!(
        has_line(&w3, "while slow"),
        "the abandoned logs are sent again at the next flush"
    );
    let logs = accepted_logs(&reqs);
    for l in ["before", "while slow", "after"] {
        assert!(count_line(&logs, l) >= 1, "{l} lost");
    }
    assert!(agg(&points(&intake), INVOCATIONS, None).cnt >= 3);
}

/// A slow intake at SHUTDOWN: the extension exits before the deadline
/// (default DD_FLUSH_TIMEOUT of 30 s notwithstanding).
#[test]
fn intake_slow_at_shutdown_stays_within_the_deadline() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &env_with(&[])));
    ok(&emu.invoke(Invocation::new(20).log("x")));
    intake.set_mode(IntakeMode::Slow {
        delay_ms: 10_000,
        status: 202,
    });
    let sd = finish(&emu, &intake, "spindown");
    assert!(!intake.requests_to(SKETCHES).is_empty());
    assert!(sd.elapsed_ms < 2000.0 * slow_factor() as f64, "{sd:?}");
}

/// The intake resets connections: retried, then kept; nothing lost.
#[test]
fn intake_reset_connection_then_recovery() {
    let intake = FakeIntake::start();
    let emu = start(config(&intake, &env_with(&[("DD_FLUSH_TIMEOUT", "1")])));
    intake.set_mode(IntakeMode::Reset);
    let o1 = emu.invoke(Invocation::new(20).log("reset"));
    ok(&o1);
    assert!(o1.post_runtime_ms.unwrap() < 5000.0, "{o1:?}");
    assert!(!in_window(&intake.requests(), SKETCHES, window(&o1)).is_empty());
    intake.set_mode(IntakeMode::Accept);
    let o2 = emu.invoke(Invocation::new(20).log("recovered"));
    ok(&o2);
    finish(&emu, &intake, "spindown");
    no_request_spans_a_freeze(&emu, &intake);
    let reqs = intake.requests();
    assert!(has_line(&in_window(&reqs, LOGS, window(&o2)), "reset"));
    let logs = accepted_logs(&reqs);
    assert_eq!(count_line(&logs, "reset"), 1);
    assert_eq!(count_line(&logs, "recovered"), 1);
    check(&points(&intake), INVOCATIONS, None, &[1.0, 1.0]);
}

/// Nothing listens on the intake's port: the function is unaffected (each
/// invocation ends in well under the 30 s default DD_FLUSH_TIMEOUT), the
/// extension says what it keeps, and exits cleanly.
#[test]
fn intake_dead_port_does_not_hold_the_function() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let intake = FakeIntake::start(); // unused: only for the harness
    let emu = start(config(
        &intake,
        &env_with(&[("DD_DD_URL", &url), ("DD_LOGS_CONFIG_LOGS_DD_URL", &url)]),
    ));
    for i in 0..3 {
        let o = emu.invoke(Invocation::new(20).log(&format!("line {i}")));
        ok(&o);
        assert!(o.post_runtime_ms.unwrap() < 5000.0, "{o:?}");
    }
    let sd = emu.shutdown("spindown");
    assert!(!sd.killed && sd.exit_code(NAME) == Some(0), "{sd:?}");
    let out = output(&emu);
    assert!(out.iter().any(|l| l.contains("keeping")), "{out:#?}");
    assert!(out.iter().all(|l| !l.contains(KEY)));
    assert!(intake.requests().is_empty());
}

/// No API key at all: nothing is sent, one clear error line, the function
/// is unaffected.
#[test]
fn missing_api_key_sends_nothing_and_says_so() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &env_with(&[]));
    c.env.retain(|(k, _)| k != "DD_API_KEY");
    let emu = start(c);
    for i in 0..2 {
        let o = emu.invoke(Invocation::new(20).log(&format!("line {i}")));
        ok(&o);
        assert!(o.post_runtime_ms.unwrap() < 1000.0, "{o:?}");
    }
    let sd = emu.shutdown("spindown");
    assert!(!sd.killed && sd.exit_code(NAME) == Some(0), "{sd:?}");
    assert!(intake.requests().is_empty(), "{:?}", intake.requests());
    let out = output(&emu);
    let lines: Vec<&String> = out.iter().filter(|l| l.contains("DD_API_KEY")).collect();
    assert_eq!(lines.len(), 1, "{out:#?}");
    assert!(
        lines[0].contains("ERROR") && lines[0].contains("not set"),
        "{lines:?}"
    );
}

/// The key never appears in the extension's output, even at trace level
/// and through refusals and retries.
#[test]
fn api_key_never_printed_even_at_trace_level() {
    let intake = FakeIntake::start();
    let emu = start(config(
        &intake,
        &env_with(&[("DD_LOG_LEVEL", "trace"), ("DD_FLUSH_TIMEOUT", "1")]),
    ));
    for mode in [
        IntakeMode::Status(403),
        IntakeMode::Status(500),
        IntakeMode::Reset,
        IntakeMode::Accept,
    ] {
        intake.set_mode(mode);
        ok(&emu.invoke(Invocation::new(10).log("x")));
    }
    finish(&emu, &intake, "spindown");
    assert!(output(&emu).len() > 3, "trace level prints something");
}
