//! A small, zero-copy JSON scanner and a JSON string escaper.
//!
//! # Why not miniserde (or serde_json)
//! The telemetry listener parses every POSTed batch (up to ~2 MB, thousands of
//! records). `miniserde::json::Value` builds a tree: one allocation per string,
//! per array and per object, a `BTreeMap` per object, all of it thrown away a
//! microsecond later. We only read a handful of fields per record, so this
//! module scans instead of building. Two ways in, sharing one grammar:
//!
//! * [`Reader`], a validating **pull parser** for the hot path
//!   (`telemetry::parse_batch`): one pass, each byte looked at once, nested
//!   objects walked in place through callbacks, unwanted values validated and
//!   skipped. No allocation except for strings that contain escapes, and only
//!   when asked for.
//! * [`parse`] → [`Value`], for convenience: validates the whole document,
//!   then hands out `&str` slices holding exactly one well-formed value each.
//!   [`Array`] and [`Object`] iterate lazily over sub-slices with plain
//!   `Option`s (no error paths: the text is known to be valid) and skip values
//!   by bracket matching. Each nesting level re-scans its bytes, which is fine
//!   for small bodies (Extensions API answers) and why the hot path uses
//!   `Reader` instead (measured: 0.84 → 1.29 M telemetry records/s at
//!   opt-level "z", 1.1 → 2.0 M at opt-level 3).
//!
//! Both never panic and never recurse deeper than [`MAX_DEPTH`], whatever
//! the input. Strings are unescaped only when they contain a backslash
//! ([`Cow::Borrowed`] otherwise). Numbers are parsed with `str::parse`
//! (correctly rounded) only when a getter asks.
//!
//! Trade-offs, written down on purpose:
//! * The document must be valid UTF-8 (`&str`). Callers holding bytes use
//!   [`parse_bytes`] (strict) or `String::from_utf8_lossy` first (tolerant).
//! * A syntax error anywhere rejects the whole document: no partial results.
//! * Object lookups ([`Value::get`]) are linear scans; iterate once with
//!   [`Value::as_object`] when several fields are needed.
//! * Duplicate keys are not detected; [`Value::get`] returns the first one.
//! * Lone UTF-16 surrogates in `\u` escapes are accepted (the grammar allows
//!   them) and decoded as U+FFFD.
//! * No number formatting and no tree type: writers build JSON text directly
//!   with [`write_str`] / [`write_escaped`] and `write!` for numbers.

use std::borrow::Cow;
use std::fmt;

/// Maximum nesting of arrays/objects accepted by [`parse`].
pub const MAX_DEPTH: usize = 128;

/// A syntax error: byte offset into the input and a short description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    pub pos: usize,
    pub msg: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.msg, self.pos)
    }
}

/// The JSON type of a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// Validates `text` as one JSON value (surrounding whitespace allowed) and
/// returns it as a [`Value`].
pub fn parse(text: &str) -> Result<Value<'_>, Error> {
    let mut r = Reader::new(text);
    let v = r.value()?;
    r.finish()?;
    Ok(v)
}

/// Like [`parse`], for bytes: invalid UTF-8 is an error.
pub fn parse_bytes(bytes: &[u8]) -> Result<Value<'_>, Error> {
    match std::str::from_utf8(bytes) {
        Ok(s) => parse(s),
        Err(e) => Err(Error {
            pos: e.valid_up_to(),
            msg: "invalid UTF-8",
        }),
    }
}

/// Convenience for small bodies: parses `body` as a JSON object and calls
/// `f(key, value)` for each member (keys unescaped). Returns `false`, without
/// calling `f`, when `body` is not valid UTF-8 JSON or not an object.
pub fn for_each_field<'a>(body: &'a [u8], mut f: impl FnMut(&str, Value<'a>)) -> bool {
    let Some(obj) = parse_bytes(body).ok().and_then(|v| v.as_object()) else {
        return false;
    };
    for (k, v) in obj {
        f(&k, v);
    }
    true
}

// ---------------------------------------------------------------------------
// Reader: a validating pull parser. It is the only place that reports errors;
// `parse` is `Reader::value` + `Reader::finish`.

