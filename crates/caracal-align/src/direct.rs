//! Direct alignment losses as plain math on per-sequence log-probabilities
//! (the only fused piece is the per-token log-prob op,
//! [`caracal_models::Llama::token_logps`]). Every formula is computed in f64
//! on `[B]` vectors, so AlphaPO's `1 − e^{−αℓ̄}` keeps its precision as
//! α → 0, and `−log σ` is the stable log-sum-exp form of
//! [`crate::loss::neg_log_sigmoid`].
//!
//! With `π` the policy and `ref` the reference, per pair of chosen `w` and
//! rejected `l` completions, `s` summed and `ℓ̄ = s/n` length-averaged
//! completion log-probs:
//! - **DPO** (Rafailov et al., NeurIPS 2023, eq. 7), `h = (s_w^π − s_w^ref) −
//!   (s_l^π − s_l^ref)`: sigmoid `−(1−ε)·log σ(βh) − ε·log σ(−βh)` (ε the
//!   label smoothing, cDPO); **robust** (Chowdhury et al., ICML 2024, eq. 8)
//!   `((1−ε)·(−log σ(βh)) − ε·(−log σ(−βh)))/(1 − 2ε)`; **hinge** (SLiC)
//!   `relu(1 − βh)`; **IPO** (Azar et al., AISTATS 2024, eq. 17)
//!   `(h − 1/(2β))²` on length-averaged log-probs, as TRL.
//! - **SimPO** (Meng et al., NeurIPS 2024, eq. 6): `−log σ(β(ℓ̄_w − ℓ̄_l) − γ)`,
//!   γ the *absolute* margin (TRL's `simpo_gamma`; SimPO's own scripts give
//!   `gamma_beta_ratio = γ/β`).
//! - **AlphaPO** (arXiv 2501.03884): `r_α = (1 − e^{−αℓ̄})/α`,
//!   `−log σ(β(r_α,w − r_α,l) − γ)`; α → 0 gives SimPO.
//! - **CPO** (Xu et al., ICML 2024, eq. 5): `−log σ(β(s_w − s_l))` plus the
//!   chosen completions' NLL times `cpo_alpha`.
//! - **KTO** ([`kto_loss`]): unpaired desirable/undesirable examples against the
//!   detached, clamped KL reference point [`kto_kl`].
//! - **ORPO** (Hong et al., EMNLP 2024, eq. 6–7): NLL of the chosen minus
//!   `λ·log σ(log odds(ℓ̄_w) − log odds(ℓ̄_l))`, `log odds(p) = ℓ̄ − log(1 − e^{ℓ̄})`.

use crate::loss::neg_log_sigmoid;
use candle_core::{DType, Tensor};
use caracal_core::{Error, Result};

/// A direct alignment loss and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum DirectLoss {
    /// DPO's sigmoid loss with label smoothing ε (0: plain DPO).
    Dpo { beta: f64, label_smoothing: f64 },
    /// Robust DPO (unbiased under label noise ε).
    Robust { beta: f64, label_smoothing: f64 },
    /// SLiC's hinge on DPO's log-ratio.
    Hinge { beta: f64 },
    /// IPO on length-averaged log-probs.
    Ipo { beta: f64 },
    /// SimPO with the absolute margin γ.
    Simpo { beta: f64, gamma: f64 },
    /// AlphaPO.
    AlphaPo { beta: f64, gamma: f64, alpha: f64 },
    /// CPO: the sigmoid loss on summed log-probs plus `nll_weight` × NLL.
    Cpo { beta: f64, nll_weight: f64 },
    /// ORPO with weight λ on the odds-ratio term.
    Orpo { lambda: f64 },
}

impl DirectLoss {
    /// Whether the loss needs a reference model.
    pub fn needs_reference(&self) -> bool {
        matches!(
            self,
            DirectLoss::Dpo { .. }
                | DirectLoss::Robust { .. }
                | DirectLoss::Hinge { .. }
                | DirectLoss::Ipo { .. }
        )
    }

