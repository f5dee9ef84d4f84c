//! Real child processes: env, exec→register timing, output capture, exit
//! codes, SIGKILL at the shutdown deadline.

use lambda_emulator::*;
use std::time::Duration;

const S: Duration = Duration::from_secs(10);
const FAKE: &str = env!("CARGO_BIN_EXE_fake-extension");

fn cfg(name: &str, mode: &str) -> Config {
    Config {
        extensions: vec![ExtensionSpec::process_named(name, FAKE, &[])],
        env: vec![
            ("FAKE_EXT_MODE".into(), mode.into()),
            ("FAKE_EXTRA".into(), "x=1".into()),
        ],
        ..Config::default()
    }
}

#[test]
fn process_lifecycle_env_and_output() {
    let mut c = cfg("slimcap", "normal");
    c.env.push(("FAKE_EXT_POST_RUNTIME_MS".into(), "20".into()));
    c.function.name = "my-fn".into();
    c.function.memory_mb = 256;
    let emu = Emulator::start(c).unwrap();
    let init = emu.wait_init(S);
    assert!(init.ok, "{init:?} {:?}", emu.output());
    let p = &init.processes[0];
    assert_eq!(p.name, "slimcap");
    let reg = p.exec_to_register_ms().unwrap();
    assert!(reg > 0.0 && reg < 5000.0, "exec->register {reg}");
    let o = emu.invoke(Invocation::new(30).log("fn line"));
    assert!(o.error.is_none());
    assert!(o.post_runtime_ms.unwrap() >= 19.0, "{o:?}");
    let sd = emu.shutdown("spindown");
    assert!(!sd.killed);
    assert_eq!(sd.exit_code("slimcap"), Some(0));
    let out = emu.stdout_lines();
    assert!(
        out.contains(&"ENV AWS_LAMBDA_FUNCTION_NAME=my-fn".to_string()),
        "{out:?}"
    );
    assert!(out.contains(&"ENV AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256".to_string()));
    assert!(out.contains(&"ENV AWS_LAMBDA_INITIALIZATION_TYPE=on-demand".to_string()));
    assert!(out.contains(&"ENV AWS_REGION=us-east-1".to_string()));
    assert!(
        out.contains(&"ENV AWS_EXECUTION_ENV=<unset>".to_string()),
        "extensions must not see AWS_EXECUTION_ENV"
    );
    assert!(out.contains(&"ENV FAKE_EXTRA=x=1".to_string()));
    assert!(out.contains(&"SUBSCRIBE 200".to_string()));
    assert!(
        out.contains(&"RUNTIME_DONE true".to_string()),
        "runtimeDone reached the extension: {out:?}"
    );
    assert!(
        out.contains(&"FINAL_REPORT true".to_string()),
        "final report at shutdown: {out:?}"
    );
    // the extension's output is also timestamped and attributed
    let lines = emu.output();
    assert!(lines
        .iter()
        .all(|l| l.ext == "slimcap" && l.at_ms >= p.exec_ms));
    // the registered name is the file name (argv[0])
    let w = emu.wire();
    assert_eq!(w[0].header("Lambda-Extension-Name"), Some("slimcap"));
}

#[test]
fn hanging_extension_is_sigkilled_at_deadline() {
    let mut c = cfg("hangs", "hang_on_shutdown");
    c.shutdown_budget_ms = 300;
    let emu = Emulator::start(c).unwrap();
    assert!(emu.wait_init(S).ok);
    emu.invoke(Invocation::new(5));
    let sd = emu.shutdown("spindown");
    assert!(sd.killed);
    let p = &sd.processes[0];
    assert!(p.killed);
    assert_eq!(p.signal, Some(9));
    assert!(
        sd.elapsed_ms >= 295.0 && sd.elapsed_ms < 2000.0,
        "{}",
        sd.elapsed_ms
    );
}

#[test]
fn exit_code_is_reported() {
    let emu = Emulator::start(cfg("seven", "exit_code_7")).unwrap();
    assert!(emu.wait_init(S).ok);
    let sd = emu.shutdown("spindown");
    assert!(!sd.killed);
    assert_eq!(sd.exit_code("seven"), Some(7));
}

