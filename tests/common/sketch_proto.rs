//! The `SketchPayload` protobuf as Datadog's agent declares it
//! (DataDog/agent-payload `proto/metrics/agent_payload.proto`, field numbers
//! as listed in shared/docs/datadog-intake.md), decoded with prost: an
//! independent check of slimcap's hand-written encoder (`src/proto.rs`).
//! Shared by the unit tests (`src/proto.rs`, `#[path]`) and the end-to-end
//! tests (`tests/common/sketches.rs`).

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct SketchPayload {
    #[prost(message, repeated, tag = "1")]
    pub sketches: Vec<Sketch>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sketch {
    #[prost(string, tag = "1")]
    pub metric: String,
    #[prost(string, tag = "2")]
    pub host: String,
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    #[prost(message, repeated, tag = "7")]
    pub dogsketches: Vec<Dogsketch>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dogsketch {
    #[prost(int64, tag = "1")]
    pub ts: i64,
    #[prost(int64, tag = "2")]
    pub cnt: i64,
    #[prost(double, tag = "3")]
    pub min: f64,
    #[prost(double, tag = "4")]
    pub max: f64,
    #[prost(double, tag = "5")]
    pub avg: f64,
    #[prost(double, tag = "6")]
    pub sum: f64,
    #[prost(sint32, repeated, packed = "true", tag = "7")]
    pub k: Vec<i32>,
    #[prost(uint32, repeated, packed = "true", tag = "8")]
    pub n: Vec<u32>,
}

/// Decodes a `/api/beta/sketches` body.
pub fn decode(body: &[u8]) -> SketchPayload {
    SketchPayload::decode(body).expect("a valid SketchPayload protobuf")
}
