//! Training checkpoints: one safetensors file holding the parameters
//! (`param/<name>`), AdamW's moments (`adam_m/<name>`, `adam_v/<name>`) and,
//! as metadata, the model config, the training options and the step. It is
//! written atomically (temporary file, fsync, rename), so a run killed at
//! any moment leaves either the previous checkpoint or the new one.

use super::optim::AdamW;
use super::trainer::TrainOptions;
use crate::config::LlamaConfig;
use crate::hf::TensorMap;
use crate::kernel_mode::KernelMode;
use crate::model::Llama;
use crate::st;
use candle_core::{DType, Device, Tensor, Var};
use caracal_core::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// What a checkpoint records besides tensors.
#[derive(Clone, Debug)]
pub struct CheckpointMeta {
    pub config: LlamaConfig,
    pub opts: TrainOptions,
    /// Optimizer steps completed.
    pub step: usize,
    /// `bytes`, or the path of a `tokenizer.json`.
    pub tokenizer: String,
    pub mode: KernelMode,
}

/// Write a checkpoint atomically.
pub fn save(path: &Path, model: &Llama, opt: &AdamW, meta: &CheckpointMeta) -> Result<()> {
    let ts = state_tensors(&model.named_vars(), opt)?;
    let mut md = HashMap::new();
    md.insert("config".to_string(), meta.config.to_json().to_string());
    let info = serde_json::json!({
        "step": meta.step,
        "adam_t": opt.t,
        "tokenizer": meta.tokenizer,
        "mode": meta.mode.name(),
        "opts": meta.opts,
    });
    md.insert("caracal".to_string(), info.to_string());
    caracal_core::write_atomic(path, &st::to_bytes(&ts, md)?)
}

/// Parameters and AdamW's moments as checkpoint tensors: `param/<name>`,
/// `adam_m/<name>`, `adam_v/<name>`.
pub fn state_tensors(vars: &[(String, Var)], opt: &AdamW) -> Result<Vec<(String, Tensor)>> {
    if vars.len() != opt.moments.len() {
        caracal_core::bail!(
            "the optimizer holds {} moment pairs for {} parameters",
            opt.moments.len(),
            vars.len()
        );
    }
    let mut ts = Vec::with_capacity(3 * vars.len());
    for ((name, v), (m, s)) in vars.iter().zip(&opt.moments) {
        ts.push((format!("param/{name}"), v.as_tensor().clone()));
        ts.push((format!("adam_m/{name}"), m.clone()));
        ts.push((format!("adam_v/{name}"), s.clone()));
    }
    Ok(ts)
}

/// A checkpoint's tensors split into the parameters (`param/` stripped; f32)
/// and the rest (the moments).
pub fn split_state(
    path: &Path,
    tensors: HashMap<String, Tensor>,
) -> (TensorMap, HashMap<String, Tensor>) {
    let mut params = TensorMap::new(path.to_path_buf(), DType::F32);
    let mut rest = HashMap::new();
    for (n, t) in tensors {
        if let Some(p) = n.strip_prefix("param/") {
            params.insert(p.to_string(), t, path.to_path_buf());
        } else {
            rest.insert(n, t);
        }
    }
    (params, rest)
}

/// AdamW's moments for `vars`, taken from a checkpoint's tensors with their
/// shapes checked; errors name the file.
pub fn take_moments(
    path: &Path,
    vars: &[(String, Var)],
    moments: &mut HashMap<String, Tensor>,
) -> Result<Vec<(Tensor, Tensor)>> {
    let mut pairs = Vec::with_capacity(vars.len());
    for (name, v) in vars {
        let mut take = |k: String| -> Result<Tensor> {
            let t = moments
                .remove(&k)
                .ok_or_else(|| Error::file(path, format!("tensor `{k}` is missing")))?;
            if t.dims() != v.dims() {
                return Err(Error::file(
                    path,
                    format!(
                        "tensor `{k}` has shape {:?} but its parameter has {:?}",
                        t.dims(),
                        v.dims()
                    ),
                ));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        pairs.push((
            take(format!("adam_m/{name}"))?,
            take(format!("adam_v/{name}"))?,
        ));
    }
    Ok(pairs)
}

/// A loaded checkpoint: the model, AdamW's state and the metadata.
pub struct Loaded {
    pub model: Llama,
    pub opt: AdamW,
    pub meta: CheckpointMeta,
}

/// Read a checkpoint written by [`save`]; shapes are checked against the
/// config it holds, and every error names the file.
pub fn load(path: &Path, device: &Device) -> Result<Loaded> {
    let (tensors, md) = st::read(path, device)?;
    let field = |k: &str| -> Result<&String> {
        md.get(k).ok_or_else(|| {
            Error::file(
                path,
                format!("metadata field `{k}` is missing; is this a caracal checkpoint?"),
            )
        })
    };
    let config = LlamaConfig::from_json_str(field("config")?, path)?;
    let info: serde_json::Value = serde_json::from_str(field("caracal")?).map_err(|e| {
        Error::file(
            path,
            format!("metadata field `caracal` is not valid JSON ({e})"),
        )
    })?;
    let get_u = |k: &str| -> Result<u64> {
        info.get(k).and_then(|v| v.as_u64()).ok_or_else(|| {
            Error::file(
                path,
                format!("metadata field `caracal.{k}` is missing or not an integer"),
            )
        })
    };
    let step = get_u("step")? as usize;
    let adam_t = get_u("adam_t")?;
    let opts: TrainOptions = serde_json::from_value(info.get("opts").cloned().unwrap_or_default())
        .map_err(|e| {
            Error::file(
                path,
                format!("metadata field `caracal.opts` is invalid ({e})"),
            )
        })?;
    let tokenizer = info
        .get("tokenizer")
        .and_then(|v| v.as_str())
        .unwrap_or("bytes")
        .to_string();
    let mode = info
        .get("mode")
        .and_then(|v| v.as_str())
        .unwrap_or("fused")
        .parse::<KernelMode>()
        .map_err(|e| Error::file(path, e.to_string()))?;

    let (mut params, mut moments) = split_state(path, tensors);
    let model = Llama::from_source(&config, &mut params, device)?.with_mode(mode);
    let pairs = take_moments(path, &model.named_vars(), &mut moments)?;
    let opt = AdamW {
        cfg: opts.adamw.clone(),
        t: adam_t,
        moments: pairs,
    };
    Ok(Loaded {
        model,
        opt,
        meta: CheckpointMeta {
            config,
            opts,
            step,
            tokenizer,
            mode,
        },
    })
}
