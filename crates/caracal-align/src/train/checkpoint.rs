//! Training checkpoints of caracal-align's trainers, and the reward model's:
//! one safetensors file holding the
//! parameters (`param/<name>`, the head as `param/score.weight`), AdamW's
//! moments (`adam_m/<name>`, `adam_v/<name>`) and, as metadata, the model
//! config, the options, the step, the pad id and the tokenizer. Written
//! atomically (temporary file, fsync, rename), so a run killed at any
//! moment leaves the previous checkpoint or the new one.

use super::RmTrainOptions;
use crate::reward_model::RewardModel;
use candle_core::Device;
use caracal_core::{Error, Result};
use caracal_models::train::checkpoint::take_moments;
pub use caracal_models::train::policy_checkpoint::{
    load_policy, load_state, load_tokenizer, save_policy, save_state, save_tokenizer, PolicyState,
    State, FILE,
};
use caracal_models::train::AdamW;
use caracal_models::{Llama, SequenceClassifier};
use std::path::Path;

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

/// Write a reward-model checkpoint atomically.
pub fn save(path: &Path, rm: &RewardModel, opt: &AdamW, meta: &RmCheckpointMeta) -> Result<()> {
    save_state(
        path,
        &rm.clf.named_vars(),
        opt,
        rm.clf.model.config(),
        KEY,
        meta,
    )
}

/// The metadata key of reward-model checkpoints.
const KEY: &str = "caracal_rm";

/// A loaded checkpoint.
pub struct Loaded {
    pub model: RewardModel,
    pub opt: AdamW,
    pub meta: RmCheckpointMeta,
}

/// Read a checkpoint written by [`save`]; errors name the file.
pub fn load(path: &Path, device: &Device) -> Result<Loaded> {
    let State {
        config,
        mut params,
        mut moments,
        adam_t,
        meta,
    } = load_state::<RmCheckpointMeta>(path, device, KEY, "reward-model")?;
    let model = Llama::from_source_backbone(&config, &mut params, device)?;
    let score = params
        .take("score.weight")?
        .ok_or_else(|| Error::file(path, "tensor `param/score.weight` is missing"))?;
    let clf = SequenceClassifier::with_head(model, score, meta.pad_id)?;
    let tokenizer = load_tokenizer(path, &meta.tokenizer)?;
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
