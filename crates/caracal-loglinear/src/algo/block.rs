//! Block-wise MM (She & Tang, the block generalization of §3).
//!
//! For a block `B` set `s_B = max_i Σ_{j∈B} |x_ij|`. Jensen with weights
//! `|x_ij|/s_B` bounds `exp(Σ_{j∈B} t_j x_ij)` by a sum that separates over
//! `j`, so every `t_j` of the block is the MM step of [`super::coords`] with
//! `M_j` replaced by `s_B`, all computed from the same `μ`. One block of all
//! features is GIS (Darroch–Ratcliff); the treatment-coded columns of one
//! model term are mutually exclusive indicators (`s_B = 1`), which makes the
//! update exact — classic IPF on that term's margin.

use super::coords::Coords;
use crate::fit::Trace;
use crate::objective::half_deviance;
use crate::options::FitOptions;
use crate::problem::Problem;
use caracal_core::Result;

/// Fit by block-wise MM over `p.blocks`; returns `(θ, μ, trace)`.
pub(crate) fn fit(p: &Problem, opts: &FitOptions) -> Result<(Vec<f64>, Vec<f64>, Trace)> {
    let cd = Coords::new(p);
    let np = p.n_params();
    let mut blocks = p.blocks.clone();
    let mut covered = vec![false; np];
    blocks.iter().flatten().for_each(|&j| covered[j] = true);
    blocks.extend((0..np).filter(|&j| !covered[j]).map(|j| vec![j]));
    let scales: Vec<f64> = blocks.iter().map(|b| p.design.block_scale(b)).collect();
    let mut theta = vec![0.0; np];
    let mut mu = p.mean(&theta);
    let mut ts = Vec::new();
    let trace = Trace::run(half_deviance(&p.y, &mu), opts, |_| {
        let mut dev: f64 = 0.0;
        for (b, &s) in blocks.iter().zip(&scales) {
            ts.clear();
            for &j in b {
                let (pos, neg) = cd.pos_neg(j, &mu);
                dev = dev.max((cd.s[j] - (pos - neg)).abs());
                ts.push(cd.step(j, pos, neg, s, 0.0, theta[j])?);
            }
            for (&j, &t) in b.iter().zip(&ts) {
                cd.apply(j, t, &mut theta, &mut mu);
            }
        }
        Ok((dev, half_deviance(&p.y, &mu)))
    })?;
    Ok((theta, mu, trace))
}