    /// Whether the loss reads length-averaged log-probs.
    pub fn averages(&self) -> bool {
        matches!(
            self,
            DirectLoss::Ipo { .. }
                | DirectLoss::Simpo { .. }
                | DirectLoss::AlphaPo { .. }
                | DirectLoss::Orpo { .. }
        )
    }

    /// Check the hyper-parameters once; one sentence per problem.
    pub fn validate(&self) -> Result<()> {
        let pos = |name: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                caracal_core::bail!("{name} is {v}; it must be a positive number");
            }
            Ok(())
        };
        let eps = |v: f64| -> Result<()> {
            if !(0.0..0.5).contains(&v) {
                caracal_core::bail!("the label smoothing is {v}; it must be in [0, 0.5)");
            }
            Ok(())
        };
        match *self {
            DirectLoss::Dpo {
                beta,
                label_smoothing,
            }
            | DirectLoss::Robust {
                beta,
                label_smoothing,
            } => {
                pos("β", beta)?;
                eps(label_smoothing)
            }
            DirectLoss::Hinge { beta } | DirectLoss::Ipo { beta } => pos("β", beta),
            DirectLoss::Simpo { beta, gamma } => {
                pos("β", beta)?;
                finite("γ", gamma)
            }
            DirectLoss::AlphaPo { beta, gamma, alpha } => {
                pos("β", beta)?;
                finite("γ", gamma)?;
                finite("α", alpha)
            }
            DirectLoss::Cpo { beta, nll_weight } => {
                pos("β", beta)?;
                finite("the NLL weight", nll_weight)
            }
            DirectLoss::Orpo { lambda } => pos("λ", lambda),
        }
    }
}

/// Hyper-parameters as a user gives them (TRL's names in brackets).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirectParams {
    /// β (`beta`, TRL's default 0.1).
    pub beta: f64,
    /// AlphaPO's α (`alpha`).
    pub alpha: f64,
    /// SimPO/AlphaPO's absolute margin γ (`simpo_gamma`, TRL's default 0.5).
    pub gamma: f64,
    /// ε of robust DPO and of cDPO (`label_smoothing`).
    pub label_smoothing: f64,
    /// CPO's NLL weight (`cpo_alpha`, default 1).
    pub cpo_alpha: f64,
    /// ORPO's λ (`beta` in TRL's ORPOConfig, default 0.1).
    pub orpo_lambda: f64,
}

impl Default for DirectParams {
    fn default() -> Self {
        DirectParams {
            beta: 0.1,
            alpha: 0.0,
            gamma: 0.5,
            label_smoothing: 0.0,
            cpo_alpha: 1.0,
            orpo_lambda: 0.1,
        }
    }
}

/// The loss names of the command line.
pub const DIRECT_LOSSES: &str = "dpo, ipo, hinge, robust, simpo, alphapo, cpo, orpo";

impl DirectLoss {
    /// The loss a name and parameters describe, with notes for the user
    /// (AlphaPO with α = 0 is SimPO, and says so). Mapping to TRL: `simpo`
    /// is CPOTrainer `loss_type="simpo"` with `cpo_alpha = 0`; `alphapo` is
    /// `loss_type="alphapo"`; `cpo` is `loss_type="sigmoid"` with its NLL term.
    pub fn from_name(name: &str, p: &DirectParams) -> Result<(DirectLoss, Vec<String>)> {
        let mut notes = Vec::new();
        let l = match name {
            "dpo" => DirectLoss::Dpo {
                beta: p.beta,
                label_smoothing: p.label_smoothing,
            },
            "robust" => DirectLoss::Robust {
                beta: p.beta,
                label_smoothing: p.label_smoothing,
            },
            "hinge" => DirectLoss::Hinge { beta: p.beta },
            "ipo" => DirectLoss::Ipo { beta: p.beta },
            "simpo" => DirectLoss::Simpo {
                beta: p.beta,
                gamma: p.gamma,
            },
            "alphapo" if p.alpha == 0.0 => {
                notes.push("AlphaPO with α = 0 is SimPO; running SimPO".to_string());
                DirectLoss::Simpo {
                    beta: p.beta,
                    gamma: p.gamma,
                }
            }
            "alphapo" => DirectLoss::AlphaPo {
                beta: p.beta,
                gamma: p.gamma,
                alpha: p.alpha,
            },
            "cpo" => DirectLoss::Cpo {
                beta: p.beta,
                nll_weight: p.cpo_alpha,
            },
            "orpo" => DirectLoss::Orpo {
                lambda: p.orpo_lambda,
            },
            other => caracal_core::bail!("loss `{other}` is unknown; use one of {DIRECT_LOSSES}"),
        };
        if name == "dpo" && p.label_smoothing > 0.0 {
            notes.push(
                "DPO with label smoothing is cDPO here; TRL 1.16's sigmoid loss ignores label_smoothing"
                    .to_string(),
            );
        }
        l.validate()?;
        Ok((l, notes))
    }

