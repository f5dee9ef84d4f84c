//! `DD_API_KEY_SECRET_ARN`: one `GetSecretValue` call over HTTPS, off the
//! init path (see `shell::run`: the fetch starts right after the first
//! `next` is sent and the shipper waits for it before its first flush).
//!
//! Up to [`ATTEMPTS`] tries, each bounded by [`ATTEMPT_TIMEOUT`]; only
//! transport errors, 5xx, 429 and throttling are tried again (an attempt
//! caught by a freeze, on a provisioned-concurrency or SnapStart sandbox,
//! fails on thaw and is retried with a fresh signature and connection).
//! Errors are readable and never hold the key, the secret or the
//! credentials (transport errors name the URL and the failure, not headers).

use crate::aws::secrets::{self, Failure, Setup};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ATTEMPTS: u32 = 3;
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Secrets Manager caps a secret at 64 KiB; its JSON answer is a bit more.
const BODY_LIMIT: u64 = 256 * 1024;

/// Starts the fetch on its own thread (environment read there, not on the
/// caller's path) once `go` fires or is dropped: the poller fires it when
/// the first `next` is written, so the fetch never precedes the end of the
/// extension's init. The thread's result is the key or a readable error.
pub fn spawn_fetch(secret_id: String, go: Receiver<()>) -> JoinHandle<Result<String, String>> {
    std::thread::spawn(move || {
        let _ = go.recv();
        fetch_api_key(&secret_id, |k| std::env::var(k).ok())
    })
}

/// Reads the API key from the secret `secret_id` (ARN or name), with the
/// credentials, region and endpoint found through `get` (the environment).
pub fn fetch_api_key(
    secret_id: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let setup = Setup::from_lookup(secret_id, get)?;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(100 << attempt));
        }
        match fetch_once(&setup, secret_id) {
            Ok(key) => return Ok(key),
            Err(f) => {
                last = f.message;
                if !f.retryable {
                    break;
                }
                log::debug!("GetSecretValue attempt {}: {last}", attempt + 1);
            }
        }
    }
    Err(last)
}

