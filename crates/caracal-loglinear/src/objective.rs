//! The Poisson objective and the goodness-of-fit sums.
//!
//! The objective every algorithm reports is `ℓ(θ) − ℓ_sat`, the Poisson
//! negative log-likelihood `1ᵀμ − yᵀlog μ` minus its value at `μ = y`; it is
//! `G²/2` and non-negative, so its trace is comparable across algorithms.

use rayon::prelude::*;

const PAR_MIN: usize = 1 << 15;

fn dev_term(y: f64, m: f64) -> f64 {
    if y > 0.0 {
        y * (y / m).ln() - (y - m)
    } else {
        m
    }
}

/// `G²/2 = Σ [y log(y/μ) − (y − μ)]`.
pub fn half_deviance(y: &[f64], mu: &[f64]) -> f64 {
    if y.len() < PAR_MIN {
        y.iter().zip(mu).map(|(&y, &m)| dev_term(y, m)).sum()
    } else {
        y.par_chunks(1 << 14)
            .zip(mu.par_chunks(1 << 14))
            .map(|(y, m)| y.iter().zip(m).map(|(&y, &m)| dev_term(y, m)).sum::<f64>())
            .collect::<Vec<_>>()
            .iter()
            .sum()
    }
}

/// Deviance `G² = 2 Σ [y log(y/μ) − (y − μ)]`.
pub fn deviance(y: &[f64], mu: &[f64]) -> f64 {
    2.0 * half_deviance(y, mu)
}

/// Pearson `X² = Σ (y − μ)²/μ` over cells with `μ > 0`.
pub fn pearson(y: &[f64], mu: &[f64]) -> f64 {
    y.iter()
        .zip(mu)
        .filter(|(_, &m)| m > 0.0)
        .map(|(&y, &m)| (y - m) * (y - m) / m)
        .sum()
}

/// Pearson residual `(y − μ)/√μ` (0 where `μ = 0`).
pub fn pearson_residual(y: f64, m: f64) -> f64 {
    if m > 0.0 {
        (y - m) / m.sqrt()
    } else {
        0.0
    }
}

/// Deviance residual `sign(y − μ)·√(2[y log(y/μ) − (y − μ)])` (0 where `μ = 0`).
pub fn deviance_residual(y: f64, m: f64) -> f64 {
    if m > 0.0 {
        (y - m).signum() * (2.0 * dev_term(y, m)).max(0.0).sqrt()
    } else {
        0.0
    }
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, n = 9; about 15 digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}
