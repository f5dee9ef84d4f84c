//! Shared harness for the end-to-end tests: the real slimcap binary under the
//! Lambda platform emulator (`tests/emulator`), with a fake Datadog intake.
//!
//! `SLIMCAP_BIN` overrides the binary (e.g. `dist/slimcap-x86_64`), and
//! `SLIMCAP_RUNNER` runs it through a program (e.g. `qemu-aarch64-static`).
#![allow(dead_code)]


use std::path::PathBuf;
use std::time::Duration;

pub use lambda_emulator::*;

pub const NAME: &str = "slimcap";

/// The extension binary under test.
pub fn bin() -> PathBuf {
    std::env::var_os("SLIMCAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_slimcap")))
}

/// The extension as the emulator should launch it (named `slimcap`).
pub fn spec() -> ExtensionSpec {
    match std::env::var("SLIMCAP_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            // qemu-user: the guest's argv[0] is the path given, so give it a
            // path whose file name is `slimcap`.
            let dir = tempdir();
            let path = dir.join(NAME);
            std::fs::copy(bin(), &path).expect("copy binary");
            ExtensionSpec {
                name: NAME.into(),
                launch: Launch::Process { program: PathBuf::from(runner), args: vec![path.display().to_string()] },
            }
        }
        _ => ExtensionSpec::process_named(NAME, bin(), &[]),
    }
}

/// Under qemu everything is ~10x slower: scale generous timeouts by this.
pub fn slow_factor() -> u64 {
    if std::env::var("SLIMCAP_RUNNER").map(|r| !r.is_empty()).unwrap_or(false) {
        5
    } else {
        1
    }
}

pub fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "slimcap-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An emulator config with slimcap pointed at `intake`, on an ephemeral
/// telemetry port, plus `env`.
pub fn config(intake: &FakeIntake, env: &[(&str, &str)]) -> Config {
    let mut c = Config { extensions: vec![spec()], ..Config::default() };
    c.env = vec![
        ("DD_API_KEY".into(), "test-api-key-0123456789".into()),
        ("DD_DD_URL".into(), intake.url()),
        ("DD_LOGS_CONFIG_LOGS_DD_URL".into(), intake.url()),
        ("SLIMCAP_TELEMETRY_PORT".into(), "0".into()),
    ];
    for (k, v) in env {
        c.env.retain(|(n, _)| n != k);
        c.env.push((k.to_string(), v.to_string()));
    }
    c.shutdown_budget_ms = 2000 * slow_factor();
    c
}

/// Starts the emulator and waits for INIT to finish successfully.
pub fn start(c: Config) -> Emulator {
    let emu = Emulator::start(c).expect("emulator start");
    let init = emu.wait_init(Duration::from_secs(10 * slow_factor()));
    assert!(init.ok, "INIT failed: {init:?}\noutput: {:#?}", emu.output());
    emu
}

/// Lines slimcap printed (stdout and stderr).
pub fn output(emu: &Emulator) -> Vec<String> {
    emu.output().into_iter().map(|l| l.line).collect()
}
