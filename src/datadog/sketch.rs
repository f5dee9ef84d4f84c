//! Agent-compatible DDSketch (the Datadog agent's `pkg/quantile` sketch).
//!
//! The intake computes quantiles from the `(k, n)` bins we send, so the key
//! mapping must be bit-for-bit the agent's:
//!
//! * relative accuracy `eps = 1/128`, `gamma = 1 + 2·eps`, `ln γ = ln_1p(2·eps)`;
//! * smallest tracked magnitude `1e-9`: `emin = floor(ln(1e-9)/ln γ) = -1337`,
//!   `bias = 1 - emin = 1338`, `norm_min = γ^emin` (the value with key 1);
//! * `key(v) = round_half_even(ln(v)/ln γ) + bias` for `v >= norm_min`,
//!   clamped to `[1, 32766]` (32767 is the agent's "+Inf" key);
//!   `key(-v) = -key(v)`; `|v| < norm_min` (and 0) has key 0;
//! * at most 4096 bins: when exceeded, the lowest keys are folded into the
//!   lowest bin that is kept (the agent's `trimLeft`);
//! * a wire bin holds at most `u16::MAX` (the agent's bin width); larger
//!   counts are emitted as several bins with the same key ([`Sketch::bins`]).
//!
//! Trade-offs: bins are a sorted `Vec<(key, count)>` with `u32` counts (the
//! enhanced metrics put one to a handful of keys in a sketch, so a binary
//! search beats any dense store and costs no allocation beyond the first
//! bin). Non-finite values (NaN, ±Inf) are ignored rather than poisoning
//! `sum`/`avg`. [`Sketch::quantile`] is for tests and local use only (the
//! intake never sees it): it returns the bin's centre `γ^(k-bias)` clamped to
//! `[min, max]`, whose relative error is at most `√γ - 1 ≈ 0.78 %`.

/// Relative accuracy of the agent's sketch.
pub const EPS: f64 = 1.0 / 128.0;
/// `1 + 2·EPS`.
pub const GAMMA: f64 = 1.0 + 2.0 * EPS;
/// At most this many distinct keys are kept.
pub const BIN_LIMIT: usize = 4096;
/// Exponent bias: `1 - floor(ln(1e-9) / ln γ)` (checked in the tests).
pub const NORM_BIAS: i32 = 1338;
/// Largest finite key (the agent reserves `i16::MAX` for +Inf).
pub const MAX_KEY: i32 = i16::MAX as i32 - 1;
/// The widest bin the agent puts on the wire.
pub const MAX_BIN_WIDTH: u32 = u16::MAX as u32;

/// `ln_1p(2·EPS)` (checked in the tests).
const LN_GAMMA: f64 = 0.015504186535965254;
/// `γ^(1 - bias)`: the smallest magnitude with a non-zero key (checked in the tests).
pub const NORM_MIN: f64 = 9.941854089121455e-10;

#[inline]
fn ln_gamma() -> f64 {
    LN_GAMMA
}

/// `γ^(k - bias)`: the value whose key is `k` (for `k >= 1`).
fn key_value(k: i32) -> f64 {
    match k {
        0 => 0.0,
        k if k < 0 => -key_value(-k),
        k => ((k - NORM_BIAS) as f64 * ln_gamma()).exp(),
    }
}

/// The agent's key for a finite value.
pub fn key(v: f64) -> i16 {
    if v < 0.0 {
        return -key(-v);
    }
    if v.is_nan() || v < NORM_MIN {
        return 0; // 0, tiny, or NaN
    }
    let i = (v.ln() / ln_gamma()).round_ties_even() as i64 + NORM_BIAS as i64;
    i.clamp(1, MAX_KEY as i64 + 1) as i16 // > MAX_KEY is the agent's +Inf key
}