/// A single-pass, validating pull parser over JSON text, for hot paths that
/// want to read a document without first validating it as a whole: each byte
/// is looked at once, nested objects are walked in place, and values nobody
/// asks for are validated and skipped.
///
/// ```
/// # use slimcap::wire::json::Reader;
/// let mut r = Reader::new(r#"{"a":{"b":[1,2]},"c":"x"}"#);
/// let mut sum = 0;
/// r.object(|k, r| {
///     if k == "a" {
///         r.object(|_, r| { r.array(|r| { sum += r.value()?.as_u64().unwrap_or(0); Ok(()) })?; Ok(()) })?;
///     }
///     Ok(()) // "c" is not read: skipped (and validated) by `object`
/// }).unwrap();
/// assert_eq!(sum, 3);
/// ```
///
/// Callbacks may read the current value with exactly one call (`value`,
/// `string`, `object`, `array`, `skip`) or leave it alone (it is then
/// skipped). A callback that reads more than one value desynchronises the
/// reader: the result is an error, never a panic or a wrong acceptance.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    s: &'a str,
    i: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader {
            s: text,
            i: 0,
            depth: 0,
        }
    }

    /// Byte offset of the next unread byte.
    pub fn pos(&self) -> usize {
        self.i
    }

    #[inline]
    fn b(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    /// Skips whitespace. Inlined down to one byte test: the platform sends
    /// compact JSON, where there is none to skip.
    #[inline(always)]
    fn ws(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b().get(self.i) {
            self.i = skip_ws_slow(self.b(), self.i);
        }
    }

    /// The input text from byte offset `start` to the current position (e.g.
    /// the raw text of the value read since `start`).
    pub fn since(&self, start: usize) -> &'a str {
        self.s.get(start..self.i).unwrap_or("")
    }

    #[inline]
    fn err<T>(&self, msg: &'static str) -> Result<T, Error> {
        Err(Error { pos: self.i, msg })
    }

    /// The type of the next value, without consuming it (`None` at the end
    /// of input or when the next byte cannot start a value).
    pub fn peek(&mut self) -> Option<Type> {
        self.ws();
        Some(match self.b().get(self.i)? {
            b'{' => Type::Object,
            b'[' => Type::Array,
            b'"' => Type::String,
            b't' | b'f' => Type::Bool,
            b'n' => Type::Null,
            b'-' | b'0'..=b'9' => Type::Number,
            _ => return None,
        })
    }

    /// Only whitespace may remain.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.ws();
        if self.i != self.s.len() {
            return self.err("trailing characters");
        }
        Ok(())
    }

    /// Consumes the next value, validating it, and returns its text.
    pub fn value(&mut self) -> Result<Value<'a>, Error> {
        self.ws();
        let start = self.i;
        self.any(self.depth)?;
        Ok(Value {
            s: self.s.get(start..self.i).unwrap_or(""),
        })
    }

    /// Consumes (and validates) the next value.
    pub fn skip(&mut self) -> Result<(), Error> {
        self.value().map(drop)
    }

    /// If the next value is a string, consumes it and returns its content
    /// (unescaped; borrowed unless it has escapes). Otherwise consumes the
    /// value and returns `None`.
    pub fn string(&mut self) -> Result<Option<Cow<'a, str>>, Error> {
        self.ws();
        if self.b().get(self.i) != Some(&b'"') {
            return self.skip().map(|_| None);
        }
        let start = self.i + 1;
        let escaped = self.string_body()?;
        let raw = self.s.get(start..self.i - 1).unwrap_or("");
        Ok(Some(if escaped {
            unescape(raw)
        } else {
            Cow::Borrowed(raw)
        }))
    }

    /// If the next value is an object, calls `f(key, reader)` for each member
    /// (see the type's docs) and returns `true`. Otherwise consumes the value
    /// and returns `false`.
    pub fn object(
        &mut self,
        mut f: impl FnMut(&str, &mut Reader<'a>) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        self.object_dyn(&mut f)
    }

    /// [`Reader::object`]'s loop, compiled once rather than once per caller's
    /// closure (there are a dozen in `telemetry`): smaller, and the
    /// per-member indirect call costs less than it saves in code size.
    fn object_dyn(
        &mut self,
        f: &mut dyn FnMut(&str, &mut Reader<'a>) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        self.ws();
        if self.b().get(self.i) != Some(&b'{') {
            return self.skip().map(|_| false);
        }
        if self.depth >= MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.depth += 1;
        self.i += 1;
        self.ws();
        if self.b().get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(true);
        }
        loop {
            if self.b().get(self.i) != Some(&b'"') {
                return self.err("expected string key");
            }
            let kstart = self.i + 1;
            let escaped = self.string_body()?;
            let raw = self.s.get(kstart..self.i - 1).unwrap_or("");
            self.ws();
            if self.b().get(self.i) != Some(&b':') {
                return self.err("expected ':'");
            }
            self.i += 1;
            self.ws();
            let vstart = self.i;
            if escaped {
                f(&unescape(raw), self)?;
            } else {
                f(raw, self)?;
            }
            if self.i == vstart {
                self.skip()?;
            }
            self.ws();
            match self.b().get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(true);
                }
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }

    /// If the next value is an array, calls `f(reader)` for each element
    /// (see the type's docs) and returns `true`. Otherwise consumes the value
    /// and returns `false`.
    pub fn array(
        &mut self,
        mut f: impl FnMut(&mut Reader<'a>) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        self.array_dyn(&mut f)
    }

    /// [`Reader::array`]'s loop, compiled once (see [`Reader::object_dyn`]).
    fn array_dyn(
        &mut self,
        f: &mut dyn FnMut(&mut Reader<'a>) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        self.ws();
        if self.b().get(self.i) != Some(&b'[') {
            return self.skip().map(|_| false);
        }
        if self.depth >= MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.depth += 1;
        self.i += 1;
        self.ws();
        if self.b().get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(true);
        }
        loop {
            let vstart = self.i;
            f(self)?;
            if self.i == vstart {
                self.skip()?;
            }
            self.ws();
            match self.b().get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(true);
                }
                _ => return self.err("expected ',' or ']'"),
            }
        }
    }

    /// Validates one value at `i` (no leading whitespace), leaving `i` after it.
    fn any(&mut self, depth: usize) -> Result<(), Error> {
        let b = self.b();
        match b.get(self.i) {
            None => self.err("unexpected end of input"),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return self.err("nesting too deep");
                }
                self.i += 1;
                self.ws();
                if b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if b.get(self.i) != Some(&b'"') {
                        return self.err("expected string key");
                    }
                    self.string_body()?;
                    self.ws();
                    if b.get(self.i) != Some(&b':') {
                        return self.err("expected ':'");
                    }
                    self.i += 1;
                    self.ws();
                    self.any(depth + 1)?;
                    self.ws();
                    match b.get(self.i) {
                        Some(b',') => {
                            self.i += 1;
                            self.ws();
                        }
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return self.err("nesting too deep");
                }
                self.i += 1;
                self.ws();
                if b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.any(depth + 1)?;
                    self.ws();
                    match b.get(self.i) {
                        Some(b',') => {
                            self.i += 1;
                            self.ws();
                        }
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => self.string_body().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("unexpected character"),
        }
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<(), Error> {
        if self.b().get(self.i..self.i + lit.len()) == Some(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            self.err("invalid literal")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.b().get(self.i) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), Error> {
        if self.b().get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b().get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("invalid number"),
        }
        if self.b().get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.b().get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b().get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        Ok(())
    }

    /// At the opening quote; leaves `i` after the closing quote. Returns
    /// whether the string contains escapes. Inlined into its three callers
    /// (keys, string values, skipped values): most strings are short, and
    /// the call cost as much as the scan.
    #[inline(always)]
    fn string_body(&mut self) -> Result<bool, Error> {
        let b = self.b();
        let mut escaped = false;
        self.i += 1;
        loop {
            self.i = scan_plain(b, self.i);
            match b.get(self.i) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match b.get(self.i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = b.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.err("invalid \\u escape");
                            }
                            self.i += 5;
                        }
                        _ => return self.err("invalid escape"),
                    }
                }
                Some(_) => return self.err("control character in string"),
            }
        }
    }
}

