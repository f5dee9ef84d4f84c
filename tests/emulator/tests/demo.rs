//! The `lambda-emulator demo` binary, run against the fake extension.

use std::process::Command;

#[test]
fn demo_runs_against_fake_extension() {
    let out = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
        .args(["demo", env!("CARGO_BIN_EXE_fake-extension")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "platform.initStart",
        "→ register \"fake-extension\"",
        "→ subscribe schema 2022-12-13",
        "INIT done",
        "legend:",
        "⇢ telemetry POST: the platform delivers",
        "INVOKE #3",
        "runtimeDone #2 error (",
        "(deliberate: the demo's invocation #2 fails)",
        "post-runtime",
        "⇢ telemetry POST",
        "SHUTDOWN (spindown)",
        "exited with 0",
        "summary",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        !text.contains("overlapped a freeze"),
        "a delivery overlapped a freeze in:\n{text}"
    );
}

#[test]
fn demo_help_and_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
        .args(["demo", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.starts_with("usage:"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
        .arg("nope")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
        .args(["demo", "/nonexistent/ext"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not found"), "{err}");
}
