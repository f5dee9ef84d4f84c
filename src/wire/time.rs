//! RFC 3339 timestamps <-> Unix epoch milliseconds. Pure, no chrono.
//!
//! Parsing accepts what the Telemetry API and ordinary RFC 3339 producers
//! emit: `2022-10-19T13:52:15.636Z`, any number of fraction digits (or none),
//! `Z`/`z` or a `±HH:MM` offset, `T`/`t`/space as the separator, and a leap
//! second `:60` (counted as the next second). Fractions are truncated to
//! milliseconds. Formatting always writes `YYYY-MM-DDTHH:MM:SS.mmmZ`.

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// `n` ASCII digits at `b[i..]` as a number.
#[inline]
fn num(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let d = b.get(i..i + n)?;
    let mut v = 0u32;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Parses an RFC 3339 date-time into Unix epoch milliseconds.
/// Returns `None` for anything malformed or out of range.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let year = num(b, 0, 4)? as i64;
    let month = num(b, 5, 2)?;
    let day = num(b, 8, 2)?;
    let hour = num(b, 11, 2)?;
    let min = num(b, 14, 2)?;
    let sec = num(b, 17, 2)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_of_date(year, month, day)?;
    let mut i = 19;
    let mut ms = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 3 {
                ms = ms * 10 + (c - b'0') as u32;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            ms *= 10;
        }
    }
    let offset_min: i64 = match b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        &sign @ (b'+' | b'-') => {
            let oh = num(b, i + 1, 2)?;
            let om = num(b, i + 4, 2)?;
            if b[i + 3] != b':' || oh > 23 || om > 59 {
                return None;
            }
            i += 6;
            let o = (oh * 60 + om) as i64;
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }
    let secs = days * 86_400 + hour as i64 * 3600 + min as i64 * 60 + sec as i64 - offset_min * 60;
    Some(secs * 1000 + ms as i64)
}

/// Days since 1970-01-01 of a valid date, else `None`. Remembers the last
/// date per thread: a telemetry batch's timestamps nearly all share one day,
/// and the calendar arithmetic costs several divisions (opt-level "z" keeps
/// them as `div` instructions). The memo only ever holds a valid date's
/// exact result, so the function stays pure in effect.
fn days_of_date(year: i64, month: u32, day: u32) -> Option<i64> {
    use std::cell::Cell;
    thread_local! {
        static LAST: Cell<(i64, u32, u32, i64)> = const { Cell::new((1970, 1, 1, 0)) };
    }
    let (y, m, d, days) = LAST.get();
    if (y, m, d) == (year, month, day) {
        return Some(days);
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    LAST.set((year, month, day, days));
    Some(days)
}

/// Smallest and largest instants [`write_rfc3339`] can express (years 0000..=9999).
pub const MIN_MS: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
pub const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/// Appends `ms` (Unix epoch milliseconds) as `YYYY-MM-DDTHH:MM:SS.mmmZ`
/// (always 24 bytes). Values outside years 0000..=9999 are clamped.
pub fn write_rfc3339(out: &mut String, ms: i64) {
    let b = format_rfc3339_bytes(ms);
    out.push_str(std::str::from_utf8(&b).unwrap_or(""));
}

/// `ms` as an RFC 3339 string, see [`write_rfc3339`].
pub fn format_rfc3339(ms: i64) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339(&mut s, ms);
    s
}

