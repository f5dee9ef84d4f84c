//! Clock, ids and time formatting shared by the emulator and the fake intake.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static EPOCH: OnceLock<(Instant, f64)> = OnceLock::new();

fn epoch() -> &'static (Instant, f64) {
    EPOCH.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        (Instant::now(), wall)
    })
}

/// Milliseconds on the process-wide monotonic test clock. Every time exposed
/// by this crate (wire events, deliveries, intake requests, freezes, process
/// exec/exit) is on this clock, so they can be compared with each other.
pub fn now_ms() -> f64 {
    epoch().0.elapsed().as_secs_f64() * 1000.0
}

/// Convert a test-clock time to Unix epoch milliseconds.
pub fn to_unix_ms(t: f64) -> f64 {
    epoch().1 + t
}

/// Sleep until the given test-clock time (no-op if it is in the past).
pub fn sleep_until(t: f64) {
    let now = now_ms();
    if t > now {
        std::thread::sleep(Duration::from_secs_f64((t - now) / 1000.0));
    }
}

static SEED: AtomicU64 = AtomicU64::new(0);

/// A pseudo-random u64 (splitmix64 over time, pid and a counter). Not
/// cryptographic; good enough for request ids.
pub fn rand_u64() -> u64 {
    let mut s = SEED.load(Ordering::Relaxed);
    if s == 0 {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        s = t ^ ((std::process::id() as u64) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        let _ = SEED.compare_exchange(0, s, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = SEED
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random (version 4 shaped) UUID string.
pub fn uuid() -> String {
    let a = rand_u64();
    let b = rand_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a as u16) & 0x0fff,
        (((b >> 48) as u16) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// RFC 3339 UTC timestamp with millisecond precision (`2022-10-19T13:52:15.636Z`)
/// for a test-clock time.
pub fn rfc3339(t: f64) -> String {
    rfc3339_unix_ms(to_unix_ms(t).floor() as i64)
}

/// RFC 3339 UTC timestamp for Unix epoch milliseconds.
pub fn rfc3339_unix_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m,
        d,
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        millis
    )
}

/// Round to 3 decimals (what the platform reports for durations).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_unix_ms(1_666_187_535_636),
            "2022-10-19T13:52:15.636Z"
        );
        assert_eq!(rfc3339_unix_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
    }
    #[test]
    fn uuids_look_right() {
        let a = uuid();
        let b = uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
}
