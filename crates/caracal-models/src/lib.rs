//! The model substrate of caracal: shared transformer pieces (attention)
//! that the capability crates build on.

pub mod attention;

pub use attention::{causal_mask, repeat_kv, scaled_dot_product_attention};
