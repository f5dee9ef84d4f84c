//! A tiny real-process extension for the emulator's own tests.
//! Its name is its file name (`argv[0]`), as on Lambda. Behaviour via env:
//! - `FAKE_EXT_MODE`: `normal` (default), `hang_on_shutdown` (never exits after
//!   SHUTDOWN), `crash_before_register` (exit 3 at once), `exit_code_7` (exit 7 on SHUTDOWN),
//!   `ticker` (a thread prints `TICK n <unix ms>` every 10 ms; next right after INVOKE)
//! - `FAKE_EXT_SUBSCRIBE`: schema version to subscribe with (default 2022-12-13; `none` to skip)
//! - `FAKE_EXT_POST_RUNTIME_MS`: after runtimeDone, sleep this long before next (default 0)
//!
//! Prints `ENV K=V` for a few variables, and `EVENT <type>` for each event.
use lambda_emulator::fake::{subscription_body, ExtClient, TelemetryListener};
use std::time::Duration;

fn main() {
    let mode = std::env::var("FAKE_EXT_MODE").unwrap_or_else(|_| "normal".into());
    if mode == "crash_before_register" {
        eprintln!("crashing on purpose");
        std::process::exit(3);
    }
    let name = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "fake-extension".into());
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API");
    for k in [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_REGION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_EXECUTION_ENV",
        "FAKE_EXTRA",
    ] {
        println!(
            "ENV {k}={}",
            std::env::var(k).unwrap_or_else(|_| "<unset>".into())
        );
    }
    let mi = std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE").as_deref()
        == Ok("lambda-managed-instances");
    let events: &[&str] = if mi {
        &["SHUTDOWN"]
    } else {
        &["INVOKE", "SHUTDOWN"]
    };
    let mut c = ExtClient::register(&api, &name, events).expect("register");
    if mode == "ticker" {
        std::thread::spawn(|| {
            for n in 0.. {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
                    * 1000.0;
                println!("TICK {n} {ms:.3}");
                std::thread::sleep(Duration::from_millis(10));
            }
        });
    }
    println!("REGISTERED {}", c.id);
    let schema = std::env::var("FAKE_EXT_SUBSCRIBE").unwrap_or_else(|_| "2022-12-13".into());
    let listener = TelemetryListener::start();
    if schema != "none" {
        let body = subscription_body(
            &listener.uri(),
            &schema,
            &["platform", "function"],
            1000,
            262_144,
            25,
        );
        let r = c.subscribe(&body).expect("subscribe");
        println!("SUBSCRIBE {}", r.status);
    }
    let post_ms: u64 = std::env::var("FAKE_EXT_POST_RUNTIME_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut last_rid = String::new();
    loop {
        let ev = match c.next() {
            Ok(ev) => ev,
            Err(e) => {
                eprintln!("next failed: {e}");
                std::process::exit(2);
            }
        };
        let ty = ev["eventType"].as_str().unwrap_or("?").to_string();
        println!("EVENT {ty}");
        if ty == "INVOKE" && mode != "ticker" {
            let rid = ev["requestId"].as_str().unwrap_or("").to_string();
            last_rid = rid.clone();
            let got =
                listener.wait_type("platform.runtimeDone", Some(&rid), Duration::from_secs(5));
            println!("RUNTIME_DONE {}", got.is_some());
            std::thread::sleep(Duration::from_millis(post_ms));
        }
        if ty == "SHUTDOWN" {
            match mode.as_str() {
                "hang_on_shutdown" => loop {
                    std::thread::sleep(Duration::from_secs(60));
                },
                "exit_code_7" => std::process::exit(7),
                _ => {
                    let rid = if last_rid.is_empty() {
                        None
                    } else {
                        Some(last_rid.as_str())
                    };
                    let got =
                        listener.wait_type("platform.report", rid, Duration::from_millis(300));
                    println!("FINAL_REPORT {}", got.is_some());
                    std::process::exit(0);
                }
            }
        }
    }
}
