use std::time::Duration;

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
#[cfg(not(feature = "tls"))]
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
    let p = CryptoProvider {
        cipher_suites: vec![
            ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![ring::kx_group::X25519],
        signature_verification_algorithms: ring::default_provider().signature_verification_algorithms,
        secure_random: &Ring,
        key_provider: &Ring,
    };
    ureq::tls::TlsConfig::builder()
        .root_certs(system_roots())
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(p))
        .build()
}

#[cfg(feature = "minprov")]
#[derive(Debug)]
struct Ring;
#[cfg(feature = "minprov")]
impl rustls::crypto::SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        rustls::crypto::ring::default_provider().secure_random.fill(buf)
    }
}
#[cfg(feature = "minprov")]
impl rustls::crypto::KeyProvider for Ring {
    fn load_private_key(
        &self,
        _: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<std::sync::Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General("no client keys".into()))
    }
}

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
