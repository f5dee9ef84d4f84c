//! Lambda Managed Instances end to end: the emulator emits what Lambda does in
//! that mode (per invocation `platform.start` and `platform.report`, no
//! `platform.runtimeDone`; shared/docs/lambda-platform.md), and slimcap derives
//! `errors`, `timeouts` and `runtime_duration` from the report, as bottlecap
//! does: `handle_managed_instance_report` synthesizes a runtimeDone from the
//! report (bottlecap/src/lifecycle/invocation/processor.rs:944-966: runtime
//! duration = the `responseLatency` span, else `durationMs`), then
//! `on_platform_runtime_done` counts errors and timeouts (:574-582).

mod common;
#[path = "common/sketches.rs"]
mod sketches;

use common::*;
use sketches::{accepted_points, agg};

const INVOCATIONS: &str = "aws.lambda.enhanced.invocations";
const ERRORS: &str = "aws.lambda.enhanced.errors";
const TIMEOUTS: &str = "aws.lambda.enhanced.timeouts";
const RUNTIME_DURATION: &str = "aws.lambda.enhanced.runtime_duration";
const POST_RUNTIME_DURATION: &str = "aws.lambda.enhanced.post_runtime_duration";

#[test]
fn managed_instances_errors_timeouts_and_runtime_duration_come_from_the_report() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[]);
    c.mode = Mode::ManagedInstances;
    let emu = start(c);
    let outs = emu.invoke_many(vec![
        Invocation::new(30).log("fine"),
        Invocation::new(40).status(InvokeStatus::Error),
        Invocation::new(50).status(InvokeStatus::Timeout),
    ]);
    assert!(outs.iter().all(|o| o.error.is_none()), "{outs:?}");
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code(NAME), Some(0), "{sd:?}\n{:#?}", output(&emu));

    // What the platform sent: no runtimeDone; reports with the latency span.
    let emitted = emu.emitted();
    assert!(!emitted.iter().any(|e| e["type"] == "platform.runtimeDone"));
    let latency: Vec<f64> = outs
        .iter()
        .map(|o| {
            let rep = emitted
                .iter()
                .find(|e| e["type"] == "platform.report" && e["record"]["requestId"] == o.request_id.as_str())
                .unwrap_or_else(|| panic!("no report for {o:?}"));
            let span = &rep["record"]["spans"][0];
            assert_eq!(span["name"], "responseLatency", "{rep}");
            span["durationMs"].as_f64().unwrap()
        })
        .collect();

    // What reached Datadog.
    let p = accepted_points(&intake.requests());
    let count = |m: &str| agg(&p, m, None).cnt;
    assert_eq!(count(INVOCATIONS), 3, "{p:#?}");
    assert_eq!(count(ERRORS), 2, "errors: the error and the timeout\n{p:#?}");
    assert_eq!(count(TIMEOUTS), 1, "{p:#?}");
    assert_eq!(count(POST_RUNTIME_DURATION), 0, "{p:#?}");
    let rt = agg(&p, RUNTIME_DURATION, None);
    assert_eq!(rt.cnt, 3, "{p:#?}");
    let want: f64 = latency.iter().sum();
    assert!((rt.sum - want).abs() <= 1e-9 * want, "runtime_duration sum {} want {want} ({latency:?})", rt.sum);
}
