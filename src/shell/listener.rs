//! The telemetry listener: accepts the platform's POSTs and hands parsed
//! batches to the core through the bounded queue, answering as soon as the
//! batch is parsed and queued (the platform's POST is never held while
//! downstream work happens).
//!
//! One short-lived thread per connection (the platform keeps one or two
//! alive), so a client that sends half a request and stalls blocks nobody
//! else; a read timeout reaps it. Answers: 200 for every JSON array (records
//! that do not parse are counted, not refused), 400 for a body that is not a
//! JSON array or a malformed request, 413 above the body limit.

use super::Msg;
use crate::http1::{self, Event, Request, RequestReader};
use crate::telemetry;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

/// An idle or stalled connection is closed after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// More connections than this at once are refused (closed at accept).
const MAX_CONNECTIONS: usize = 32;

/// Binds `0.0.0.0:port` and serves on a thread; returns the bound port.
pub fn start(port: u16, body_limit: usize, tx: SyncSender<Msg>) -> std::io::Result<u16> {
    let l = TcpListener::bind(("0.0.0.0", port))?;
    let port = l.local_addr()?.port();
    let live = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                log::warn!("telemetry listener: too many connections; closing one");
                continue;
            }
            live.fetch_add(1, Ordering::Relaxed);
            let (tx, live) = (tx.clone(), live.clone());
            std::thread::spawn(move || {
                serve(conn, body_limit, &tx);
                live.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    Ok(port)
}

fn serve(mut conn: TcpStream, body_limit: usize, tx: &SyncSender<Msg>) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let _ = conn.set_nodelay(true);
    let mut reader = RequestReader::new(body_limit);
    loop {
        // Serve every complete request already buffered (pipelining).
        loop {
            match reader.next() {
                Event::NeedMore => break,
                Event::Continue => {
                    if conn.write_all(http1::CONTINUE).is_err() {
                        return;
                    }
                }
                Event::Request(req) => {
                    let keep = req.keep_alive;
                    if !handle(&mut conn, &req, tx) || !keep {
                        return;
                    }
                }
                Event::TooLarge => {
                    log::warn!("telemetry listener: request over {body_limit} bytes refused (413)");
                    let _ = conn.write_all(&http1::response(413, "request too large", false));
                    return;
                }
                Event::Bad(why) => {
                    log::warn!("telemetry listener: malformed request refused (400): {why}");
                    let _ = conn.write_all(&http1::response(400, why, false));
                    return;
                }
                Event::Closed => return,
            }
        }
        match conn.read(reader.spare()) {
            Ok(0) | Err(_) => return,
            Ok(n) => reader.filled(n),
        }
    }
}

/// Answers one request; false when the connection should close.
fn handle(conn: &mut TcpStream, req: &Request, tx: &SyncSender<Msg>) -> bool {
    if req.method != "POST" {
        return conn.write_all(&http1::response(405, "POST only", req.keep_alive)).is_ok();
    }
    match telemetry::parse_batch(req.body) {
        Ok(batch) => {
            if batch.rejected > 0 {
                log::debug!("telemetry batch: {} records kept, {} unusable", batch.records.len(), batch.rejected);
            }
            // Blocks only if the core is behind by QUEUE_BATCHES batches.
            if tx.send(Msg::Batch(batch)).is_err() {
                return false;
            }
            conn.write_all(&http1::response(200, "OK", req.keep_alive)).is_ok()
        }
        Err(e) => {
            log::warn!("telemetry batch refused (400): {}", e.0);
            conn.write_all(&http1::response(400, e.0, req.keep_alive)).is_ok()
        }
    }
}
