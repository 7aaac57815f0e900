//! What trainers, evaluators and servers need from a ranking model.

use crate::batch::{Batch, Example};
use crate::params::{Params, Stored};
use crate::vocab::Vocabs;
use candle_core::Tensor;
use caracal_core::Result;
use std::collections::BTreeMap;

/// A model that scores the candidates of tokenized sessions.
pub trait Scorer {
    /// Its trainable parameters.
    fn params(&self) -> &Params;
    /// Tokenize sessions the way this model reads them (history length,
    /// candidate attention).
    fn batch(&self, examples: &[Example]) -> Result<Batch>;
    /// Logits `[B, N, T]` for every candidate slot and task.
    fn logits(&self, batch: &Batch) -> Result<Tensor>;
    /// The longest history it reads.
    fn max_history(&self) -> usize;
    /// Number of task heads.
    fn n_tasks(&self) -> usize;
    /// A short name for tables.
    fn name(&self) -> String;
    /// Its configuration, vocabularies and weights as JSON (a checkpoint).
    fn checkpoint(&self) -> Result<serde_json::Value>;
}

/// `σ(x) = (1 + tanh(x/2)) / 2`: a logistic sigmoid whose gradient is finite
/// everywhere (candle has no sigmoid op).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(((x * 0.5)?.tanh()? + 1.0)?.affine(0.5, 0.0)?)
}

/// A checkpoint's JSON: the model's tag, its configuration, vocabularies
/// and weights (what [`Scorer::checkpoint`] returns).
pub fn checkpoint_json<C: serde::Serialize>(
    model: &str,
    cfg: &C,
    vocabs: &Vocabs,
    params: &Params,
) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "model": model,
        "config": cfg,
        "vocabs": vocabs,
        "params": params.to_stored()?,
    }))
}

/// The parts of a checkpoint written by [`checkpoint_json`]: the
/// configuration, the re-indexed vocabularies and the stored weights, or a
/// one-sentence error naming `what` (e.g. "LiGR") when `v` is not one.
pub fn checkpoint_parts<C: serde::de::DeserializeOwned>(
    v: &serde_json::Value,
    what: &str,
) -> Result<(C, Vocabs, BTreeMap<String, Stored>)> {
    let bad = |e: serde_json::Error| {
        caracal_core::Error::invalid(format!("not a {what} checkpoint: {e}"))
    };
    let cfg: C = serde_json::from_value(v["config"].clone()).map_err(bad)?;
    let mut vocabs: Vocabs = serde_json::from_value(v["vocabs"].clone()).map_err(bad)?;
    vocabs.reindex();
    let stored = serde_json::from_value(v["params"].clone()).map_err(bad)?;
    Ok((cfg, vocabs, stored))
}
