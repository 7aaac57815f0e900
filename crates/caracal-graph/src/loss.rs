//! Marginal losses `l_j(x; η)`: convex in the natural parameter `η`, not
//! necessarily negative log-likelihoods, chosen per column.
//!
//! | loss | `l(x; η)` | `l'` | curvature bound `L` |
//! |---|---|---|---|
//! | Gaussian | `(x − η)²/2` | `η − x` | 1 |
//! | logistic | `ln(1 + e^η) − xη` | `σ(η) − x` | 1/4 |
//! | Poisson | `e^η − xη` | `e^η − x` | none (local `e^η`) |
//! | Huber | `ρ_δ(x − η)` | `−ψ_δ(x − η)` | 1 |
//!
//! Gaussian and Huber columns are standardized first (mean/sd, and
//! median/MAD for Huber with `δ = 1.345`), so that `η` lives on a unit
//! scale; binary and count columns keep their natural scale (logit, log).

use caracal_core::{bail, Result};

/// A per-column loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Squared error (Gaussian).
    Gaussian,
    /// Bernoulli deviance with the logit link (0/1 data).
    Logistic,
    /// Poisson deviance with the log link (counts).
    Poisson,
    /// Huber's loss with threshold `delta` (heavy tails).
    Huber {
        /// The switch from quadratic to linear, in robust-sd units.
        delta: f64,
    },
}

impl std::str::FromStr for Loss {
    type Err = caracal_core::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gaussian" => Ok(Loss::Gaussian),
            "logistic" => Ok(Loss::Logistic),
            "poisson" => Ok(Loss::Poisson),
            "huber" => Ok(Loss::Huber { delta: 1.345 }),
            _ => bail!("unknown loss `{s}`; expected gaussian, logistic, poisson or huber"),
        }
    }
}

fn sigmoid(e: f64) -> f64 {
    if e >= 0.0 {
        1.0 / (1.0 + (-e).exp())
    } else {
        let z = e.exp();
        z / (1.0 + z)
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn median(x: &[f64]) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

impl Loss {
    /// Short name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Gaussian => "gaussian",
            Loss::Logistic => "logistic",
            Loss::Poisson => "poisson",
            Loss::Huber { .. } => "huber",
        }
    }

    /// `l(x; η)`.
    pub fn value(self, x: f64, eta: f64) -> f64 {
        match self {
            Loss::Gaussian => 0.5 * (x - eta).powi(2),
            Loss::Logistic => {
                let sp = if eta > 0.0 {
                    eta + (-eta).exp().ln_1p()
                } else {
                    eta.exp().ln_1p()
                };
                sp - x * eta
            }
            Loss::Poisson => eta.exp() - x * eta,
            Loss::Huber { delta } => {
                let r = (x - eta).abs();
                if r <= delta {
                    0.5 * r * r
                } else {
                    delta * (r - 0.5 * delta)
                }
            }
        }
    }

    /// `∂l/∂η`.
    pub fn grad(self, x: f64, eta: f64) -> f64 {
        match self {
            Loss::Gaussian => eta - x,
            Loss::Logistic => sigmoid(eta) - x,
            Loss::Poisson => eta.exp() - x,
            Loss::Huber { delta } => (eta - x).clamp(-delta, delta),
        }
    }

    /// A global bound `L ≥ l''`, when one exists (it makes the quadratic
    /// step a majorization, De Leeuw & Lange 2009; Böhning & Lindsay 1988).
    pub fn bound(self) -> Option<f64> {
        match self {
            Loss::Gaussian | Loss::Huber { .. } => Some(1.0),
            Loss::Logistic => Some(0.25),
            Loss::Poisson => None,
        }
    }

    /// Local curvature `l''(η)` (Poisson only needs it).
    pub fn curvature(self, eta: f64) -> f64 {
        match self {
            Loss::Poisson => eta.exp(),
            Loss::Logistic => {
                let s = sigmoid(eta);
                s * (1.0 - s)
            }
            _ => 1.0,
        }
    }

    /// The loss that fits a column: 0/1 → logistic, nonnegative integers →
    /// Poisson, sample excess kurtosis above 1 → Huber, else Gaussian.
    pub fn detect(col: &[f64]) -> Loss {
        if col.iter().all(|&v| v == 0.0 || v == 1.0) {
            return Loss::Logistic;
        }
        if col.iter().all(|&v| v >= 0.0 && v.fract() == 0.0) {
            return Loss::Poisson;
        }
        let m = mean(col);
        let m2 = col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / col.len() as f64;
        let m4 = col.iter().map(|v| (v - m).powi(4)).sum::<f64>() / col.len() as f64;
        if m4 / (m2 * m2) - 3.0 > 1.0 {
            Loss::Huber { delta: 1.345 }
        } else {
            Loss::Gaussian
        }
    }

    /// The column as the loss sees it (standardized for Gaussian/Huber);
    /// errors when the data do not fit the loss (e.g. logistic on 0.5).
    pub fn prepare(self, name: &str, col: &[f64]) -> Result<Vec<f64>> {
        match self {
            Loss::Logistic => {
                if let Some(v) = col.iter().find(|&&v| v != 0.0 && v != 1.0) {
                    bail!("column `{name}` has the value {v}; the logistic loss needs 0/1 data (use --loss auto or gaussian)");
                }
                Ok(col.to_vec())
            }
            Loss::Poisson => {
                if let Some(v) = col.iter().find(|&&v| v < 0.0 || v.fract() != 0.0) {
                    bail!("column `{name}` has the value {v}; the Poisson loss needs nonnegative integer counts");
                }
                Ok(col.to_vec())
            }
            Loss::Gaussian => {
                let m = mean(col);
                let s =
                    (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
                Ok(col.iter().map(|v| (v - m) / s).collect())
            }
            Loss::Huber { .. } => {
                let med = median(col);
                let dev: Vec<f64> = col.iter().map(|v| (v - med).abs()).collect();
                let mut scale = 1.4826 * median(&dev);
                if scale <= 0.0 {
                    let m = mean(col);
                    scale = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / col.len() as f64)
                        .sqrt();
                }
                Ok(col.iter().map(|v| (v - med) / scale).collect())
            }
        }
    }

    /// The best constant `η` for a prepared column (the intercept start).
    pub fn intercept(self, col: &[f64]) -> f64 {
        let m = mean(col);
        match self {
            Loss::Logistic => {
                let q = m.clamp(1e-3, 1.0 - 1e-3);
                (q / (1.0 - q)).ln()
            }
            Loss::Poisson => m.max(1e-3).ln(),
            Loss::Gaussian => m,
            Loss::Huber { .. } => median(col),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_match_finite_differences_and_detection_works() {
        for l in [
            Loss::Gaussian,
            Loss::Logistic,
            Loss::Poisson,
            Loss::Huber { delta: 1.345 },
        ] {
            for (x, e) in [(1.0, 0.3), (0.0, -1.2), (3.0, 2.5)] {
                let h = 1e-6;
                let fd = (l.value(x, e + h) - l.value(x, e - h)) / (2.0 * h);
                assert!((fd - l.grad(x, e)).abs() < 1e-5, "{l:?}");
            }
        }
        assert_eq!(Loss::detect(&[0.0, 1.0, 1.0]), Loss::Logistic);
        assert_eq!(Loss::detect(&[0.0, 3.0, 1.0]), Loss::Poisson);
        assert_eq!(Loss::detect(&[0.5, 3.0, 1.0]), Loss::Gaussian);
    }
}