    /// The TRL trainer whose tokenization this loss uses by default.
    pub fn default_template(&self) -> crate::template::Template {
        if self.needs_reference() {
            crate::template::Template::TrlDpo
        } else {
            crate::template::Template::TrlCpo
        }
    }
}

fn finite(name: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        caracal_core::bail!("{name} is {v}; it must be finite");
    }
    Ok(())
}

/// Completion log-probs of one side of a batch of pairs: sums `[B]` and
/// completion lengths `[B]` (tokens that count, as floats).
#[derive(Clone, Debug)]
pub struct SideLogps {
    pub sum: Tensor,
    pub len: Tensor,
}

/// Chosen and rejected completion log-probs of `B` pairs.
#[derive(Clone, Debug)]
pub struct PairLogps {
    pub chosen: SideLogps,
    pub rejected: SideLogps,
}

impl PairLogps {
    /// Pairs from plain vectors (tests, cached reference log-probs).
    pub fn from_vecs(
        chosen: &[f64],
        rejected: &[f64],
        chosen_len: &[f64],
        rejected_len: &[f64],
        device: &candle_core::Device,
    ) -> Result<Self> {
        let t = |v: &[f64]| Tensor::new(v, device);
        Ok(PairLogps {
            chosen: SideLogps {
                sum: t(chosen)?,
                len: t(chosen_len)?,
            },
            rejected: SideLogps {
                sum: t(rejected)?,
                len: t(rejected_len)?,
            },
        })
    }

    fn check(&self) -> Result<usize> {
        let dims = [
            self.chosen.sum.dims(),
            self.chosen.len.dims(),
            self.rejected.sum.dims(),
            self.rejected.len.dims(),
        ];
        match dims[0] {
            [b] if *b > 0 && dims.iter().all(|d| *d == [*b]) => Ok(*b),
            _ => Err(Error::invalid(format!(
                "pair log-probs have shapes {dims:?}; expected four equal non-empty [B] vectors"
            ))),
        }
    }

    /// `(chosen, rejected)` in f64, summed or length-averaged.
    fn values(&self, average: bool) -> Result<(Tensor, Tensor)> {
        let f = |s: &SideLogps| -> Result<Tensor> {
            let v = s.sum.to_dtype(DType::F64)?;
            Ok(if average {
                (v / s.len.to_dtype(DType::F64)?)?
            } else {
                v
            })
        };
        Ok((f(&self.chosen)?, f(&self.rejected)?))
    }
}

/// A loss over a batch with the per-pair terms TRL logs.
///
/// The implicit rewards follow TRL 1.16: DPO-family (also IPO) `β` times
/// the *summed* log-ratio to the reference; SimPO `β·ℓ̄`; AlphaPO `β·r_α`;
/// CPO `β·s`; ORPO `λ·ℓ̄`.
#[derive(Clone, Debug)]
pub struct DirectOutput {
    /// The scalar loss (f64), NLL term included.
    pub loss: Tensor,
    /// Per-pair preference losses `[B]`.
    pub losses: Tensor,
    /// Implicit rewards `[B]` of chosen and rejected (DPO:
    /// `β(s^π − s^ref)`; SimPO/CPO: `β·ℓ̄` or `β·s`; AlphaPO: `β·r_α`).
    pub chosen_rewards: Tensor,
    pub rejected_rewards: Tensor,
}

