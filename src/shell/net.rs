//! Blocking HTTP/1.1 over `TcpStream` (and rustls for HTTPS) with one
//! kept-alive connection per `scheme://host:port`. Messages are shaped by
//! `crate::wire::httpc`; this file only moves bytes and enforces deadlines.
//!
//! TLS: rustls with a hand-picked ring provider (TLS 1.3 only: AES-128-GCM
//! and ChaCha20-Poly1305, X25519; no TLS 1.2 code is linked) and the
//! system CA bundle read at the first HTTPS connection (`SSL_CERT_FILE`,
//! then Amazon Linux's `/etc/pki/tls/certs/ca-bundle.crt`, then Debian's),
//! so no root certificates are compiled in and nothing of TLS runs before
//! `register`. Measured in size-reports/flags.md.

use crate::wire::httpc::{self, Response, ResponseReader};
use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Largest response accepted (answers are small: status bodies, events, secrets).
const MAX_RESPONSE: usize = 1 << 20;

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write_vectored(bufs),
            // StreamOwned would write only the first slice.
            Stream::Tls(s) => rustls::Stream::new(&mut s.conn, &mut s.sock).write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A small HTTP client: one idle connection kept per origin.
#[derive(Default)]
pub struct Client {
    idle: HashMap<String, Stream>,
}

/// Epoch ms past which no request with a deadline may run (SHUTDOWN).
static CUTOFF_MS: AtomicI64 = AtomicI64::new(i64::MAX);
/// A blocked read or write wakes up this often to see a new cutoff.
const SLICE: Duration = Duration::from_millis(50);

/// From now on every request with a deadline (on any thread) ends by
/// `epoch_ms`, including one blocked in a socket right now (within
/// [`SLICE`]). Requests without a deadline (the `next` long poll) are not cut.
pub fn cut_at(epoch_ms: i64) {
    CUTOFF_MS.store(epoch_ms, Ordering::Relaxed);
}

/// Time left before `deadline` (and the cutoff); an error once none is left.
fn timeout_left(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    let Some(d) = deadline else { return Ok(None) };
    let mut left = d.saturating_duration_since(Instant::now());
    let cut = CUTOFF_MS.load(Ordering::Relaxed);
    if cut != i64::MAX {
        left = left.min(Duration::from_millis((cut - super::now_ms()).max(0) as u64));
    }
    if left < Duration::from_millis(1) {
        Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    } else {
        Ok(Some(left))
    }
}

/// Sets the socket's read and write timeouts to the next slice of the time
/// left (an error once none is left).
fn arm(tcp: &TcpStream, deadline: Option<Instant>) -> io::Result<()> {
    let t = timeout_left(deadline)?.map(|t| t.min(SLICE));
    tcp.set_read_timeout(t)?;
    tcp.set_write_timeout(t)
}

/// A socket timeout (a slice ran out): look at the deadline again.
fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

