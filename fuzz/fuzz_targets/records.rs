//! Telemetry batch parsing and the JSON scanner under arbitrary bytes.
//!
//! Beyond "never panics", checks that the three views of the same bytes agree:
//! `json::parse` (validate, then navigate), `json::Reader` (single pass, used by
//! `parse_batch`) and `parse_batch` itself; that the escaper round-trips every
//! string found; and that RFC 3339 parse/format round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slimcap::wire::json::{self, Reader, Type, Value};
use slimcap::lambda::telemetry;
use slimcap::wire::time;

fn walk(v: Value<'_>, depth: usize) -> usize {
    assert!(depth <= json::MAX_DEPTH + 1);
    let _ = (v.as_f64(), v.as_u64(), v.as_i64(), v.as_bool(), v.is_null(), v.type_());
    let mut n = 1;
    match v.type_() {
        Type::String => {
            let s = v.as_str().expect("string value");
            let mut out = String::new();
            json::write_str(&mut out, &s);
            let back = json::parse(&out).expect("escaped string parses");
            assert_eq!(back.as_str().as_deref(), Some(&*s));
            if let Some(ms) = time::parse_rfc3339(&s) {
                if (time::MIN_MS..=time::MAX_MS).contains(&ms) {
                    assert_eq!(time::parse_rfc3339(&time::format_rfc3339(ms)), Some(ms));
                }
            }
        }
        Type::Array => {
            for e in v.as_array().expect("array") {
                n += walk(e, depth + 1);
            }
        }
        Type::Object => {
            for (_, e) in v.as_object().expect("object") {
                n += walk(e, depth + 1);
            }
        }
        _ => {}
    }
    n
}

/// The same count through the pull parser.
fn count(r: &mut Reader<'_>) -> Result<usize, json::Error> {
    let mut n = 1;
    match r.peek() {
        Some(Type::Array) => {
            r.array(|r| {
                n += count(r)?;
                Ok(())
            })?;
        }
        Some(Type::Object) => {
            r.object(|_, r| {
                n += count(r)?;
                Ok(())
            })?;
        }
        _ => r.skip()?,
    }
    Ok(n)
}

fuzz_target!(|data: &[u8]| {
    let batch = telemetry::parse_batch(data);
    for r in batch.iter().flat_map(|b| &b.records) {
        assert!(!telemetry::kind_name(&r.kind).is_empty());
        let _ = r.kind.type_name();
    }

    let text = String::from_utf8_lossy(data);
    let doc = json::parse(&text);
    let mut r = Reader::new(&text);
    let pulled = count(&mut r).and_then(|n| r.finish().map(|_| n));
    match doc {
        Ok(v) => {
            let n = walk(v, 0);
            assert_eq!(pulled.ok(), Some(n), "Reader and parse disagree on valid input");
            match (v.as_array(), &batch) {
                (Some(items), Ok(b)) => assert_eq!(items.count(), b.records.len() + b.rejected),
                (None, Err(_)) => {}
                (a, b) => panic!("array {} but parse_batch {:?}", a.is_some(), b.is_ok()),
            }
        }
        Err(_) => {
            assert!(pulled.is_err(), "Reader accepted what parse refused");
            assert!(batch.is_err());
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(ms) = time::parse_rfc3339(s) {
            if (time::MIN_MS..=time::MAX_MS).contains(&ms) {
                assert_eq!(time::parse_rfc3339(&time::format_rfc3339(ms)), Some(ms));
            }
        }
    }
});
