//! The Datadog side of the core: a [`Sink`] that feeds enhanced metrics and
//! logs from what the core learns, built from the configuration and the
//! `register` answer. No I/O: the shell takes payloads from here and ships
//! them, putting back what it could not deliver.

use crate::config::Config;
use crate::lambda::core::Sink;
use crate::lambda::extapi::Registration;
use crate::datadog::logs::{Logs, DEFAULT_BUFFER_BYTES};
use crate::datadog::metrics::{Metrics, Options};
use crate::lambda::telemetry::Record;

pub struct Datadog {
    pub metrics: Option<Metrics>,
    pub logs: Option<Logs>,
    pub function_arn: String,
}

/// `arn:aws:lambda:<region>:<account>:function:<name>`.
pub fn function_arn(cfg: &Config, account_id: Option<&str>) -> String {
    format!(
        "arn:aws:lambda:{}:{}:function:{}",
        cfg.region,
        account_id.unwrap_or(""),
        cfg.function_name
    )
    .to_lowercase()
}

/// The tags every metric point and log entry carries (`k:v`, lower-case).
pub fn static_tags(cfg: &Config, reg: &Registration) -> Vec<String> {
    let mut t = Vec::new();
    let mut add = |k: &str, v: &str| {
        if !v.is_empty() {
            t.push(format!("{k}:{v}").to_lowercase());
        }
    };
    add("functionname", &cfg.function_name);
    add("region", &cfg.region);
    add("account_id", reg.account_id.as_deref().unwrap_or(""));
    if cfg.memory_mb > 0 {
        add("memorysize", &cfg.memory_mb.to_string());
    }
    add("architecture", Config::architecture());
    add("init_type", &cfg.init_type);
    add("resource", &cfg.function_name);
    if cfg.function_version != "$LATEST" {
        add("executedversion", &cfg.function_version);
    }
    add("env", cfg.env.as_deref().unwrap_or(""));
    add("service", cfg.service.as_deref().unwrap_or(""));
    add("version", cfg.version.as_deref().unwrap_or(""));
    for tag in &cfg.tags {
        let key = tag.split(':').next().unwrap_or(tag);
        // DD_TAGS may not override the tags the platform defines.
        if !t.iter().any(|s| s.split(':').next() == Some(key)) {
            t.push(tag.to_lowercase());
        }
    }
    t
}

impl Datadog {
    pub fn new(cfg: &Config, reg: &Registration) -> Datadog {
        let tags = static_tags(cfg, reg);
        let arn = function_arn(cfg, reg.account_id.as_deref());
        let metrics = cfg.enhanced_metrics.then(|| {
            Metrics::new(Options {
                tags: tags.clone(),
                arm64: Config::architecture() == "arm64",
                managed_instances: cfg.managed_instances,
            })
        });
        let logs = cfg.logs_enabled.then(|| {
            let service = cfg.service.clone().unwrap_or_else(|| cfg.function_name.to_lowercase());
            Logs::new(&arn, &service, &tags.join(","), DEFAULT_BUFFER_BYTES)
        });
        Datadog { metrics, logs, function_arn: arn }
    }

    /// Drops every buffered payload (no API key to send them with);
    /// returns how many.
    pub fn drop_all(&mut self) -> u64 {
        let mut n = 0;
        if let Some(m) = &mut self.metrics {
            while m.take_payload().is_some() {
                n += 1;
            }
        }
        if let Some(l) = &mut self.logs {
            while let Some(b) = l.take_batch() {
                l.recycle(b);
                n += 1;
            }
        }
        n
    }
}

impl Sink for Datadog {
    fn on_invoke(&mut self, request_id: &str, now_ms: i64) {
        if let Some(m) = &mut self.metrics {
            m.on_invoke(request_id, now_ms);
        }
    }
    fn on_record(&mut self, rec: &Record, current_request: Option<&str>) {
        if let Some(m) = &mut self.metrics {
            m.on_record(rec);
        }
        if let Some(l) = &mut self.logs {
            l.on_record(rec, current_request);
        }
    }
    fn on_shutdown(&mut self, now_ms: i64) {
        if let Some(m) = &mut self.metrics {
            m.on_shutdown(now_ms);
        }
    }
    fn pending(&self) -> bool {
        self.metrics.as_ref().is_some_and(|m| m.pending()) || self.logs.as_ref().is_some_and(|l| !l.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::telemetry::{Kind, Log};

    fn cfg(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).0
    }

    #[test]
    fn tags_and_arn() {
        let c = cfg(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "My-Func"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
            ("DD_ENV", "prod"),
            ("DD_SERVICE", "Checkout"),
            ("DD_TAGS", "team:pay,functionname:evil"),
        ]);
        let reg = Registration { account_id: Some("123456789012".into()), ..Default::default() };
        let t = static_tags(&c, &reg);
        for want in [
            "functionname:my-func",
            "region:us-east-1",
            "account_id:123456789012",
            "memorysize:256",
            "resource:my-func",
            "executedversion:7",
            "env:prod",
            "service:checkout",
            "team:pay",
            "init_type:on-demand",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x == "functionname:evil"));
        assert_eq!(function_arn(&c, Some("123456789012")), "arn:aws:lambda:us-east-1:123456789012:function:my-func");
    }

    #[test]
    fn sink_feeds_both_and_respects_switches() {
        let reg = Registration::default();
        let mut d = Datadog::new(&cfg(&[("AWS_LAMBDA_FUNCTION_NAME", "f")]), &reg);
        assert!(!d.pending());
        d.on_record(
            &Record { time_ms: Some(1_700_000_000_000), kind: Kind::Function(Log { message: "hi".into(), ..Default::default() }) },
            Some("r1"),
        );
        assert!(d.pending());
        assert_eq!(d.logs.as_ref().unwrap().len(), 1);

        let mut d = Datadog::new(&cfg(&[("DD_LOGS_ENABLED", "false"), ("DD_ENHANCED_METRICS", "false")]), &reg);
        d.on_invoke("r1", 1_700_000_000_000);
        d.on_record(
            &Record { time_ms: None, kind: Kind::Function(Log { message: "hi".into(), ..Default::default() }) },
            Some("r1"),
        );
        assert!(d.logs.is_none() && d.metrics.is_none());
        assert!(!d.pending());
    }
}
