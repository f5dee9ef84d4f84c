//! `DD_API_KEY_SECRET_ARN`: the Datadog API key from AWS Secrets Manager,
//! the I/O-free part. [`Setup::from_lookup`] reads the function's credentials
//! and the endpoint from the environment (through a lookup function, so tests
//! feed a table), [`get_secret_value`] builds the SigV4-signed
//! `secretsmanager.GetSecretValue` request, [`parse_response`] turns the
//! answer into the key. `shell::secrets` sends the request.
//!
//! * Region: the ARN's (`arn:aws:secretsmanager:<region>:<account>:secret:<name>`)
//!   when it has one, else `AWS_REGION` (a plain secret name is accepted too).
//! * Endpoint: `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else `AWS_ENDPOINT_URL`
//!   (the AWS SDKs' overrides; ignored when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
//!   is true), else `https://secretsmanager.<region>.amazonaws.com`
//!   (`.amazonaws.com.cn` in the China regions).
//! * The secret: a JSON object with one string value gives that value; one
//!   with a key named like `api_key` / `DD_API_KEY` (any case, `_`/`-`
//!   ignored; also `apiKey`, `datadog_api_key`) gives that; any other text is
//!   the key itself, trimmed.
//!
//! No error message here ever holds the secret, the key or the credentials.

use crate::wire::json;
use crate::aws::sigv4::{self, Credentials};

pub const SERVICE: &str = "secretsmanager";
pub const TARGET: &str = "secretsmanager.GetSecretValue";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Everything needed to sign requests: region, endpoint and credentials.
pub struct Setup {
    pub region: String,
    /// Base URL, no trailing slash (`https://secretsmanager.us-east-1.amazonaws.com`).
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` and the endpoint overrides through `get`.
    pub fn from_lookup(
        secret_id: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Setup, String> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let region = match region_from_arn(secret_id) {
            Some(r) => r.to_string(),
            None => get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .ok_or("no region: the secret is not given by ARN and AWS_REGION is not set")?,
        };
        let (Some(access_key_id), Some(secret_access_key)) =
            (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set".into());
        };
        let ignore = get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let custom = if ignore {
            None
        } else {
            get("AWS_ENDPOINT_URL_SECRETS_MANAGER").or_else(|| get("AWS_ENDPOINT_URL"))
        };
        Ok(Setup {
            endpoint: endpoint(&region, custom.as_deref()),
            region,
            access_key_id,
            secret_access_key,
            session_token: get("AWS_SESSION_TOKEN"),
        })
    }

    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: self.session_token.as_deref(),
        }
    }
}

/// The region of a Secrets Manager ARN (`arn:<partition>:secretsmanager:<region>:...`).
pub fn region_from_arn(arn: &str) -> Option<&str> {
    let mut it = arn.trim().split(':');
    if it.next() != Some("arn") {
        return None;
    }
    let _partition = it.next()?;
    let _service = it.next()?;
    it.next().filter(|r| !r.is_empty())
}

/// The endpoint's base URL: `custom` (an override, `http://` allowed, a bare
/// `host:port` taken as https) or the regional AWS one.
pub fn endpoint(region: &str, custom: Option<&str>) -> String {
    match custom {
        Some(u) if u.contains("://") => u.trim_end_matches('/').to_string(),
        Some(u) => format!("https://{}", u.trim_end_matches('/')),
        None if region.starts_with("cn-") => {
            format!("https://secretsmanager.{region}.amazonaws.com.cn")
        }
        None => format!("https://secretsmanager.{region}.amazonaws.com"),
    }
}

/// `(host header, path)` of a base URL: the authority as written (the
/// request sends this exact `Host`, so it is what gets signed) and the path
/// with a trailing `/`.
pub fn host_and_path(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |p| p.1);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut path = path.to_string();
    if !path.ends_with('/') {
        path.push('/');
    }
    (host.to_string(), path)
}

