//! `lambda-emulator demo [PATH_TO_EXTENSION] [--mi] [-v]`
//!
//! Runs the embedded default scenario against an extension binary (default
//! `target/release/slimcap`): a fake Datadog intake, a cold start, three
//! invocations (one failing) with a few function log lines, a SHUTDOWN, and
//! prints a timeline of what crossed the Runtime API, the Telemetry API and
//! the intake.

use lambda_emulator::*;
use serde_json::Value;
use std::time::Duration;

// The SketchPayload decoder slimcap's own tests use (prost).
#[path = "../../common/sketch_proto.rs"]
#[allow(dead_code)]
mod sketch_proto;

const LEGEND: &str = "\
legend:  → the extension calls the Lambda API (← the platform's answer)
         ← next returns an event to the extension
         ⇢ telemetry POST: the platform delivers telemetry records to the extension's listener
         ⇢ intake: the extension ships to (fake) Datadog
         · frozen / thawed: the sandbox is frozen between invocations (the extension is SIGSTOPped)
         » a line the extension printed (-v)
";

fn usage() -> ! {
    eprintln!("usage: lambda-emulator demo [PATH_TO_EXTENSION] [--mi] [-v]");
    eprintln!("  PATH defaults to target/release/slimcap (build it with `cargo build --release`)");
    eprintln!("  --mi   emulate Lambda Managed Instances (concurrent invocations, SHUTDOWN only)");
    eprintln!("  -v     also print the extension's own output (run with DD_LOG_LEVEL=debug)");
    std::process::exit(2);
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

fn size(n: usize) -> String {
    if n >= 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn summarize_types(records: &[Value]) -> String {
    let mut out: Vec<(String, usize)> = vec![];
    for r in records {
        let t = r["type"]
            .as_str()
            .unwrap_or("?")
            .trim_start_matches("platform.")
            .to_string();
        match out.last_mut() {
            Some((l, n)) if *l == t => *n += 1,
            _ => out.push((t, 1)),
        }
    }
    out.iter()
        .map(|(t, n)| {
            if *n > 1 {
                format!("{t}×{n}")
            } else {
                t.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("demo") {
        usage();
    }
    let mut path = None;
    let mut mi = false;
    let mut verbose = false;
    for a in &args[1..] {
        match a.as_str() {
            "--mi" => mi = true,
            "-v" | "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("usage: lambda-emulator demo [PATH_TO_EXTENSION] [--mi] [-v]");
                return;
            }
            p if !p.starts_with('-') && path.is_none() => path = Some(p.to_string()),
            _ => usage(),
        }
    }
    let path = path.unwrap_or_else(|| "target/release/slimcap".into());
    if !std::path::Path::new(&path).exists() {
        eprintln!("extension binary {path:?} not found (build it with `cargo build --release`)");
        std::process::exit(2);
    }
    std::process::exit(run(&path, mi, verbose));
}

fn run(path: &str, mi: bool, verbose: bool) -> i32 {
    let intake = FakeIntake::start();
    let mut cfg = Config::with_extension(path);
    let name = cfg.extensions[0].name.clone();
    cfg.mode = if mi {
        Mode::ManagedInstances
    } else {
        Mode::OnDemand
    };
    cfg.function.name = "demo-fn".into();
    cfg.function.memory_mb = 256;
    cfg.runtime_init_ms = 25;
    // SIGSTOP the extension while the sandbox is frozen, as Lambda does.
    cfg.freeze_processes = true;
    cfg.env = vec![
        ("DD_API_KEY".into(), "demo-key".into()),
        ("DD_SITE".into(), "datadoghq.com".into()),
        ("DD_DD_URL".into(), intake.url()),
        ("DD_LOGS_CONFIG_LOGS_DD_URL".into(), intake.url()),
        ("DD_FLUSH_TIMEOUT".into(), "2".into()),
        ("DD_SERVICE".into(), "demo".into()),
        ("DD_ENV".into(), "emulator".into()),
    ];
    if verbose {
        cfg.env.push(("DD_LOG_LEVEL".into(), "debug".into()));
    }
    cfg.init_log_lines = vec!["runtime: loading handler app.handler".into()];
    println!(
        "lambda-emulator demo: {} sandbox, function demo-fn (256 MB, us-east-1), extension {name:?}",
        cfg.mode.init_type()
    );
    println!(
        "fake Datadog intake at {}; the extension is SIGSTOPped while frozen\n",
        intake.url()
    );
    let emu = match Emulator::start(cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return 1;
        }
    };
    let init = emu.wait_init(Duration::from_secs(12));
    let t0 = init.init_start_ms;
    let mut ok = init.ok;
    let invs = vec![
        Invocation::new(80)
            .log("processing order 1")
            .log(r#"{"level":"INFO","message":"fetched 3 items"}"#)
            .log("order 1 done"),
        Invocation::new(40)
            .log("processing order 2")
            .log("ERROR payment service said: boom")
            .status(InvokeStatus::Error), // on purpose: an error for the metrics and logs
        Invocation::new(120)
            .log("processing order 3")
            .log("order 3 done")
            .memory_used(97),
    ];
    let mut outs = vec![];
    if init.ok {
        if mi {
            outs = emu.invoke_many(invs);
        } else {
            for inv in invs {
                outs.push(emu.invoke(inv));
                std::thread::sleep(Duration::from_millis(150)); // frozen between invocations
            }
        }
    }
    // let the intake catch the last flushes
    std::thread::sleep(Duration::from_millis(100));
    let sd = emu.shutdown("spindown");

    // ---- timeline
    let mut tl: Vec<(f64, String)> = vec![(t0, "platform.initStart".into())];
    for p in &init.processes {
        tl.push((p.exec_ms, format!("exec {}", p.name)));
    }
    let mut first_next_seen = false;
    for w in emu.wire() {
        let st = w
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "—".into());
        let who = w.ext.clone().unwrap_or_default();
        if w.path.ends_with("/extension/register") {
            let evs = w
                .body_json()
                .map(|b| b["events"].to_string())
                .unwrap_or_default();
            let reg = init
                .processes
                .iter()
                .find(|p| p.name == who)
                .and_then(|p| p.exec_to_register_ms())
                .map(|d| format!(" (exec→register {d:.1} ms)"))
                .unwrap_or_default();
            tl.push((w.at_ms, format!("→ register {who:?} {evs} ← {st}{reg}")));
        } else if w.path.ends_with("/telemetry") {
            let b = w.body_json().unwrap_or(Value::Null);
            let desc = format!(
                "schema {} types {} buffering {}/{}/{}ms",
                b["schemaVersion"].as_str().unwrap_or("?"),
                b["types"],
                b["buffering"]["maxItems"],
                b["buffering"]["maxBytes"],
                b["buffering"]["timeoutMs"]
            );
            let extra = if w.status == Some(200) {
                String::new()
            } else {
                format!(" {}", w.answer_str())
            };
            tl.push((w.at_ms, format!("→ subscribe {desc} ← {st}{extra}")));
        } else if w.path.ends_with("/event/next") {
            if !first_next_seen {
                first_next_seen = true;
                tl.push((w.at_ms, format!("→ first next ({who})")));
            }
            if let (Some(a), Some(ev)) = (w.answered_ms, w.answer_json()) {
                let ty = ev["eventType"].as_str().unwrap_or("?");
                let rid = ev["requestId"]
                    .as_str()
                    .map(|r| format!(" {}", short(r)))
                    .unwrap_or_default();
                tl.push((a, format!("← next returns {ty}{rid} to {who}")));
            }
        } else {
            tl.push((w.at_ms, format!("→ {} {} ← {st}", w.method, w.path)));
        }
    }
    if let Some(d) = init.init_done_ms {
        let what = if init.ok { "INIT done" } else { "INIT failed" };
        tl.push((
            d,
            format!(
                "{what} in {:.1} ms (runtime ready at +{:.1}); subscription window closed",
                d - t0,
                init.runtime_ready_ms.map(|r| r - t0).unwrap_or(0.0)
            ),
        ));
    }
    for (i, o) in outs.iter().enumerate() {
        if let Some(e) = &o.error {
            tl.push((
                o.started_ms.max(t0),
                format!("invoke #{} could not run: {e}", i + 1),
            ));
            ok = false;
            continue;
        }
        let deliberate = if o.status == "success" {
            ""
        } else {
            " (deliberate: the demo's invocation #2 fails)"
        };
        tl.push((
            o.started_ms,
            format!("INVOKE #{} {}{deliberate}", i + 1, short(&o.request_id)),
        ));
        // Managed instances have no runtimeDone: the function's response.
        let done = if mi { "response" } else { "runtimeDone" };
        tl.push((
            o.runtime_done_ms,
            format!(
                "{done} #{} {} ({:.1} ms){deliberate}",
                i + 1,
                o.status,
                o.runtime_done_ms - o.started_ms
            ),
        ));
        if let Some(n) = o.extensions_next_ms {
            tl.push((
                n,
                format!(
                    "#{} ends: extension back in next, post-runtime {:.1} ms, duration {:.1} ms, billed {} ms",
                    i + 1,
                    o.post_runtime_ms.unwrap_or(0.0),
                    o.report_duration_ms,
                    o.billed_duration_ms
                ),
            ));
        }
    }
    for d in emu.deliveries() {
        let res = match (d.status, &d.error) {
            (Some(s), _) => s.to_string(),
            (None, Some(e)) => format!("error: {e}"),
            _ => "?".into(),
        };
        let retry = if d.attempt > 1 {
            format!(" (retry {})", d.attempt - 1)
        } else {
            String::new()
        };
        tl.push((
            d.started_ms,
            format!(
                "⇢ telemetry POST {} records [{}] ← {res}{retry}",
                d.records.len(),
                summarize_types(&d.records)
            ),
        ));
    }
    for r in intake.requests() {
        let enc = r
            .header("content-encoding")
            .map(|e| format!(" {e} {}", size(r.raw_body.len())))
            .unwrap_or_default();
        let st = r
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "reset".into());
        tl.push((
            r.at_ms,
            format!(
                "⇢ intake {} {} {}{enc} ← {st}",
                r.method,
                r.path_only(),
                size(r.body.len())
            ),
        ));
    }
    tl.push((
        sd.started_ms,
        format!(
            "SHUTDOWN ({}) sent, deadline +{:.0} ms",
            sd.reason,
            sd.deadline_ms - sd.started_ms
        ),
    ));
    for p in &sd.processes {
        if let Some(x) = p.exited_ms {
            let how = if p.killed {
                "SIGKILLed at the deadline".to_string()
            } else {
                format!(
                    "exited with {}",
                    p.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| format!("signal {:?}", p.signal))
                )
            };
            tl.push((x, format!("{} {how}", p.name)));
        }
    }
    for f in emu.freezes() {
        tl.push((f.start_ms, "· frozen".into()));
        if let Some(e) = f.end_ms {
            tl.push((e, "· thawed".into()));
        }
    }
    if verbose {
        for l in emu.output() {
            tl.push((l.at_ms, format!("» {}", l.line)));
        }
    }
    tl.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    println!("{LEGEND}");
    for (t, s) in &tl {
        println!("{:>9.1} ms  {s}", t - t0);
    }

    // ---- summary
    let dels = emu.deliveries();
    let ok_dels = dels.iter().filter(|d| d.ok()).count();
    let records: usize = dels
        .iter()
        .filter(|d| d.ok())
        .map(|d| d.records.len())
        .sum();
    let reqs = intake.requests();
    println!("\nsummary");
    if let Some(p) = init.processes.first() {
        println!(
            "  exec→register {}; INIT {}",
            p.exec_to_register_ms()
                .map(|d| format!("{d:.1} ms"))
                .unwrap_or_else(|| "never".into()),
            init.init_duration_ms
                .map(|d| format!("{d:.1} ms"))
                .unwrap_or_else(|| format!("failed ({:?})", init.error_type))
        );
    }
    let posts: Vec<String> = outs
        .iter()
        .filter_map(|o| o.post_runtime_ms)
        .map(|p| format!("{p:.1}"))
        .collect();
    if !posts.is_empty() {
        println!("  post-runtime per invocation: {} ms", posts.join(", "));
    }
    println!(
        "  telemetry: {} deliveries ({} ok), {} records delivered, {} left undelivered",
        dels.len(),
        ok_dels,
        records,
        sd.undelivered_records
    );
    let freezes = emu.freezes();
    let frozen_intake = reqs
        .iter()
        .filter(|r| {
            freezes.iter().any(|f| {
                let end = f.end_ms.unwrap_or(f64::MAX);
                // straddles the freeze start, or arrived while frozen
                r.at_ms > f.start_ms && (r.started_ms < f.start_ms || r.at_ms < end)
            })
        })
        .count();
    if frozen_intake > 0 {
        println!(
            "  WARNING: {frozen_intake} intake request(s) were in flight when the sandbox froze"
        );
    }
    let spanning = emu.deliveries_spanning_freeze().len();
    if spanning > 0 {
        println!("  WARNING: {spanning} deliveries overlapped a freeze");
    }
    let mut paths: Vec<(String, usize, usize)> = vec![];
    for r in &reqs {
        match paths.iter_mut().find(|p| p.0 == r.path_only()) {
            Some(p) => {
                p.1 += 1;
                p.2 += r.body.len();
            }
            None => paths.push((r.path_only().to_string(), 1, r.body.len())),
        }
    }
    if paths.is_empty() {
        println!("  intake: nothing received");
    }
    for (p, n, b) in &paths {
        println!("  intake {p}: {n} request(s), {}", size(*b));
    }
    print_received(&reqs);
    let code = sd.processes.first().and_then(|p| p.exit_code);
    println!(
        "  shutdown: {} in {:.1} ms, exit code {}",
        if sd.killed { "SIGKILLed" } else { "clean" },
        sd.elapsed_ms,
        code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
    );
    if !verbose {
        println!(
            "  ({} lines of extension output; -v to show)",
            emu.output().len()
        );
    }
    if !ok || sd.killed || code != Some(0) {
        1
    } else {
        0
    }
}

/// What reached the intake: each metric with a value, the first log lines.
fn print_received(reqs: &[IntakeRequest]) {
    // metric -> (points, sum, min, max), over every payload and cold_start tag
    let mut metrics: Vec<(String, i64, f64, f64, f64)> = vec![];
    let mut logs: Vec<String> = vec![];
    for r in reqs {
        match r.path_only() {
            "/api/beta/sketches" => {
                use prost::Message;
                let Ok(p) = sketch_proto::SketchPayload::decode(r.body.as_slice()) else {
                    println!("  (a sketches body did not decode)");
                    continue;
                };
                for sk in p.sketches {
                    let i = match metrics.iter().position(|m| m.0 == sk.metric) {
                        Some(i) => i,
                        None => {
                            metrics.push((sk.metric.clone(), 0, 0.0, f64::MAX, f64::MIN));
                            metrics.len() - 1
                        }
                    };
                    let m = &mut metrics[i];
                    for d in &sk.dogsketches {
                        m.1 += d.cnt;
                        m.2 += d.sum;
                        m.3 = m.3.min(d.min);
                        m.4 = m.4.max(d.max);
                    }
                }
            }
            "/api/v2/logs" => {
                if let Some(Value::Array(a)) = r.json() {
                    // (the entry's message: a string, or {"lambda":…,"message":…})
                    logs.extend(a.iter().map(|e| {
                        let m = match &e["message"] {
                            Value::Object(o) => o.get("message").unwrap_or(&Value::Null),
                            m => m,
                        };
                        m.as_str().map(str::to_string).unwrap_or_else(|| m.to_string())
                    }));
                }
            }
            _ => {}
        }
    }
    if !metrics.is_empty() {
        println!("  metrics received (distributions: points, then the value or avg [min..max]):");
    }
    for (name, n, sum, min, max) in &metrics {
        let v = if min == max {
            round(*min)
        } else {
            format!("avg {} [{}..{}]", round(sum / *n as f64), round(*min), round(*max))
        };
        println!("    {name:<46} {n:>2} × {v}");
    }
    if !logs.is_empty() {
        println!("  logs received: {} entries; the first:", logs.len());
    }
    for l in logs.iter().take(8) {
        let l = l.trim_end();
        let cut: String = l.chars().take(110).collect();
        println!("    {cut}{}", if cut.len() < l.len() { "…" } else { "" });
    }
}

/// Three decimals, or three significant digits for tiny values (costs).
fn round(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.001 {
        format!("{v:.3e}")
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}
