//! Small language models (Behdin et al., "Scaling Down, Serving Fast:
//! Compressing and Deploying Efficient LLMs for Recommendation Systems",
//! arXiv 2502.14305; code linkedin/FMCHISEL): knowledge distillation and
//! structured pruning that physically shrinks the matrices, on caracal's
//! Llama substrate. The paper's pipeline is distill → OSSCAR structured
//! prune → re-distill → quantize.

// Knowledge distillation: token-level divergences and the trainer.
pub mod distill;

// Structured pruning: calibration, OSSCAR, Minitron, magnitude, and the
// smaller model they produce.
pub mod prune;
