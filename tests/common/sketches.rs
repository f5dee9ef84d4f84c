//! An independent decoder for the `SketchPayload` bodies slimcap sends to
//! `/api/beta/sketches`, declared with prost from the field numbers of
//! DataDog/agent-payload `proto/metrics/agent_payload.proto` (as listed in
//! shared/docs/datadog-intake.md), plus helpers that aggregate what a fake
//! intake accepted. Nothing here uses slimcap's own encoder or sketch.
#![allow(dead_code)]

use lambda_emulator::IntakeRequest;

#[path = "sketch_proto.rs"]
mod sketch_proto;
pub use sketch_proto::*;

/// The agent's sketch: gamma = 1 + 2/128; bias = 1 - floor(ln(1e-9)/ln(gamma)).
pub const GAMMA: f64 = 1.0 + 2.0 / 128.0;

pub fn bias() -> i32 {
    1 - ((1e-9f64).ln() / GAMMA.ln()).floor() as i32
}

/// The value a bin key stands for: gamma^(k - bias) (0 for key 0, negative keys mirrored).
pub fn key_value(k: i32) -> f64 {
    if k == 0 {
        0.0
    } else {
        GAMMA.powi(k.abs() - bias()).copysign(k as f64)
    }
}

/// One dogsketch as received, with its sketch's metric and tags.
#[derive(Clone, Debug)]
pub struct Point {
    pub metric: String,
    pub host: String,
    pub tags: Vec<String>,
    pub d: Dogsketch,
}

impl Point {
    pub fn cold(&self) -> Option<bool> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix("cold_start:"))
            .map(|v| v == "true")
    }
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
    }
}

/// Every dogsketch in the sketch requests the intake accepted (2xx), in arrival order.
pub fn accepted_points(reqs: &[IntakeRequest]) -> Vec<Point> {
    let mut v = Vec::new();
    for r in reqs {
        if r.path_only() != "/api/beta/sketches"
            || !matches!(r.status, Some(s) if (200..300).contains(&s))
        {
            continue;
        }
        assert_eq!(
            r.header("Content-Type"),
            Some("application/x-protobuf"),
            "{r:?}"
        );
        for s in decode(&r.body).sketches {
            for d in s.dogsketches {
                v.push(Point {
                    metric: s.metric.clone(),
                    host: s.host.clone(),
                    tags: s.tags.clone(),
                    d,
                });
            }
        }
    }
    v
}

/// Aggregate of all points of one metric (optionally one cold_start value).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agg {
    pub cnt: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Every value the bins stand for, once per count, sorted.
    pub values: Vec<f64>,
}

impl Agg {
    /// The q-quantile from the decoded bins: the value at rank round(q·(cnt−1)).
    pub fn quantile(&self, q: f64) -> f64 {
        let rank = (q * (self.values.len() as f64 - 1.0)).round() as usize;
        self.values[rank].clamp(self.min, self.max)
    }
}

pub fn agg(points: &[Point], metric: &str, cold: Option<bool>) -> Agg {
    let mut a = Agg {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        ..Agg::default()
    };
    for p in points
        .iter()
        .filter(|p| p.metric == metric && (cold.is_none() || p.cold() == cold))
    {
        a.cnt += p.d.cnt;
        a.sum += p.d.sum;
        a.min = a.min.min(p.d.min);
        a.max = a.max.max(p.d.max);
        assert_eq!(p.d.k.len(), p.d.n.len(), "{p:?}");
        let binned: u64 = p.d.n.iter().map(|&n| n as u64).sum();
        assert_eq!(binned, p.d.cnt as u64, "bins must hold every value: {p:?}");
        assert!(
            (p.d.avg - p.d.sum / p.d.cnt as f64).abs() <= 1e-9 * p.d.avg.abs().max(1.0),
            "{p:?}"
        );
        for (k, n) in p.d.k.iter().zip(&p.d.n) {
            for _ in 0..*n {
                a.values.push(key_value(*k));
            }
        }
    }
    a.values.sort_by(f64::total_cmp);
    a
}
