//! slimcap: a small, static AWS Lambda extension that turns Telemetry API
//! records into Datadog enhanced metrics and logs.
//!
//! Layout: everything but `shell` is free of I/O (plain functions and state
//! machines fed by events, unit-tested without sockets). `shell` owns the
//! sockets and threads; the tokio A/B build swaps only the shell.

pub mod config;
pub mod json;
pub mod telemetry;
pub mod time;
pub mod http1;
pub mod httpc;
pub mod extapi;
pub mod core;
pub mod sketch;
pub mod proto;
pub mod metrics;
pub mod logs;
pub mod flush;
pub mod deliver;
pub mod datadog;
pub mod sigv4;
pub mod secrets;
pub mod shell;
#[cfg(feature = "tokio")]
pub mod shell_tokio;