/// A distribution of values: summary statistics plus the agent's bins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sketch {
    /// Sorted by key, keys unique.
    bins: Vec<(i16, u32)>,
    cnt: u64,
    min: f64,
    max: f64,
    sum: f64,
    avg: f64,
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sketch holding one value (the common case for enhanced metrics).
    pub fn of(v: f64) -> Self {
        let mut s = Self::new();
        s.insert(v);
        s
    }

    /// Adds one value. NaN and ±Inf are ignored.
    pub fn insert(&mut self, v: f64) {
        self.insert_n(v, 1);
    }

    /// Adds `n` copies of `v`. NaN and ±Inf are ignored.
    pub fn insert_n(&mut self, v: f64, n: u32) {
        if !v.is_finite() || n == 0 {
            return;
        }
        self.add_summary(n as u64, v, v, v * n as f64, v);
        self.add_bin(key(v), n);
        self.trim();
    }

    /// Adds every value of `o` into `self`.
    pub fn merge(&mut self, o: &Sketch) {
        if o.cnt == 0 {
            return;
        }
        self.add_summary(o.cnt, o.min, o.max, o.sum, o.avg);
        for &(k, n) in &o.bins {
            self.add_bin(k, n);
        }
        self.trim();
    }

    fn add_summary(&mut self, cnt: u64, min: f64, max: f64, sum: f64, avg: f64) {
        if self.cnt == 0 {
            (self.min, self.max, self.sum, self.avg) = (min, max, sum, avg);
        } else {
            self.min = self.min.min(min);
            self.max = self.max.max(max);
            self.sum += sum;
            // The agent's incremental mean (less rounding than sum / cnt).
            self.avg += (avg - self.avg) * cnt as f64 / (self.cnt + cnt) as f64;
        }
        self.cnt += cnt;
    }

    fn add_bin(&mut self, k: i16, n: u32) {
        match self.bins.binary_search_by_key(&k, |b| b.0) {
            Ok(i) => self.bins[i].1 = self.bins[i].1.saturating_add(n),
            Err(i) => self.bins.insert(i, (k, n)),
        }
    }

    /// Folds the lowest keys into the lowest kept bin (agent's `trimLeft`).
    fn trim(&mut self) {
        if self.bins.len() <= BIN_LIMIT {
            return;
        }
        let cut = self.bins.len() - BIN_LIMIT;
        let folded: u32 = self.bins[..cut].iter().map(|b| b.1).sum();
        self.bins[cut].1 = self.bins[cut].1.saturating_add(folded);
        self.bins.drain(..cut);
    }

    pub fn is_empty(&self) -> bool {
        self.cnt == 0
    }
    pub fn count(&self) -> u64 {
        self.cnt
    }
    /// Smallest value inserted (0 when empty).
    pub fn min(&self) -> f64 {
        self.min
    }
    /// Largest value inserted (0 when empty).
    pub fn max(&self) -> f64 {
        self.max
    }
    pub fn sum(&self) -> f64 {
        self.sum
    }
    /// Mean of the values inserted (0 when empty).
    pub fn avg(&self) -> f64 {
        self.avg
    }

    /// Number of distinct keys held (at most [`BIN_LIMIT`]).
    pub fn key_count(&self) -> usize {
        self.bins.len()
    }

    /// The wire bins `(k, n)` in key order, as the agent emits them: a count
    /// above `u16::MAX` is split into several bins with the same key.
    pub fn bins(&self) -> impl Iterator<Item = (i32, u32)> + '_ {
        self.bins.iter().flat_map(|&(k, n)| {
            let full = n / MAX_BIN_WIDTH;
            let rest = n % MAX_BIN_WIDTH;
            let first = (rest != 0).then_some((k as i32, rest));
            first
                .into_iter()
                .chain((0..full).map(move |_| (k as i32, MAX_BIN_WIDTH)))
        })
    }

    /// Estimate of the `q`-quantile (`0 <= q <= 1`); `q <= 0` is `min`,
    /// `q >= 1` is `max`, an empty sketch gives 0. Relative error ≤ 0.78 %
    /// for values of magnitude ≥ [`NORM_MIN`].
    pub fn quantile(&self, q: f64) -> f64 {
        if self.cnt == 0 {
            return 0.0;
        }
        if q <= 0.0 {
            return self.min;
        }
        if q >= 1.0 {
            return self.max;
        }
        let rank = (q * (self.cnt - 1) as f64).round_ties_even();
        let mut seen = 0.0;
        for &(k, n) in &self.bins {
            seen += n as f64;
            if seen > rank {
                return key_value(k as i32).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_agent_formulas() {
        let emin = (1e-9f64.ln() / ln_gamma()).floor() as i32;
        assert_eq!(emin, -1337);
        assert_eq!(NORM_BIAS, 1 - emin);
        assert_eq!(LN_GAMMA, (2.0 * EPS).ln_1p());
        assert_eq!(NORM_MIN, key_value(1));
        let min = key_value(1);
        assert!(min <= 1e-9 && min * GAMMA > 1e-9);
        assert_eq!(key(NORM_MIN), 1);
    }

    #[test]
    fn keys_like_the_agent() {
        assert_eq!(key(0.0), 0);
        assert_eq!(key(1e-12), 0);
        assert_eq!(key(-1e-12), 0);
        assert_eq!(key(1.0), NORM_BIAS as i16);
        assert_eq!(key(-1.0), -(NORM_BIAS as i16));
        assert_eq!(key(GAMMA), NORM_BIAS as i16 + 1);
        // round half even: key(f64(k)) == k across the range.
        for k in [1, 2, 100, 1337, 1338, 1339, 2000, 5000, 20000] {
            assert_eq!(key(key_value(k)) as i32, k, "k={k}");
        }
        assert_eq!(key(f64::MAX), i16::MAX); // +Inf key, as the agent
                                             // 1 ms, 1 s, 128 MB: values the enhanced metrics actually send.
        assert_eq!(
            key(0.001),
            (0.001f64.ln() / ln_gamma()).round() as i16 + 1338
        );
        assert_eq!(key(128.0), 1338 + 313);
    }

    #[test]
    fn summary_stats() {
        let mut s = Sketch::new();
        for v in [3.0, 1.0, 2.0, 10.0] {
            s.insert(v);
        }
        s.insert(f64::NAN);
        s.insert(f64::INFINITY);
        assert_eq!(s.count(), 4);
        assert_eq!((s.min(), s.max(), s.sum(), s.avg()), (1.0, 10.0, 16.0, 4.0));
        assert_eq!(s.bins().map(|b| b.1).sum::<u32>(), 4);
        assert_eq!(Sketch::new().quantile(0.5), 0.0);
    }

    #[test]
    fn zero_and_negative_values() {
        let mut s = Sketch::new();
        for v in [-5.0, 0.0, 0.0, 5.0] {
            s.insert(v);
        }
        let bins: Vec<_> = s.bins().collect();
        assert_eq!(
            bins,
            vec![(-(key(5.0) as i32), 1), (0, 2), (key(5.0) as i32, 1)]
        );
        assert_eq!(s.min(), -5.0);
        assert!((s.quantile(0.01) + 5.0).abs() / 5.0 <= 0.01);
        assert_eq!(s.quantile(0.5), 0.0);
    }

    fn check_quantiles(s: &Sketch, mut values: Vec<f64>) {
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0] {
            let exact = values[(q * (values.len() - 1) as f64).round_ties_even() as usize];
            let est = s.quantile(q);
            assert!(
                (est - exact).abs() <= 0.01 * exact.abs(),
                "q={q} exact={exact} est={est}"
            );
        }
    }

    #[test]
    fn quantiles_within_one_percent() {
        // Deterministic pseudo-random log-uniform values over 6 decades.
        let mut x: u64 = 0x2545F4914F6CDD1D;
        let mut values = Vec::new();
        let mut s = Sketch::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0);
            values.push(v);
            s.insert(v);
        }
        check_quantiles(&s, values);
    }

    #[test]
    fn merge_equals_inserting_everything() {
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for i in 1..=500 {
            let v = i as f64 * 0.37;
            if i % 3 == 0 {
                a.insert(v)
            } else {
                b.insert(v)
            }
            all.insert(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert_eq!(a.bins().collect::<Vec<_>>(), all.bins().collect::<Vec<_>>());
        assert_eq!((a.min(), a.max()), (all.min(), all.max()));
        assert!((a.sum() - all.sum()).abs() < 1e-9);
        assert!((a.avg() - all.avg()).abs() < 1e-9);
        let mut e = Sketch::new();
        e.merge(&all);
        assert_eq!(e, all);
        all.merge(&Sketch::new());
        assert_eq!(e, all);
    }

    #[test]
    fn bin_limit_folds_lowest_keys() {
        let mut s = Sketch::new();
        let n = BIN_LIMIT + 10;
        for k in 0..n {
            s.insert(key_value(100 + k as i32));
        }
        assert_eq!(s.key_count(), BIN_LIMIT);
        let bins: Vec<_> = s.bins().collect();
        assert_eq!(bins[0], (110, 11));
        assert_eq!(bins.iter().map(|b| b.1 as usize).sum::<usize>(), n);
    }

    #[test]
    fn wide_bins_split_at_u16_max() {
        let mut s = Sketch::new();
        s.insert_n(2.0, 70_000);
        s.insert(1.0);
        let k = key(2.0) as i32;
        let bins: Vec<_> = s.bins().collect();
        assert_eq!(bins, vec![(1338, 1), (k, 70_000 - 65_535), (k, 65_535)]);
        assert_eq!(s.sum(), 140_001.0);
    }
}