/// Index of the first byte at or after `i` that is `"`, `\` or a control
/// character (or `b.len()`).
#[inline(always)]
pub(crate) fn scan_plain(b: &[u8], mut i: usize) -> usize {
    // Word-at-a-time: 8 bytes per step while none of them is special.
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let quote = w ^ (LO * b'"' as u64);
        let bslash = w ^ (LO * b'\\' as u64);
        // has-zero-byte trick for quote / backslash, and "byte < 0x20".
        let z = ((quote.wrapping_sub(LO) & !quote)
            | (bslash.wrapping_sub(LO) & !bslash)
            | (w.wrapping_sub(LO * 0x20) & !w))
            & HI;
        if z != 0 {
            // The lowest flagged byte is exact (a borrow only runs upwards
            // from a byte that really matched): no byte-by-byte rescan.
            return i + (z.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------
// Navigation over validated text. These never fail; on input that breaks the
// invariant they stop early instead of panicking.

#[inline(never)]
fn skip_ws_slow(b: &[u8], i: usize) -> usize {
    skip_ws(b, i)
}

#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// `i` at an opening quote: returns the index after the closing quote.
#[inline]
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    loop {
        i = scan_plain(b, i);
        match b.get(i) {
            None => return b.len(),
            Some(b'"') => return i + 1,
            Some(b'\\') => i += 2,
            Some(_) => i += 1, // control char: impossible after validation
        }
    }
}

/// `i` at the first byte of a value: returns the index after its last byte.
fn skip_value(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        None => b.len(),
        Some(b'"') => skip_string(b, i).min(b.len()),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&c) = b.get(j) {
                match c {
                    b'"' => {
                        j = skip_string(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            b.len()
        }
        Some(_) => {
            let mut j = i + 1;
            while let Some(&c) = b.get(j) {
                if matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r' | b':') {
                    break;
                }
                j += 1;
            }
            j
        }
    }
}

/// One well-formed JSON value: a slice of the parsed text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    s: &'a str,
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({})", self.s)
    }
}

