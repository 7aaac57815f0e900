//! Checkpoints of any trainer of a causal LM (alignment, RL, distillation)
//! and of the reward model: one safetensors file holding the parameters
//! (`param/<name>`), AdamW's moments (`adam_m/<name>`, `adam_v/<name>`) and,
//! as metadata, the model config and the trainer's own metadata (JSON under
//! a key the trainer chooses), the tokenizer saved beside it. Written
//! atomically (temporary file, fsync, rename), so a run killed at any moment
//! leaves the previous checkpoint or the new one.

use super::checkpoint::{split_state, state_tensors, take_moments};
use super::AdamW;
use crate::hf::TensorMap;
use crate::{st, Llama, LlamaConfig, Tokenizer};
use candle_core::{Device, Tensor};
use caracal_core::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The checkpoint's file name inside a run folder.
pub const FILE: &str = "checkpoint.safetensors";

/// Write a checkpoint atomically: the parameters `vars`, AdamW's moments,
/// the model config and `meta` (as JSON under the metadata key `key`, with
/// AdamW's step count).
pub fn save_state<M: serde::Serialize>(
    path: &Path,
    vars: &[(String, candle_core::Var)],
    opt: &AdamW,
    config: &LlamaConfig,
    key: &str,
    meta: &M,
) -> Result<()> {
    let ts = state_tensors(vars, opt)?;
    let mut md = HashMap::new();
    md.insert("config".to_string(), config.to_json().to_string());
    let info = serde_json::json!({ "adam_t": opt.t, "meta": meta });
    md.insert(key.to_string(), info.to_string());
    caracal_core::write_atomic(path, &st::to_bytes(&ts, md)?)
}

/// A checkpoint read back, before its model is built.
pub struct State<M> {
    pub config: LlamaConfig,
    /// The parameters by Hugging Face name.
    pub params: TensorMap,
    /// AdamW's moments (`adam_m/<name>`, `adam_v/<name>`).
    pub moments: HashMap<String, Tensor>,
    pub adam_t: u64,
    pub meta: M,
}

/// Read a checkpoint written by [`save_state`] under `key`; `what` names
/// the kind of checkpoint in errors, which also name the file.
pub fn load_state<M: serde::de::DeserializeOwned>(
    path: &Path,
    device: &Device,
    key: &str,
    what: &str,
) -> Result<State<M>> {
    let (tensors, md) = st::read(path, device)?;
    let field = |k: &str| -> Result<&String> {
        md.get(k).ok_or_else(|| {
            Error::file(
                path,
                format!("metadata field `{k}` is missing; is this a caracal {what} checkpoint?"),
            )
        })
    };
    let config = LlamaConfig::from_json_str(field("config")?, path)?;
    let info: serde_json::Value = serde_json::from_str(field(key)?).map_err(|e| {
        Error::file(
            path,
            format!("metadata field `{key}` is not valid JSON ({e})"),
        )
    })?;
    let adam_t = info
        .get("adam_t")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| Error::file(path, format!("metadata field `{key}.adam_t` is missing")))?;
    let meta: M =
        serde_json::from_value(info.get("meta").cloned().unwrap_or_default()).map_err(|e| {
            Error::file(
                path,
                format!("metadata field `{key}.meta` is invalid ({e})"),
            )
        })?;
    let (params, moments) = split_state(path, tensors);
    Ok(State {
        config,
        params,
        moments,
        adam_t,
        meta,
    })
}

/// Write the tokenizer next to a checkpoint in `dir` (once) and return the
/// name to record: `bytes` or `tokenizer.json`.
pub fn save_tokenizer(dir: &Path, tok: &Tokenizer) -> Result<String> {
    Ok(match tok {
        Tokenizer::Bytes => "bytes".to_string(),
        t => {
            let p = dir.join("tokenizer.json");
            if !p.exists() {
                t.save(&p)?;
            }
            "tokenizer.json".to_string()
        }
    })
}

/// The tokenizer a checkpoint at `path` records (`bytes` or a file beside it).
pub fn load_tokenizer(path: &Path, name: &str) -> Result<Tokenizer> {
    match name {
        "bytes" => Ok(Tokenizer::Bytes),
        name => {
            let dir = path.parent().unwrap_or(Path::new("."));
            Tokenizer::from_file(dir.join(name))
        }
    }
}

/// The metadata of a policy checkpoint: the trainer's own, plus the
/// tokenizer beside it.
#[derive(serde::Serialize, serde::Deserialize)]
struct PolicyMeta<M> {
    tokenizer: String,
    trainer: M,
}

/// Write a causal-LM policy, its optimizer, its tokenizer (beside it) and
/// the trainer's metadata into `dir/checkpoint.safetensors`, atomically.
pub fn save_policy<M: serde::Serialize>(
    dir: &Path,
    policy: &Llama,
    opt: &AdamW,
    tok: &Tokenizer,
    key: &str,
    meta: &M,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create: {e}")))?;
    let meta = PolicyMeta {
        tokenizer: save_tokenizer(dir, tok)?,
        trainer: meta,
    };
    save_state(
        &dir.join(FILE),
        &policy.named_vars(),
        opt,
        policy.config(),
        key,
        &meta,
    )
}

/// A policy checkpoint read back.
pub struct PolicyState<M> {
    pub policy: Llama,
    pub opt: AdamW,
    pub tokenizer: Tokenizer,
    pub meta: M,
}

/// Read a checkpoint written by [`save_policy`]; `adamw` gives the
/// optimizer's settings from the trainer's metadata.
pub fn load_policy<M: serde::de::DeserializeOwned>(
    path: &Path,
    device: &Device,
    key: &str,
    what: &str,
    adamw: impl Fn(&M) -> super::AdamWConfig,
) -> Result<PolicyState<M>> {
    let State {
        config,
        mut params,
        mut moments,
        adam_t,
        meta,
    } = load_state::<PolicyMeta<M>>(path, device, key, what)?;
    let policy = Llama::from_source(&config, &mut params, device)?;
    let pairs = take_moments(path, &policy.named_vars(), &mut moments)?;
    Ok(PolicyState {
        opt: AdamW {
            cfg: adamw(&meta.trainer),
            t: adam_t,
            moments: pairs,
        },
        tokenizer: load_tokenizer(path, &meta.tokenizer)?,
        policy,
        meta: meta.trainer,
    })
}
