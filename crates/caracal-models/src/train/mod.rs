//! Training a causal language model: data, AdamW, the schedule,
//! checkpoints and the loop.

pub mod checkpoint;
pub mod corpus;
pub mod data;
pub mod grads;
pub mod optim;
pub mod policy_checkpoint;
pub mod schedule;
pub mod trainer;

pub use corpus::grammar_corpus;
pub use data::TokenData;
pub use optim::{AdamW, AdamWConfig};
pub use schedule::{CosineSchedule, LinearSchedule};
pub use trainer::{evaluate, truncate_log, EvalStats, StepStats, TrainOptions, Trainer};
