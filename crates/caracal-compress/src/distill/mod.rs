//! Knowledge distillation (white-box, token-level logits): the objective
//! ([`loss`]), the trainer ([`train`]) and the study of distillation
//! against plain cross-entropy ([`study`]).

pub mod loss;
pub mod study;
pub mod train;

pub use loss::{distill_loss, DistillLoss, DistillObjective, Divergence};
pub use train::{evaluate_student, DistillEval, DistillOptions, DistillStepStats, DistillTrainer};