fn fetch_once(setup: &Setup, secret_id: &str) -> Result<String, Failure> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let req = secrets::get_secret_value(setup, secret_id, now);
    let headers: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let deadline = std::time::Instant::now() + ATTEMPT_TIMEOUT;
    // A fresh connection per attempt: a retry never reuses a socket a freeze may have broken.
    let res = super::net::Client::new().send("POST", &req.url, &headers, req.body.as_bytes(), Some(deadline));
    let res = res.map_err(|e| Failure {
        message: format!("Secrets Manager at {}: {e}", req.url),
        retryable: true,
    })?;
    let body = &res.body[..res.body.len().min(BODY_LIMIT as usize)];
    secrets::parse_response(res.status, &String::from_utf8_lossy(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::sigv4;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    const ARN: &str = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:dd-key-Xy12Ab";
    const SECRET_KEY: &str = "fakeSecretAccessKey/0123456789abcdefEXAMPLE";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLE/session+token==";
    const DD_KEY: &str = "0123456789abcdef0123456789abcdef";

    /// One received request: lowercased header names → values, and the body.
    struct Got {
        method: String,
        path: String,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    /// A fake Secrets Manager on 127.0.0.1: answers the given (status, body)
    /// pairs in order, one request per connection, then stops.
    fn fake(
        answers: Vec<(u16, String)>,
    ) -> (String, Arc<Mutex<Vec<Got>>>, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let h = std::thread::spawn(move || {
            for (status, answer) in answers {
                let (s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap().to_string(),
                );
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                let n: usize = headers
                    .get("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                let mut body = vec![0; n];
                r.read_exact(&mut body).unwrap();
                seen.lock().unwrap().push(Got {
                    method,
                    path,
                    headers,
                    body,
                });
                let mut s = r.into_inner();
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    answer.len()
                );
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        (url, got, h)
    }

    fn env(endpoint: String) -> impl Fn(&str) -> Option<String> {
        move |k| {
            match k {
                "AWS_REGION" => Some("us-east-1".into()), // the ARN's eu-central-1 must win
                "AWS_ACCESS_KEY_ID" => Some("ASIAEXAMPLEKEYID".into()),
                "AWS_SECRET_ACCESS_KEY" => Some(SECRET_KEY.into()),
                "AWS_SESSION_TOKEN" => Some(TOKEN.into()),
                "AWS_ENDPOINT_URL_SECRETS_MANAGER" => Some(endpoint.clone()),
                _ => None,
            }
        }
    }

    fn ok_answer(secret: &str) -> (u16, String) {
        let mut body = String::from("{\"ARN\":\"");
        body.push_str(ARN);
        body.push_str("\",\"Name\":\"dd-key\",\"SecretString\":");
        crate::wire::json::write_str(&mut body, secret);
        body.push_str(",\"VersionId\":\"v1\",\"CreatedDate\":1.7E9}");
        (200, body)
    }

    /// Checks the request as Secrets Manager would: headers present, the
    /// credential scope, and the signature recomputed from what arrived.
    fn check_signed(g: &Got) {
        assert_eq!(g.method, "POST");
        assert_eq!(g.path, "/");
        let h = |n: &str| {
            g.headers
                .get(n)
                .map(String::as_str)
                .unwrap_or_else(|| panic!("no {n} header"))
        };
        assert_eq!(h("x-amz-target"), "secretsmanager.GetSecretValue");
        assert_eq!(h("content-type"), "application/x-amz-json-1.1");
        assert_eq!(h("x-amz-security-token"), TOKEN);
        assert_eq!(g.body, format!("{{\"SecretId\":\"{ARN}\"}}").as_bytes());
        let date = h("x-amz-date");
        assert_eq!(date.len(), 16);
        assert!(date.ends_with('Z') && date.as_bytes()[8] == b'T', "{date}");
        let auth = h("authorization");
        let prefix =
            format!("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEYID/{}/eu-central-1/secretsmanager/aws4_request, ", &date[..8]);
        assert!(auth.starts_with(&prefix), "{auth}");
        let rest = &auth[prefix.len()..];
        let (signed, sig) = rest.split_once(", Signature=").expect("Signature=");
        let signed = signed
            .strip_prefix("SignedHeaders=")
            .expect("SignedHeaders=");
        assert_eq!(
            signed,
            "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        );
        // Recompute from the received headers named in SignedHeaders.
        let headers: Vec<(&str, &str)> = signed.split(';').map(|n| (n, h(n))).collect();
        let (creq, _) =
            sigv4::canonical_request("POST", "/", "", &headers, &sigv4::sha256_hex(&g.body));
        let sts = sigv4::string_to_sign(
            date,
            &format!("{}/eu-central-1/secretsmanager/aws4_request", &date[..8]),
            &creq,
        );
        let key = sigv4::signing_key(SECRET_KEY, &date[..8], "eu-central-1", "secretsmanager");
        let want = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            sts.as_bytes(),
        );
        assert_eq!(sig, sigv4::hex(want.as_ref()));
        assert!(!auth.contains(SECRET_KEY));
    }

    #[test]
    fn fetches_and_signs_against_a_fake_secrets_manager() {
        let (url, got, h) = fake(vec![ok_answer(&format!(
            "{{\"DD_API_KEY\":\"{DD_KEY}\",\"other\":\"x\"}}"
        ))]);
        assert_eq!(fetch_api_key(ARN, env(url.clone())).unwrap(), DD_KEY);
        h.join().unwrap();
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].headers["host"], url.trim_start_matches("http://"));
        check_signed(&got[0]);
    }

    #[test]
    fn retries_5xx_then_takes_a_plain_secret() {
        let (url, got, h) = fake(vec![
            (500, String::new()),
            ok_answer(&format!("  {DD_KEY}\n")),
        ]);
        assert_eq!(fetch_api_key(ARN, env(url)).unwrap(), DD_KEY);
        h.join().unwrap();
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2);
        check_signed(&got[1]);
    }

    #[test]
    fn access_denied_is_one_readable_error_without_secrets() {
        let denied = r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::123456789012:assumed-role/fn-role/fn is not authorized to perform: secretsmanager:GetSecretValue"}"#;
        let (url, got, h) = fake(vec![(400, denied.into())]);
        let e = fetch_api_key(ARN, env(url)).unwrap_err();
        h.join().unwrap();
        assert_eq!(got.lock().unwrap().len(), 1, "a 4xx is not retried");
        assert!(
            e.starts_with(
                "Secrets Manager answered HTTP 400 AccessDeniedException: User: arn:aws:sts"
            ),
            "{e}"
        );
        for secret in [SECRET_KEY, TOKEN, DD_KEY] {
            assert!(!e.contains(secret), "{e}");
        }
    }

    #[test]
    fn a_secret_without_a_usable_key_is_an_error_without_its_content() {
        let (url, _got, h) = fake(vec![ok_answer(
            r#"{"username":"admin","password":"hunter2"}"#,
        )]);
        let e = fetch_api_key(ARN, env(url)).unwrap_err();
        h.join().unwrap();
        assert!(
            e.contains("none named api_key") && !e.contains("hunter2") && !e.contains("admin"),
            "{e}"
        );
    }

    #[test]
    fn unreachable_endpoint_fails_bounded() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // closed again
        let t = std::time::Instant::now();
        let e = fetch_api_key(ARN, env(format!("http://127.0.0.1:{port}"))).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(
            e.starts_with(&format!("Secrets Manager at http://127.0.0.1:{port}/: ")),
            "{e}"
        );
        assert!(!e.contains(SECRET_KEY) && !e.contains(TOKEN), "{e}");
    }

    #[test]
    fn missing_credentials() {
        let e = fetch_api_key(ARN, |k| {
            (k == "AWS_REGION").then(|| "us-east-1".to_string())
        })
        .unwrap_err();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
    }
}
