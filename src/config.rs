//! Configuration from the environment: the `DD_*` variables Datadog users
//! already set, the Lambda-provided `AWS_*` variables, and a few `SLIMCAP_*`
//! knobs. Pure: `Config::from_lookup` takes any lookup function, so tests
//! feed it a table. An invalid value never fails init: it yields one warning
//! and the documented default.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeMode {
    /// Subscribe, wait for the answer, then call `next` (default).
    Awaited,
    /// Subscribe on another thread while the first `next` goes out (experiment:
    /// races the window's closing; a 403 means no telemetry for this sandbox).
    Concurrent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `host:port` of the Runtime API (`AWS_LAMBDA_RUNTIME_API`).
    pub runtime_api: String,
    /// Lambda Managed Instances (`AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`).
    pub managed_instances: bool,
    pub init_type: String,
    pub function_name: String,
    pub function_version: String,
    pub memory_mb: u64,
    pub region: String,
    pub subscribe_mode: SubscribeMode,
    /// Port the telemetry listener binds (0: any free port).
    pub telemetry_port: u16,
    pub buffer_max_items: u32,
    pub buffer_max_bytes: u32,
    pub buffer_timeout_ms: u32,

    pub api_key: Option<String>,
    /// `DD_API_KEY` was set but not usable in a header: ignored (as if unset).
    pub api_key_unsafe: bool,
    pub api_key_secret_arn: Option<String>,
    pub site: String,
    /// Base URL for metrics (`DD_DD_URL` / `DD_URL`, else `https://api.<site>`).
    pub metrics_url: String,
    /// Base URL for logs (`DD_LOGS_CONFIG_LOGS_DD_URL`, else `https://http-intake.logs.<site>`).
    pub logs_url: String,
    pub env: Option<String>,
    pub service: Option<String>,
    pub version: Option<String>,
    /// `DD_TAGS`, normalised to `k:v` items.
    pub tags: Vec<String>,
    pub logs_enabled: bool,
    pub enhanced_metrics: bool,
    /// Raw `DD_SERVERLESS_FLUSH_STRATEGY` (parsed by `flush`).
    pub flush_strategy: Option<String>,
    pub flush_timeout_ms: u64,
    pub log_level: log::LevelFilter,
}

