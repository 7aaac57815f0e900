//! Reward-model training checkpoints: one safetensors file holding the
//! parameters (`param/<name>`, the head as `param/score.weight`), AdamW's
//! moments (`adam_m/<name>`, `adam_v/<name>`) and, as metadata, the model
//! config, the options, the step, the pad id and the tokenizer. Written
//! atomically (temporary file, fsync, rename), so a run killed at any
//! moment leaves the previous checkpoint or the new one.

use super::RmTrainOptions;
use crate::reward_model::RewardModel;
use candle_core::Device;
use caracal_core::{Error, Result};
use caracal_models::train::checkpoint::{split_state, state_tensors, take_moments};
use caracal_models::train::AdamW;
use caracal_models::{st, Llama, LlamaConfig, SequenceClassifier, Tokenizer};
use std::collections::HashMap;
use std::path::Path;

/// The checkpoint's file name inside a run folder.
pub const FILE: &str = "checkpoint.safetensors";

/// What a checkpoint records besides tensors.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RmCheckpointMeta {
    pub opts: RmTrainOptions,
    /// Optimizer steps completed.
    pub step: usize,
    /// Total optimizer steps of the run.
    pub total_steps: usize,
    /// Training pairs kept after filtering (checked on resume).
    pub train_pairs: usize,
    pub pad_id: u32,
    pub eos_text: Option<String>,
    /// `bytes`, or a `tokenizer.json` next to the checkpoint.
    pub tokenizer: String,
}

/// Write a checkpoint atomically; the tokenizer goes next to it.
pub fn save(path: &Path, rm: &RewardModel, opt: &AdamW, meta: &RmCheckpointMeta) -> Result<()> {
    let ts = state_tensors(&rm.clf.named_vars(), opt)?;
    let mut md = HashMap::new();
    md.insert(
        "config".to_string(),
        rm.clf.model.config().to_json().to_string(),
    );
    let info = serde_json::json!({ "adam_t": opt.t, "meta": meta });
    md.insert("caracal_rm".to_string(), info.to_string());
    caracal_core::write_atomic(path, &st::to_bytes(&ts, md)?)
}

/// A loaded checkpoint.
pub struct Loaded {
    pub model: RewardModel,
    pub opt: AdamW,
    pub meta: RmCheckpointMeta,
}

/// Read a checkpoint written by [`save`]; errors name the file.
pub fn load(path: &Path, device: &Device) -> Result<Loaded> {
    let (tensors, md) = st::read(path, device)?;
    let field = |k: &str| -> Result<&String> {
        md.get(k).ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "metadata field `{k}` is missing; is this a caracal reward-model checkpoint?"
                ),
            )
        })
    };
    let config = LlamaConfig::from_json_str(field("config")?, path)?;
    let info: serde_json::Value = serde_json::from_str(field("caracal_rm")?).map_err(|e| {
        Error::file(
            path,
            format!("metadata field `caracal_rm` is not valid JSON ({e})"),
        )
    })?;
    let adam_t = info
        .get("adam_t")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| Error::file(path, "metadata field `caracal_rm.adam_t` is missing"))?;
    let meta: RmCheckpointMeta =
        serde_json::from_value(info.get("meta").cloned().unwrap_or_default()).map_err(|e| {
            Error::file(
                path,
                format!("metadata field `caracal_rm.meta` is invalid ({e})"),
            )
        })?;
    let (mut params, mut moments) = split_state(path, tensors);
    let model = Llama::from_source_backbone(&config, &mut params, device)?;
    let score = params
        .take("score.weight")?
        .ok_or_else(|| Error::file(path, "tensor `param/score.weight` is missing"))?;
    let clf = SequenceClassifier::with_head(model, score, meta.pad_id)?;
    let tokenizer = match meta.tokenizer.as_str() {
        "bytes" => Tokenizer::Bytes,
        name => {
            let dir = path.parent().unwrap_or(Path::new("."));
            Tokenizer::from_file(dir.join(name))?
        }
    };
    let pairs = take_moments(path, &clf.named_vars(), &mut moments)?;
    let opt = AdamW {
        cfg: meta.opts.train.adamw.clone(),
        t: adam_t,
        moments: pairs,
    };
    Ok(Loaded {
        model: RewardModel {
            clf,
            tokenizer,
            eos_text: meta.eos_text.clone(),
            fresh_head: false,
            notes: Vec::new(),
        },
        opt,
        meta,
    })
}