#[test]
fn crash_before_register_fails_init_fast() {
    let emu = Emulator::start(cfg("crashy", "crash_before_register")).unwrap();
    let init = emu.wait_init(S);
    assert!(!init.ok);
    assert_eq!(init.error_type.as_deref(), Some("Extension.Crash"));
    assert_eq!(init.processes[0].exit_code, Some(3));
    assert!(emu
        .stderr_lines()
        .contains(&"crashing on purpose".to_string()));
}

#[test]
fn never_registering_process_times_out_init() {
    let mut c = Config {
        extensions: vec![ExtensionSpec::process_named(
            "sleeper",
            "/bin/sleep",
            &["30"],
        )],
        init_timeout_ms: 300,
        ..Config::default()
    };
    c.shutdown_budget_ms = 100;
    let emu = Emulator::start(c).unwrap();
    let init = emu.wait_init(S);
    assert!(!init.ok);
    assert_eq!(init.error_type.as_deref(), Some("Sandbox.Timeout"));
    let d = init.init_done_ms.unwrap() - init.init_start_ms;
    assert!((295.0..2000.0).contains(&d), "{d}");
    let sd = emu.shutdown("failure");
    assert!(sd.killed);
}

#[test]
fn managed_instances_process() {
    let mut c = cfg("mi-ext", "normal");
    c.mode = Mode::ManagedInstances;
    c.env
        .push(("FAKE_EXT_SUBSCRIBE".into(), "2025-01-29".into()));
    let emu = Emulator::start(c).unwrap();
    assert!(emu.wait_init(S).ok, "{:?}", emu.output());
    let outs = emu.invoke_many(vec![
        Invocation::new(100),
        Invocation::new(100),
        Invocation::new(100),
    ]);
    assert!(outs.iter().all(|o| o.error.is_none()));
    let sd = emu.shutdown("spindown");
    assert_eq!(sd.exit_code("mi-ext"), Some(0));
    let out = emu.stdout_lines();
    assert!(
        out.contains(&"ENV AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances".to_string())
    );
    assert!(out.contains(&"SUBSCRIBE 200".to_string()));
    assert!(!out.iter().any(|l| l == "EVENT INVOKE"));
    assert!(out.contains(&"EVENT SHUTDOWN".to_string()));
}

#[test]
fn freeze_processes_really_stops_the_extension() {
    let mut c = cfg("ticker", "ticker");
    c.freeze_processes = true;
    let emu = Emulator::start(c).unwrap();
    assert!(emu.wait_init(S).ok);
    let o = emu.invoke(Invocation::new(30));
    assert!(o.error.is_none());
    std::thread::sleep(Duration::from_millis(300)); // frozen
    let o2 = emu.invoke(Invocation::new(60));
    assert!(o2.error.is_none());
    let sd = emu.shutdown("spindown");
    assert!(!sd.killed, "SIGCONT before SHUTDOWN");
    let fr = emu.freezes()[0];
    let end = fr.end_ms.unwrap();
    assert!(end - fr.start_ms >= 290.0);
    // the ticker's own timestamps (unix ms) mapped to the test clock
    let ticks: Vec<f64> = emu
        .output()
        .iter()
        .filter_map(|l| l.line.strip_prefix("TICK "))
        .filter_map(|rest| rest.split(' ').nth(1)?.parse::<f64>().ok())
        .map(|unix| unix - lambda_emulator::util::to_unix_ms(0.0))
        .collect();
    // nothing printed while stopped (tolerance for SIGSTOP being sent a bit
    // after the freeze began on a loaded machine)
    let inside = ticks
        .iter()
        .filter(|t| **t > fr.start_ms + 100.0 && **t < end - 5.0)
        .count();
    assert_eq!(inside, 0, "extension ran while frozen: {ticks:?} {fr:?}");
    assert!(ticks.iter().any(|t| *t > end), "resumed after the thaw");
    assert!(
        ticks.iter().any(|t| *t < fr.start_ms),
        "ran before the freeze"
    );
}
