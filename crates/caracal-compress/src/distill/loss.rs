//! The distillation objective: a token-level divergence between the
//! teacher's and the student's next-token distributions at temperature τ,
//! times τ² (Hinton et al., "Distilling the Knowledge in a Neural Network",
//! 2015, §2), mixed with the student's cross-entropy on the text,
//! `L = r·L_KD + (1 − r)·CE` (FMCHISEL's `distillation_weight`, r = 0.5),
//! each a mean over the tokens that count.
//!
//! The divergences are the generalized JSD of Liger-Kernel's fused linear
//! JSD (`caracal_kernels::fused_linear_jsd`, Agarwal et al., "On-Policy
//! Distillation of Language Models" (GKD), ICLR 2024, eq. 1):
//! `JSD_β = β·KL(p_T‖m) + (1 − β)·KL(p_S‖m)`, `m = β·p_T + (1 − β)·p_S`,
//! with the endpoints β = 0 the forward KL(p_T‖p_S) and β = 1 the reverse
//! KL(p_S‖p_T) (as FMCHISEL special-cases them). The kernel takes the
//! student's and the teacher's last hidden states and LM heads, so neither
//! model's `[tokens, V]` logits ever exist whole; the cross-entropy goes
//! through the fused linear cross-entropy on the same student hidden states.

use candle_core::{DType, Tensor};
use caracal_core::{Error, Result};
use caracal_kernels::{
    fused_linear_cross_entropy, fused_linear_jsd, CeOptions, FlceOptions, FljsdOptions, Reduction,
};
use caracal_models::Llama;

/// A token-level divergence between teacher and student.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Divergence {
    /// Forward KL(p_T‖p_S) (mode covering; the paper's FKL).
    Fkl,
    /// Reverse KL(p_S‖p_T) (mode seeking).
    Rkl,
    /// The generalized JSD with weight β ∈ (0, 1).
    Jsd { beta: f64 },
}

impl Divergence {
    /// `fkl`, `rkl` or `jsd` (with `beta`); TVD and skew-KL are named but not
    /// built yet, and say so.
    pub fn from_name(name: &str, beta: f64) -> Result<Divergence> {
        match name {
            "fkl" => Ok(Divergence::Fkl),
            "rkl" => Ok(Divergence::Rkl),
            "jsd" => {
                if !(beta > 0.0 && beta < 1.0) {
                    caracal_core::bail!(
                        "--beta is {beta}; JSD needs 0 < β < 1 (β = 0 is --loss fkl, β = 1 is --loss rkl)"
                    );
                }
                Ok(Divergence::Jsd { beta })
            }
            "tvd" | "skew-kl" => caracal_core::bail!(
                "--loss {name} has no fused-linear kernel yet; use fkl, rkl or jsd"
            ),
            other => caracal_core::bail!("--loss {other} is unknown; use fkl, rkl or jsd"),
        }
    }

    /// The β of the kernel's generalized JSD.
    pub fn beta(&self) -> f64 {
        match self {
            Divergence::Fkl => 0.0,
            Divergence::Rkl => 1.0,
            Divergence::Jsd { beta } => *beta,
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> String {
        match self {
            Divergence::Fkl => "fkl".into(),
            Divergence::Rkl => "rkl".into(),
            Divergence::Jsd { beta } => format!("jsd-{beta}"),
        }
    }
}

/// The whole objective.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DistillObjective {
    pub divergence: Divergence,
    /// Softmax temperature τ > 0 of both distributions.
    pub temperature: f64,
    /// r: the weight of the distillation term; `1 − r` weighs the
    /// cross-entropy (r = 1: distillation only, r = 0: plain CE).
    pub kd_weight: f64,
}

impl Default for DistillObjective {
    /// FMCHISEL's defaults: JSD β = 0.5, τ = 1, r = 0.5.
    fn default() -> Self {
        DistillObjective {
            divergence: Divergence::Jsd { beta: 0.5 },
            temperature: 1.0,
            kd_weight: 0.5,
        }
    }
}

impl DistillObjective {
    /// One sentence per problem.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            caracal_core::bail!(
                "--temperature is {}; it must be a positive number",
                self.temperature
            );
        }
        if !(0.0..=1.0).contains(&self.kd_weight) {
            caracal_core::bail!(
                "--kd-weight is {}; it must lie in [0, 1] (1: distillation only, 0: cross-entropy only)",
                self.kd_weight
            );
        }
        Ok(())
    }
}

