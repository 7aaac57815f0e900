//! The structured-pruning pipeline: calibrate once, choose each layer's
//! kept FFN neurons and KV-head groups by the chosen method, and build the
//! smaller model.
//!
//! Every layer keeps the same number of neurons and of KV-head groups (a
//! Hugging Face config has one `intermediate_size` and one head count).
//! OSSCAR refits the next weight (`down_proj`, `o_proj`) by least squares;
//! Minitron and magnitude keep the surviving weights as they are (their
//! papers retrain or distill afterwards instead).

use crate::prune::apply::{pruned_config, shrink, LayerCut};
use crate::prune::calib::{calibrate, CalibOptions, Calibration};
use crate::prune::groups::{flatten, kv_group_channels, neuron_groups};
use crate::prune::importance;
use crate::prune::mat::{rows, to_mat};
use crate::prune::osscar::{self, damped, relative_error, OsscarOptions};
use crate::prune::report::{CalibSummary, LayerReport, MatrixReport, PruneReport};
use caracal_core::Result;
use caracal_models::{Llama, LlamaConfig};
use faer::Mat;
use std::collections::HashMap;

/// How the kept groups are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// OSSCAR: greedy elimination + local search on the layer's
    /// reconstruction error, then the least-squares refit.
    Osscar,
    /// Minitron's activation importance, no refit.
    Minitron,
    /// Weight magnitude (L2 norm of the group's weights), no refit.
    Magnitude,
}

impl Method {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Osscar => "osscar",
            Method::Minitron => "minitron",
            Method::Magnitude => "magnitude",
        }
    }

    /// Parse `osscar`, `minitron` or `magnitude`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "osscar" => Ok(Method::Osscar),
            "minitron" => Ok(Method::Minitron),
            "magnitude" => Ok(Method::Magnitude),
            other => caracal_core::bail!(
                "unknown pruning method `{other}`; expected osscar, minitron or magnitude"
            ),
        }
    }
}

/// Options of [`prune_structured`].
#[derive(Clone, Debug, PartialEq)]
pub struct PruneOptions {
    pub method: Method,
    /// Fraction of FFN neurons kept, in (0, 1].
    pub ffn_keep: f64,
    /// KV-head groups kept per layer (`None`: all).
    pub kv_groups_keep: Option<usize>,
    pub calib: CalibOptions,
    /// Hessian damping as a fraction of the mean diagonal (OSSCAR only).
    pub damping: f64,
    pub osscar: OsscarOptions,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            method: Method::Osscar,
            ffn_keep: 0.5,
            kv_groups_keep: None,
            calib: CalibOptions::default(),
            damping: 0.01,
            osscar: OsscarOptions::default(),
        }
    }
}

/// The target sizes of every layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// FFN neurons kept.
    pub neurons: usize,
    /// KV-head groups kept.
    pub kv_groups: usize,
}

impl Target {
    /// Check the requested sizes against the model; each error is one
    /// sentence naming the option.
    pub fn resolve(
        cfg: &LlamaConfig,
        ffn_keep: f64,
        kv_groups_keep: Option<usize>,
    ) -> Result<Self> {
        if !(ffn_keep.is_finite() && ffn_keep > 0.0 && ffn_keep <= 1.0) {
            caracal_core::bail!(
                "--ffn-keep is {ffn_keep}, but it is the fraction of FFN neurons kept and must be in (0, 1]"
            );
        }
        let (hq, hk) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        if hk == 0 || !hq.is_multiple_of(hk) {
            caracal_core::bail!(
                "the model's {hk} KV heads do not divide its {hq} query heads, so its KV-head groups are not defined"
            );
        }
        let kv_groups = kv_groups_keep.unwrap_or(hk);
        if kv_groups == 0 {
            caracal_core::bail!("--kv-groups-keep is 0; keep at least one KV-head group");
        }
        if kv_groups > hk {
            caracal_core::bail!(
                "--kv-groups-keep is {kv_groups}, but the model has only {hk} KV-head groups per layer"
            );
        }
        let neurons = ((ffn_keep * cfg.intermediate_size as f64).round() as usize)
            .clamp(1, cfg.intermediate_size);
        Ok(Target { neurons, kv_groups })
    }
}

/// The pruned model and its report.
#[derive(Clone, Debug)]
pub struct Pruned {
    pub model: Llama,
    pub report: PruneReport,
}

/// One matrix's pruning: the kept groups, the new weight as Hugging Face
/// orients it (`[out, kept inputs]`), and the report.
struct MatrixCut {
    kept: Vec<usize>,
    weight: Mat<f64>,
    report: MatrixReport,
    swaps: usize,
}