/// Evaluate `loss` on the policy's log-probs (and the reference's, for the
/// losses that need one); `chosen_nll` is the chosen completions' mean
/// token NLL (CPO and ORPO).
pub fn direct_loss(
    loss: &DirectLoss,
    policy: &PairLogps,
    reference: Option<&PairLogps>,
    chosen_nll: Option<&Tensor>,
) -> Result<DirectOutput> {
    loss.validate()?;
    let b = policy.check()?;
    let avg = loss.averages();
    let (w, l) = policy.values(avg)?;
    let ref_vals = match (loss.needs_reference(), reference) {
        (true, Some(r)) => {
            if r.check()? != b {
                caracal_core::bail!(
                    "the reference log-probs have another batch size than the policy's"
                );
            }
            // DPO's implicit rewards use summed log-ratios, IPO's too (TRL).
            let (ws, ls) = policy.values(false)?;
            let (rws, rls) = r.values(false)?;
            Some((r.values(avg)?, ((ws - rws)?, (ls - rls)?)))
        }
        (true, None) => caracal_core::bail!("this loss needs a reference model's log-probs"),
        (false, _) => None,
    };
    let nll = |what: &str| -> Result<Tensor> {
        chosen_nll
            .ok_or_else(|| Error::invalid(format!("{what} needs the chosen completions' NLL")))?
            .to_dtype(DType::F64)
            .map_err(Into::into)
    };
    let (losses, rw, rl, extra) = match *loss {
        DirectLoss::Dpo { beta, .. }
        | DirectLoss::Robust { beta, .. }
        | DirectLoss::Hinge { beta }
        | DirectLoss::Ipo { beta } => {
            let e = match *loss {
                DirectLoss::Dpo {
                    label_smoothing, ..
                }
                | DirectLoss::Robust {
                    label_smoothing, ..
                } => label_smoothing,
                _ => 0.0,
            };
            let ((rw0, rl0), (sum_dw, sum_dl)) = ref_vals
                .ok_or_else(|| Error::invalid("this loss needs a reference model's log-probs"))?;
            let dw = (&w - &rw0)?;
            let dl = (&l - &rl0)?;
            let h = (&dw - &dl)?;
            let bh = (&h * beta)?;
            let losses = match *loss {
                DirectLoss::Dpo { .. } => {
                    ((neg_log_sigmoid(&bh)? * (1.0 - e))? + (neg_log_sigmoid(&bh.neg()?)? * e)?)?
                }
                DirectLoss::Robust { .. } => ((neg_log_sigmoid(&bh)? * (1.0 - e))?
                    - (neg_log_sigmoid(&bh.neg()?)? * e)?)?
                    .affine(1.0 / (1.0 - 2.0 * e), 0.0)?,
                DirectLoss::Hinge { .. } => (bh.neg()? + 1.0)?.relu()?,
                _ => (h - 1.0 / (2.0 * beta))?.sqr()?,
            };
            (losses, (sum_dw * beta)?, (sum_dl * beta)?, None)
        }
        DirectLoss::Simpo { beta, gamma } => {
            let z = (((&w - &l)? * beta)? - gamma)?;
            (neg_log_sigmoid(&z)?, (&w * beta)?, (&l * beta)?, None)
        }
        DirectLoss::AlphaPo { beta, gamma, alpha } => {
            let (aw, al) = (alpha_reward(&w, alpha)?, alpha_reward(&l, alpha)?);
            let z = (((&aw - &al)? * beta)? - gamma)?;
            (neg_log_sigmoid(&z)?, (aw * beta)?, (al * beta)?, None)
        }
        DirectLoss::Cpo { beta, nll_weight } => {
            let z = ((&w - &l)? * beta)?;
            let extra = (nll("CPO")? * nll_weight)?;
            (
                neg_log_sigmoid(&z)?,
                (&w * beta)?,
                (&l * beta)?,
                Some(extra),
            )
        }
        DirectLoss::Orpo { lambda } => {
            // log odds(p) = ℓ̄ − log(1 − e^{ℓ̄}), ℓ̄ < 0.
            let lo = |x: &Tensor| -> Result<Tensor> { Ok((x - (x.exp()?.neg()? + 1.0)?.log()?)?) };
            let z = (lo(&w)? - lo(&l)?)?;
            let losses = (neg_log_sigmoid(&z)? * lambda)?;
            (losses, (&w * lambda)?, (&l * lambda)?, Some(nll("ORPO")?))
        }
    };
    let mut total = losses.mean_all()?;
    if let Some(x) = extra {
        total = (total + x)?;
    }
    Ok(DirectOutput {
        loss: total,
        losses,
        chosen_rewards: rw,
        rejected_rewards: rl,
    })
}