impl Config {
    /// Reads the configuration through `get` (normally `std::env::var`).
    /// Returns the config and one human-readable warning per ignored value.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
        let mut warn = Vec::new();
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let init_type = get("AWS_LAMBDA_INITIALIZATION_TYPE").unwrap_or_else(|| "on-demand".into());
        let site = get("DD_SITE").unwrap_or_else(|| "datadoghq.com".into());
        let metrics_url = get("DD_DD_URL")
            .or_else(|| get("DD_URL"))
            .map(|u| with_scheme(&u))
            .unwrap_or_else(|| format!("https://api.{site}"));
        let logs_url = get("DD_LOGS_CONFIG_LOGS_DD_URL")
            .map(|u| with_scheme(&u))
            .unwrap_or_else(|| format!("https://http-intake.logs.{site}"));
        let logs_enabled = match get("DD_SERVERLESS_LOGS_ENABLED") {
            Some(v) => boolean("DD_SERVERLESS_LOGS_ENABLED", &v, true, &mut warn),
            None => match get("DD_LOGS_ENABLED") {
                Some(v) => boolean("DD_LOGS_ENABLED", &v, true, &mut warn),
                None => true,
            },
        };
        let enhanced_metrics = get("DD_ENHANCED_METRICS")
            .map(|v| boolean("DD_ENHANCED_METRICS", &v, true, &mut warn))
            .unwrap_or(true);
        let subscribe_mode = match get("SLIMCAP_SUBSCRIBE").as_deref() {
            None => SubscribeMode::Awaited,
            Some(v) if v.eq_ignore_ascii_case("awaited") => SubscribeMode::Awaited,
            Some(v) if v.eq_ignore_ascii_case("concurrent") => SubscribeMode::Concurrent,
            Some(v) => {
                invalid(&mut warn, "SLIMCAP_SUBSCRIBE", v, "awaited");
                SubscribeMode::Awaited
            }
        };
        let log_level = match get("DD_LOG_LEVEL") {
            None => log::LevelFilter::Info,
            Some(v) => level(&v).unwrap_or_else(|| {
                invalid(&mut warn, "DD_LOG_LEVEL", &v, "info");
                log::LevelFilter::Info
            }),
        };
        let cfg = Config {
            runtime_api: get("AWS_LAMBDA_RUNTIME_API").unwrap_or_default(),
            managed_instances: init_type.eq_ignore_ascii_case("lambda-managed-instances"),
            init_type,
            function_name: get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
            function_version: get("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|| "$LATEST".into()),
            memory_mb: number(&get, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0, 1, u64::MAX, &mut warn),
            region: get("AWS_REGION").unwrap_or_default(),
            subscribe_mode,
            telemetry_port: number(&get, "SLIMCAP_TELEMETRY_PORT", 8124, 0, 65535, &mut warn) as u16,
            buffer_max_items: number(&get, "SLIMCAP_BUFFER_MAX_ITEMS", 1000, 1000, 10_000, &mut warn) as u32,
            buffer_max_bytes: number(&get, "SLIMCAP_BUFFER_MAX_BYTES", 262_144, 262_144, 1_048_576, &mut warn) as u32,
            buffer_timeout_ms: number(&get, "SLIMCAP_BUFFER_TIMEOUT_MS", 25, 25, 30_000, &mut warn) as u32,
            api_key: get("DD_API_KEY").filter(|k| header_safe(k)),
            api_key_unsafe: get("DD_API_KEY").is_some_and(|k| !header_safe(&k)),
            api_key_secret_arn: get("DD_API_KEY_SECRET_ARN"),
            site,
            metrics_url,
            logs_url,
            env: get("DD_ENV"),
            service: get("DD_SERVICE"),
            version: get("DD_VERSION"),
            tags: get("DD_TAGS").map(|t| parse_tags(&t)).unwrap_or_default(),
            logs_enabled,
            enhanced_metrics,
            flush_strategy: get("DD_SERVERLESS_FLUSH_STRATEGY"),
            flush_timeout_ms: number(&get, "DD_FLUSH_TIMEOUT", 30, 1, 900, &mut warn) * 1000,
            log_level,
        };
        (cfg, warn)
    }

    /// Telemetry stream types to subscribe to.
    pub fn telemetry_types(&self) -> &'static [&'static str] {
        if self.logs_enabled {
            &["platform", "function", "extension"]
        } else {
            &["platform"]
        }
    }

    /// Architecture this binary was built for, as Datadog tags it.
    pub fn architecture() -> &'static str {
        if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            "x86_64"
        }
    }
}

/// Said of a key that cannot go into a request header (the key never printed).
pub const UNSAFE_KEY: &str = "the API key contains characters that cannot appear in an HTTP header (control characters such as CR or LF, or non-ASCII): it is ignored, as if unset; metrics and logs will be dropped, not sent to Datadog (the function itself is not affected)";

/// Whether `v` can be an HTTP header value as it is: visible ASCII, inner
/// spaces and tabs (RFC 9110 field-value without obs-text). A key with CR/LF
/// would let its holder inject headers; one with non-ASCII would be refused.
pub fn header_safe(v: &str) -> bool {
    v.bytes().all(|b| matches!(b, b' ' | b'\t' | 0x21..=0x7e))
}

impl Config {
    /// The one error line about the API key, if any (both shells): not set
    /// (and no secret to fetch), or set but not usable in a header. Then
    /// slimcap runs the lifecycle and drops what it would send, counted.
    pub fn api_key_error(&self) -> Option<String> {
        if self.api_key_unsafe {
            let also = if self.api_key_secret_arn.is_some() { " (DD_API_KEY_SECRET_ARN is used instead)" } else { "" };
            return Some(format!("DD_API_KEY: {UNSAFE_KEY}{also}"));
        }
        (self.api_key.is_none() && self.api_key_secret_arn.is_none()).then(|| {
            "DD_API_KEY is not set: metrics and logs will be dropped, not sent to Datadog (the function itself is not affected)".into()
        })
    }

