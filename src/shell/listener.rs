//! The telemetry listener: accepts the platform's POSTs and hands parsed
//! batches to the core through the bounded queue, answering as soon as the
//! batch is parsed and queued (the platform's POST is never held while
//! downstream work happens).
//!
//! One worker thread per open connection (the platform keeps one or two
//! alive), so a client that sends half a request and stalls blocks nobody
//! else; a read timeout reaps it. A worker whose connection closed accepts
//! the next one instead of exiting (a platform that opened a connection per
//! POST would otherwise cost a thread start per batch), and keeps its
//! receive buffer. Answers: 200 for every JSON array (records
//! that do not parse are counted, not refused), 400 for a body that is not a
//! JSON array or a malformed request, 413 above the body limit.

use super::Msg;
use crate::wire::http1::{self, Event, Request, RequestReader};
use crate::lambda::telemetry;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

/// An idle or stalled connection is closed after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many connections are served at once (one worker each).
const MAX_CONNECTIONS: usize = 32;

/// Batches handed to the core whose 200 is not written yet.
static ANSWERING: AtomicUsize = AtomicUsize::new(0);

/// Before exiting: lets the workers answer the batches the core already has
/// (at most `max`), so the platform does not see a delivery fail (a reset)
/// for records that were in fact received.
pub fn settle(max: Duration) {
    let until = std::time::Instant::now() + max;
    while ANSWERING.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Binds `0.0.0.0:port` and serves on worker threads; returns the bound port.
pub fn start(port: u16, body_limit: usize, tx: SyncSender<Msg>) -> std::io::Result<u16> {
    let l = TcpListener::bind(("0.0.0.0", port))?;
    let port = l.local_addr()?.port();
    spawn_worker(Arc::new(Workers { l, idle: AtomicUsize::new(1), all: AtomicUsize::new(1), body_limit, tx }));
    Ok(port)
}

struct Workers {
    l: TcpListener,
    /// Workers waiting in `accept` (or about to).
    idle: AtomicUsize,
    all: AtomicUsize,
    body_limit: usize,
    tx: SyncSender<Msg>,
}

/// A worker accepts a connection and serves it until it closes, then accepts
/// again. The one that takes the last idle slot starts another first, so a
/// connection is always being waited for (up to MAX_CONNECTIONS workers;
/// beyond that, new connections wait in the backlog).
fn spawn_worker(w: Arc<Workers>) {
    std::thread::spawn(move || {
        super::crash::altstack(); // a stack overflow here is reported too
        let mut reader = RequestReader::new(w.body_limit);
        loop {
            let Ok((conn, _)) = w.l.accept() else { continue };
            if w.idle.fetch_sub(1, Ordering::AcqRel) == 1 {
                if w.all.fetch_add(1, Ordering::AcqRel) < MAX_CONNECTIONS {
                    w.idle.fetch_add(1, Ordering::AcqRel);
                    spawn_worker(w.clone());
                } else {
                    w.all.fetch_sub(1, Ordering::AcqRel);
                    log::warn!("telemetry listener: {MAX_CONNECTIONS} connections open; more wait");
                }
            }
            serve(conn, &mut reader, w.body_limit, &w.tx);
            reader.reset();
            w.idle.fetch_add(1, Ordering::AcqRel);
        }
    });
}

fn serve(mut conn: TcpStream, reader: &mut RequestReader, body_limit: usize, tx: &SyncSender<Msg>) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let _ = conn.set_nodelay(true);
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
            // Counted from the hand-over to the answer: the core may act on
            // the batch (its last report) and exit before this thread writes.
            ANSWERING.fetch_add(1, Ordering::AcqRel);
            // Blocks only if the core is behind by QUEUE_BATCHES batches.
            let ok = tx.send(Msg::Batch(batch)).is_ok()
                && conn.write_all(&http1::response(200, "OK", req.keep_alive)).is_ok();
            ANSWERING.fetch_sub(1, Ordering::AcqRel);
            ok
        }
        Err(e) => {
            log::warn!("telemetry batch refused (400): {}", e.0);
            conn.write_all(&http1::response(400, e.0, req.keep_alive)).is_ok()
        }
    }
}