/// KTO's options (Ethayarajh et al., "KTO: Model Alignment as Prospect
/// Theoretic Optimization", ICML 2024, eq. 8; TRL's `KTOTrainer`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KtoOptions {
    pub beta: f64,
    /// λ_D, the weight of desirable examples.
    pub desirable_weight: f64,
    /// λ_U, the weight of undesirable examples.
    pub undesirable_weight: f64,
}

impl Default for KtoOptions {
    fn default() -> Self {
        KtoOptions {
            beta: 0.1,
            desirable_weight: 1.0,
            undesirable_weight: 1.0,
        }
    }
}

/// KTO's reference point `z₀`: the batch mean of `log π(y'|x) − log ref(y'|x)`
/// over mismatched (prompt, completion) pairs, clamped at 0 and detached (no
/// gradient flows through it), as TRL computes it.
pub fn kto_kl(policy_kl_logps: &Tensor, ref_kl_logps: &Tensor) -> Result<Tensor> {
    let d = (policy_kl_logps.to_dtype(DType::F64)? - ref_kl_logps.to_dtype(DType::F64)?)?;
    Ok(d.mean_all()?.maximum(0.0)?.detach())
}

/// KTO on unpaired examples: `r = log π(y|x) − log ref(y|x)` for desirable
/// (`[Bd]`) and undesirable (`[Bu]`) completions; losses
/// `λ_D(1 − σ(β(r_D − z₀)))` and `λ_U(1 − σ(β(z₀ − r_U)))`, averaged over all
/// `Bd + Bu` examples. Returns the loss and the rewards `β·r` of each group.
pub fn kto_loss(
    opts: &KtoOptions,
    desirable: &Tensor,
    undesirable: &Tensor,
    kl: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !(opts.beta.is_finite() && opts.beta > 0.0) {
        caracal_core::bail!("β is {}; it must be a positive number", opts.beta);
    }
    for (n, w) in [
        ("desirable", opts.desirable_weight),
        ("undesirable", opts.undesirable_weight),
    ] {
        if !(w.is_finite() && w >= 0.0) {
            caracal_core::bail!("the {n} weight is {w}; it must be a finite number ≥ 0");
        }
    }
    let (d, u) = (
        desirable.to_dtype(DType::F64)?,
        undesirable.to_dtype(DType::F64)?,
    );
    let (nd, nu) = (d.elem_count(), u.elem_count());
    if nd + nu == 0 {
        caracal_core::bail!("KTO needs at least one example");
    }
    let kl = kl.to_dtype(DType::F64)?;
    let one_minus_sigmoid = |z: Tensor| -> Result<Tensor> {
        // 1 − σ(z) = σ(−z) = exp(log σ(−z)).
        Ok(neg_log_sigmoid(&z.neg()?)?.neg()?.exp()?)
    };
    let mut total = Tensor::new(0f64, d.device())?;
    if nd > 0 {
        let z = (d.broadcast_sub(&kl)? * opts.beta)?;
        let l = (one_minus_sigmoid(z)? * opts.desirable_weight)?;
        total = (total + l.sum_all()?)?;
    }
    if nu > 0 {
        let z = (u.broadcast_sub(&kl)?.neg()? * opts.beta)?;
        let l = (one_minus_sigmoid(z)? * opts.undesirable_weight)?;
        total = (total + l.sum_all()?)?;
    }
    Ok((
        (total / (nd + nu) as f64)?,
        (d * opts.beta)?,
        (u * opts.beta)?,
    ))
}