impl<'a> Value<'a> {
    /// The value's JSON text, exactly as in the input.
    #[inline]
    pub fn raw(&self) -> &'a str {
        self.s
    }

    pub fn type_(&self) -> Type {
        match self.s.as_bytes().first() {
            Some(b'{') => Type::Object,
            Some(b'[') => Type::Array,
            Some(b'"') => Type::String,
            Some(b't' | b'f') => Type::Bool,
            Some(b'n') => Type::Null,
            _ => Type::Number,
        }
    }

    #[inline]
    pub fn is_null(&self) -> bool {
        self.s == "null"
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.s {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// The string's content, unescaped (borrowed unless it contains escapes).
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let raw = self.as_raw_str()?;
        Some(unescape(raw))
    }

    /// [`Value::as_str`] as an owned `String`.
    pub fn as_string(&self) -> Option<String> {
        self.as_str().map(Cow::into_owned)
    }

    /// The string's content between the quotes, escapes left as they are.
    pub fn as_raw_str(&self) -> Option<&'a str> {
        let s = self.s;
        if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
            s.get(1..s.len() - 1)
        } else {
            None
        }
    }

    /// A number as `f64` (`None` for non-numbers and for overflow to infinity).
    pub fn as_f64(&self) -> Option<f64> {
        if self.type_() != Type::Number {
            return None;
        }
        self.s.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// A non-negative integral number as `u64`. `128`, `128.0` and `1.28e2`
    /// all give 128; `1.5`, `-1` and values beyond `u64` give `None`.
    pub fn as_u64(&self) -> Option<u64> {
        if self.type_() != Type::Number {
            return None;
        }
        if let Ok(v) = self.s.parse::<u64>() {
            return Some(v);
        }
        let f = self.as_f64()?;
        // 2^64 is exactly representable; everything below it converts exactly.
        if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            Some(f as u64)
        } else {
            None
        }
    }

    /// An integral number as `i64` (same rules as [`Value::as_u64`]).
    pub fn as_i64(&self) -> Option<i64> {
        if self.type_() != Type::Number {
            return None;
        }
        if let Ok(v) = self.s.parse::<i64>() {
            return Some(v);
        }
        let f = self.as_f64()?;
        if f.fract() == 0.0
            && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
        {
            Some(f as i64)
        } else {
            None
        }
    }

    /// Iterates an array's elements (`None` if not an array).
    pub fn as_array(&self) -> Option<Array<'a>> {
        if self.s.starts_with('[') {
            Some(Array { s: self.s, i: 1 })
        } else {
            None
        }
    }

    /// Iterates an object's `(key, value)` pairs (`None` if not an object).
    pub fn as_object(&self) -> Option<Object<'a>> {
        if self.s.starts_with('{') {
            Some(Object { s: self.s, i: 1 })
        } else {
            None
        }
    }

    /// The first value under `key` in an object (linear scan).
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.as_object()?.find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Lazy iterator over an array's elements.
#[derive(Clone, Debug)]
pub struct Array<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Iterator for Array<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        let b = self.s.as_bytes();
        let mut i = skip_ws(b, self.i);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
        match b.get(i) {
            None | Some(b']' | b'}' | b',' | b':') => {
                self.i = b.len();
                return None;
            }
            Some(_) => {}
        }
        let end = skip_value(b, i);
        self.i = end;
        let v = self.s.get(i..end)?;
        Some(Value { s: v })
    }
}

/// Lazy iterator over an object's `(key, value)` pairs. Keys are unescaped
/// (borrowed unless they contain escapes).
#[derive(Clone, Debug)]
pub struct Object<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Iterator for Object<'a> {
    type Item = (Cow<'a, str>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = self.next_raw()?;
        Some((unescape(k), v))
    }
}

impl<'a> Object<'a> {
    /// Next pair with the key's raw text (between the quotes, escapes as
    /// written). Comparing raw keys against plain ASCII names is exact for
    /// every key without escapes, and allocation-free.
    pub fn next_raw(&mut self) -> Option<(&'a str, Value<'a>)> {
        let b = self.s.as_bytes();
        let mut i = skip_ws(b, self.i);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
        if b.get(i) != Some(&b'"') {
            self.i = b.len();
            return None;
        }
        let kend = skip_string(b, i);
        let mut j = skip_ws(b, kend);
        if b.get(j) != Some(&b':') {
            self.i = b.len();
            return None;
        }
        j = skip_ws(b, j + 1);
        if matches!(b.get(j), None | Some(b']' | b'}' | b',' | b':')) {
            self.i = b.len();
            return None;
        }
        let vend = skip_value(b, j);
        self.i = vend;
        let key = self.s.get(i + 1..kend.saturating_sub(1).max(i + 1))?;
        let v = self.s.get(j..vend)?;
        Some((key, Value { s: v }))
    }
}

/// Decodes the escapes of a JSON string's content (the text between the
/// quotes). Borrows when there is nothing to decode. Never fails: malformed
/// escapes (impossible after validation) and lone surrogates become U+FFFD.
pub fn unescape(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    let first = next_backslash(b, 0);
    if first == b.len() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..first]);
    let mut i = first;
    while i < b.len() {
        let c = b[i];
        if c != b'\\' {
            // Copy the run up to the next backslash (a char boundary: ASCII).
            let run_end = next_backslash(b, i);
            out.push_str(&raw[i..run_end]);
            i = run_end;
            continue;
        }
        let e = b.get(i + 1).copied();
        i += 2;
        match e {
            Some(b'"') => out.push('"'),
            Some(b'\\') => out.push('\\'),
            Some(b'/') => out.push('/'),
            Some(b'b') => out.push('\u{8}'),
            Some(b'f') => out.push('\u{c}'),
            Some(b'n') => out.push('\n'),
            Some(b'r') => out.push('\r'),
            Some(b't') => out.push('\t'),
            Some(b'u') => {
                let Some(hi) = hex4(b, i) else {
                    out.push('\u{FFFD}');
                    continue;
                };
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    // High surrogate: needs a following \uDC00..\uDFFF.
                    match (b.get(i), b.get(i + 1), hex4(b, i + 2)) {
                        (Some(b'\\'), Some(b'u'), Some(lo)) if (0xDC00..0xE000).contains(&lo) => {
                            i += 6;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        }
                        _ => 0xFFFD,
                    }
                } else {
                    hi
                };
                out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
            }
            _ => {
                out.push('\u{FFFD}');
                // Resynchronise on a char boundary.
                while i < b.len() && !raw.is_char_boundary(i) {
                    i += 1;
                }
            }
        }
    }
    Cow::Owned(out)
}

