//! AWS Signature Version 4 for one signed request (header signing). Pure:
//! the time is a parameter, no I/O. HMAC-SHA256 and SHA-256 come from `ring`,
//! which rustls links already (so this costs a few hundred bytes of glue,
//! not a crypto library).
//!
//! Scope, on purpose: what `secretsmanager.GetSecretValue` needs, i.e. a
//! request whose path is already canonical (`/`) and whose query string is
//! already canonical (empty), with a handful of single-valued headers. Header
//! names are lowercased, values trimmed with inner runs of spaces collapsed,
//! and the headers sorted, as the specification says. The session token is
//! signed (`x-amz-security-token` in the canonical headers), which every
//! service accepts.

use ring::{digest, hmac};

/// The signing algorithm's name, as it appears in the string to sign and in
/// the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// AWS credentials, borrowed (from the environment in the shell).
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// `AWS_SESSION_TOKEN` (always present for a Lambda function's role).
    pub session_token: Option<&'a str>,
}

// Never print the secret parts, even by accident through `{:?}`.
impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// What to sign. `path` and `query` must already be in canonical form.
pub struct Request<'a> {
    pub method: &'a str,
    /// The `Host` header exactly as sent (with `:port` when not the default).
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Headers to sign besides `host`, `x-amz-date` and
    /// `x-amz-security-token` (which [`sign`] adds). Any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The result of [`sign`]: the headers to add to the request, and the
/// intermediate strings (for tests and debugging; they hold no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `YYYYMMDDTHHMMSSZ`, to send as `x-amz-date`.
    pub amz_date: String,
    /// The full `Authorization` header value.
    pub authorization: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    /// Hex signature (the last part of `authorization`).
    pub signature: String,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// `YYYYMMDDTHHMMSSZ` (the `x-amz-date` format) for Unix epoch seconds.
pub fn amz_date(epoch_secs: i64) -> String {
    // RFC 3339 "YYYY-MM-DDTHH:MM:SS.mmmZ" minus the separators and fraction.
    let b = crate::wire::time::format_rfc3339_bytes(epoch_secs.saturating_mul(1000));
    let mut s = String::with_capacity(16);
    for &c in &b[..19] {
        if c != b'-' && c != b':' {
            s.push(c as char);
        }
    }
    s.push('Z');
    s
}