    /// Fatal configuration problems (the shells report them with `init/error`).
    pub fn validate(&self) -> Result<(), String> {
        for (key, url) in [("DD_DD_URL/DD_URL/DD_SITE", &self.metrics_url), ("DD_LOGS_CONFIG_LOGS_DD_URL", &self.logs_url)] {
            if !usable_url(url) {
                return Err(format!("{key} gives an unusable intake URL {url:?}"));
            }
        }
        Ok(())
    }
}

/// `http(s)://host[:port][/path]` with a plausible host and port.
pub fn usable_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else { return false };
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    (scheme == "http" || scheme == "https")
        && !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

fn invalid(warn: &mut Vec<String>, key: &str, v: &str, default: &str) {
    let mut s = String::new();
    let _ = write!(s, "ignoring {key}={v:?}: invalid value; using the default ({default})");
    warn.push(s);
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
    warn: &mut Vec<String>,
) -> u64 {
    match get(key) {
        None => default,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= min && n <= max => n,
            _ => {
                invalid(warn, key, &v, &default.to_string());
                default
            }
        },
    }
}

fn boolean(key: &str, v: &str, default: bool, warn: &mut Vec<String>) -> bool {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => true,
        "0" | "false" | "no" | "off" => false,
        _ => {
            invalid(warn, key, v, if default { "true" } else { "false" });
            default
        }
    }
}

fn level(v: &str) -> Option<log::LevelFilter> {
    Some(match v.to_ascii_lowercase().as_str() {
        "trace" => log::LevelFilter::Trace,
        "debug" => log::LevelFilter::Debug,
        "info" => log::LevelFilter::Info,
        "warn" | "warning" => log::LevelFilter::Warn,
        "error" | "critical" => log::LevelFilter::Error,
        "off" => log::LevelFilter::Off,
        _ => return None,
    })
}

/// `host:port` or `host` becomes `https://host[:port]`; a URL keeps its scheme.
/// A trailing slash is removed.
fn with_scheme(u: &str) -> String {
    let u = u.trim_end_matches('/');
    if u.starts_with("http://") || u.starts_with("https://") {
        u.to_string()
    } else {
        format!("https://{u}")
    }
}

