//! Shared pieces of caracal.
//!
//! Every capability crate builds on these: one error type, atomic file writes,
//! tabular readers, ranking metrics, a seeded random generator, progress
//! reporting and environment knobs for examples.

pub mod atomic;
pub mod error;
pub mod knob;
pub mod metrics;
pub mod parquet_read;
pub mod progress;
pub mod rng;
pub mod table;

pub use atomic::{write_atomic, write_json_atomic};
pub use error::{Error, Result};
pub use rng::Rng;
