//! The model substrate of caracal: a Llama-family decoder (RMSNorm, RoPE
//! with Llama-3 scaling, grouped-query attention, SwiGLU; tied or untied
//! embeddings) whose layers run either caracal's fused kernels or their
//! candle-composed references ([`KernelMode`]; for inference, also
//! candle-nn's own ops in candle-transformers' op order, which reproduces
//! candle's `quantized_llama` on GGUF files); its loaders (Hugging Face
//! `config.json` + safetensors, single or sharded; GGUF `llama` files,
//! quantized through `QMatMul` or dequantized); tokenizers; KV-cache
//! generation; a sequence-classification head; and the training loop
//! (AdamW, warmup + cosine, clipping, accumulation, atomic checkpoints,
//! exact resumption).
//!
//! ```
//! use caracal_models::{KernelMode, Llama, LlamaConfig};
//! use candle_core::{DType, Device, Tensor};
//! let cfg = LlamaConfig::tiny(256, 32, 2);
//! let model = Llama::random(&cfg, 0, DType::F32, &Device::Cpu).unwrap();
//! let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
//! let fused = model.logits(&ids).unwrap();
//! let reference = model.clone().with_mode(KernelMode::Reference).logits(&ids).unwrap();
//! assert_eq!(fused.dims(), &[1, 3, 256]);
//! let diff = (fused - reference).unwrap().abs().unwrap().max_all().unwrap();
//! assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
//! ```

// Shared transformer pieces.
pub mod attention;
pub mod kv_cache;
pub mod linear;
pub mod rotary;

// The model.
pub mod classify;
pub mod config;
pub mod generate;
pub mod kernel_mode;
pub mod model;

// Files and text.
pub mod gguf;
pub mod hf;
pub mod load;
pub mod st;
pub mod tokenizer;

// Training.
pub mod train;

pub use attention::{
    causal_attention_fused, causal_mask, causal_mask_offset, repeat_kv,
    scaled_dot_product_attention,
};
pub use classify::{HeadInit, SequenceClassifier};
pub use config::{Llama3Scaling, LlamaConfig};
pub use generate::{generate, GenerateOptions, Sampling};
pub use gguf::GgufWeights;
pub use kernel_mode::KernelMode;
pub use kv_cache::KvCache;
pub use linear::Linear;
pub use load::load_model;
pub use model::{Llama, Tap, TapFn, WeightSource};
pub use tokenizer::Tokenizer;