/// Index of the first `\\` at or after `i` (or `b.len()`), a word at a
/// time: [`scan_plain`] also stops at `"` and control characters, which
/// string content only holds when the caller skipped validation.
fn next_backslash(b: &[u8], mut i: usize) -> usize {
    loop {
        i = scan_plain(b, i);
        match b.get(i) {
            Some(b'\\') | None => return i,
            Some(_) => i += 1,
        }
    }
}

#[inline]
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let h = b.get(i..i + 4)?;
    let mut v = 0u32;
    for &c in h {
        let d = (c as char).to_digit(16)?;
        v = v * 16 + d;
    }
    Some(v)
}

// ---------------------------------------------------------------------------
// Writing.

/// Something JSON text can be appended to: `String` or `Vec<u8>`.
pub trait Sink {
    fn put(&mut self, s: &str);
}

impl Sink for String {
    #[inline]
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// Appends `s` escaped for use inside a JSON string (no quotes added):
/// `"` `\` and control characters are escaped (`\n`, `\r`, `\t`, `\b`, `\f`,
/// others as `\u00XX`); everything else, including non-ASCII, is copied.
pub fn write_escaped<S: Sink + ?Sized>(out: &mut S, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        i = scan_plain(b, i);
        let Some(&c) = b.get(i) else { break };
        out.put(&s[run..i]);
        let mut u = [b'\\', b'u', b'0', b'0', 0, 0];
        let esc: &str = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => {
                u[4] = HEX[(c >> 4) as usize];
                u[5] = HEX[(c & 15) as usize];
                std::str::from_utf8(&u).unwrap_or("")
            }
        };
        out.put(esc);
        i += 1;
        run = i;
    }
    out.put(&s[run..]);
}

