//! Pairwise reward-model losses on the rewards of chosen and rejected
//! responses, `r_w` and `r_l` (`[B]` each), as plain candle math so that
//! autograd gives their gradients.
//!
//! With `Δ = r_w − r_l`:
//! - Bradley–Terry (Bradley & Terry 1952; Ouyang et al. 2022, eq. 1):
//!   `mean −log σ(Δ)`.
//! - Hinge: `mean relu(margin − Δ)` (RM-Robustness' baseline, margin 0 by default).
//! - BT-Norm: `mean −log σ(Δ / √(r_w² + r_l² + ε))`, ε = 1e-12 guards `r_w = r_l = 0`.
//! - BT-DR (Eurus' "direct reward" term): `BT − mean[log σ(r_w) + log σ(−r_l)]`.
//!
//! Two regularizers add to any of them:
//! - **BSR**, batch-wise sum-to-zero regularization (Hong et al., ICML 2025,
//!   arXiv 2505.07271, exactly as its code `reward_trainer.py::compute_loss`
//!   with `use_batch_sum`): `λ·B·m²`, `m` the mean of all `2B` rewards of the
//!   micro-batch, i.e. `λ·S²/(4B)` with `S = Σ(r_w + r_l)`.
//! - TRL's `center_rewards_coefficient` η (Eisenstein et al. 2023):
//!   `η·mean((r_w + r_l)²)`, which centers each pair rather than the batch.
//!
//! `−log σ(z) = log(1 + e^{−z})` is computed as `m + log(e^{−m} + e^{−z−m})`
//! with `m = max(−z, 0)` held constant: both exponentials are at most 1, so
//! it is finite for any finite `z`, and its gradient is exactly `−σ(−z)`
//! everywhere, `z = 0` included (a `min`/`abs` form has kinks there that
//! autograd differentiates wrongly).

use candle_core::Tensor;
use caracal_core::{Error, Result};

/// The pairwise loss.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PairLoss {
    /// Bradley–Terry.
    Bt,
    /// `relu(margin − Δ)`.
    Hinge { margin: f64 },
    /// BT on `Δ/√(r_w² + r_l²)`.
    BtNorm,
    /// BT plus `−log σ(r_w) − log σ(−r_l)`.
    BtDr,
}

impl PairLoss {
    /// The command-line name (`bt`, `hinge`, `bt-norm`, `bt-dr`).
    pub fn name(&self) -> &'static str {
        match self {
            PairLoss::Bt => "bt",
            PairLoss::Hinge { .. } => "hinge",
            PairLoss::BtNorm => "bt-norm",
            PairLoss::BtDr => "bt-dr",
        }
    }

    /// Parse a command-line name; `margin` is the hinge's margin.
    pub fn parse(name: &str, margin: f64) -> Result<Self> {
        if !margin.is_finite() {
            caracal_core::bail!("the hinge margin is {margin}; it must be finite");
        }
        Ok(match name {
            "bt" => PairLoss::Bt,
            "hinge" => PairLoss::Hinge { margin },
            "bt-norm" => PairLoss::BtNorm,
            "bt-dr" => PairLoss::BtDr,
            other => caracal_core::bail!(
                "loss `{other}` is unknown; use one of bt, hinge, bt-norm, bt-dr"
            ),
        })
    }
}

/// A pairwise loss plus the optional regularizers.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RewardObjective {
    pub loss: PairLoss,
    /// BSR's λ (the paper's default is 1e-3); `None`: off.
    pub bsr: Option<f64>,
    /// TRL's `center_rewards_coefficient` η; `None`: off.
    pub center: Option<f64>,
}

impl Default for RewardObjective {
    fn default() -> Self {
        RewardObjective {
            loss: PairLoss::Bt,
            bsr: None,
            center: None,
        }
    }
}

impl RewardObjective {
    /// Check the coefficients once.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("--bsr", self.bsr), ("--center-rewards", self.center)] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    caracal_core::bail!("{name} is {v}; it must be a finite number ≥ 0");
                }
            }
        }
        if let PairLoss::Hinge { margin } = self.loss {
            if !margin.is_finite() {
                caracal_core::bail!("the hinge margin is {margin}; it must be finite");
            }
        }
        Ok(())
    }

    /// A short label such as `bt+bsr(0.001)`.
    pub fn label(&self) -> String {
        let mut s = self.loss.name().to_string();
        if let Some(l) = self.bsr {
            s += &format!("+bsr({l})");
        }
        if let Some(e) = self.center {
            s += &format!("+center({e})");
        }
        s
    }

    /// The scalar loss of one micro-batch of `B` pairs.
    pub fn loss(&self, chosen: &Tensor, rejected: &Tensor) -> Result<Tensor> {
        let b = check_pair(chosen, rejected)?;
        let delta = (chosen - rejected)?;
        let mut l = match self.loss {
            PairLoss::Bt => neg_log_sigmoid(&delta)?.mean_all()?,
            PairLoss::Hinge { margin } => (delta.neg()? + margin)?.relu()?.mean_all()?,
            PairLoss::BtNorm => {
                let norm = ((chosen.sqr()? + rejected.sqr()?)? + 1e-12)?.sqrt()?;
                neg_log_sigmoid(&(delta / norm)?)?.mean_all()?
            }
            PairLoss::BtDr => {
                let bt = neg_log_sigmoid(&delta)?;
                let dr = (neg_log_sigmoid(chosen)? + neg_log_sigmoid(&rejected.neg()?)?)?;
                (bt + dr)?.mean_all()?
            }
        };
        if let Some(lambda) = self.bsr {
            l = (l + bsr_penalty(chosen, rejected, lambda)?)?;
        }
        if let Some(eta) = self.center {
            let s = (chosen + rejected)?;
            l = (l + (s.sqr()?.mean_all()? * eta)?)?;
        }
        debug_assert!(b > 0);
        Ok(l)
    }
}

