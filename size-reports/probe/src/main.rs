use std::time::Duration;

#[cfg(not(feature = "raw"))]
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

#[cfg(feature = "tls")]
fn remote_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .tls_config(tls_config())
        .build()
        .into()
}

/// notls: ureq without TLS (https fails at run time); webpki: ureq's default TlsConfig.
#[cfg(not(any(feature = "tls", feature = "raw")))]
fn remote_agent() -> ureq::Agent {
    agent()
}

/// Roots from the system CA bundle (Amazon Linux: /etc/pki/tls/certs/ca-bundle.crt), read at
/// first TLS use; honours SSL_CERT_FILE.
#[cfg(feature = "tls")]
fn system_roots() -> ureq::tls::RootCerts {
    let paths = [
        std::env::var("SSL_CERT_FILE").unwrap_or_default(),
        "/etc/pki/tls/certs/ca-bundle.crt".into(),
        "/etc/ssl/certs/ca-certificates.crt".into(),
        "/etc/ssl/certs/ca-bundle.crt".into(),
    ];
    for p in paths.iter().filter(|p| !p.is_empty()) {
        if let Ok(pem) = std::fs::read(p) {
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect::<Vec<_>>();
            return ureq::tls::RootCerts::new_with_certs(&certs);
        }
    }
    ureq::tls::RootCerts::new_with_certs(&[])
}

#[cfg(all(feature = "tls", not(feature = "minprov")))]
fn tls_config() -> ureq::tls::TlsConfig {
    ureq::tls::TlsConfig::builder().root_certs(system_roots()).build()
}

#[cfg(feature = "minprov")]
fn tls_config() -> ureq::tls::TlsConfig {
    use rustls::crypto::{ring, CryptoProvider};
    // Nothing here may call ring::default_provider(): that would pull in every suite.
    let p = CryptoProvider {
        cipher_suites: vec![
            ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![ring::kx_group::X25519],
        signature_verification_algorithms: SIG_ALGS,
        secure_random: &Rng,
        key_provider: &Rng,
    };
    ureq::tls::TlsConfig::builder()
        .root_certs(system_roots())
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(p))
        .build()
}

/// Certificate signatures: ECDSA P-256/P-384, RSA PKCS#1 and PSS (SHA-256/384); TLS 1.3
/// CertificateVerify: ECDSA P-256/P-384, RSA-PSS. No Ed25519, no SHA-512.
#[cfg(any(feature = "minprov", feature = "raw"))]
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

#[cfg(any(feature = "minprov", feature = "raw"))]
#[derive(Debug)]
struct Rng;
#[cfg(any(feature = "minprov", feature = "raw"))]
impl rustls::crypto::SecureRandom for Rng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring_crate::rand::SecureRandom;
        ring_crate::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}
#[cfg(any(feature = "minprov", feature = "raw"))]
impl rustls::crypto::KeyProvider for Rng {
    fn load_private_key(
        &self,
        _: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<std::sync::Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General("no client keys".into()))
    }
}

#[cfg(not(feature = "raw"))]
fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    let local = agent();
    let id = match local
        .post(&format!("http://{api}/2020-01-01/extension/register"))
        .header("Lambda-Extension-Name", "probe")
        .send("{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}")
    {
        Ok(r) => r
            .headers()
            .get("Lambda-Extension-Identifier")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .len(),
        Err(_) => std::process::exit(3),
    };
    if let Ok(url) = std::env::var("PROBE_URL") {
        // The TLS agent (and the CA bundle) only exist from the first HTTPS request on.
        let remote = remote_agent();
        match remote.get(&url).call() {
            Ok(mut r) => {
                let n = r.body_mut().read_to_vec().map(|b| b.len()).unwrap_or(0);
                println!("{} {} bytes", r.status().as_u16(), n);
            }
            Err(e) => {
                println!("error: {e}");
                std::process::exit(4)
            }
        }
    }
    std::process::exit(if id > 0 { 0 } else { 5 })
}

/// `raw`: no ureq. register with a hand-written HTTP/1.1 request over TcpStream; the HTTPS GET
/// over rustls::StreamOwned (TLS 1.3 only, the minimal ring provider, system CA bundle).
#[cfg(feature = "raw")]
fn main() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    let body = "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}";
    let id = (|| -> std::io::Result<bool> {
        let mut s = TcpStream::connect(api.as_str())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let req = format!(
            "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: {api}\r\nLambda-Extension-Name: probe\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&buf).to_ascii_lowercase().contains("lambda-extension-identifier:"))
    })()
    .unwrap_or_else(|_| std::process::exit(3));
    if let Ok(url) = std::env::var("PROBE_URL") {
        match https_get(&url) {
            Ok((status, n)) => println!("{status} {n} bytes"),
            Err(e) => {
                println!("error: {e}");
                std::process::exit(4)
            }
        }
    }
    std::process::exit(if id { 0 } else { 5 })
}

#[cfg(feature = "raw")]
fn https_get(url: &str) -> Result<(String, usize), Box<dyn std::error::Error>> {
    use rustls::crypto::{ring, CryptoProvider};
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    use std::io::{Read, Write};
    use std::sync::Arc;
    let rest = url.strip_prefix("https://").ok_or("not https")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = hostport.split(':').next().unwrap_or(hostport);
    let addr = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:443") };
    let mut roots = rustls::RootCertStore::empty();
    for p in [
        std::env::var("SSL_CERT_FILE").unwrap_or_default().as_str(),
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/ssl/certs/ca-bundle.crt",
    ] {
        if let Ok(pem) = std::fs::read(p) {
            roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).filter_map(|c| c.ok()));
            break;
        }
    }
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
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(host.to_string())?)?;
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let req = format!("GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", if path.is_empty() { "/" } else { path });
    tls.write_all(req.as_bytes())?;
    let mut resp = Vec::new();
    match tls.read_to_end(&mut resp) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !resp.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let status = String::from_utf8_lossy(resp.split(|&b| b == b'\r').next().unwrap_or(b"")).into_owned();
    Ok((status, resp.len()))
}
