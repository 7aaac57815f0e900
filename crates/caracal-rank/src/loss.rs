//! Training losses over candidate logits `[B, N, T]` with labels `[B, N, T]`
//! and a validity weight `[B, N]` (0 on padded candidate slots).

use candle_core::{Tensor, D};
use caracal_core::Result;
use caracal_kernels::{cross_entropy, CeOptions};

/// Which loss a trainer minimizes.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LossKind {
    /// Binary cross-entropy per candidate and task.
    Pointwise,
    /// Softmax over each session's candidates, per task.
    Listwise,
    /// Pointwise plus `weight ×` listwise.
    Both { listwise_weight: f64 },
}

/// Pointwise binary cross-entropy with logits, averaged over valid
/// (candidate, task) pairs: `softplus(z) − y·z`, with
/// `softplus(z) = max(z, 0) + log(1 + e^{−|z|})`.
pub fn bce(logits: &Tensor, labels: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let t = logits.dim(D::Minus1)?;
    let sp = (logits.relu()? + ((logits.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    let per = (sp - (labels * logits)?)?;
    let w = weight.unsqueeze(2)?;
    let total = per.broadcast_mul(&w)?.sum_all()?;
    let count = (weight.sum_all()?.to_scalar::<f32>()? as f64 * t as f64).max(1.0);
    Ok((total / count)?)
}

/// Listwise softmax loss (ListNet with one target per positive; Cao et al.
/// 2007, the "sampled softmax" form of the LiGR successors): for every task
/// `t` and every positive candidate `i` of a session,
/// `−log softmax_j(z_{·,j,t})_i` over the session's valid candidates,
/// averaged over all (session, task, positive) rows. Uses the fused
/// cross-entropy kernel. Sessions without positives add nothing; with no
/// positives at all the loss is 0.
pub fn listwise(logits: &Tensor, labels: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (b, n, t) = logits.dims3()?;
    let y: Vec<f32> = labels.flatten_all()?.to_vec1()?;
    let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for bi in 0..b {
        for ti in 0..t {
            for c in 0..n {
                if w[bi * n + c] > 0.0 && y[(bi * n + c) * t + ti] > 0.5 {
                    rows.push((bi * t + ti) as u32);
                    targets.push(c as u32);
                }
            }
        }
    }
    if rows.is_empty() {
        return Ok(logits.sum_all()?.affine(0.0, 0.0)?);
    }
    // [B, N, T] → [B·T, N], padded slots pushed to −1e9.
    let z = logits.transpose(1, 2)?.contiguous()?.reshape((b * t, n))?;
    let pad: Vec<f32> = (0..b * t)
        .flat_map(|r| {
            let bi = r / t;
            let w = &w;
            (0..n).map(move |c| {
                if w[bi * n + c] > 0.0 {
                    0.0
                } else {
                    crate::mask::BLOCKED
                }
            })
        })
        .collect();
    let z = (z + Tensor::from_vec(pad, (b * t, n), logits.device())?)?;
    let r = rows.len();
    let sel = z.index_select(&Tensor::from_vec(rows, r, logits.device())?, 0)?;
    let tgt = Tensor::from_vec(targets, r, logits.device())?;
    Ok(cross_entropy(&sel, &tgt, &CeOptions::default())?.loss)
}

/// The loss of `kind`.
pub fn loss(kind: LossKind, logits: &Tensor, labels: &Tensor, weight: &Tensor) -> Result<Tensor> {
    Ok(match kind {
        LossKind::Pointwise => bce(logits, labels, weight)?,
        LossKind::Listwise => listwise(logits, labels, weight)?,
        LossKind::Both { listwise_weight } => {
            (bce(logits, labels, weight)?
                + listwise(logits, labels, weight)?.affine(listwise_weight, 0.0)?)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn bce_matches_the_formula_and_ignores_padding() {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[[2.0f32], [-1.0], [50.0]]], &dev).unwrap();
        let y = Tensor::new(&[[[1.0f32], [0.0], [0.0]]], &dev).unwrap();
        let w = Tensor::new(&[[1.0f32, 1.0, 0.0]], &dev).unwrap();
        let l = bce(&z, &y, &w).unwrap().to_scalar::<f32>().unwrap() as f64;
        // softplus(2) − 2 and softplus(−1); the padded third slot is ignored.
        let want2 = ((1.0 + (-2.0f64).exp()).ln() + (1.0 + (-1.0f64).exp()).ln()) / 2.0;
        assert!((l - want2).abs() < 1e-6, "{l} vs {want2}");
    }

    #[test]
    fn listwise_matches_log_softmax_and_has_gradients() {
        let dev = Device::Cpu;
        let z = Var::new(&[[[1.0f32, 0.0], [0.0, 2.0], [3.0, 0.0]]], &dev).unwrap();
        let y = Tensor::new(&[[[1.0f32, 0.0], [1.0, 1.0], [0.0, 0.0]]], &dev).unwrap();
        // The third candidate is padding.
        let w = Tensor::new(&[[1.0f32, 1.0, 0.0]], &dev).unwrap();
        let l = listwise(z.as_tensor(), &y, &w).unwrap();
        let lse0 = (1.0f64.exp() + 1.0).ln();
        let lse1 = (1.0 + 2.0f64.exp()).ln();
        let want = ((lse0 - 1.0) + (lse0 - 0.0) + (lse1 - 2.0)) / 3.0;
        let got = l.to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let g = l.backward().unwrap();
        let gz: Vec<f32> = g
            .get(z.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(gz[4], 0.0);
        assert_eq!(gz[5], 0.0);
        assert!(gz.iter().all(|v| v.is_finite()));
    }
}
