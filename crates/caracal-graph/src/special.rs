//! Small numeric helpers: the normal distribution (density, CDF, quantile),
//! the bivariate normal CDF, and average ranks.

use std::f64::consts::PI;
use std::sync::OnceLock;

/// The standard normal quantile `Φ⁻¹(q)` for `0 < q < 1` (Acklam's rational
/// approximation, relative error below 1.2e-9).
#[allow(clippy::excessive_precision)]
pub fn qnorm(q: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    if q <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if q >= 1.0 {
        return f64::INFINITY;
    }
    let lo = 0.02425;
    if q < lo {
        let t = (-2.0 * q.ln()).sqrt();
        (((((C[0] * t + C[1]) * t + C[2]) * t + C[3]) * t + C[4]) * t + C[5])
            / ((((D[0] * t + D[1]) * t + D[2]) * t + D[3]) * t + 1.0)
    } else if q <= 1.0 - lo {
        let r = q - 0.5;
        let t = r * r;
        (((((A[0] * t + A[1]) * t + A[2]) * t + A[3]) * t + A[4]) * t + A[5]) * r
            / (((((B[0] * t + B[1]) * t + B[2]) * t + B[3]) * t + B[4]) * t + 1.0)
    } else {
        -qnorm(1.0 - q)
    }
}

/// The standard normal density `φ(x)`.
pub fn dnorm(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// The standard normal CDF `Φ(x)`, by Marsaglia's series
/// `Φ(x) = ½ + φ(x) (x + x³/3 + x⁵/(3·5) + …)` (Marsaglia 2004, J. Stat.
/// Softw. 11(4)); absolute error about 1e-15. Beyond `|x| = 8.3` it returns
/// 0 or 1 (the tail is below 1e-16).
pub fn pnorm(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < -8.3 {
        return 0.0;
    }
    if x > 8.3 {
        return 1.0;
    }
    let (mut sum, mut term, x2) = (x, x, x * x);
    let mut k = 1.0;
    loop {
        k += 2.0;
        term *= x2 / k;
        let next = sum + term;
        if next == sum {
            break;
        }
        sum = next;
    }
    (0.5 + dnorm(x) * sum).clamp(0.0, 1.0)
}

/// The quantile `Φ⁻¹(q)` refined by one Newton step on [`pnorm`], so that it
/// is accurate to about 1e-15 in `q` (where [`qnorm`] alone gives 1e-9).
pub fn qnorm_precise(q: f64) -> f64 {
    let x = qnorm(q);
    if !x.is_finite() {
        return x;
    }
    x - (pnorm(x) - q) / dnorm(x)
}

/// Gauss–Legendre nodes and weights on `[−1, 1]`, computed once by Newton's
/// method on the Legendre polynomial.
fn gauss_legendre() -> &'static [(f64, f64)] {
    const M: usize = 12;
    static RULE: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    RULE.get_or_init(|| {
        (0..M)
            .map(|i| {
                let mut x = (PI * (i as f64 + 0.75) / (M as f64 + 0.5)).cos();
                let mut dp = 1.0;
                for _ in 0..100 {
                    let (mut p0, mut p1) = (1.0, x);
                    for k in 2..=M {
                        let kf = k as f64;
                        let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
                        p0 = p1;
                        p1 = p2;
                    }
                    dp = M as f64 * (x * p1 - p0) / (x * x - 1.0);
                    let dx = p1 / dp;
                    x -= dx;
                    if dx.abs() < 1e-16 {
                        break;
                    }
                }
                (x, 2.0 / ((1.0 - x * x) * dp * dp))
            })
            .collect()
    })
}

