//! The BSR paper's representation diagnostics (Hong et al., ICML 2025,
//! §4): a reward factors as `r = ‖W_p‖·‖h‖·cos ψ`, and over-optimized BT
//! models show a dispersed hidden-state norm `‖h‖` and a growing,
//! right-skewed `‖h(y_w) − h(y_l)‖`. The effective rank (Roy & Vetterli,
//! "The effective rank", EUSIPCO 2007, eq. 2) of the final hidden states
//! `X` `[N, H]` is `exp(−Σ pᵢ log pᵢ)`, `pᵢ = σᵢ / Σσ` over the singular
//! values of `X`.

use caracal_core::{Error, Result};

/// Distribution summary of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub p05: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
    /// Sample skewness `E[(x − μ)³]/σ³` (0 for fewer than 3 values or σ = 0).
    pub skewness: f64,
}

impl Summary {
    /// Summarize `x` (quantiles by linear interpolation, as numpy's default).
    pub fn of(x: &[f64]) -> Summary {
        if x.is_empty() {
            return Summary::default();
        }
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt();
        let skewness = if x.len() >= 3 && std > 0.0 {
            x.iter().map(|v| ((v - mean) / std).powi(3)).sum::<f64>() / n
        } else {
            0.0
        };
        let mut s = x.to_vec();
        s.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let pos = p * (s.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
        };
        Summary {
            n: x.len(),
            mean,
            std,
            min: s[0],
            p05: q(0.05),
            p50: q(0.5),
            p95: q(0.95),
            max: s[s.len() - 1],
            skewness,
        }
    }
}

/// The diagnostics of one evaluation file.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Diagnostics {
    /// `‖h‖` over every chosen and rejected response.
    pub hidden_norm: Summary,
    /// `‖h(y_w) − h(y_l)‖` per pair.
    pub diff_norm: Summary,
    /// `cos ψ` between `h` and the head `W_p` over every response.
    pub cos: Summary,
    /// `‖W_p‖`.
    pub head_norm: f64,
    /// Effective rank of the final hidden states of all responses.
    pub effective_rank: f64,
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Diagnostics from the pooled hidden states of chosen and rejected
/// responses (`[N][H]` each, pair `i` in row `i`) and the head `w` `[H]`.
pub fn diagnostics(chosen: &[Vec<f32>], rejected: &[Vec<f32>], w: &[f32]) -> Result<Diagnostics> {
    if chosen.len() != rejected.len() || chosen.is_empty() {
        caracal_core::bail!(
            "diagnostics need as many chosen as rejected hidden states (got {} and {})",
            chosen.len(),
            rejected.len()
        );
    }
    let h = w.len();
    if chosen.iter().chain(rejected).any(|r| r.len() != h) {
        caracal_core::bail!("every hidden state must have the head's size {h}");
    }
    let head_norm = norm(w);
    let all: Vec<&Vec<f32>> = chosen.iter().chain(rejected).collect();
    let norms: Vec<f64> = all.iter().map(|r| norm(r)).collect();
    let cos: Vec<f64> = all
        .iter()
        .zip(&norms)
        .map(|(r, &n)| {
            let dot: f64 = r.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum();
            if n > 0.0 && head_norm > 0.0 {
                dot / (n * head_norm)
            } else {
                0.0
            }
        })
        .collect();
    let diff: Vec<f64> = chosen
        .iter()
        .zip(rejected)
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    Ok(Diagnostics {
        hidden_norm: Summary::of(&norms),
        diff_norm: Summary::of(&diff),
        cos: Summary::of(&cos),
        head_norm,
        effective_rank: effective_rank(&all)?,
    })
}

/// `exp(−Σ pᵢ log pᵢ)` with `pᵢ = σᵢ/Σσ`, the singular values of the rows
/// `x` (from the eigenvalues of `XᵀX`).
pub fn effective_rank<R: AsRef<[f32]>>(x: &[R]) -> Result<f64> {
    let h = x.first().map_or(0, |r| r.as_ref().len());
    if h == 0 {
        caracal_core::bail!("the effective rank needs at least one non-empty row");
    }
    let mut g = faer::Mat::<f64>::zeros(h, h);
    for r in x {
        let r = r.as_ref();
        for i in 0..h {
            let ri = r[i] as f64;
            for j in 0..=i {
                g[(i, j)] += ri * r[j] as f64;
            }
        }
    }
    for i in 0..h {
        for j in 0..i {
            g[(j, i)] = g[(i, j)];
        }
    }
    let ev: Vec<f64> = g.self_adjoint_eigenvalues(faer::Side::Lower).map_err(|_| {
        Error::Numeric("the eigenvalues of the hidden-state Gram matrix failed".into())
    })?;
    let sv: Vec<f64> = ev.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let total: f64 = sv.iter().sum();
    if total <= 0.0 {
        return Ok(0.0);
    }
    let ent: f64 = sv
        .iter()
        .map(|&s| s / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    Ok(ent.exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_numpy() {
        // numpy: mean 3, std (ddof 0) √2, percentile(5) 1.2, (50) 3, (95) 4.8.
        let s = Summary::of(&[5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!((s.n, s.min, s.max, s.p50), (5, 1.0, 5.0, 3.0));
        assert!((s.std - 2f64.sqrt()).abs() < 1e-15);
        assert!((s.p05 - 1.2).abs() < 1e-12 && (s.p95 - 4.8).abs() < 1e-12);
        assert_eq!(s.skewness, 0.0);
        // A right tail gives a positive skewness.
        assert!(Summary::of(&[0.0, 0.0, 0.0, 0.0, 10.0]).skewness > 1.0);
    }

    #[test]
    fn effective_rank_of_known_spectra() {
        // Orthogonal rows of equal norm: σ all equal, erank = their number.
        let eye: Vec<Vec<f32>> = (0..3)
            .map(|i| (0..5).map(|j| if i == j { 2.0 } else { 0.0 }).collect())
            .collect();
        assert!((effective_rank(&eye).unwrap() - 3.0).abs() < 1e-9);
        // Rank one: erank 1.
        let r1: Vec<Vec<f32>> = (1..5).map(|k| vec![k as f32, 2.0 * k as f32]).collect();
        assert!((effective_rank(&r1).unwrap() - 1.0).abs() < 1e-6);
        // σ = (3, 1): p = (.75, .25), erank = exp(−.75 ln .75 − .25 ln .25).
        let d = vec![vec![3.0f32, 0.0], vec![0.0, 1.0]];
        let want = (-(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln())).exp();
        assert!((effective_rank(&d).unwrap() - want).abs() < 1e-9);
    }

    #[test]
    fn diagnostics_decompose_the_reward() {
        let c = vec![vec![3.0f32, 4.0], vec![1.0, 0.0]];
        let r = vec![vec![0.0f32, 0.0], vec![1.0, 1.0]];
        let d = diagnostics(&c, &r, &[1.0, 0.0]).unwrap();
        assert_eq!(d.head_norm, 1.0);
        assert!((d.diff_norm.mean - (5.0 + 1.0) / 2.0).abs() < 1e-12);
        assert!((d.hidden_norm.max - 5.0).abs() < 1e-12);
        // cos of (3,4) with (1,0) is 0.6; the zero vector counts as 0.
        assert!((d.cos.max - 1.0).abs() < 1e-12 && d.cos.min == 0.0);
        assert!(diagnostics(&c, &r[..1], &[1.0, 0.0]).is_err());
    }
}