/// The loss and its two parts on one batch.
#[derive(Debug)]
pub struct DistillLoss {
    /// `r·τ²·D + (1 − r)·CE`, differentiable in the student.
    pub loss: Tensor,
    /// `τ²·D` (the divergence term, before the weight r).
    pub kd: f64,
    /// The student's cross-entropy (nats/token).
    pub ce: f64,
}

/// The student's `[N, H]` hidden states and its LM head (tied or not).
fn hidden_and_head(model: &Llama, ids: &Tensor, who: &str) -> Result<(Tensor, Tensor)> {
    let h = model.forward_hidden(ids, None)?;
    let (b, t, d) = h.dims3()?;
    let w = model.lm_head_weight().cloned().ok_or_else(|| {
        Error::invalid(format!(
            "the {who}'s output layer is quantized; load it dequantized to distill"
        ))
    })?;
    Ok((h.reshape((b * t, d))?, w))
}

/// The objective on a batch `ids` `[B, T]` with next-token `targets`
/// `[B, T]` (`ignore_index` where nothing counts: those positions are left
/// out of both terms). The teacher gets no gradient.
pub fn distill_loss(
    student: &Llama,
    teacher: &Llama,
    ids: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
    obj: &DistillObjective,
) -> Result<DistillLoss> {
    let (vs, vt) = (student.config().vocab_size, teacher.config().vocab_size);
    if vs != vt {
        caracal_core::bail!(
            "the teacher has a vocabulary of {vt} tokens and the student {vs}; distillation needs one tokenizer"
        );
    }
    let (xs, ws) = hidden_and_head(student, ids, "student")?;
    let tgt = targets.flatten_all()?.to_dtype(DType::I64)?;
    let r = obj.kd_weight;
    let dev = xs.device().clone();
    let mut loss = Tensor::new(0f32, &dev)?;
    let mut kd = 0.0;
    if r > 0.0 {
        let (xt, wt) = hidden_and_head(teacher, ids, "teacher")?;
        let (xt, wt) = (xt.detach(), wt.detach());
        let d = fused_linear_jsd(
            &xs,
            &ws,
            &xt.to_dtype(xs.dtype())?,
            &wt.to_dtype(ws.dtype())?,
            FljsdOptions {
                temperature: obj.temperature,
                beta: obj.divergence.beta(),
                ignore_index,
                labels: Some(tgt.clone()),
                chunk_rows: None,
            },
        )?;
        let d = (d.to_dtype(DType::F32)? * (obj.temperature * obj.temperature))?;
        kd = d.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        loss = (loss + (d * r)?)?;
    }
    let ce_opts = FlceOptions {
        ce: CeOptions {
            ignore_index,
            reduction: Reduction::Mean,
            ..CeOptions::default()
        },
        ..FlceOptions::default()
    };
    // With r = 1 the cross-entropy is reported, not trained on.
    let (xc, wc) = if r < 1.0 {
        (xs.clone(), ws.clone())
    } else {
        (xs.detach(), ws.detach())
    };
    let ce_t = fused_linear_cross_entropy(&xc, &wc, None, &tgt, &ce_opts)?
        .loss
        .to_dtype(DType::F32)?;
    let ce = ce_t.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if r < 1.0 {
        loss = (loss + (ce_t * (1.0 - r))?)?;
    }
    Ok(DistillLoss { loss, kd, ce })
}
