//! Variant B': smol's parts as a size-minded user picks them: async-io's `Async<TcpStream>`,
//! async-executor's `LocalExecutor` driven by `async_io::block_on` on the main thread (no
//! executor threads, no `blocking` pool, no async-net resolver), futures-lite. Single-threaded,
//! so the state is a `Cell` instead of a channel: the main future registers, binds, subscribes
//! and then long-polls `next`; the listener and one task per connection run beside it.

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use probe_smol::*;
use std::cell::Cell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;

struct Conn {
    s: Async<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = Async::<TcpStream>::connect(addr).await?;
        s.get_ref().set_nodelay(true)?;
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

#[derive(Default)]
struct Stats {
    batches: Cell<usize>,
    records: Cell<usize>,
}

async fn serve(mut c: Async<TcpStream>, st: Rc<Stats>) {
    let _ = c.get_ref().set_nodelay(true);
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
                    st.batches.set(st.batches.get() + 1);
                    st.records.set(st.records.get() + records);
                    if c.write_all(if keep_alive { OK } else { OK_CLOSE }).await.is_err() || !keep_alive {
                        return;
                    }
                }
            }
        }
        let read = future::or(async { Some(c.read(&mut chunk).await) }, async {
            Timer::after(std::time::Duration::from_secs(10)).await;
            None
        });
        match read.await {
            Some(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}

fn register_blocking(addr: SocketAddr, api: &str, name: &str) -> (TcpStream, Vec<u8>, Response) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap_or_else(|_| die("connect"));
    let _ = s.set_nodelay(true);
    s.write_all(&register_req(api, name)).unwrap_or_else(|_| die("write"));
    let (mut buf, mut chunk) = (Vec::with_capacity(4096), [0u8; 4096]);
    loop {
        if let Some((r, used)) = parse_response(&buf).unwrap_or_else(|e| die(e)) {
            buf.drain(..used);
            return (s, buf, r);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => die("connection closed"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn main() {
    let Some((api, name)) = env() else { die("AWS_LAMBDA_RUNTIME_API is not set") };
    let Some(addr) = runtime_addr(&api) else { die("AWS_LAMBDA_RUNTIME_API is not ip:port") };
    // PROBE_BLOCKING_REGISTER=1: register with a blocking std TcpStream before anything async
    // exists (the reactor and its thread start at the first `Async`), then adopt the connection.
    let early = std::env::var_os("PROBE_BLOCKING_REGISTER").map(|_| register_blocking(addr, &api, &name));
    let ex: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    let st = Rc::new(Stats::default());
    let events = async_io::block_on(ex.run(async {
        let (mut conn, reg) = match early {
            Some((s, buf, reg)) => (Conn { s: Async::new(s).unwrap_or_else(|_| die("async")), buf }, reg),
            None => {
                let mut conn = Conn::open(addr).await.unwrap_or_else(|_| die("connect"));
                let reg = conn.call(&register_req(&api, &name)).await.unwrap_or_else(|e| die(e));
                (conn, reg)
            }
        };
        let id = match (reg.status, reg.id) {
            (200, Some(id)) => id,
            _ => die("register refused"),
        };
        // --- registered ---
        let l = Async::<TcpListener>::bind(([0, 0, 0, 0], telemetry_port())).unwrap_or_else(|_| die("bind"));
        let port = l.get_ref().local_addr().map(|a| a.port()).unwrap_or(0);
        {
            let (ex2, st) = (ex.clone(), st.clone());
            ex.spawn(async move {
                loop {
                    let Ok((c, _)) = l.accept().await else { continue };
                    ex2.spawn(serve(c, st.clone())).detach();
                }
            })
            .detach();
        }
        let sub = conn.call(&subscribe_req(&api, &id, port)).await.unwrap_or_else(|e| die(e));
        if sub.status != 200 {
            eprintln!("[probe] subscribe refused: {}", sub.status);
        }
        // `next` on its own connection, as slimcap does (the subscribe one stays for errors)
        let mut c = Conn::open(addr).await.unwrap_or_else(|_| die("connect"));
        let req = next_req(&api, &id);
        let mut events = 0usize;
        loop {
            let r = c.call(&req).await.unwrap_or_else(|e| die(e));
            if r.status != 200 {
                die("next refused");
            }
            if is_shutdown(&r.body) {
                return events;
            }
            events += 1;
        }
    }));
    eprintln!(
        "[probe] asyncio: SHUTDOWN after {events} events, {} batches, {} records",
        st.batches.get(),
        st.records.get()
    );
}