/// The signing key: HMAC chain over the date (`YYYYMMDD`), region, service
/// and `aws4_request`, starting from `"AWS4" + secret`.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k = Vec::with_capacity(4 + secret_access_key.len());
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret_access_key.as_bytes());
    let mut tag = hmac_sha256(&k, date.as_bytes());
    for part in [region, service, "aws4_request"] {
        tag = hmac_sha256(tag.as_ref(), part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces
/// collapsed to one.
fn canonical_value(v: &str, out: &mut String) {
    let mut space = false;
    for c in v.trim().chars() {
        if c == ' ' || c == '\t' {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
}

/// The canonical request and the signed-headers list for `headers` (all the
/// headers to sign, names in any case, no duplicates) and the hex payload
/// hash.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> (String, String) {
    let mut hs: Vec<(String, &str)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), *v))
        .collect();
    // Insertion sort: a handful of headers, and fewer bytes than `sort_by`.
    for i in 1..hs.len() {
        let mut j = i;
        while j > 0 && hs[j - 1].0 > hs[j].0 {
            hs.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut c = String::with_capacity(256);
    c.push_str(method);
    c.push('\n');
    c.push_str(path);
    c.push('\n');
    c.push_str(query);
    c.push('\n');
    let mut signed = String::new();
    for (n, v) in &hs {
        c.push_str(n);
        c.push(':');
        canonical_value(v, &mut c);
        c.push('\n');
        if !signed.is_empty() {
            signed.push(';');
        }
        signed.push_str(n);
    }
    c.push('\n');
    c.push_str(&signed);
    c.push('\n');
    c.push_str(payload_hash);
    (c, signed)
}

/// `<date>/<region>/<service>/aws4_request`.
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Signs `req` for `region`/`service` at `epoch_secs`. The caller sends, in
/// addition to its own headers: `x-amz-date: <amz_date>`, the session token
/// as `x-amz-security-token` when there is one, and `Authorization`.
pub fn sign(
    creds: &Credentials,
    region: &str,
    service: &str,
    req: &Request,
    epoch_secs: i64,
) -> Signed {
    let amz_date = amz_date(epoch_secs);
    let date = &amz_date[..8];
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(req.headers.len() + 3);
    headers.extend_from_slice(req.headers);
    headers.push(("host", req.host));
    headers.push(("x-amz-date", &amz_date));
    if let Some(t) = creds.session_token {
        headers.push(("x-amz-security-token", t));
    }
    let (canonical_request, signed_headers) = canonical_request(
        req.method,
        req.path,
        req.query,
        &headers,
        &sha256_hex(req.body),
    );
    let scope = credential_scope(date, region, service);
    let string_to_sign = string_to_sign(&amz_date, &scope, &canonical_request);
    let key = signing_key(creds.secret_access_key, date, region, service);
    let signature = hex(hmac_sha256(&key, string_to_sign.as_bytes()).as_ref());
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    );
    Signed {
        amz_date,
        authorization,
        canonical_request,
        string_to_sign,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // AWS's Signature Version 4 test suite (aws-sig-v4-test-suite, as kept
    // in aws-c-auth): these credentials, 2015-08-30T12:36:00Z, us-east-1,
    // service "service", host example.amazonaws.com.
    const AK: &str = "AKIDEXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const T: i64 = 1_440_938_160; // 2015-08-30T12:36:00Z
    const HOST: &str = "example.amazonaws.com";
    const SUITE_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn creds(token: Option<&'static str>) -> Credentials<'static> {
        Credentials {
            access_key_id: AK,
            secret_access_key: SK,
            session_token: token,
        }
    }

    fn suite(
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        token: Option<&'static str>,
    ) -> Signed {
        let req = Request {
            method,
            host: HOST,
            path: "/",
            query: "",
            headers,
            body,
        };
        sign(&creds(token), "us-east-1", "service", &req, T)
    }

    #[test]
    fn amz_date_format() {
        assert_eq!(amz_date(T), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_868_799), "20000229T235959Z");
    }

    #[test]
    fn get_vanilla() {
        let s = suite("GET", &[], b"", None);
        assert_eq!(
            s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla() {
        let s = suite("POST", &[], b"", None);
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87"
        );
        assert_eq!(
            s.signature,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded_with_body() {
        let s = suite(
            "POST",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"Param1=value1",
            None,
        );
        assert!(s.canonical_request.ends_with(
            "content-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        ));
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn post_sts_header_before_signs_the_session_token() {
        let s = suite("POST", &[], b"", Some(SUITE_TOKEN));
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        );
    }

    #[test]
    fn header_names_lowercased_sorted_values_trimmed() {
        // Suite cases post-header-key-sort / get-header-value-trim.
        let s = suite("POST", &[("My-Header1", "value1")], b"", None);
        assert_eq!(
            s.signature,
            "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"
        );
        let s = suite(
            "GET",
            &[("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
            b"",
            None,
        );
        assert!(s
            .canonical_request
            .contains("\nmy-header1:value1\nmy-header2:\"a b c\"\n"));
        assert_eq!(
            s.signature,
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
        );
    }

    #[test]
    fn signing_key_matches_the_documented_example() {
        // AWS docs' signing-key example: 20120215, us-east-1, iam.
        let k = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let d = format!("{:?}", creds(Some("tok-secret")));
        assert!(d.contains(AK));
        assert!(!d.contains(SK) && !d.contains("tok-secret"), "{d}");
    }
}
