//! The Lambda side: the Extensions and Telemetry API messages, the telemetry
//! record model, and the lifecycle core that decides when to call `next`,
//! flush and exit.
pub mod extapi;
pub mod telemetry;
pub mod core;
