//! Variant B: the `smol` crate as its README shows it: `smol::block_on` on the main thread,
//! tasks on smol's global executor (`smol::spawn`), `smol::net`, `smol::channel`. The same
//! structure as the threads variant: the main task owns the state and waits on one bounded
//! channel; a poller task long-polls `next`; a listener task accepts, one task per connection.

use probe_smol::*;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

enum Msg {
    Batch(usize),
    Event(Result<bool, &'static str>),
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: std::net::SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn { s, buf: Vec::with_capacity(4096) })
    }

    async fn call(&mut self, req: &[u8]) -> Result<Response, &'static str> {
        self.s.write_all(req).await.map_err(|_| "write")?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((r, used)) = parse_response(&self.buf)? {
                self.buf.drain(..used);
                return Ok(r);
            }
            match self.s.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err("connection closed"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

async fn serve(mut c: TcpStream, tx: smol::channel::Sender<Msg>) {
    let _ = c.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            match parse_post(&buf) {
                Post::NeedMore => break,
                Post::Bad => {
                    let _ = c.write_all(BAD).await;
                    return;
                }
                Post::Done { records, used, keep_alive } => {
                    buf.drain(..used);
                    if tx.send(Msg::Batch(records)).await.is_err() {
                        return;
                    }
                    if c.write_all(if keep_alive { OK } else { OK_CLOSE }).await.is_err() || !keep_alive {
                        return;
                    }
                }
            }
        }
        // idle/stalled connections: the same 10 s reaping as the threads variant
        let read = smol::future::or(async { Some(c.read(&mut chunk).await) }, async {
            smol::Timer::after(std::time::Duration::from_secs(10)).await;
            None
        });
        match read.await {
            Some(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}

fn main() {
    let Some((api, name)) = env() else { die("AWS_LAMBDA_RUNTIME_API is not set") };
    let Some(addr) = runtime_addr(&api) else { die("AWS_LAMBDA_RUNTIME_API is not ip:port") };
    smol::block_on(async move {
        let mut conn = Conn::open(addr).await.unwrap_or_else(|_| die("connect"));
        let reg = conn.call(&register_req(&api, &name)).await.unwrap_or_else(|e| die(e));
        let id = match (reg.status, reg.id) {
            (200, Some(id)) => id,
            _ => die("register refused"),
        };
        // --- registered ---
        let (tx, rx) = smol::channel::bounded::<Msg>(256);
        let l = TcpListener::bind(std::net::SocketAddr::from(([0, 0, 0, 0], telemetry_port()))).await.unwrap_or_else(|_| die("bind"));
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        {
            let tx = tx.clone();
            smol::spawn(async move {
                loop {
                    let Ok((c, _)) = l.accept().await else { continue };
                    smol::spawn(serve(c, tx.clone())).detach();
                }
            })
            .detach();
        }
        let sub = conn.call(&subscribe_req(&api, &id, port)).await.unwrap_or_else(|e| die(e));
        if sub.status != 200 {
            eprintln!("[probe] subscribe refused: {}", sub.status);
        }
        {
            let tx = tx.clone();
            let api = api.clone();
            smol::spawn(async move {
                let mut c = match Conn::open(addr).await {
                    Ok(c) => c,
                    Err(_) => return drop(tx.send(Msg::Event(Err("connect"))).await),
                };
                let req = next_req(&api, &id);
                loop {
                    let ev = c.call(&req).await.and_then(|r| if r.status == 200 { Ok(is_shutdown(&r.body)) } else { Err("next refused") });
                    let stop = !matches!(ev, Ok(false));
                    if tx.send(Msg::Event(ev)).await.is_err() || stop {
                        return;
                    }
                }
            })
            .detach();
        }
        drop(tx);
        let (mut batches, mut records, mut events) = (0usize, 0usize, 0usize);
        loop {
            match rx.recv().await {
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
        eprintln!("[probe] smol: SHUTDOWN after {events} events, {batches} batches, {records} records");
    });
}
