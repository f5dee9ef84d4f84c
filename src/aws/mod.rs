//! AWS request signing (SigV4) and the Secrets Manager key fetch, sans I/O.
pub mod sigv4;
pub mod secrets;