/// A request ready to send (no `Debug`: the headers hold the session token).
pub struct HttpRequest {
    pub url: String,
    /// Every header to send, `Host` included (send it as given: it is signed).
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The signed `GetSecretValue` request for `secret_id` (ARN or name) at
/// `epoch_secs`.
pub fn get_secret_value(setup: &Setup, secret_id: &str, epoch_secs: i64) -> HttpRequest {
    let mut body = String::with_capacity(16 + secret_id.len());
    body.push_str("{\"SecretId\":");
    json::write_str(&mut body, secret_id.trim());
    body.push('}');
    let (host, path) = host_and_path(&setup.endpoint);
    let own = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
    let req = sigv4::Request {
        method: "POST",
        host: &host,
        path: &path,
        query: "",
        headers: &own,
        body: body.as_bytes(),
    };
    let signed = sigv4::sign(
        &setup.credentials(),
        &setup.region,
        SERVICE,
        &req,
        epoch_secs,
    );
    let mut headers = vec![
        ("Host", host.clone()),
        ("Content-Type", CONTENT_TYPE.to_string()),
        ("X-Amz-Target", TARGET.to_string()),
        ("X-Amz-Date", signed.amz_date),
    ];
    if let Some(t) = &setup.session_token {
        headers.push(("X-Amz-Security-Token", t.clone()));
    }
    headers.push(("Authorization", signed.authorization));
    let scheme = setup.endpoint.split_once("://").map_or("https", |p| p.0);
    let url = format!("{scheme}://{host}{path}");
    HttpRequest { url, headers, body }
}

/// Why a fetch failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub retryable: bool,
}

/// The API key from a `GetSecretValue` answer (`status`, body).
pub fn parse_response(status: u16, body: &str) -> Result<String, Failure> {
    let doc = json::parse(body.trim()).ok();
    if !(200..300).contains(&status) {
        // AWS JSON protocol errors: {"__type":"...#AccessDeniedException","Message":"..."}.
        let field = |k: &str| {
            doc.as_ref()
                .and_then(|d| d.get(k))
                .and_then(|v| v.as_string())
        };
        let kind = field("__type").map(|t| t[t.rfind('#').map_or(0, |i| i + 1)..].to_string());
        let msg = field("Message").or_else(|| field("message"));
        let mut message = format!("Secrets Manager answered HTTP {status}");
        if let Some(k) = kind.as_deref() {
            message.push(' ');
            message.push_str(k);
        }
        if let Some(m) = msg {
            message.push_str(": ");
            message.extend(m.chars().filter(|c| !c.is_control()).take(300));
        }
        let throttled = kind.as_deref().is_some_and(|k| k.contains("Throttl"));
        return Err(Failure {
            message,
            retryable: status >= 500 || status == 429 || throttled,
        });
    }
    let fail = |m: &str| {
        Err(Failure {
            message: m.to_string(),
            retryable: false,
        })
    };
    let Some(doc) = doc else {
        return fail("Secrets Manager answered with malformed JSON");
    };
    match doc.get("SecretString").and_then(|v| v.as_string()) {
        Some(s) => api_key_from_secret_string(&s).map_err(|message| Failure { message, retryable: false }),
        None if doc.get("SecretBinary").is_some() => {
            fail("the secret has no SecretString (SecretBinary is not supported): store the API key as text")
        }
        None => fail("the Secrets Manager answer has no SecretString"),
    }
}

/// Key names taken for the API key in a JSON secret, compared lowercased
/// with `_` and `-` removed.
const KEY_NAMES: [&str; 3] = ["ddapikey", "apikey", "datadogapikey"];

fn key_name_matches(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    KEY_NAMES.contains(&n.as_str())
}

