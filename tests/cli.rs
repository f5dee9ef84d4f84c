//! The binary run by hand: `--help` / `--version` print and exit 0 (no
//! "not running as a Lambda extension" error), and an `http://` in
//! `AWS_LAMBDA_RUNTIME_API` gets a hint and still works.

mod common;
use common::*;
use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("run slimcap");
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), s(&out.stdout), s(&out.stderr))
}

#[test]
fn help_and_version() {
    for a in ["--help", "-h"] {
        let (code, out, err) = run(&[a]);
        assert_eq!(code, Some(0), "{a}: {out}{err}");
        assert!(err.is_empty(), "{a}: {err}");
        assert!(out.starts_with("slimcap "), "{out}");
        for needle in ["Lambda", "extension", "README"] {
            assert!(out.contains(needle), "{a}: no {needle:?} in {out}");
        }
        assert!(out.lines().count() <= 8, "a few lines: {out}");
    }
    for a in ["--version", "-V"] {
        let (code, out, err) = run(&[a]);
        assert_eq!(code, Some(0), "{a}: {out}{err}");
        assert_eq!(out, format!("slimcap {}\n", env!("CARGO_PKG_VERSION")), "{err}");
    }
    // without arguments and outside Lambda: the error, and where to look
    let (code, out, err) = run(&[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("not running as a Lambda extension") && err.contains("--help"), "{err}");
}

/// `AWS_LAMBDA_RUNTIME_API=http://host:port` (Lambda sets `host:port`): a
/// hint, and slimcap registers with `host:port` and runs the lifecycle.
#[test]
fn http_scheme_in_runtime_api_gets_a_hint_and_works() {
    let intake = FakeIntake::start();
    let mut c = config(&intake, &[]);
    // argv[0]'s file name must stay `slimcap` (the name it registers with)
    let path = tempdir().join(NAME);
    std::fs::copy(bin(), &path).expect("copy binary");
    c.extensions = vec![ExtensionSpec {
        name: NAME.into(),
        launch: Launch::Process {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                r#"AWS_LAMBDA_RUNTIME_API="http://$AWS_LAMBDA_RUNTIME_API" exec "$0""#.into(),
                path.display().to_string(),
            ],
        },
    }];
    let emu = start(c);
    assert!(emu.invoke(Invocation::new(10)).error.is_none());
    let sd = emu.shutdown("spindown");
    let out = output(&emu);
    assert_eq!(sd.exit_code(NAME), Some(0), "{sd:?}\n{out:#?}");
    assert!(
        out.iter().any(|l| l.contains("AWS_LAMBDA_RUNTIME_API is host:port without a scheme")),
        "{out:#?}"
    );
}

/// The layer's `extensions/slimcap` is the registration stage: it passes the
/// arguments on to the core, so `--version` works there too.
#[test]
fn the_stage_passes_help_and_version_to_the_core() {
    let stage = std::env::var_os("SLIMCAP_STAGE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_slimcap-stage")));
    let out = Command::new(stage)
        .arg("--version")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("SLIMCAP_CORE", bin())
        .output()
        .expect("run the stage");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text, format!("slimcap {}\n", env!("CARGO_PKG_VERSION")));
}