/// `ms` as the 24 ASCII bytes of an RFC 3339 timestamp, without allocating.
pub fn format_rfc3339_bytes(ms: i64) -> [u8; 24] {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000) as u32;
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, f) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let mut o = *b"0000-00-00T00:00:00.000Z";
    let y = y as u32;
    let put = |o: &mut [u8; 24], at: usize, v: u32, n: usize| {
        let mut v = v;
        for k in (0..n).rev() {
            o[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut o, 0, y, 4);
    put(&mut o, 5, mo, 2);
    put(&mut o, 8, d, 2);
    put(&mut o, 11, h, 2);
    put(&mut o, 14, mi, 2);
    put(&mut o, 17, s, 2);
    put(&mut o, 20, f, 3);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_telemetry_timestamps() {
        assert_eq!(
            parse_rfc3339("2022-10-19T13:52:15.636Z"),
            Some(1_666_187_535_636)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.001Z"), Some(1));
        assert_eq!(
            parse_rfc3339("2022-10-19T13:52:15Z"),
            Some(1_666_187_535_000)
        );
    }

    #[test]
    fn fractions_of_any_length_truncate_to_ms() {
        let base = 1_666_187_535_000;
        assert_eq!(parse_rfc3339("2022-10-19T13:52:15.6Z"), Some(base + 600));
        assert_eq!(parse_rfc3339("2022-10-19T13:52:15.63Z"), Some(base + 630));
        assert_eq!(parse_rfc3339("2022-10-19T13:52:15.6369Z"), Some(base + 636));
        assert_eq!(
            parse_rfc3339("2022-10-19T13:52:15.636999999999Z"),
            Some(base + 636)
        );
        assert_eq!(parse_rfc3339("2022-10-19T13:52:15.000000001Z"), Some(base));
        assert_eq!(parse_rfc3339("2022-10-19T13:52:15.Z"), None);
    }

    #[test]
    fn offsets() {
        let z = parse_rfc3339("2022-10-19T13:52:15.636Z").unwrap();
        assert_eq!(parse_rfc3339("2022-10-19T15:52:15.636+02:00"), Some(z));
        assert_eq!(parse_rfc3339("2022-10-19T08:22:15.636-05:30"), Some(z));
        assert_eq!(parse_rfc3339("2022-10-19T13:52:15.636+00:00"), Some(z));
        assert_eq!(parse_rfc3339("2022-10-19T13:52:15.636-00:00"), Some(z));
        assert_eq!(parse_rfc3339("2022-10-19t13:52:15.636z"), Some(z));
        assert_eq!(parse_rfc3339("2022-10-19 13:52:15.636Z"), Some(z));
        // Crossing midnight and the epoch.
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+02:00"), Some(-3_600_000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Some(-1));
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2022",
            "2022-10-19",
            "2022-10-19T13:52:15",
            "2022-10-19T13:52:15.636",
            "2022-10-19T13:52:15.636ZZ",
            "2022-10-19T13:52:15.636+02",
            "2022-10-19T13:52:15.636+0200",
            "2022-10-19T13:52:15.636+24:00",
            "2022-10-19T13:52:15.636+02:60",
            "2022-13-19T13:52:15Z",
            "2022-00-19T13:52:15Z",
            "2022-10-00T13:52:15Z",
            "2022-10-32T13:52:15Z",
            "2022-02-29T00:00:00Z",
            "2022-10-19T24:00:00Z",
            "2022-10-19T23:60:00Z",
            "2022-10-19T23:59:61Z",
            "2022/10/19T13:52:15Z",
            "2022-10-19X13:52:15Z",
            "2022-1a-19T13:52:15Z",
            "+022-10-19T13:52:15Z",
            "2022-10-19T13:52:15.63a6Z",
            " 2022-10-19T13:52:15Z",
            "2022-10-19T13:52:15Z ",
            "2022-10-19T13:52:15é",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_rfc3339("1900-02-29T00:00:00Z"), None);
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2017-01-01T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(MIN_MS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Some(MAX_MS));
    }

    /// The per-thread memo of the last date never changes a result: every
    /// day of 1999-2001 (and impossible dates next to them) in an order that
    /// alternates hits, misses and invalid dates, against the plain formula.
    #[test]
    fn date_memo_is_transparent() {
        let mut seen = 0;
        for y in 1999..=2001i64 {
            for m in 0..=13u32 {
                for d in 0..=32u32 {
                    let s = format!("{y:04}-{m:02}-{d:02}T01:02:03.004Z");
                    let valid = (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m);
                    let want = valid.then(|| days_from_civil(y, m, d) * 86_400_000 + 3_723_004);
                    for _ in 0..2 {
                        assert_eq!(parse_rfc3339(&s), want, "{s}");
                        // A different valid date in between, then the same again.
                        assert_eq!(
                            parse_rfc3339("2024-02-29T00:00:00Z"),
                            Some(1_709_164_800_000)
                        );
                    }
                    seen += usize::from(valid);
                }
            }
        }
        assert_eq!(seen, 365 * 2 + 366);
    }

    #[test]
    fn formats() {
        assert_eq!(
            format_rfc3339(1_666_187_535_636),
            "2022-10-19T13:52:15.636Z"
        );
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_rfc3339(1_709_164_800_000),
            "2024-02-29T00:00:00.000Z"
        );
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00.000Z");
        let mut s = String::from("t=");
        write_rfc3339(&mut s, 1);
        assert_eq!(s, "t=1970-01-01T00:00:00.001Z");
    }

    #[test]
    fn round_trip() {
        // Every day across several 400-year cycles, at assorted times of day.
        let mut ms = MIN_MS;
        let step = 86_400_000 * 7 + 3_723_457; // a week plus 1h 2m 3.457s
        while ms <= MAX_MS {
            let s = format_rfc3339(ms);
            assert_eq!(parse_rfc3339(&s), Some(ms), "{s}");
            ms += step;
        }
        for d in -1000..1000i64 {
            let ms = d * 86_400_000 + 86_399_999;
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
    }
}
