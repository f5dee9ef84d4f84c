//! subscribe-race: does subscribing concurrently with the first `next` pay, and is it safe?
//!
//!   subscribe-race [-n RUNS] [--init-ms 0,5,50] [--modes awaited,concurrent] [--runner PROG] LABEL=BINARY...
//!
//! For each run: a fresh emulated sandbox (tests/emulator) with the binary installed as
//! /opt/extensions/slimcap, `SLIMCAP_SUBSCRIBE=<mode>`, the runtime taking `init-ms` to
//! initialise; INIT, one 10 ms invocation that logs a line, SHUTDOWN. Runs are interleaved
//! (binary × mode × init time, round-robin). The emulator closes the subscription window as
//! the platform does: once the runtime is ready and every extension has made its first `next`.
//!
//! Prints one tab-separated row per binary, mode and init time:
//! label mode init_ms runs sub_200 sub_403 sub_other no_sub no_telemetry init_p50 init_p90
//! reg_p50 next_p50 (ms; init = the platform's INIT duration; reg/next = exec→register /
//! exec→first next).
use lambda_emulator::*;
use std::time::Duration;

#[derive(Default, Clone)]
struct Cell {
    runs: usize,
    ok200: usize,
    refused403: usize,
    other: usize,
    none: usize,
    no_telemetry: usize,
    init: Vec<f64>,
    reg: Vec<f64>,
    next: Vec<f64>,
    failures: Vec<String>,
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// The extension as installed: `/opt/extensions/slimcap` (under a runner such as qemu-user,
/// a copy named `slimcap`, since the guest's argv[0] is the path given).
fn spec(bin: &str, runner: Option<&str>) -> ExtensionSpec {
    match runner {
        None => ExtensionSpec::process_named("slimcap", bin, &[]),
        Some(r) => {
            let dir = std::env::temp_dir().join(format!("subscribe-race-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let copy = dir.join(format!(
                "{:x}",
                bin.bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
            ));
            let _ = std::fs::create_dir_all(&copy);
            let path = copy.join("slimcap");
            if !path.exists() {
                std::fs::copy(bin, &path).expect("copy binary");
            }
            ExtensionSpec {
                name: "slimcap".into(),
                launch: Launch::Process {
                    program: r.into(),
                    args: vec![path.display().to_string()],
                },
            }
        }
    }
}

fn one_run(bin: &str, runner: Option<&str>, mode: &str, init_ms: u64, cell: &mut Cell) {
    let cfg = Config {
        extensions: vec![spec(bin, runner)],
        env: vec![
            ("SLIMCAP_SUBSCRIBE".into(), mode.into()),
            ("SLIMCAP_TELEMETRY_PORT".into(), "0".into()),
            ("DD_LOG_LEVEL".into(), "error".into()),
        ],
        runtime_init_ms: init_ms,
        shutdown_budget_ms: 1000,
        ..Config::default()
    };
    let emu = match Emulator::start(cfg) {
        Ok(e) => e,
        Err(e) => {
            cell.failures.push(format!("emulator: {e}"));
            return;
        }
    };
    cell.runs += 1;
    let init = emu.wait_init(Duration::from_secs(10));
    if !init.ok {
        cell.failures
            .push(format!("INIT failed: {:?}", init.error_type));
    }
    if let Some(d) = init.init_duration_ms {
        cell.init.push(d);
    }
    if let Some(p) = init.processes.first() {
        if let Some(r) = p.exec_to_register_ms() {
            cell.reg.push(r);
        }
        if let Some(n) = p.first_next_ms {
            cell.next.push(n - p.exec_ms);
        }
    }
    if init.ok {
        let o = emu.invoke(Invocation::new(10).log("hello"));
        if let Some(e) = o.error {
            cell.failures.push(format!("invoke: {e}"));
        }
    }
    // the subscribe answer, as seen on the wire
    let w = emu.wire();
    let subs: Vec<_> = w
        .iter()
        .filter(|e| e.method == "PUT" && e.path.starts_with("/2022-07-01/telemetry"))
        .collect();
    match subs.last().and_then(|e| e.status) {
        None => cell.none += 1,
        Some(200) => cell.ok200 += 1,
        Some(403) => cell.refused403 += 1,
        Some(_) => cell.other += 1,
    }
    emu.shutdown("spindown");
    let got = emu
        .deliveries()
        .iter()
        .any(|d| d.ext == "slimcap" && d.ok());
    if !got {
        cell.no_telemetry += 1;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 30usize;
    let mut inits = vec![0u64, 5, 50];
    let mut modes = vec!["awaited".to_string(), "concurrent".to_string()];
    let mut bins: Vec<(String, String)> = vec![];
    let mut runner: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => runs = args.next().and_then(|v| v.parse().ok()).expect("-n RUNS"),
            "--init-ms" => {
                inits = args
                    .next()
                    .expect("--init-ms LIST")
                    .split(',')
                    .map(|v| v.parse().expect("ms"))
                    .collect()
            }
            "--runner" => runner = Some(args.next().expect("--runner PROGRAM")),
            "--modes" => {
                modes = args
                    .next()
                    .expect("--modes LIST")
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            _ => match a.split_once('=') {
                Some((l, b)) => bins.push((l.into(), b.into())),
                None => bins.push((a.clone(), a.clone())),
            },
        }
    }
    if bins.is_empty() {
        eprintln!("usage: subscribe-race [-n RUNS] [--init-ms 0,5,50] [--modes awaited,concurrent] LABEL=BINARY...");
        std::process::exit(2);
    }
    let mut cells = vec![vec![vec![Cell::default(); inits.len()]; modes.len()]; bins.len()];
    for r in 0..runs {
        for (ii, &init) in inits.iter().enumerate() {
            for (mi, mode) in modes.iter().enumerate() {
                for (bi, (_, bin)) in bins.iter().enumerate() {
                    one_run(bin, runner.as_deref(), mode, init, &mut cells[bi][mi][ii]);
                }
            }
        }
        if (r + 1) % 10 == 0 {
            eprintln!("[race] {} / {runs} rounds", r + 1);
        }
    }
    println!("label\tmode\tinit_ms\truns\tsub_200\tsub_403\tsub_other\tno_sub\tno_telemetry\tinit_p50\tinit_p90\treg_p50\tnext_p50");
    for (bi, (label, _)) in bins.iter().enumerate() {
        for (mi, mode) in modes.iter().enumerate() {
            for (ii, init) in inits.iter().enumerate() {
                let c = &cells[bi][mi][ii];
                println!(
                    "{label}\t{mode}\t{init}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.2}\t{:.2}\t{:.2}\t{:.2}",
                    c.runs,
                    c.ok200,
                    c.refused403,
                    c.other,
                    c.none,
                    c.no_telemetry,
                    pct(&c.init, 0.5),
                    pct(&c.init, 0.9),
                    pct(&c.reg, 0.5),
                    pct(&c.next, 0.5)
                );
                for f in c.failures.iter().take(3) {
                    eprintln!("[race] {label} {mode} {init} ms: {f}");
                }
            }
        }
    }
}
