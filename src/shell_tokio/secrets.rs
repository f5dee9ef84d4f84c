//! `DD_API_KEY_SECRET_ARN` for the tokio shell: the core's signed
//! `GetSecretValue` request (`crate::aws::secrets`) sent with reqwest on a task,
//! with the std shell's rules (`crate::shell::secrets`): started after the
//! first `next`, up to [`ATTEMPTS`] tries of [`ATTEMPT_TIMEOUT`] each, only
//! transport errors, 5xx, 429 and throttling retried; errors never hold the
//! key, the secret or the credentials.

use crate::aws::secrets::{self, Failure, Setup};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

pub const ATTEMPTS: u32 = 3;
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Secrets Manager caps a secret at 64 KiB; its JSON answer is a bit more.
const BODY_LIMIT: usize = 256 * 1024;

/// Starts the fetch on a task; the answer arrives on the returned channel.
pub fn spawn_fetch(secret_id: String) -> oneshot::Receiver<Result<String, String>> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(fetch_api_key(&secret_id, |k| std::env::var(k).ok()).await);
    });
    rx
}

pub async fn fetch_api_key(
    secret_id: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let setup = Setup::from_lookup(secret_id, get)?;
    let client = super::https_client_builder()
        .timeout(ATTEMPT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        match fetch_once(&client, &setup, secret_id).await {
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

async fn fetch_once(
    client: &reqwest::Client,
    setup: &Setup,
    secret_id: &str,
) -> Result<String, Failure> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let req = secrets::get_secret_value(setup, secret_id, now);
    let mut b = client.post(&req.url);
    for (name, value) in &req.headers {
        b = b.header(*name, value);
    }
    // reqwest's errors name the URL and the failure, never the headers.
    let transport = |e: reqwest::Error| Failure {
        message: format!(
            "Secrets Manager at {}: {}",
            req.url,
            super::error_chain(&e.without_url())
        ),
        retryable: true,
    };
    let res = b.body(req.body.clone()).send().await.map_err(transport)?;
    let status = res.status().as_u16();
    let body = res.bytes().await.map_err(transport)?;
    if body.len() > BODY_LIMIT {
        return Err(Failure {
            message: format!("Secrets Manager answer over {BODY_LIMIT} bytes"),
            retryable: false,
        });
    }
    secrets::parse_response(status, &String::from_utf8_lossy(&body))
}
