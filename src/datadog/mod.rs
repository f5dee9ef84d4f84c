//! The Datadog side: enhanced metrics and their sketches, log entries, flush
//! timing, the delivery policy, and the sink that ties them to the core.
pub mod sketch;
pub mod metrics;
pub mod logs;
pub mod flush;
pub mod deliver;
pub mod sink;
