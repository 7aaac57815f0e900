//! Reward models and preference alignment on caracal's Llama substrate.
//!
//! Bradley–Terry reward models with batch-wise sum-to-zero regularization
//! (BSR; Hong et al., "On the Robustness of Reward Models for Language Model
//! Alignment", ICML 2025, arXiv 2505.07271) and their baselines, TRL-format
//! preference data, training and evaluation with the paper's diagnostics,
//! and a synthetic preference world with a known gold reward for the
//! robustness study.
//!
//! ```
//! use caracal_align::loss::RewardObjective;
//! use candle_core::{Device, Tensor};
//! let chosen = Tensor::new(&[1.0f64, 0.5, 2.0, -0.3], &Device::Cpu).unwrap();
//! let rejected = Tensor::new(&[-0.5f64, 0.2, 1.0, -1.0], &Device::Cpu).unwrap();
//! let bsr = RewardObjective { bsr: Some(1e-3), ..Default::default() };
//! let l = bsr.loss(&chosen, &rejected).unwrap().to_scalar::<f64>().unwrap();
//! assert!((l - 0.36857969).abs() < 1e-8);
//! ```

// Losses and metrics.
pub mod advantage;
pub mod diagnostics;
pub mod direct;
pub mod direct_eval;
pub mod eval;
pub mod kto;
pub mod logps;
pub mod loss;

// Data and the model.
pub mod pairs;
pub mod reward_model;
pub mod template;

// Training.
pub mod direct_train;
pub mod kto_train;
pub mod rl;
pub mod train;

// The studies: robustness (BSR), the RLHF experiment, AlphaPO.
pub mod alpha_study;
pub mod rlhf;
pub mod study;
pub mod world;

pub use eval::{evaluate, EvalReport, RewardMetrics};
pub use loss::{PairLoss, RewardObjective};
pub use pairs::{read_pairs, tokenize_pairs, PairStats, PreferencePair, TokenPair};
pub use reward_model::{LoadOptions, PadChoice, RewardModel};
pub use train::{PairTraining, RmTrainOptions, RmTrainer};
