//! Variant A: std threads, shaped like slimcap's src/shell: the main thread owns the state and
//! waits on one bounded channel; a poller thread long-polls `next` on its own connection; a
//! listener thread accepts telemetry connections and serves each on a short thread.

use probe_smol::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

enum Msg {
    Batch(usize),
    Event(Result<bool, &'static str>), // Ok(is_shutdown)
}

/// One kept-alive connection to the Runtime API.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: std::net::SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Conn { s, buf: Vec::with_capacity(4096) })
    }

    fn call(&mut self, req: &[u8]) -> Result<Response, &'static str> {
        self.s.write_all(req).map_err(|_| "write")?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((r, used)) = parse_response(&self.buf)? {
                self.buf.drain(..used);
                return Ok(r);
            }
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return Err("connection closed"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

static COUNTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static BATCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static NO_CHANNEL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn no_channel() -> bool {
    NO_CHANNEL.load(std::sync::atomic::Ordering::Relaxed)
}

fn serve(mut c: TcpStream, tx: mpsc::SyncSender<Msg>) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = c.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            match parse_post(&buf) {
                Post::NeedMore => break,
                Post::Bad => {
                    let _ = c.write_all(BAD);
                    return;
                }
                Post::Done { records, used, keep_alive } => {
                    buf.drain(..used);
                    // PROBE_NO_CHANNEL=1: count in an atomic instead of handing the batch to
                    // the main thread (to tell the channel hop's cost from the threads' own)
                    if no_channel() {
                        COUNTED.fetch_add(records, std::sync::atomic::Ordering::Relaxed);
                        BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else if tx.send(Msg::Batch(records)).is_err() {
                        return;
                    }
                    if c.write_all(if keep_alive { OK } else { OK_CLOSE }).is_err() || !keep_alive {
                        return;
                    }
                }
            }
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn main() {
    let Some((api, name)) = env() else { die("AWS_LAMBDA_RUNTIME_API is not set") };
    let Some(addr) = runtime_addr(&api) else { die("AWS_LAMBDA_RUNTIME_API is not ip:port") };
    let mut conn = Conn::open(addr).unwrap_or_else(|_| die("connect"));
    let reg = conn.call(&register_req(&api, &name)).unwrap_or_else(|e| die(e));
    let id = match (reg.status, reg.id) {
        (200, Some(id)) => id,
        _ => die("register refused"),
    };
    // --- registered ---
    NO_CHANNEL.store(std::env::var_os("PROBE_NO_CHANNEL").is_some(), std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = mpsc::sync_channel::<Msg>(256);
    let l = TcpListener::bind(std::net::SocketAddr::from(([0, 0, 0, 0], telemetry_port()))).unwrap_or_else(|_| die("bind"));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || serve(c, tx));
            }
        });
    }
    let sub = conn.call(&subscribe_req(&api, &id, port)).unwrap_or_else(|e| die(e));
    if sub.status != 200 {
        eprintln!("[probe] subscribe refused: {}", sub.status);
    }
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut c = match Conn::open(addr) {
                Ok(c) => c,
                Err(_) => return drop(tx.send(Msg::Event(Err("connect")))),
            };
            let req = next_req(&api, &id);
            loop {
                let ev = c.call(&req).and_then(|r| if r.status == 200 { Ok(is_shutdown(&r.body)) } else { Err("next refused") });
                let stop = !matches!(ev, Ok(false));
                if tx.send(Msg::Event(ev)).is_err() || stop {
                    return;
                }
            }
        });
    }
    drop(tx);
    let (mut batches, mut records, mut events) = (0usize, 0usize, 0usize);
    loop {
        match rx.recv() {
            Ok(Msg::Batch(n)) => {
                batches += 1;
                records += n;
            }
            Ok(Msg::Event(Ok(false))) => events += 1,
            Ok(Msg::Event(Ok(true))) => break,
            Ok(Msg::Event(Err(e))) => die(e),
            Err(_) => die("channel closed"),
        }
    }
    batches += BATCHES.load(std::sync::atomic::Ordering::Relaxed);
    records += COUNTED.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("[probe] threads: SHUTDOWN after {events} events, {batches} batches, {records} records");
}
