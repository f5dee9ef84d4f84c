//! The telemetry listener on hyper: one task per connection, each POSTed
//! batch parsed with `telemetry::parse_batch` and queued for the core.
//!
//! Answers: 200 for any JSON array (records that do not parse are counted,
//! not refused: a 4xx would make the platform drop the whole batch); 400 for
//! a body that is not a JSON array; 413 past the body limit; 405 for other
//! methods; 503 once the core has gone.

use super::Msg;
use crate::lambda::telemetry::parse_batch;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Sender;

/// An idle or stalled connection is closed after this long (as the std shell).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// More connections than this at once are refused (closed at accept).
const MAX_CONNECTIONS: usize = 32;

/// Batches handed to the core whose answer is not with hyper yet.
static ANSWERING: AtomicUsize = AtomicUsize::new(0);

/// Before exiting: lets the batches the core already has be answered (at
/// most `max`; then a few ms for hyper to write them), so the platform does
/// not see a delivery fail for records that were received.
pub async fn settle(max: Duration) {
    let until = tokio::time::Instant::now() + max;
    while ANSWERING.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
}

/// Binds `0.0.0.0:port` and serves on a task; returns the bound port.
pub async fn start(port: u16, body_limit: usize, tx: Sender<Msg>) -> std::io::Result<u16> {
    let l = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    let port = l.local_addr()?.port();
    let live = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let stream = match l.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    log::warn!("telemetry listener: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                log::warn!("telemetry listener: too many connections; closing one");
                continue;
            }
            live.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let (tx, live) = (tx.clone(), live.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, body_limit, tx.clone()));
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    log::debug!("telemetry connection: {e}");
                }
                live.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    Ok(port)
}

fn answer(status: StatusCode, body: &'static str) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    Ok(r)
}

async fn handle(
    req: Request<Incoming>,
    limit: usize,
    tx: Sender<Msg>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.is::<http_body_util::LengthLimitError>() {
                log::warn!("telemetry batch over {limit} bytes refused");
                return answer(StatusCode::PAYLOAD_TOO_LARGE, "too large");
            }
            log::debug!("telemetry body read failed: {e}");
            return answer(StatusCode::BAD_REQUEST, "body read failed");
        }
    };
    match parse_batch(&body) {
        Ok(batch) => {
            // As in the std shell: counted from the hand-over until the
            // answer goes to hyper, so the core's exit can let it be written.
            ANSWERING.fetch_add(1, Ordering::AcqRel);
            let sent = tx.send(Msg::Batch(batch)).await.is_ok();
            ANSWERING.fetch_sub(1, Ordering::AcqRel);
            if !sent {
                return answer(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
            }
            answer(StatusCode::OK, "OK")
        }
        Err(e) => {
            log::warn!("telemetry batch refused: {}", e.0);
            answer(StatusCode::BAD_REQUEST, e.0)
        }
    }
}