fn connect(tls: bool, host: &str, port: u16, deadline: Option<Instant>) -> io::Result<Stream> {
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
    for addr in (name, port).to_socket_addrs()? {
        let res = match timeout_left(deadline)? {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        match res {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                if !tls {
                    return Ok(Stream::Plain(tcp));
                }
                let server = rustls::pki_types::ServerName::try_from(name.to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let conn = rustls::ClientConnection::new(tls_config()?, server).map_err(io::Error::other)?;
                return Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Client {
    pub fn new() -> Client {
        Client::default()
    }

    /// Opens (and for HTTPS, handshakes) a connection to `url`'s origin ahead
    /// of use, keeping it idle for the next request.
    pub fn preconnect(&mut self, url: &str, deadline: Instant) -> io::Result<()> {
        let (tls, host, port, _) = httpc::split_url(url).ok_or_else(|| bad_url(url))?;
        let key = format!("{tls}{host}:{port}");
        if self.idle.contains_key(&key) {
            return Ok(());
        }
        let mut s = connect(tls, host, port, Some(deadline))?;
        if let Stream::Tls(t) = &mut s {
            while t.conn.is_handshaking() {
                arm(&t.sock, Some(deadline))?;
                match t.conn.complete_io(&mut t.sock) {
                    Err(e) if !timed_out(&e) => return Err(e),
                    _ => {}
                }
            }
        }
        self.idle.insert(key, s);
        Ok(())
    }

    /// Sends a request to `url` (`scheme://host[:port]/path`) and reads the
    /// answer, all before `deadline` (`None`: no limit, for the long poll).
    /// A reused connection that turns out closed is retried once on a new one.
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Option<Instant>,
    ) -> io::Result<Response> {
        self.send_then(method, url, headers, body, deadline, &mut || {})
    }

    /// [`Client::send`], calling `sent` once the request is written (before
    /// the answer is read): for work that must follow the long poll's start.
    pub fn send_then(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Option<Instant>,
        sent: &mut dyn FnMut(),
    ) -> io::Result<Response> {
        let (tls, host, port, path) = httpc::split_url(url).ok_or_else(|| bad_url(url))?;
        let key = format!("{tls}{host}:{port}");
        let host_header = if port == if tls { 443 } else { 80 } { host.to_string() } else { format!("{host}:{port}") };
        // The head is built apart from the body (they go out in one writev):
        // a logs body can be 5 MiB, and copying it behind the head cost an
        // allocation (with musl: a fresh mmap, page faults, munmap) per flush.
        let head = httpc::request_head(method, &host_header, if path.is_empty() { "/" } else { path }, headers, body.len());
        let mut reused = self.idle.remove(&key);
        loop {
            let was_reused = reused.is_some();
            let mut stream = match reused.take() {
                Some(s) => s,
                None => connect(tls, host, port, deadline).map_err(explain)?,
            };
            match exchange(&mut stream, &head, body, method == "HEAD", deadline, sent) {
                Ok((resp, _)) => {
                    if resp.keep_alive {
                        self.idle.insert(key, stream);
                    }
                    return Ok(resp);
                }
                // A kept-alive connection the server closed meanwhile: once more on a fresh one.
                Err((e, false)) if was_reused && e.kind() != io::ErrorKind::TimedOut => continue,
                Err((e, _)) => return Err(explain(e)),
            }
        }
    }

    /// Forgets idle connections (e.g. before a freeze that would outlive them).
    pub fn close_idle(&mut self) {
        self.idle.clear();
    }
}

/// rustls prints `CertificateError::Other` (the rarer webpki errors, e.g.
/// `CaUsedAsEndEntity`) through its derived `Debug`, which the release builds'
/// `-Zfmt-debug=shallow` cuts to `Other`: name the inner error instead.
fn explain(e: io::Error) -> io::Error {
    use rustls::{CertificateError, Error};
    if let Some(Error::InvalidCertificate(CertificateError::Other(o))) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        return io::Error::new(e.kind(), format!("invalid peer certificate: {o}"));
    }
    e
}

fn bad_url(url: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("unusable URL {url:?}"))
}

/// Writes `req` and reads one response. The error carries whether any
/// response byte had arrived (then a retry could duplicate the request).
fn exchange(
    s: &mut Stream,
    req: &[u8],
    body: &[u8],
    head: bool,
    deadline: Option<Instant>,
    sent: &mut dyn FnMut(),
) -> Result<(Response, bool), (io::Error, bool)> {
    write_both(s, req, body, deadline).map_err(|e| (e, false))?;
    sent();
    let mut reader = ResponseReader::new(MAX_RESPONSE, head);
    let mut buf = [0u8; 8192];
    let mut got = false;
    loop {
        // Read in slices of the time left (no deadline: no timeout), so
        // that a cutoff set meanwhile is seen.
        arm(s.tcp(), deadline).map_err(|e| (e, got))?;
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            // rustls reports a peer that closed without close_notify as UnexpectedEof.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) if timed_out(&e) => continue,
            Err(e) => return Err((e, got)),
        };
        if n > 0 {
            got = true;
            reader.feed(&buf[..n]);
        }
        match reader.poll(n == 0) {
            Ok(Some(resp)) => return Ok((resp, got)),
            Ok(None) if n > 0 => continue,
            Ok(None) | Err(_) if !got => {
                return Err((io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed"), false))
            }
            Ok(None) => continue,
            Err(e) => return Err((io::Error::new(io::ErrorKind::InvalidData, format!("{e:?} response")), true)),
        }
    }
}

/// Head and body in one `writev` (one segment on the wire, one wakeup of
/// the server) without copying the body behind the head; before `deadline`
/// however slowly the peer reads (each write waits a slice of the time left).
fn write_both(s: &mut Stream, head: &[u8], body: &[u8], deadline: Option<Instant>) -> io::Result<()> {
    let mut bufs = [IoSlice::new(head), IoSlice::new(body)];
    let mut rest = &mut bufs[..];
    loop {
        arm(s.tcp(), deadline)?;
        if rest.is_empty() {
            // (TLS: what rustls still holds goes out here)
            match s.flush() {
                Err(e) if timed_out(&e) => continue,
                r => return r,
            }
        }
        match s.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

static TLS: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();

/// The TLS client configuration, built at the first HTTPS connection.
fn tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    TLS.get_or_init(build_tls_config).clone().map_err(io::Error::other)
}

fn build_tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::crypto::{ring, CryptoProvider};
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let env = std::env::var("SSL_CERT_FILE").unwrap_or_default();
    let mut tried = Vec::new();
    for p in [
        env.as_str(),
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/ssl/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ] {
        if p.is_empty() {
            continue;
        }
        tried.push(p);
        if let Ok(pem) = std::fs::read(p) {
            roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).filter_map(|c| c.ok()));
            if !roots.is_empty() {
                break;
            }
        }
    }
    if roots.is_empty() {
        return Err(format!("no CA certificates found (tried {}; set SSL_CERT_FILE)", tried.join(", ")));
    }
    // Nothing here may call ring::default_provider(): that would link every suite.
    let provider = CryptoProvider {
        cipher_suites: vec![
            ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![ring::kx_group::X25519],
        signature_verification_algorithms: SIG_ALGS,
        secure_random: &Rng,
        key_provider: &Rng,
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Certificate signatures: ECDSA P-256/P-384, RSA PKCS#1 and PSS (SHA-256/384); TLS 1.3
/// CertificateVerify: ECDSA P-256/P-384, RSA-PSS. No Ed25519, no SHA-512.
static SIG_ALGS: rustls::crypto::WebPkiSupportedAlgorithms = {
    use rustls::SignatureScheme as S;
    use webpki::ring as w;
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[
            w::ECDSA_P256_SHA256,
            w::ECDSA_P256_SHA384,
            w::ECDSA_P384_SHA256,
            w::ECDSA_P384_SHA384,
            w::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            w::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            w::RSA_PKCS1_2048_8192_SHA256,
            w::RSA_PKCS1_2048_8192_SHA384,
        ],
        mapping: &[
            (S::ECDSA_NISTP384_SHA384, &[w::ECDSA_P384_SHA384, w::ECDSA_P256_SHA384]),
            (S::ECDSA_NISTP256_SHA256, &[w::ECDSA_P256_SHA256, w::ECDSA_P384_SHA256]),
            (S::RSA_PSS_SHA384, &[w::RSA_PSS_2048_8192_SHA384_LEGACY_KEY]),
            (S::RSA_PSS_SHA256, &[w::RSA_PSS_2048_8192_SHA256_LEGACY_KEY]),
            (S::RSA_PKCS1_SHA384, &[w::RSA_PKCS1_2048_8192_SHA384]),
            (S::RSA_PKCS1_SHA256, &[w::RSA_PKCS1_2048_8192_SHA256]),
        ],
    }
};

#[derive(Debug)]
struct Rng;
impl rustls::crypto::SecureRandom for Rng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ::ring::rand::SecureRandom;
        ::ring::rand::SystemRandom::new().fill(buf).map_err(|_| rustls::crypto::GetRandomFailed)
    }
}
impl rustls::crypto::KeyProvider for Rng {
    fn load_private_key(
        &self,
        _: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General("no client keys".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_name_the_webpki_error() {
        use rustls::{CertificateError, Error, OtherError};
        let other = CertificateError::Other(OtherError(Arc::new(webpki::Error::CaUsedAsEndEntity)));
        let e = io::Error::new(io::ErrorKind::InvalidData, Error::InvalidCertificate(other));
        let e = explain(e);
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "invalid peer certificate: CaUsedAsEndEntity");
        let e = io::Error::new(io::ErrorKind::InvalidData, Error::InvalidCertificate(CertificateError::UnknownIssuer));
        assert_eq!(explain(e).to_string(), "invalid peer certificate: UnknownIssuer");
        assert_eq!(explain(io::Error::other("x")).to_string(), "x");
    }
}