/// Prune the input groups of one matrix `w_hf` (`[out, in]`).
fn cut_matrix(
    method: Method,
    gram: &Mat<f64>,
    w_hf: &Mat<f64>,
    groups: &[Vec<usize>],
    keep: usize,
    scores: impl FnOnce() -> Result<Vec<f64>>,
    opts: &PruneOptions,
) -> Result<MatrixCut> {
    let n = groups.len();
    if keep == n {
        return Ok(MatrixCut {
            kept: (0..n).collect(),
            weight: w_hf.clone(),
            report: MatrixReport {
                kept: n,
                of: n,
                rel_error: 0.0,
            },
            swaps: 0,
        });
    }
    let w = w_hf.transpose().to_owned();
    let (kept, w_hat, swaps) = match method {
        Method::Osscar => {
            let h = damped(gram, opts.damping);
            let s = osscar::select(&h, &w, groups, keep, &opts.osscar)?;
            (s.kept, s.weight, s.swaps)
        }
        Method::Minitron | Method::Magnitude => {
            let kept = importance::top_k(&scores()?, keep);
            let ch = flatten(groups, &kept);
            let mut w_hat = Mat::zeros(w.nrows(), w.ncols());
            for &c in &ch {
                for j in 0..w.ncols() {
                    w_hat[(c, j)] = w[(c, j)];
                }
            }
            (kept, w_hat, 0)
        }
    };
    let rel_error = relative_error(gram, &w, &w_hat);
    let weight = rows(&w_hat, &flatten(groups, &kept)).transpose().to_owned();
    Ok(MatrixCut {
        kept,
        weight,
        report: MatrixReport {
            kept: keep,
            of: n,
            rel_error,
        },
        swaps,
    })
}

/// Prune `model` to the sizes of `opts`, calibrating on `tokens` (token
/// ids of the calibration text, as the model's tokenizer encodes it).
pub fn prune_structured(model: &Llama, tokens: &[u32], opts: &PruneOptions) -> Result<Pruned> {
    let cfg = model.config().clone();
    let target = Target::resolve(&cfg, opts.ffn_keep, opts.kv_groups_keep)?;
    if !(opts.damping.is_finite() && opts.damping > 0.0) {
        caracal_core::bail!("the damping is {}; it must be positive", opts.damping);
    }
    model.ensure_trainable().map_err(|_| {
        caracal_core::Error::invalid(
            "the model has quantized weights; load it dequantized to prune it",
        )
    })?;
    let calib = calibrate(model, tokens, &opts.calib)?;
    prune_with_calibration(model, &calib, target, opts)
}

/// [`prune_structured`] from statistics already collected (so several
/// methods can share one calibration pass).
pub fn prune_with_calibration(
    model: &Llama,
    calib: &Calibration,
    target: Target,
    opts: &PruneOptions,
) -> Result<Pruned> {
    let cfg = model.config().clone();
    if calib.layers.len() != cfg.num_hidden_layers {
        caracal_core::bail!(
            "the calibration has {} layers but the model {}",
            calib.layers.len(),
            cfg.num_hidden_layers
        );
    }
    let vars: HashMap<String, Mat<f64>> = model
        .named_vars()
        .into_iter()
        .filter(|(n, _)| n.contains(".self_attn.") || n.contains(".mlp."))
        .map(|(n, v)| Ok((n, to_mat(v.as_tensor())?)))
        .collect::<Result<_>>()?;
    let get = |l: usize, n: &str| -> Result<&Mat<f64>> {
        vars.get(&format!("model.layers.{l}.{n}.weight"))
            .ok_or_else(|| {
                caracal_core::Error::invalid(format!(
                    "layer {l}'s {n} is quantized; load the model dequantized to prune it"
                ))
            })
    };
    let ngroups = neuron_groups(cfg.intermediate_size);
    let kvgroups = kv_group_channels(&cfg);
    let mut cuts = Vec::with_capacity(cfg.num_hidden_layers);
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    let mut swaps = 0;
    let pb = caracal_core::progress::bar(cfg.num_hidden_layers as u64, opts.method.name());
    for (l, st) in calib.layers.iter().enumerate() {
        let down = cut_matrix(
            opts.method,
            &st.down_gram,
            get(l, "mlp.down_proj")?,
            &ngroups,
            target.neurons,
            || {
                Ok(match opts.method {
                    Method::Minitron => importance::minitron_neurons(st),
                    _ => importance::magnitude_neurons(
                        get(l, "mlp.gate_proj")?,
                        get(l, "mlp.up_proj")?,
                        get(l, "mlp.down_proj")?,
                    ),
                })
            },
            opts,
        )?;
        let o = cut_matrix(
            opts.method,
            &st.o_gram,
            get(l, "self_attn.o_proj")?,
            &kvgroups,
            target.kv_groups,
            || {
                Ok(match opts.method {
                    Method::Minitron => importance::minitron_kv_groups(st, &cfg),
                    _ => importance::magnitude_kv_groups(
                        &cfg,
                        get(l, "self_attn.q_proj")?,
                        get(l, "self_attn.k_proj")?,
                        get(l, "self_attn.v_proj")?,
                        get(l, "self_attn.o_proj")?,
                    ),
                })
            },
            opts,
        )?;
        swaps += down.swaps + o.swaps;
        layers.push(LayerReport {
            layer: l,
            down_proj: down.report,
            o_proj: o.report,
        });
        cuts.push(LayerCut {
            neurons: down.kept,
            down: down.weight,
            kv_groups: o.kept,
            o: o.weight,
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    let model = shrink(model, &cuts)?;
    let after = pruned_config(&cfg, target.neurons, target.kv_groups);
    let report = PruneReport::new(
        opts.method.name(),
        &cfg,
        &after,
        CalibSummary {
            windows: calib.windows,
            seq_len: calib.seq_len,
            tokens: calib.tokens,
        },
        layers,
        swaps,
    );
    Ok(Pruned { model, report })
}
