//! The telemetry listener: accepts the platform's POSTs and hands parsed
//! batches to the core. (Framing moves to `crate::http1` when it lands.)

use super::Msg;
use std::net::TcpListener;
use std::sync::mpsc::SyncSender;

/// Binds `0.0.0.0:port` and serves on a thread; returns the bound port.
pub fn start(port: u16, _body_limit: usize, _tx: SyncSender<Msg>) -> std::io::Result<u16> {
    let l = TcpListener::bind(("0.0.0.0", port))?;
    let port = l.local_addr()?.port();
    Ok(port)
}