/// Appends `s` as a quoted JSON string.
pub fn write_str<S: Sink + ?Sized>(out: &mut S, s: &str) {
    out.put("\"");
    write_escaped(out, s);
    out.put("\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Value<'_> {
        parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn valid_documents() {
        for s in [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-1.5",
            "1e10",
            "1E+2",
            "1.0e-3",
            "\"\"",
            "\"a\\\"b\"",
            "\"\\u00e9\\uD83D\\uDE00\"",
            "[]",
            "{}",
            " [ 1 , 2 ] ",
            "{\"a\":{\"b\":[null]}}",
            "\"\u{e9}\u{1F600}\"",
            "[[[]]]",
            "\"\\/\\b\\f\\n\\r\\t\\\\\"",
        ] {
            let v = ok(s);
            assert_eq!(v.raw(), s.trim());
        }
    }

    #[test]
    fn invalid_documents() {
        for s in [
            "",
            " ",
            "[",
            "]",
            "{",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1e+",
            "tru",
            "nul",
            "True",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"a\nb\"",
            "\"\t\"",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "1 2",
            "[]]",
            "NaN",
            "Infinity",
            "[1,2",
            "\u{feff}[]",
            "'a'",
            "{\"a\" 1}",
            "{,}",
            "[\"\\\"]",
        ] {
            assert!(parse(s).is_err(), "accepted {s:?}");
        }
    }

    #[test]
    fn depth_limit() {
        let ok_doc = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok_doc).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep).unwrap_err().msg, "nesting too deep");
        // Very deep garbage must not overflow the stack.
        let huge = "[{\"a\":".repeat(100_000);
        assert!(parse(&huge).is_err());
    }

    #[test]
    fn bytes_must_be_utf8() {
        assert!(parse_bytes(b"\"\xff\"").is_err());
        assert_eq!(parse_bytes(b"[1]").unwrap().raw(), "[1]");
    }

    #[test]
    fn array_iteration() {
        let v = ok(" [ 1 ,\"a,]\" , [2,[3]] ,{\"k\":\"}\"}, null,true ] ");
        let items: Vec<&str> = v.as_array().unwrap().map(|v| v.raw()).collect();
        assert_eq!(
            items,
            ["1", "\"a,]\"", "[2,[3]]", "{\"k\":\"}\"}", "null", "true"]
        );
        assert_eq!(ok("[]").as_array().unwrap().count(), 0);
        assert_eq!(ok("[ ]").as_array().unwrap().count(), 0);
        assert!(ok("{}").as_array().is_none());
    }

    #[test]
    fn object_iteration_and_get() {
        let v = ok(r#"{"a":1, "b" : "x\"y", "c\u0041":[1,{"d":2}], "e":{}, "a":2}"#);
        let pairs: Vec<(String, &str)> = v
            .as_object()
            .unwrap()
            .map(|(k, v)| (k.into_owned(), v.raw()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a".to_string(), "1"),
                ("b".to_string(), "\"x\\\"y\""),
                ("cA".to_string(), "[1,{\"d\":2}]"),
                ("e".to_string(), "{}"),
                ("a".to_string(), "2")
            ]
        );
        assert_eq!(v.get("a").unwrap().as_u64(), Some(1));
        assert_eq!(v.get("cA").unwrap().raw(), "[1,{\"d\":2}]");
        assert_eq!(v.get("b").unwrap().as_str().unwrap(), "x\"y");
        assert!(v.get("zz").is_none());
        assert!(ok("[1]").get("a").is_none());
        assert_eq!(ok("{ }").as_object().unwrap().count(), 0);
        let mut o = v.as_object().unwrap();
        o.next();
        o.next();
        assert_eq!(o.next_raw().unwrap().0, "c\\u0041");
    }

    #[test]
    fn typed_getters() {
        assert_eq!(ok("\"plain\"").as_str(), Some(Cow::Borrowed("plain")));
        assert!(matches!(ok("\"plain\"").as_str(), Some(Cow::Borrowed(_))));
        assert!(matches!(ok("\"a\\nb\"").as_str(), Some(Cow::Owned(_))));
        assert_eq!(ok("\"a\\nb\"").as_str().unwrap(), "a\nb");
        assert_eq!(ok("1").as_str(), None);
        assert_eq!(ok("2599.4").as_f64(), Some(2599.4));
        assert_eq!(ok("-1e3").as_f64(), Some(-1000.0));
        assert_eq!(ok("1e400").as_f64(), None);
        assert_eq!(ok("\"1\"").as_f64(), None);
        assert_eq!(ok("128").as_u64(), Some(128));
        assert_eq!(ok("128.0").as_u64(), Some(128));
        assert_eq!(ok("1.28e2").as_u64(), Some(128));
        assert_eq!(ok("1.5").as_u64(), None);
        assert_eq!(ok("-1").as_u64(), None);
        assert_eq!(ok("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(ok("18446744073709551616").as_u64(), None);
        assert_eq!(ok("-1").as_i64(), Some(-1));
        assert_eq!(ok("-9223372036854775808").as_i64(), Some(i64::MIN));
        assert_eq!(ok("1e300").as_i64(), None);
        assert_eq!(ok("true").as_bool(), Some(true));
        assert_eq!(ok("false").as_bool(), Some(false));
        assert_eq!(ok("null").as_bool(), None);
        assert!(ok("null").is_null());
        assert!(!ok("0").is_null());
        assert_eq!(ok("null").type_(), Type::Null);
        assert_eq!(ok("[]").type_(), Type::Array);
        assert_eq!(ok("{}").type_(), Type::Object);
        assert_eq!(ok("-2").type_(), Type::Number);
        assert_eq!(ok("\"\"").type_(), Type::String);
        assert_eq!(ok("false").type_(), Type::Bool);
        assert_eq!(ok("\"\"").as_str().unwrap(), "");
    }

    #[test]
    fn for_each_field_visits_members() {
        let mut seen = Vec::new();
        assert!(for_each_field(
            br#"{"a":"x","b\u0031":2,"c":[1]}"#,
            |k, v| seen.push((k.to_string(), v.raw()))
        ));
        assert_eq!(
            seen,
            [
                ("a".into(), "\"x\""),
                ("b1".into(), "2"),
                ("c".to_string(), "[1]")
            ]
        );
        assert!(!for_each_field(b"[1]", |_, _| panic!()));
        assert!(!for_each_field(b"{", |_, _| panic!()));
        assert!(!for_each_field(b"{\"a\":\xff}", |_, _| panic!()));
        assert_eq!(ok("\"s\"").as_string(), Some("s".to_string()));
    }

    #[test]
    fn reader_walks_in_one_pass() {
        let text = r#" {"a": {"b": [1, "x", {"c": null}]}, "s": "p\u0041", "n": 2.5, "e\u0041": [], "skip": {"deep": [[[]]]}} "#;
        let mut r = Reader::new(text);
        let (mut keys, mut nums, mut s, mut n) = (Vec::new(), Vec::new(), None, None);
        let is_obj = r
            .object(|k, r| {
                keys.push(k.to_string());
                match k {
                    "a" => {
                        r.object(|_, r| {
                            r.array(|r| {
                                nums.push(r.value()?.raw().to_string());
                                Ok(())
                            })
                            .map(drop)
                        })?;
                    }
                    "s" => s = r.string()?,
                    "n" => n = r.value()?.as_f64(),
                    _ => {}
                }
                Ok(())
            })
            .unwrap();
        assert!(is_obj);
        r.finish().unwrap();
        assert_eq!(keys, ["a", "s", "n", "eA", "skip"]);
        assert_eq!(nums, ["1", "\"x\"", "{\"c\": null}"]);
        assert_eq!(s.as_deref(), Some("pA"));
        assert_eq!(n, Some(2.5));
    }

    #[test]
    fn reader_type_mismatch_skips() {
        let mut r = Reader::new(r#"[{"a":1}, [2], "s", 3, {"b":[]}]"#);
        let mut out = Vec::new();
        r.array(|r| {
            let t = r.peek();
            let was_obj = r.object(|_, _| Ok(()))?;
            out.push((t, was_obj, r.pos()));
            Ok(())
        })
        .unwrap();
        r.finish().unwrap();
        assert_eq!(
            out.iter().map(|o| o.1).collect::<Vec<_>>(),
            [true, false, false, false, true]
        );
        assert_eq!(out[0].0, Some(Type::Object));
        assert_eq!(out[2].0, Some(Type::String));
        let mut r = Reader::new("5");
        assert_eq!(r.string().unwrap(), None);
        assert!(r.finish().is_ok());
        let mut r = Reader::new("{}");
        assert!(!r.array(|_| panic!()).unwrap());
    }

    #[test]
    fn reader_reports_errors_anywhere() {
        for s in [
            "[1,]",
            "{\"a\":}",
            "[{\"a\":1}",
            "{\"a\":1 \"b\"}",
            "[\"\\x\"]",
            "{\"a\":[1 2]}",
            "[tru]",
            "{1:2}",
        ] {
            let mut r = Reader::new(s);
            let res = r
                .array(|r| r.object(|_, r| r.value().map(drop)).map(drop))
                .and_then(|_| r.finish());
            assert!(res.is_err(), "{s}");
            let mut r = Reader::new(s);
            let res = r
                .object(|_, r| r.array(|r| r.string().map(drop)).map(drop))
                .and_then(|_| r.finish());
            assert!(res.is_err(), "{s}");
        }
        // A callback that reads two values makes an error, not a panic.
        let mut r = Reader::new(r#"{"a":1,"b":2}"#);
        assert!(r
            .object(|_, r| {
                r.skip()?;
                r.skip()
            })
            .is_err());
        // Depth is limited through the callbacks too.
        fn nest(r: &mut Reader<'_>) -> Result<(), Error> {
            r.array(nest).map(drop)
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(
            nest(&mut Reader::new(&deep)).unwrap_err().msg,
            "nesting too deep"
        );
        let ok_doc = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(nest(&mut Reader::new(&ok_doc)).is_ok());
        let mut r = Reader::new(&ok_doc);
        r.array(|r| r.skip()).unwrap();
        let mut r = Reader::new(&deep);
        assert!(r.array(|r| r.skip()).is_err());
    }

    #[test]
    fn unescaping() {
        assert_eq!(unescape(r#"\"\\\/\b\f\n\r\t"#), "\"\\/\u{8}\u{c}\n\r\t");
        assert_eq!(unescape(r"\u00e9\u20AC"), "é€");
        assert_eq!(unescape(r"x\uD83D\uDE00y"), "x😀y");
        assert_eq!(unescape(r"\uD83D"), "\u{FFFD}");
        assert_eq!(unescape(r"\uD83Dx"), "\u{FFFD}x");
        assert_eq!(unescape(r"\uDE00\uD83D"), "\u{FFFD}\u{FFFD}");
        assert_eq!(unescape(r"\uD83D\u0041"), "\u{FFFD}A");
        assert_eq!(unescape(r"héllo\n wörld"), "héllo\n wörld");
        assert_eq!(unescape(r"\u0000"), "\0");
        // Malformed input (not produced by `parse`) must not panic.
        for s in [
            r"\",
            r"\u",
            r"\u12",
            r"\q",
            "\\\u{e9}",
            r"\uD83D\u",
            r"\uD83D\uZZZZ",
        ] {
            let _ = unescape(s);
        }
    }

    #[test]
    fn navigation_never_panics_on_unvalidated_slices() {
        // Values are only built by `parse`, but the internals must be robust anyway.
        for s in [
            "[",
            "{",
            "[\"",
            "{\"a",
            "{\"a\":",
            "[1,",
            "{\"a\" 1}",
            "[}",
            "{]",
            "\"",
            "]]]",
            "[,,,]",
        ] {
            let v = Value { s };
            let _ = v.as_array().map(|a| a.count());
            let _ = v.as_object().map(|o| o.count());
            let _ = (v.as_str(), v.as_f64(), v.as_u64(), v.get("a"));
        }
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\re\tf\u{8}\u{c}\u{1}\u{1f}é😀/\u{7f}");
        assert_eq!(
            s,
            r#""a\"b\\c\nd\re\tf\b\f\u0001\u001fé😀/"#.to_string() + "\u{7f}\""
        );
        let mut v: Vec<u8> = Vec::new();
        write_escaped(&mut v, "plain text that is long enough for the word loop");
        assert_eq!(v, b"plain text that is long enough for the word loop");
        // Round trip through the parser for every single char class.
        let mut all = String::new();
        for c in (0u32..0x300)
            .chain([0x2028, 0xFFFF, 0x1F600])
            .filter_map(char::from_u32)
        {
            all.push(c);
        }
        let mut out = String::new();
        write_str(&mut out, &all);
        assert_eq!(ok(&out).as_str().unwrap(), all);
    }

    /// Cheap stand-in for the fuzzer in plain `cargo test`: mutated and
    /// truncated documents never panic, and `parse` and `Reader` agree.
    #[test]
    fn mutated_documents_parse_and_reader_agree() {
        fn count(r: &mut Reader<'_>) -> Result<usize, Error> {
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
        fn walk(v: Value<'_>) -> usize {
            let _ = (v.as_str(), v.as_f64(), v.as_u64(), v.as_i64(), v.as_bool());
            1 + v.as_array().map_or(0, |a| a.map(walk).sum::<usize>())
                + v.as_object()
                    .map_or(0, |o| o.map(|(_, v)| walk(v)).sum::<usize>())
        }
        let base = br#"[{"a":[1,-2.5e3,true,false,null],"b\u00e9":"x\"y\\z\ud83d\ude00","c":{"d":{}},"e":[]}, "s", 0]"#;
        let alphabet = b"{}[]\",:\\u0e-+.tfnl \t\n0123456789aE";
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut doc = base.to_vec();
            for _ in 0..(rnd() % 4 + 1) {
                if doc.is_empty() {
                    break;
                }
                let at = (rnd() % doc.len() as u64) as usize;
                match rnd() % 3 {
                    0 => doc[at] = alphabet[(rnd() % alphabet.len() as u64) as usize],
                    1 => {
                        doc.remove(at);
                    }
                    _ => doc.truncate(at.max(1)),
                }
            }
            let text = String::from_utf8_lossy(&doc);
            let parsed = parse(&text);
            let mut r = Reader::new(&text);
            let pulled = count(&mut r).and_then(|n| r.finish().map(|_| n));
            match parsed {
                Ok(v) => assert_eq!(pulled, Ok(walk(v)), "{text}"),
                Err(_) => assert!(pulled.is_err(), "{text}"),
            }
        }
    }

    #[test]
    fn scan_plain_finds_specials_at_every_offset() {
        for len in 0..20 {
            for pos in 0..=len {
                for special in [b'"', b'\\', 0u8, 0x1f] {
                    let mut b = vec![b'a'; len];
                    if pos < len {
                        b[pos] = special;
                    }
                    assert_eq!(scan_plain(&b, 0), pos);
                }
            }
        }
        // Bytes >= 0x80 and 0x20..0x7f other than the specials are plain.
        let b: Vec<u8> = (0x20u8..=0xff)
            .filter(|&c| c != b'"' && c != b'\\')
            .collect();
        assert_eq!(scan_plain(&b, 0), b.len());
    }

    /// The word-at-a-time scan against a byte loop, on random bytes dense in
    /// specials and in bytes next to them (0x1f/0x20, 0x21/0x23, 0x5b/0x5d,
    /// 0x7f/0x80, 0xff), from every start offset.
    #[test]
    fn scan_plain_matches_a_byte_loop() {
        let naive = |b: &[u8], i: usize| {
            (i..b.len())
                .find(|&j| b[j] == b'"' || b[j] == b'\\' || b[j] < 0x20)
                .unwrap_or(b.len())
        };
        let pool = [
            b'"', b'\\', 0, 0x1f, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff, b'a',
            b'a', b'a', b'a', b'a', b'a',
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let b: Vec<u8> = (0..len)
                .map(|k| pool[((x >> (k % 50)) as usize + k * 7) % pool.len()])
                .collect();
            for i in 0..=len {
                assert_eq!(scan_plain(&b, i), naive(&b, i), "{b:?} from {i}");
            }
        }
    }

    #[test]
    fn reader_since_and_whitespace() {
        let mut r = Reader::new(" \t\r\n{ \"a\" :\n[ 1 , {\"b\":\"c\"} ] }\n ");
        assert_eq!(r.peek(), Some(Type::Object));
        let start = r.pos();
        let mut inner = "";
        r.object(|k, r| {
            assert_eq!(k, "a");
            let s = r.pos();
            r.skip()?;
            inner = r.since(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(inner, "[ 1 , {\"b\":\"c\"} ]");
        assert_eq!(r.since(start), "{ \"a\" :\n[ 1 , {\"b\":\"c\"} ] }");
        r.finish().unwrap();
    }

    #[test]
    fn unescape_runs_between_escapes() {
        for (raw, want) in [
            ("", ""),
            ("plain text, no escapes", "plain text, no escapes"),
            ("\\n", "\n"),
            ("a\\tb\\tc\\n", "a\tb\tc\n"),
            (
                "0123456789abcdef\\\"q\\\"0123456789",
                "0123456789abcdef\"q\"0123456789",
            ),
            (
                "caf\u{e9} \\u00e9\\ud83d\\ude00 \u{1F600}",
                "caf\u{e9} \u{e9}\u{1F600} \u{1F600}",
            ),
            ("lone \\ud83d x", "lone \u{FFFD} x"),
        ] {
            assert_eq!(unescape(raw), want, "{raw:?}");
        }
    }
}