/// `∫_a^b f` by adaptive Gauss–Legendre: a panel is accepted when the rule
/// on it and on its two halves agree to `tol`.
fn integrate(f: &dyn Fn(f64) -> f64, a: f64, b: f64, tol: f64) -> f64 {
    fn rule(f: &dyn Fn(f64) -> f64, a: f64, b: f64) -> f64 {
        let (c, h) = (0.5 * (a + b), 0.5 * (b - a));
        h * gauss_legendre()
            .iter()
            .map(|&(x, w)| w * f(c + h * x))
            .sum::<f64>()
    }
    fn go(f: &dyn Fn(f64) -> f64, a: f64, b: f64, whole: f64, tol: f64, depth: u32) -> f64 {
        let m = 0.5 * (a + b);
        let (l, r) = (rule(f, a, m), rule(f, m, b));
        if depth == 0 || (l + r - whole).abs() <= tol {
            l + r
        } else {
            go(f, a, m, l, 0.5 * tol, depth - 1) + go(f, m, b, r, 0.5 * tol, depth - 1)
        }
    }
    go(f, a, b, rule(f, a, b), tol, 30)
}

/// The bivariate standard normal CDF `Φ₂(h, k; r) = P(U ≤ h, V ≤ k)` for
/// correlation `|r| < 1`, from Plackett's identity `∂Φ₂/∂r = φ₂` (Plackett
/// 1954, Biometrika 41) with `r = sin θ`:
/// `Φ₂ = Φ(h)Φ(k) + (1/2π) ∫₀^{asin r} exp(−(h² − 2hk sin θ + k²) / (2 cos² θ)) dθ`,
/// integrated adaptively to an absolute error of about 1e-14.
pub fn bvn_cdf(h: f64, k: f64, r: f64) -> f64 {
    let base = pnorm(h) * pnorm(k);
    if r == 0.0 {
        return base;
    }
    let f = |t: f64| {
        let (s, c) = t.sin_cos();
        (-(h * h - 2.0 * h * k * s + k * k) / (2.0 * c * c)).exp()
    };
    let v = base + integrate(&f, 0.0, r.asin(), 1e-14 * 2.0 * PI) / (2.0 * PI);
    v.clamp(0.0, 1.0)
}

/// The bivariate standard normal density `φ₂(h, k; r)`.
pub fn bvn_pdf(h: f64, k: f64, r: f64) -> f64 {
    let q = 1.0 - r * r;
    (-(h * h - 2.0 * r * h * k + k * k) / (2.0 * q)).exp() / (2.0 * PI * q.sqrt())
}

/// Ranks 1..n with ties given their average rank (R's `rank` default).
pub fn rank_average(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Sample standard deviation (divided by `n − 1`, as R's `sd`).
pub fn sd(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from scipy 1.17 (`scipy.special.ndtr`; `owens_t` for Φ₂ by
    /// Owen's formula, `tools/make_latent_oracle.py::bvn`) and the closed form
    /// `Φ₂(0, 0; r) = ¼ + asin(r)/2π`.
    #[test]
    fn normal_and_bivariate_normal_cdfs() {
        assert!((pnorm(1.0) - 0.8413447460685429).abs() < 1e-15);
        assert!((pnorm(-2.5) - 0.006209665325776132).abs() < 1e-15);
        assert!((pnorm(7.0) - 0.9999999999987201).abs() < 1e-15);
        assert!((qnorm_precise(0.3) + 0.5244005127080409).abs() < 1e-14);
        for r in [-0.99, -0.5, 0.3, 0.9, 0.99] {
            let exact = 0.25 + f64::asin(r) / (2.0 * PI);
            assert!((bvn_cdf(0.0, 0.0, r) - exact).abs() < 1e-14, "r = {r}");
        }
        let cases = [
            (0.3, -1.2, 0.7, 0.1121226478738937),
            (-0.5, 0.0, 0.21213203435596423, 0.18423349828320257),
            (1.1, 0.8, -0.6, 0.6548024668425497),
            (0.2, 0.2, 0.98, 0.5480088788712265),
            (-2.0, 1.0, -0.95, 8.599035671741362e-06),
        ];
        for (h, k, r, want) in cases {
            let got = bvn_cdf(h, k, r);
            assert!(
                (got - want).abs() < 1e-13,
                "Φ₂({h}, {k}; {r}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn quantiles_and_ranks() {
        assert!((qnorm(0.975) - 1.959963984540054).abs() < 1e-8);
        assert!((qnorm(0.001) + 3.090232306167813).abs() < 1e-8);
        assert_eq!(
            rank_average(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }
}
