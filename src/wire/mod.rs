//! Wire formats, sans I/O: JSON, HTTP/1.1 (server and client side),
//! protobuf, RFC 3339 time.
pub mod json;
pub mod time;
pub mod http1;
pub mod httpc;
pub mod proto;