/// The API key in a secret's text (see the module doc).
pub fn api_key_from_secret_string(s: &str) -> Result<String, String> {
    let s = s.trim();
    let key = match json::parse(s).ok().and_then(|v| v.as_object()) {
        Some(obj) => {
            let n = obj.clone().count();
            let mut obj = obj;
            let pick = if n == 1 {
                obj.next()
            } else {
                obj.find(|(k, _)| key_name_matches(k))
            };
            match pick {
                Some((_, v)) => match v.as_string() {
                    Some(v) => v.trim().to_string(),
                    None => return Err("the secret's API key field is not a JSON string".into()),
                },
                None => {
                    return Err(format!(
                    "the secret is a JSON object with {} keys, none named api_key or DD_API_KEY",
                    n
                ))
                }
            }
        }
        None => s.to_string(),
    };
    if key.is_empty() {
        return Err("the secret holds an empty API key".into());
    }
    if !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(
            "the secret's API key has spaces, control or non-ASCII characters: not a usable key"
                .into(),
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dd-api-key-AbCdEf";

    fn table(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const ENV: &[(&str, &str)] = &[
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLETOKEN"),
    ];

    #[test]
    fn region_from_the_arn_wins() {
        assert_eq!(region_from_arn(ARN), Some("eu-west-1"));
        assert_eq!(
            region_from_arn("arn:aws-cn:secretsmanager:cn-north-1:1:secret:x"),
            Some("cn-north-1")
        );
        assert_eq!(region_from_arn("my-secret"), None);
        assert_eq!(region_from_arn("arn:aws:secretsmanager::1:secret:x"), None);
        let s = Setup::from_lookup(ARN, table(ENV)).unwrap();
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.endpoint, "https://secretsmanager.eu-west-1.amazonaws.com");
        let s = Setup::from_lookup("dd-api-key", table(ENV)).unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(
            s.session_token.as_deref(),
            Some("IQoJb3JpZ2luX2VjEXAMPLETOKEN")
        );
    }

    #[test]
    fn setup_errors_and_debug_hold_no_secret() {
        let e = Setup::from_lookup("name", table(&[("AWS_ACCESS_KEY_ID", "A")])).unwrap_err();
        assert!(e.contains("AWS_REGION"), "{e}");
        let e = Setup::from_lookup(ARN, table(&[("AWS_ACCESS_KEY_ID", "A")])).unwrap_err();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
        let d = format!("{:?}", Setup::from_lookup(ARN, table(ENV)).unwrap());
        assert!(!d.contains("EXAMPLEKEY") && !d.contains("TOKEN"), "{d}");
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("cn-north-1", None),
            "https://secretsmanager.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            endpoint("x", Some("http://127.0.0.1:4566/")),
            "http://127.0.0.1:4566"
        );
        assert_eq!(
            endpoint("x", Some("localhost:4566")),
            "https://localhost:4566"
        );
        let env: &[(&str, &str)] = &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "A"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
            ("AWS_ENDPOINT_URL", "http://general:1"),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://sm:2"),
        ];
        assert_eq!(
            Setup::from_lookup("n", table(env)).unwrap().endpoint,
            "http://sm:2"
        );
        assert_eq!(
            Setup::from_lookup("n", table(&env[..4])).unwrap().endpoint,
            "http://general:1"
        );
        let mut ignored = env.to_vec();
        ignored.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"));
        let ignored: &'static [(&str, &str)] = Box::leak(ignored.into_boxed_slice());
        assert_eq!(
            Setup::from_lookup("n", table(ignored)).unwrap().endpoint,
            "https://secretsmanager.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn host_and_path_of_urls() {
        assert_eq!(
            host_and_path("https://secretsmanager.us-east-1.amazonaws.com"),
            ("secretsmanager.us-east-1.amazonaws.com".into(), "/".into())
        );
        assert_eq!(
            host_and_path("https://h.example:443"),
            ("h.example:443".into(), "/".into())
        );
        assert_eq!(
            host_and_path("http://127.0.0.1:8080"),
            ("127.0.0.1:8080".into(), "/".into())
        );
        assert_eq!(
            host_and_path("http://localhost:4566/base"),
            ("localhost:4566".into(), "/base/".into())
        );
    }

    /// The whole request for fixed credentials and time. The signature was
    /// computed independently with Python's hashlib/hmac (a one-off script
    /// implementing SigV4 from the specification), not with this code.
    #[test]
    fn get_secret_value_request_vector() {
        let setup = Setup::from_lookup(ARN, table(ENV)).unwrap();
        let r = get_secret_value(&setup, ARN, 1_700_000_000); // 2023-11-14T22:13:20Z
        assert_eq!(r.url, "https://secretsmanager.eu-west-1.amazonaws.com/");
        assert_eq!(r.body, format!("{{\"SecretId\":\"{ARN}\"}}"));
        let h = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("Host"), Some("secretsmanager.eu-west-1.amazonaws.com"));
        assert_eq!(h("Content-Type"), Some("application/x-amz-json-1.1"));
        assert_eq!(h("X-Amz-Target"), Some("secretsmanager.GetSecretValue"));
        assert_eq!(h("X-Amz-Date"), Some("20231114T221320Z"));
        assert_eq!(
            h("X-Amz-Security-Token"),
            Some("IQoJb3JpZ2luX2VjEXAMPLETOKEN")
        );
        assert_eq!(h("Authorization"), Some(GSV_AUTHORIZATION));
    }

    const GSV_AUTHORIZATION: &str =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/secretsmanager/aws4_request, \
        SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, \
        Signature=205b08fca88f696cd140c1b8dfd3d7dceaad6a4784fe61f97118f75449c05595";

    #[test]
    fn secret_string_forms() {
        let ok = |s: &str| api_key_from_secret_string(s).unwrap();
        assert_eq!(
            ok("  0123456789abcdef0123456789abcdef\n"),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(ok(r#"{"whatever":"k1"}"#), "k1");
        assert_eq!(ok(r#"{"user":"u","DD_API_KEY":"k2"}"#), "k2");
        assert_eq!(ok(r#"{"a":1,"api_key":" k3 "}"#), "k3");
        assert_eq!(ok(r#"{"a":"x","apiKey":"k4"}"#), "k4");
        assert_eq!(ok(r#"{"a":"x","datadog-api-key":"k\/5"}"#), "k/5");
        let err = |s: &str| api_key_from_secret_string(s).unwrap_err();
        let e = err(r#"{"user":"u","password":"hunter2"}"#);
        assert!(
            e.contains("2 keys") && !e.contains("hunter2") && !e.contains("password"),
            "{e}"
        );
        assert!(err(r#"{"api_key":5}"#).contains("not a JSON string"));
        assert!(err("   ").contains("empty"));
        let e = err("abc def");
        assert!(!e.contains("abc"), "{e}");
    }

    #[test]
    fn responses() {
        let body =
            r#"{"ARN":"x","Name":"n","SecretString":"{\"api_key\":\"abc123\"}","VersionId":"v"}"#;
        assert_eq!(parse_response(200, body).unwrap(), "abc123");
        let e = parse_response(200, r#"{"SecretBinary":"AAEC"}"#).unwrap_err();
        assert!(e.message.contains("SecretBinary") && !e.retryable);
        assert!(!parse_response(200, "<html>").unwrap_err().retryable);
        let e = parse_response(
            400,
            r#"{"__type":"com.amazonaws.secretsmanager#AccessDeniedException","Message":"User is not authorized"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Secrets Manager answered HTTP 400 AccessDeniedException: User is not authorized"
        );
        assert!(!e.retryable);
        let e = parse_response(
            400,
            r#"{"__type":"ThrottlingException","message":"slow down"}"#,
        )
        .unwrap_err();
        assert!(
            e.retryable && e.message.ends_with("ThrottlingException: slow down"),
            "{e:?}"
        );
        let e = parse_response(503, "").unwrap_err();
        assert!(
            e.retryable && e.message == "Secrets Manager answered HTTP 503",
            "{e:?}"
        );
    }
}