/// `DD_TAGS`: items separated by commas or spaces, each `key:value` (a bare
/// key is kept as is, as the agent does).
pub fn parse_tags(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn api_key_that_cannot_be_a_header_is_ignored_never_printed() {
        for bad in ["abc\r\nX-Evil: 1", "ab\ncd", "k\u{0}ey", "cl\u{e9}"] {
            let (c, _) = cfg(&[("DD_API_KEY", bad)]);
            assert!(c.api_key.is_none() && c.api_key_unsafe, "{bad:?}");
            let e = c.api_key_error().unwrap();
            assert!(e.starts_with("DD_API_KEY: ") && !e.contains(bad) && !e.contains("X-Evil"), "{e}");
        }
        // with a secret to fall back on, the secret is used (and the line says so)
        let (c, _) = cfg(&[("DD_API_KEY", "a\nb"), ("DD_API_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:k")]);
        assert!(c.api_key_error().unwrap().contains("DD_API_KEY_SECRET_ARN is used instead"));
        // surrounding whitespace is trimmed; inner spaces are legal in a header
        let (c, _) = cfg(&[("DD_API_KEY", " 0123abcd\n")]);
        assert_eq!(c.api_key.as_deref(), Some("0123abcd"));
        assert_eq!(c.api_key_error(), None);
        assert!(header_safe("a b\tc") && !header_safe("a\rb"));
        let (c, _) = cfg(&[]);
        assert!(c.api_key_error().unwrap().contains("is not set"));
    }

    #[test]
    fn defaults() {
        let (c, w) = cfg(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.runtime_api, "127.0.0.1:9001");
        assert!(!c.managed_instances);
        assert_eq!(c.site, "datadoghq.com");
        assert_eq!(c.metrics_url, "https://api.datadoghq.com");
        assert_eq!(c.logs_url, "https://http-intake.logs.datadoghq.com");
        assert!(c.logs_enabled && c.enhanced_metrics);
        assert_eq!(c.flush_timeout_ms, 30_000);
        assert_eq!(c.subscribe_mode, SubscribeMode::Awaited);
        assert_eq!((c.buffer_max_items, c.buffer_max_bytes, c.buffer_timeout_ms), (1000, 262_144, 25));
        assert_eq!(c.telemetry_types(), &["platform", "function", "extension"]);
        assert_eq!(c.function_version, "$LATEST");
    }

    #[test]
    fn overrides() {
        let (c, w) = cfg(&[
            ("DD_SITE", "datadoghq.eu"),
            ("DD_DD_URL", "http://127.0.0.1:9/"),
            ("DD_LOGS_CONFIG_LOGS_DD_URL", "logs.example:443"),
            ("DD_LOGS_ENABLED", "false"),
            ("DD_TAGS", "team:a, b:c d"),
            ("DD_FLUSH_TIMEOUT", "5"),
            ("SLIMCAP_SUBSCRIBE", "Concurrent"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
            ("DD_LOG_LEVEL", "DEBUG"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.metrics_url, "http://127.0.0.1:9");
        assert_eq!(c.logs_url, "https://logs.example:443");
        assert!(!c.logs_enabled);
        assert_eq!(c.telemetry_types(), &["platform"]);
        assert_eq!(c.tags, vec!["team:a", "b:c", "d"]);
        assert_eq!(c.flush_timeout_ms, 5000);
        assert_eq!(c.subscribe_mode, SubscribeMode::Concurrent);
        assert!(c.managed_instances);
        assert_eq!(c.log_level, log::LevelFilter::Debug);
    }

    #[test]
    fn usable_urls() {
        for ok in ["https://api.datadoghq.com", "http://127.0.0.1:9000", "https://x.y:443/base", "http://[::1]:80"] {
            assert!(usable_url(ok), "{ok}");
        }
        for bad in ["http://", "https://http:", "ftp://x", "https://a b", "https://h:0", "https://h:99999", "x"] {
            assert!(!usable_url(bad), "{bad}");
        }
        assert!(cfg(&[("DD_DD_URL", "http://")]).0.validate().unwrap_err().contains("DD_DD_URL"));
        assert!(cfg(&[]).0.validate().is_ok());
    }

    #[test]
    fn serverless_logs_enabled_wins() {
        let (c, _) = cfg(&[("DD_LOGS_ENABLED", "false"), ("DD_SERVERLESS_LOGS_ENABLED", "true")]);
        assert!(c.logs_enabled);
    }

    #[test]
    fn invalid_values_warn_and_default() {
        let (c, w) = cfg(&[
            ("DD_FLUSH_TIMEOUT", "soon"),
            ("DD_ENHANCED_METRICS", "maybe"),
            ("SLIMCAP_BUFFER_TIMEOUT_MS", "5"),
            ("SLIMCAP_SUBSCRIBE", "eager"),
            ("DD_LOG_LEVEL", "loud"),
            ("DD_API_KEY", "secret-key-123"),
        ]);
        assert_eq!(w.len(), 5, "{w:?}");
        assert_eq!(c.flush_timeout_ms, 30_000);
        assert!(c.enhanced_metrics);
        assert_eq!(c.buffer_timeout_ms, 25);
        assert_eq!(c.subscribe_mode, SubscribeMode::Awaited);
        assert!(w.iter().all(|l| !l.contains("secret-key-123")));
        assert!(w.iter().any(|l| l.contains("DD_FLUSH_TIMEOUT")));
    }
}
