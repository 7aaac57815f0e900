//! Coefficients from fitted values: treatment coding (what the coordinate
//! algorithms estimate, as R `glm`) and `loglin(param = TRUE)`'s sum-to-zero effects.

use crate::contingency::{strides, ContingencyTable};
use crate::linalg::{gram, solve_psd};
use crate::margins::MarginPlan;
use crate::problem::Problem;
use crate::spec::HierarchicalModel;
use caracal_core::{ensure, Result};

/// Treatment-coded `θ` with `log μ = o + Xθ`, from fitted means.
///
/// Without structural zeros this is Möbius inversion over the reference
/// cells: `θ_T(l) = Σ_{S⊆T} (−1)^{|T|−|S|} log μ(l on S, reference elsewhere)`
/// (exact, `O(p·2^|T|)`). Otherwise it is the least-squares projection of
/// `log μ − o` on the design over the active cells.
pub fn treatment_from_fitted(p: &Problem, fitted: &[f64], mu: &[f64]) -> Vec<f64> {
    if let Some(info) = &p.table {
        if !p.has_structural_zeros() && p.dropped.is_empty() {
            let t = &info.table;
            let dims = t.dims();
            let st = strides(&dims);
            let mut theta = Vec::with_capacity(p.n_params());
            for term in &info.model.terms {
                let ncol: usize = term.iter().map(|&k| dims[k] - 1).product();
                for c in 0..ncol {
                    let mut lv = Vec::with_capacity(term.len());
                    let mut rem = c;
                    for &k in term {
                        lv.push(rem % (dims[k] - 1) + 1);
                        rem /= dims[k] - 1;
                    }
                    let mut v = 0.0;
                    for mask in 0u64..(1u64 << term.len()) {
                        let cell: usize = (0..term.len())
                            .filter(|b| mask >> b & 1 == 1)
                            .map(|b| lv[b] * st[term[b]])
                            .sum();
                        let sign = if (term.len() - mask.count_ones() as usize) & 1 == 0 {
                            1.0
                        } else {
                            -1.0
                        };
                        v += sign * (fitted[cell] / t.start[cell]).ln();
                    }
                    theta.push(v);
                }
            }
            if theta.len() == p.n_params() && theta.iter().all(|v| v.is_finite()) {
                return theta;
            }
        }
    }
    let csr = p.design.csr();
    let w: Vec<f64> = mu.iter().map(|&m| f64::from(u8::from(m > 0.0))).collect();
    let z: Vec<f64> = (0..mu.len())
        .map(|i| {
            if mu[i] > 0.0 {
                mu[i].ln() - p.offset[i]
            } else {
                0.0
            }
        })
        .collect();
    solve_psd(&gram(&csr, &w, p.n_params()), &p.design.tmatvec(&z)).0
}

/// One term's sum-to-zero effects, as `loglin(param = TRUE)` reports them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Effect {
    /// `(Intercept)` or factor names joined by `.`.
    pub name: String,
    /// Values over the term's margin cells, row-major over its factors.
    pub values: Vec<f64>,
}

/// Sum-to-zero effects by successive mean sweeps of `log(fitted)` over the
/// terms of the model, lowest order first (R `loglin`'s `param = TRUE`).
pub fn loglin_params(
    table: &ContingencyTable,
    model: &HierarchicalModel,
    fitted: &[f64],
) -> Result<Vec<Effect>> {
    ensure!(
        fitted.iter().all(|&m| m > 0.0),
        "sum-to-zero parameters need every fitted value positive; this fit has zero cells (structural zeros or zero margins)"
    );
    let dims = table.dims();
    let n = fitted.len();
    let mut r: Vec<f64> = fitted.iter().map(|m| m.ln()).collect();
    let mut out = Vec::new();
    for term in &model.terms {
        let plan = MarginPlan::new(&dims, term);
        let mut s = vec![0.0; plan.size()];
        plan.sum(&r, &mut s);
        let per = (n / plan.size()) as f64;
        s.iter_mut().for_each(|v| *v /= per);
        for (i, v) in r.iter_mut().enumerate() {
            *v -= s[plan.index_of(i)];
        }
        let name = if term.is_empty() {
            "(Intercept)".to_string()
        } else {
            term.iter()
                .map(|&k| table.factors[k].name.as_str())
                .collect::<Vec<_>>()
                .join(".")
        };
        out.push(Effect { name, values: s });
    }
    Ok(out)
}
