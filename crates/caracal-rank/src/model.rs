//! What trainers, evaluators and servers need from a ranking model.

use crate::batch::{Batch, Example};
use crate::params::Params;
use candle_core::Tensor;
use caracal_core::Result;

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
