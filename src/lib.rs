//! slimcap: a small, static AWS Lambda extension that turns Telemetry API
//! records into Datadog enhanced metrics and logs.
//!
//! Layout: everything but `shell` is free of I/O (plain functions and state
//! machines fed by events, unit-tested without sockets). `shell` owns the
//! sockets and threads; the tokio A/B build swaps only the shell.

pub mod config;
pub mod lambda;
pub mod datadog;
pub mod wire;
pub mod aws;
pub mod shell;
#[cfg(feature = "tokio")]
pub mod shell_tokio;
