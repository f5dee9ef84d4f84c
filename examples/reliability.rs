//! The figures of issue 8's Goal for the deadline/SHUTDOWN part, as a table
//! (`size-reports/reliability.md`): invocations timed out because of slimcap
//! with a hung intake, per flush strategy and function timeout; SIGKILLs at
//! SHUTDOWN per fault scenario, both modes; lines delivered vs counted.
//!
//! ```sh
//! cargo build --release && cargo run --release --example reliability
//! ```
//! `SLIMCAP_BIN` picks another binary (default `target/release/slimcap`);
//! `RELIABILITY_TIMEOUTS=3000,10000,30000` the function timeouts (ms);
//! `RELIABILITY_INVOCATIONS` the invocations per scenario while the fault holds (3).
//! Scenarios run 4 at a time (each mostly waits on deadlines).

#[path = "../tests/common/faults.rs"]
mod faults;

use faults::{Fault, Outcome, Scenario, FAULTS, STRATEGIES};
use lambda_emulator::ExtensionSpec;
use std::sync::{Arc, Mutex};

fn spec() -> ExtensionSpec {
    let bin = std::env::var("SLIMCAP_BIN").unwrap_or_else(|_| "target/release/slimcap".into());
    ExtensionSpec::process_named("slimcap", bin, &[])
}

/// Runs every scenario, 4 at a time, results in the same order.
fn run_all(scs: Vec<Scenario>) -> Vec<(Scenario, Outcome)> {
    let queue = Arc::new(Mutex::new(scs.into_iter().enumerate().collect::<Vec<_>>()));
    let done = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (q, d) = (queue.clone(), done.clone());
            std::thread::spawn(move || loop {
                let Some((i, sc)) = q.lock().unwrap().pop() else { return };
                let o = faults::run(spec(), &sc);
                eprintln!("{sc:?}: timed out {}, killed {}", o.timed_out_by_extension, o.killed);
                d.lock().unwrap().push((i, sc, o));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut v = std::mem::take(&mut *done.lock().unwrap());
    v.sort_by_key(|(i, ..)| *i);
    v.into_iter().map(|(_, s, o)| (s, o)).collect()
}

fn name(s: Option<&str>) -> &str {
    s.unwrap_or("default (adaptive)")
}

fn main() {
    let timeouts: Vec<u64> = std::env::var("RELIABILITY_TIMEOUTS")
        .unwrap_or_else(|_| "3000,10000".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    let n: usize = std::env::var("RELIABILITY_INVOCATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);

    // 1. A hung intake: invocations timed out because of slimcap.
    let mut scs = vec![];
    for &t in &timeouts {
        for s in STRATEGIES {
            scs.push(Scenario { fault: Fault::Hang, strategy: s, timeout_ms: t, managed: false, invocations: n, shutdown_in_fault: false });
        }
    }
    // 2. Every fault: SHUTDOWN into it (on demand: the final flush; managed:
    //    the timer flush), and recovery (managed: after the timer flush).
    for f in FAULTS {
        for s in STRATEGIES {
            scs.push(Scenario { fault: f, strategy: s, timeout_ms: 3_000, managed: false, invocations: n, shutdown_in_fault: true });
        }
        for shutdown_in_fault in [true, false] {
            scs.push(Scenario { fault: f, strategy: None, timeout_ms: 3_000, managed: true, invocations: n, shutdown_in_fault });
        }
    }
    let results = run_all(scs);

    println!("### Hung intake (accepts, never answers): invocations timed out because of slimcap\n");
    println!("{n} invocations of {} ms under the fault, then the intake recovers (one more invocation, SHUTDOWN).\n", faults::RUNTIME_MS);
    println!("| function timeout | strategy | invocations | timed out by slimcap | post-runtime under fault (max ms) | lines arrived / logged | SIGKILL |");
    println!("|---:|---|---:|---:|---:|---:|---|");
    for (sc, o) in results.iter().filter(|(s, _)| s.fault == Fault::Hang && !s.managed && !s.shutdown_in_fault) {
        println!(
            "| {} s | {} | {} | **{}** | {} | {} / {} | {} |",
            sc.timeout_ms / 1000,
            name(sc.strategy),
            o.invocations,
            o.timed_out_by_extension,
            o.post_runtime_max_ms.round(),
            o.lines_arrived,
            o.lines_logged,
            if o.killed { "**yes**" } else { "no" }
        );
    }
    println!("\n### SHUTDOWN in the middle of a flush into a faulty intake (2 s budget)\n");
    println!("| mode | fault | strategy | scenario | invocations timed out | SIGKILL | exit | SHUTDOWN → exit (ms) | lines arrived / logged | payloads reported dropped |");
    println!("|---|---|---|---|---:|---|---:|---:|---:|---:|");
    for (sc, o) in results.iter().filter(|(s, _)| s.managed || s.shutdown_in_fault) {
        println!(
            "| {} | {:?} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            if sc.managed { "managed" } else { "on demand" },
            sc.fault,
            name(sc.strategy),
            match (sc.managed, sc.shutdown_in_fault) {
                (true, true) => "SHUTDOWN in the timer flush",
                (true, false) => "recovers after the timer flush",
                _ => "SHUTDOWN in the final flush",
            },
            o.timed_out_by_extension,
            if o.killed { "**yes**" } else { "no" },
            o.exit_code.map_or("-".into(), |c| c.to_string()),
            o.shutdown_ms.round(),
            o.lines_arrived,
            o.lines_logged,
            o.dropped_reported.map_or("?".into(), |d| d.to_string()),
        );
    }
    let kills = results.iter().filter(|(_, o)| o.killed).count();
    let timed_out: usize = results.iter().map(|(_, o)| o.timed_out_by_extension).sum();
    let unaccounted = results.iter().filter(|(_, o)| !o.accounted()).count();
    println!("\nTotal: {} scenarios, {timed_out} invocations timed out by slimcap, {kills} SIGKILLs, {unaccounted} scenarios with lines neither delivered nor counted.", results.len());
}
