//! The lasso in covariance form, solved by cyclic coordinate descent with an
//! active set: the inner loop of the graphical lasso and of neighbourhood
//! selection.
//!
//! Friedman, Hastie & Tibshirani (2008), eq. (2.4) and the update below it:
//! minimise `½ βᵀVβ − sᵀβ + ρ‖β‖₁` by
//! `β_k ← soft(s_k − Σ_{l≠k} V_kl β_l, ρ) / V_kk`.
//!
//! "Covariance updates" (Friedman, Hastie & Tibshirani 2010, §2.2): the
//! vector `u = Vβ` is kept current, so visiting a coordinate costs O(1) and
//! only a change of `β_k` by `δ` costs O(p) (`u += δ V[:, k]`). Sweeps go over
//! the whole vector once, then over the nonzero (active) coordinates until
//! they settle, then over everything again to confirm: the glmnet strategy.

/// `sign(x) · max(|x| − t, 0)`.
#[inline]
pub fn soft(x: f64, t: f64) -> f64 {
    if x > t {
        x - t
    } else if x < -t {
        x + t
    } else {
        0.0
    }
}

/// One covariance-form lasso problem over the coordinates `0..p` except
/// `skip` (`V` is a column-major `p × p` buffer; row and column `skip` are
/// ignored).
pub struct CovLasso<'a> {
    /// Column-major `p × p` Gram matrix.
    pub v: &'a [f64],
    /// Dimension of `v`.
    pub p: usize,
    /// The coordinate left out (the response in neighbourhood selection, the
    /// current column in the graphical lasso); `usize::MAX` for none.
    pub skip: usize,
}

impl CovLasso<'_> {
    /// Recompute `u = Vβ` from scratch (`O(p · nnz)`).
    pub fn gram_times(&self, beta: &[f64], u: &mut [f64]) {
        let p = self.p;
        u.iter_mut().for_each(|x| *x = 0.0);
        for (k, &b) in beta.iter().enumerate() {
            if b != 0.0 && k != self.skip {
                let col = &self.v[k * p..(k + 1) * p];
                u.iter_mut().zip(col).for_each(|(x, &c)| *x += b * c);
            }
        }
    }

    /// Visit coordinate `k`: returns |Δβ_k|.
    #[inline]
    fn visit(&self, k: usize, s: &[f64], rho: f64, beta: &mut [f64], u: &mut [f64]) -> f64 {
        let p = self.p;
        let vkk = self.v[k * p + k];
        let old = beta[k];
        let t = s[k] - u[k] + vkk * old;
        let new = soft(t, rho) / vkk;
        if new == old {
            return 0.0;
        }
        let delta = new - old;
        beta[k] = new;
        let col = &self.v[k * p..(k + 1) * p];
        u.iter_mut().zip(col).for_each(|(x, &c)| *x += delta * c);
        delta.abs()
    }

    /// Minimise `½ βᵀVβ − sᵀβ + ρ‖β‖₁` from the warm start `beta`, with `u`
    /// equal to `Vβ` on entry (kept so on exit). Stops when a full sweep
    /// moves no coordinate by `thr` or more; returns the number of sweeps.
    pub fn solve(
        &self,
        s: &[f64],
        rho: f64,
        beta: &mut [f64],
        u: &mut [f64],
        thr: f64,
        max_sweeps: usize,
    ) -> usize {
        let p = self.p;
        let mut active: Vec<usize> = Vec::with_capacity(p);
        let mut sweeps = 0;
        while sweeps < max_sweeps {
            // Full sweep.
            let mut dmax = 0.0f64;
            for k in 0..p {
                if k != self.skip {
                    dmax = dmax.max(self.visit(k, s, rho, beta, u));
                }
            }
            sweeps += 1;
            if dmax < thr {
                break;
            }
            // Active-set sweeps.
            active.clear();
            active.extend((0..p).filter(|&k| k != self.skip && beta[k] != 0.0));
            while sweeps < max_sweeps {
                let mut dmax = 0.0f64;
                for &k in &active {
                    dmax = dmax.max(self.visit(k, s, rho, beta, u));
                }
                sweeps += 1;
                if dmax < thr {
                    break;
                }
            }
        }
        sweeps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kkt_holds_at_the_solution() {
        // V = [[2, .5, 0], [.5, 1, .3], [0, .3, 1.5]], s = [1, -.4, .2].
        let v = [2.0, 0.5, 0.0, 0.5, 1.0, 0.3, 0.0, 0.3, 1.5];
        let s = [1.0, -0.4, 0.2];
        let l = CovLasso {
            v: &v,
            p: 3,
            skip: usize::MAX,
        };
        let (mut b, mut u) = (vec![0.0; 3], vec![0.0; 3]);
        l.solve(&s, 0.1, &mut b, &mut u, 1e-14, 10_000);
        for k in 0..3 {
            let g = s[k] - (0..3).map(|l| v[l * 3 + k] * b[l]).sum::<f64>();
            if b[k] != 0.0 {
                assert!((g - 0.1 * b[k].signum()).abs() < 1e-10);
            } else {
                assert!(g.abs() <= 0.1 + 1e-12);
            }
        }
    }
}