/// BSR's penalty `λ·B·m²` with `m` the mean of all `2B` rewards.
pub fn bsr_penalty(chosen: &Tensor, rejected: &Tensor, lambda: f64) -> Result<Tensor> {
    let b = check_pair(chosen, rejected)?;
    let m = Tensor::cat(&[chosen, rejected], 0)?.mean_all()?;
    Ok((m.sqr()? * (lambda * b as f64))?)
}

/// `−log σ(z)`, elementwise: `m + log(e^{−m} + e^{−z−m})`, `m = max(−z, 0)`
/// detached from the graph (a log-sum-exp shift).
pub fn neg_log_sigmoid(z: &Tensor) -> Result<Tensor> {
    let m = z.neg()?.relu()?.detach();
    let a = m.neg()?.exp()?;
    let b = (z.neg()? - &m)?.exp()?;
    Ok(((a + b)?.log()? + m)?)
}

fn check_pair(chosen: &Tensor, rejected: &Tensor) -> Result<usize> {
    match (chosen.dims(), rejected.dims()) {
        ([b], [c]) if b == c && *b > 0 => Ok(*b),
        (a, b) => Err(Error::invalid(format!(
            "chosen rewards have shape {a:?} and rejected {b:?}; expected two equal non-empty [B] vectors"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    fn value(o: &RewardObjective, w: &[f64], l: &[f64]) -> f64 {
        o.loss(&t(w), &t(l)).unwrap().to_scalar::<f64>().unwrap()
    }

    const W: [f64; 4] = [1.0, 0.5, 2.0, -0.3];
    const L: [f64; 4] = [-0.5, 0.2, 1.0, -1.0];

    /// The reference's test vector (shared/reference/alignment.md §1):
    /// BT 0.368054, BT + BSR(λ = 1e-3) 0.36857969.
    #[test]
    fn bt_and_bsr_match_the_reference_vector() {
        let bt = value(&RewardObjective::default(), &W, &L);
        assert!((bt - 0.368054).abs() < 5e-7, "{bt}");
        let bsr = RewardObjective {
            bsr: Some(1e-3),
            ..Default::default()
        };
        let v = value(&bsr, &W, &L);
        assert!((v - 0.36857969).abs() < 5e-9, "{v}");
        // λ·S²/(4B): S = 2.9, B = 4.
        assert!((v - bt - 1e-3 * 2.9f64.powi(2) / 16.0).abs() < 1e-15);
    }

    /// Each loss against its formula written out in f64 scalars.
    #[test]
    fn every_loss_matches_its_scalar_formula() {
        let ls = |z: f64| -> f64 { -(1.0 + (-z).exp()).ln() };
        let n = W.len() as f64;
        let mean = |f: &dyn Fn(f64, f64) -> f64| -> f64 {
            W.iter().zip(&L).map(|(&w, &l)| f(w, l)).sum::<f64>() / n
        };
        let cases: Vec<(RewardObjective, f64)> = vec![
            (
                RewardObjective {
                    loss: PairLoss::Hinge { margin: 1.0 },
                    ..Default::default()
                },
                mean(&|w, l| (1.0 - (w - l)).max(0.0)),
            ),
            (
                RewardObjective {
                    loss: PairLoss::BtNorm,
                    ..Default::default()
                },
                mean(&|w, l| -ls((w - l) / (w * w + l * l).sqrt())),
            ),
            (
                RewardObjective {
                    loss: PairLoss::BtDr,
                    ..Default::default()
                },
                mean(&|w, l| -ls(w - l) - ls(w) - ls(-l)),
            ),
            (
                RewardObjective {
                    center: Some(0.01),
                    ..Default::default()
                },
                mean(&|w, l| -ls(w - l) + 0.01 * (w + l).powi(2)),
            ),
        ];
        for (o, want) in cases {
            let got = value(&o, &W, &L);
            assert!((got - want).abs() < 1e-12, "{}: {got} vs {want}", o.label());
        }
    }

    fn all_objectives() -> Vec<RewardObjective> {
        let mut v = Vec::new();
        for loss in [
            PairLoss::Bt,
            PairLoss::Hinge { margin: 0.5 },
            PairLoss::BtNorm,
            PairLoss::BtDr,
        ] {
            v.push(RewardObjective {
                loss,
                bsr: Some(0.1),
                center: Some(0.05),
            });
            v.push(RewardObjective {
                loss,
                ..Default::default()
            });
        }
        v
    }

    /// Autograd gradients against central differences (f64, h = 1e-6).
    #[test]
    fn gradients_match_finite_differences() {
        let w0 = [0.7, -0.4, 1.3, 0.05, -2.0];
        let l0 = [0.1, 0.6, -0.8, 0.05, 1.5];
        for o in all_objectives() {
            let wv = Var::new(&w0, &Device::Cpu).unwrap();
            let lv = Var::new(&l0, &Device::Cpu).unwrap();
            let g = o
                .loss(wv.as_tensor(), lv.as_tensor())
                .unwrap()
                .backward()
                .unwrap();
            let gw: Vec<f64> = g.get(wv.as_tensor()).unwrap().to_vec1().unwrap();
            let gl: Vec<f64> = g.get(lv.as_tensor()).unwrap().to_vec1().unwrap();
            let h = 1e-6;
            for i in 0..w0.len() {
                for (which, grad) in [(0, &gw), (1, &gl)] {
                    let (mut wp, mut wm, mut lp, mut lm) = (w0, w0, l0, l0);
                    if which == 0 {
                        wp[i] += h;
                        wm[i] -= h;
                    } else {
                        lp[i] += h;
                        lm[i] -= h;
                    }
                    let fd = (value(&o, &wp, &lp) - value(&o, &wm, &lm)) / (2.0 * h);
                    assert!(
                        (fd - grad[i]).abs() < 1e-7 + 1e-6 * fd.abs(),
                        "{} d/d{}[{i}]: autograd {} vs fd {fd}",
                        o.label(),
                        ["r_w", "r_l"][which],
                        grad[i]
                    );
                }
            }
        }
    }

    /// BSR gives every reward the same gradient λ·m (the paper's code).
    #[test]
    fn bsr_gradient_is_lambda_times_the_batch_mean() {
        let wv = Var::new(&W, &Device::Cpu).unwrap();
        let lv = Var::new(&L, &Device::Cpu).unwrap();
        let g = bsr_penalty(wv.as_tensor(), lv.as_tensor(), 1e-3)
            .unwrap()
            .backward()
            .unwrap();
        let m = 2.9 / 8.0;
        for v in [&wv, &lv] {
            let gv: Vec<f64> = g.get(v.as_tensor()).unwrap().to_vec1().unwrap();
            for x in gv {
                assert!((x - 1e-3 * m).abs() < 1e-15, "{x}");
            }
        }
    }

    /// |Δr| = 100 and rewards of ±100: every loss and gradient is finite,
    /// in f32 as in f64.
    #[test]
    fn finite_at_large_reward_gaps() {
        for dt in [candle_core::DType::F64, candle_core::DType::F32] {
            for (w, l) in [([100.0, -50.0], [0.0, 50.0]), ([-100.0, 0.0], [0.0, 100.0])] {
                for o in all_objectives() {
                    let wv = Var::from_tensor(&t(&w).to_dtype(dt).unwrap()).unwrap();
                    let lv = Var::from_tensor(&t(&l).to_dtype(dt).unwrap()).unwrap();
                    let loss = o.loss(wv.as_tensor(), lv.as_tensor()).unwrap();
                    let v = loss
                        .to_dtype(candle_core::DType::F64)
                        .unwrap()
                        .to_scalar::<f64>()
                        .unwrap();
                    assert!(v.is_finite(), "{}: {v}", o.label());
                    let g = loss.backward().unwrap();
                    for x in [&wv, &lv] {
                        let gv: Vec<f64> = g
                            .get(x.as_tensor())
                            .unwrap()
                            .to_dtype(candle_core::DType::F64)
                            .unwrap()
                            .to_vec1()
                            .unwrap();
                        assert!(gv.iter().all(|x| x.is_finite()), "{}: {gv:?}", o.label());
                    }
                }
            }
        }
        // −log σ(−100) = 100 + log(1 + e^{−100}) to f64 precision.
        let v: Vec<f64> = neg_log_sigmoid(&t(&[-100.0, 100.0]))
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            (v[0] - 100.0).abs() < 1e-12 && (0.0..1e-40).contains(&v[1]),
            "{v:?}"
        );
    }

    #[test]
    fn bad_names_and_shapes_are_one_sentence_errors() {
        let e = PairLoss::parse("dpo", 0.0).unwrap_err().to_string();
        assert!(
            e.contains("`dpo` is unknown") && e.contains("bt-norm"),
            "{e}"
        );
        let e = RewardObjective::default()
            .loss(&t(&[1.0, 2.0]), &t(&[1.0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("equal"), "{e}");
        let bad = RewardObjective {
            bsr: Some(-1.0),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("--bsr"));
    }
}