/// AlphaPO's reward shape `(1 − e^{−αℓ̄})/α` (f64; α = 0 is the limit ℓ̄).
pub fn alpha_reward(avg_logp: &Tensor, alpha: f64) -> Result<Tensor> {
    if alpha == 0.0 {
        return Ok(avg_logp.clone());
    }
    Ok(((avg_logp * (-alpha))?.exp()?.neg()? + 1.0)?.affine(1.0 / alpha, 0.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn pair(w: f64, l: f64) -> PairLogps {
        PairLogps::from_vecs(&[w], &[l], &[1.0], &[1.0], &Device::Cpu).unwrap()
    }

    fn scalar(t: &Tensor) -> f64 {
        t.to_scalar::<f64>().unwrap()
    }

    /// shared/reference/alignment.md §2: ℓ̄_w = −0.8, ℓ̄_l = −1.2, β = 2.5,
    /// γ = 0.25 → α = 0: 0.386871; 0.25: 0.304084; −0.25: 0.463180.
    #[test]
    fn alphapo_matches_the_reference_vectors_and_tends_to_simpo() {
        let p = pair(-0.8, -1.2);
        for (alpha, want) in [(0.0, 0.386871), (0.25, 0.304084), (-0.25, 0.463180)] {
            let l = DirectLoss::AlphaPo {
                beta: 2.5,
                gamma: 0.25,
                alpha,
            };
            let got = scalar(&direct_loss(&l, &p, None, None).unwrap().loss);
            assert!((got - want).abs() < 5e-7, "α {alpha}: {got} vs {want}");
        }
        let simpo = scalar(
            &direct_loss(
                &DirectLoss::Simpo {
                    beta: 2.5,
                    gamma: 0.25,
                },
                &p,
                None,
                None,
            )
            .unwrap()
            .loss,
        );
        let tiny = scalar(
            &direct_loss(
                &DirectLoss::AlphaPo {
                    beta: 2.5,
                    gamma: 0.25,
                    alpha: 1e-6,
                },
                &p,
                None,
                None,
            )
            .unwrap()
            .loss,
        );
        assert!((simpo - 0.386871).abs() < 5e-7);
        assert!(
            (tiny - simpo).abs() < 1e-6,
            "α = 1e-6: {tiny} vs SimPO {simpo}"
        );
    }

    #[test]
    fn dpo_family_matches_its_formulas() {
        let p = pair(-10.0, -12.0);
        let r = pair(-11.0, -11.5);
        // h = (−10 + 11) − (−12 + 11.5) = 1.5.
        let ls = |z: f64| -(1.0 + (-z).exp()).ln();
        let cases = [
            (
                DirectLoss::Dpo {
                    beta: 0.1,
                    label_smoothing: 0.0,
                },
                -ls(0.15),
            ),
            (
                DirectLoss::Dpo {
                    beta: 0.1,
                    label_smoothing: 0.1,
                },
                -0.9 * ls(0.15) - 0.1 * ls(-0.15),
            ),
            (
                DirectLoss::Robust {
                    beta: 0.1,
                    label_smoothing: 0.1,
                },
                (-0.9 * ls(0.15) + 0.1 * ls(-0.15)) / 0.8,
            ),
            (DirectLoss::Hinge { beta: 0.5 }, (1.0f64 - 0.75).max(0.0)),
            (DirectLoss::Ipo { beta: 0.1 }, (1.5f64 - 5.0).powi(2)),
        ];
        for (l, want) in cases {
            let out = direct_loss(&l, &p, Some(&r), None).unwrap();
            let got = scalar(&out.loss);
            assert!((got - want).abs() < 1e-12, "{l:?}: {got} vs {want}");
        }
        let out = direct_loss(
            &DirectLoss::Dpo {
                beta: 0.1,
                label_smoothing: 0.0,
            },
            &p,
            Some(&r),
            None,
        )
        .unwrap();
        let rw: Vec<f64> = out.chosen_rewards.to_vec1().unwrap();
        let rl: Vec<f64> = out.rejected_rewards.to_vec1().unwrap();
        assert!((rw[0] - 0.1).abs() < 1e-12 && (rl[0] + 0.05).abs() < 1e-12);
        let e = direct_loss(&DirectLoss::Ipo { beta: 0.1 }, &p, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("reference"), "{e}");
    }

    #[test]
    fn cpo_and_orpo_add_the_nll() {
        let p = pair(-4.0, -6.0);
        let nll = Tensor::new(1.25f64, &Device::Cpu).unwrap();
        let ls = |z: f64| -(1.0 + (-z).exp()).ln();
        let cpo = DirectLoss::Cpo {
            beta: 0.1,
            nll_weight: 1.0,
        };
        let got = scalar(&direct_loss(&cpo, &p, None, Some(&nll)).unwrap().loss);
        assert!((got - (-ls(0.2) + 1.25)).abs() < 1e-12);
        assert!(direct_loss(&cpo, &p, None, None).is_err());
        let q = PairLogps::from_vecs(&[-2.0], &[-3.0], &[2.0], &[3.0], &Device::Cpu).unwrap();
        let lo = |x: f64| x - (1.0 - x.exp()).ln();
        let orpo = DirectLoss::Orpo { lambda: 0.1 };
        let got = scalar(&direct_loss(&orpo, &q, None, Some(&nll)).unwrap().loss);
        assert!((got - (1.25 - 0.1 * ls(lo(-1.0) - lo(-1.0)))).abs() < 1e-12);
    }

    /// Every loss's gradient in the policy's log-prob sums against central
    /// differences; finite at a log-ratio of ±100.
    #[test]
    fn gradients_match_finite_differences_and_stay_finite() {
        let losses = [
            DirectLoss::Dpo {
                beta: 0.3,
                label_smoothing: 0.1,
            },
            DirectLoss::Robust {
                beta: 0.3,
                label_smoothing: 0.1,
            },
            DirectLoss::Hinge { beta: 0.3 },
            DirectLoss::Ipo { beta: 0.3 },
            DirectLoss::Simpo {
                beta: 2.0,
                gamma: 0.5,
            },
            DirectLoss::AlphaPo {
                beta: 2.0,
                gamma: 0.5,
                alpha: 0.25,
            },
            DirectLoss::AlphaPo {
                beta: 2.0,
                gamma: 0.5,
                alpha: -0.25,
            },
            DirectLoss::Cpo {
                beta: 0.3,
                nll_weight: 1.0,
            },
            DirectLoss::Orpo { lambda: 0.2 },
        ];
        let dev = Device::Cpu;
        let (w0, l0) = ([-7.0, -3.0, -12.0], [-9.0, -2.5, -11.0]);
        let lens = [5.0, 3.0, 8.0];
        let refp = PairLogps::from_vecs(
            &[-8.0, -2.0, -12.5],
            &[-8.5, -3.0, -10.0],
            &lens,
            &lens,
            &dev,
        )
        .unwrap();
        let nll = Tensor::new(0.7f64, &dev).unwrap();
        let eval = |l: &DirectLoss, w: &[f64], r: &[f64]| -> f64 {
            let p = PairLogps::from_vecs(w, r, &lens, &lens, &dev).unwrap();
            scalar(&direct_loss(l, &p, Some(&refp), Some(&nll)).unwrap().loss)
        };
        for l in &losses {
            let wv = Var::new(&w0, &dev).unwrap();
            let lv = Var::new(&l0, &dev).unwrap();
            let p = PairLogps {
                chosen: SideLogps {
                    sum: wv.as_tensor().clone(),
                    len: Tensor::new(&lens, &dev).unwrap(),
                },
                rejected: SideLogps {
                    sum: lv.as_tensor().clone(),
                    len: Tensor::new(&lens, &dev).unwrap(),
                },
            };
            let g = direct_loss(l, &p, Some(&refp), Some(&nll))
                .unwrap()
                .loss
                .backward()
                .unwrap();
            let gw: Vec<f64> = g.get(wv.as_tensor()).unwrap().to_vec1().unwrap();
            let gl: Vec<f64> = g.get(lv.as_tensor()).unwrap().to_vec1().unwrap();
            let h = 1e-6;
            for i in 0..3 {
                let (mut a, mut b) = (w0, w0);
                a[i] += h;
                b[i] -= h;
                let fd = (eval(l, &a, &l0) - eval(l, &b, &l0)) / (2.0 * h);
                assert!(
                    (fd - gw[i]).abs() < 1e-6 + 1e-5 * fd.abs(),
                    "{l:?} d/dw[{i}]: {} vs {fd}",
                    gw[i]
                );
                let (mut a, mut b) = (l0, l0);
                a[i] += h;
                b[i] -= h;
                let fd = (eval(l, &w0, &a) - eval(l, &w0, &b)) / (2.0 * h);
                assert!(
                    (fd - gl[i]).abs() < 1e-6 + 1e-5 * fd.abs(),
                    "{l:?} d/dl[{i}]: {} vs {fd}",
                    gl[i]
                );
            }
            for (w, r) in [
                ([-1.0, -1.0, -1.0], [-101.0, -101.0, -101.0]),
                ([-101.0; 3], [-1.0; 3]),
            ] {
                let v = eval(l, &w, &r);
                assert!(v.is_finite(), "{l:?}: {v}");
            }
        }
    }

    #[test]
    fn kto_matches_its_formula_and_the_kl_is_detached_and_clamped() {
        let dev = Device::Cpu;
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let d = Var::new(&[0.5f64, -0.2], &dev).unwrap();
        let u = Var::new(&[0.3f64], &dev).unwrap();
        let pk = Var::new(&[-3.0f64, -5.0], &dev).unwrap();
        let rk = Tensor::new(&[-3.4f64, -5.2], &dev).unwrap();
        let kl = kto_kl(pk.as_tensor(), &rk).unwrap();
        assert!((scalar(&kl) - 0.3).abs() < 1e-12);
        let o = KtoOptions {
            beta: 0.5,
            desirable_weight: 1.0,
            undesirable_weight: 1.5,
        };
        let (loss, rd, ru) = kto_loss(&o, d.as_tensor(), u.as_tensor(), &kl).unwrap();
        let want = ((1.0 - sig(0.5 * (0.5 - 0.3)))
            + (1.0 - sig(0.5 * (-0.2 - 0.3)))
            + 1.5 * (1.0 - sig(0.5 * (0.3 - 0.3))))
            / 3.0;
        assert!(
            (scalar(&loss) - want).abs() < 1e-12,
            "{} vs {want}",
            scalar(&loss)
        );
        assert_eq!(rd.to_vec1::<f64>().unwrap(), vec![0.25, -0.1]);
        assert_eq!(ru.to_vec1::<f64>().unwrap(), vec![0.15]);
        let g = loss.backward().unwrap();
        assert!(g.get(pk.as_tensor()).is_none(), "no gradient through z₀");
        // d/dr_D = −β·λ_D·σ'(β(r − z₀))/n.
        let gd: Vec<f64> = g.get(d.as_tensor()).unwrap().to_vec1().unwrap();
        let s0 = sig(0.1);
        assert!((gd[0] + 0.5 * s0 * (1.0 - s0) / 3.0).abs() < 1e-12);
        // A negative mean is clamped to 0.
        let neg = kto_kl(&rk, pk.as_tensor()).unwrap();
        assert_eq!(scalar(&neg), 0.0);
        let bad = KtoOptions {
            beta: -1.0,
            ..KtoOptions::default()
        };
        assert!(kto_loss(&bad, d.as_tensor(), u.as_tensor(), &kl)
            .unwrap_err()
            .to_string()
            .contains("β is -1"));
    }

    #[test]
    fn bad_hyper_parameters_are_one_sentence_errors() {
        for (l, want) in [
            (
                DirectLoss::Dpo {
                    beta: 0.0,
                    label_smoothing: 0.0,
                },
                "β is 0",
            ),
            (
                DirectLoss::Robust {
                    beta: 0.1,
                    label_smoothing: 0.5,
                },
                "label smoothing is 0.5",
            ),
            (
                DirectLoss::Simpo {
                    beta: 1.0,
                    gamma: f64::NAN,
                },
                "γ is NaN",
            ),
        ] {
            let e = l.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
