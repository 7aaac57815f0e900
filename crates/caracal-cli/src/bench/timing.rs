//! Median wall time and peak allocated bytes of a closure.

use crate::alloc;
use std::time::Instant;

/// What one measured implementation did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Measured {
    /// Median wall time of one call, in milliseconds.
    pub ms_median: f64,
    /// Every timed call, in milliseconds.
    pub ms_all: Vec<f64>,
    /// Peak heap bytes allocated during one call beyond what was live before it.
    pub peak_bytes: usize,
}

/// Median of a non-empty slice.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Run `f` once to warm up (and to measure peak bytes), then `reps` timed times.
pub fn measure(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Measured> {
    let before = alloc::live();
    alloc::reset_peak();
    f()?;
    let peak_bytes = alloc::peak().saturating_sub(before);
    let mut ms_all = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        ms_all.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Measured {
        ms_median: median(&ms_all),
        ms_all,
        peak_bytes,
    })
}
