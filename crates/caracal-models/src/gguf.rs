//! GGUF files of the `llama` architecture (llama.cpp's format, read by
//! candle): hyper-parameters from the `llama.*` metadata, weights either
//! kept quantized and run through candle's `QMatMul`, or dequantized to f32
//! (then trainable). The BPE vocabulary inside the file becomes a
//! `tokenizers` tokenizer.
//!
//! llama.cpp's converter permutes the rows of `attn_q`/`attn_k` into the
//! interleaved RoPE layout; the model undoes it on the projected heads
//! (a fixed permutation of the head dimension, applied to queries and keys
//! alike, so attention scores are unchanged).

use crate::config::LlamaConfig;
use crate::linear::Linear;
use crate::model::{Llama, WeightSource};
use crate::tokenizer::Tokenizer;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Tensor, Var};
use caracal_core::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How GGUF weights are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufWeights {
    /// Linear weights stay quantized (`QMatMul`, activations quantized on
    /// the fly); inference only.
    Quantized,
    /// Every tensor is dequantized to f32.
    Dequantized,
}

/// The GGUF tensor name of a Hugging Face Llama tensor name.
pub fn gguf_name(hf: &str) -> String {
    if hf == "model.embed_tokens.weight" {
        return "token_embd.weight".into();
    }
    if hf == "model.norm.weight" {
        return "output_norm.weight".into();
    }
    if hf == "lm_head.weight" {
        return "output.weight".into();
    }
    if let Some(rest) = hf.strip_prefix("model.layers.") {
        if let Some((l, part)) = rest.split_once('.') {
            let g = match part {
                "input_layernorm.weight" => "attn_norm.weight",
                "post_attention_layernorm.weight" => "ffn_norm.weight",
                "self_attn.q_proj.weight" => "attn_q.weight",
                "self_attn.k_proj.weight" => "attn_k.weight",
                "self_attn.v_proj.weight" => "attn_v.weight",
                "self_attn.o_proj.weight" => "attn_output.weight",
                "mlp.gate_proj.weight" => "ffn_gate.weight",
                "mlp.up_proj.weight" => "ffn_up.weight",
                "mlp.down_proj.weight" => "ffn_down.weight",
                other => other,
            };
            return format!("blk.{l}.{g}");
        }
    }
    hf.to_string()
}

/// An open GGUF file.
pub struct GgufFile {
    path: PathBuf,
    file: File,
    content: Content,
}

impl GgufFile {
    /// Open and parse the header; errors name the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut file =
            File::open(&path).map_err(|e| Error::file(&path, format!("cannot open: {e}")))?;
        let content = Content::read(&mut file).map_err(|e| {
            Error::file(
                &path,
                format!(
                    "is not a valid GGUF file (truncated or corrupted?): {}",
                    crate::st::brief(&e)
                ),
            )
        })?;
        Ok(GgufFile {
            path,
            file,
            content,
        })
    }

    /// The parsed header (metadata and tensor infos).
    pub fn content(&self) -> &Content {
        &self.content
    }

    fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn meta_u(&self, key: &str) -> Result<Option<usize>> {
        match self.meta(key) {
            None => Ok(None),
            Some(v) => v
                .to_u64()
                .map(|x| Some(x as usize))
                .or_else(|_| v.to_u32().map(|x| Some(x as usize)))
                .map_err(|_| {
                    Error::file(
                        &self.path,
                        format!("metadata field `{key}` is not an integer"),
                    )
                }),
        }
    }

    fn meta_f(&self, key: &str) -> Result<Option<f64>> {
        match self.meta(key) {
            None => Ok(None),
            Some(v) => v
                .to_f32()
                .map(|x| Some(x as f64))
                .or_else(|_| v.to_f64().map(Some))
                .map_err(|_| {
                    Error::file(
                        &self.path,
                        format!("metadata field `{key}` is not a number"),
                    )
                }),
        }
    }

    /// The model config from the `llama.*` metadata; errors for other
    /// architectures.
    pub fn config(&self) -> Result<LlamaConfig> {
        let arch = match self.meta("general.architecture") {
            Some(v) => v
                .to_string()
                .map_err(|_| {
                    Error::file(
                        &self.path,
                        "metadata field `general.architecture` is not a string",
                    )
                })?
                .clone(),
            None => {
                return Err(Error::file(
                    &self.path,
                    "metadata field `general.architecture` is missing",
                ))
            }
        };
        if arch != "llama" {
            return Err(Error::file(
                &self.path,
                format!(
                    "metadata field `general.architecture` is `{arch}`; only `llama` is supported"
                ),
            ));
        }
        let req = |k: &str| -> Result<usize> {
            self.meta_u(k)?
                .ok_or_else(|| Error::file(&self.path, format!("metadata field `{k}` is missing")))
        };
        let hidden = req("llama.embedding_length")?;
        let heads = req("llama.attention.head_count")?;
        let vocab = match self.content.tensor_infos.get("token_embd.weight") {
            Some(t) => t.shape.dims()[0],
            None => {
                return Err(Error::file(
                    &self.path,
                    "tensor `token_embd.weight` is missing",
                ))
            }
        };
        let tok = |k: &str| -> Result<Option<u32>> { Ok(self.meta_u(k)?.map(|x| x as u32)) };
        let cfg = LlamaConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: req("llama.feed_forward_length")?,
            num_hidden_layers: req("llama.block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: self
                .meta_u("llama.attention.head_count_kv")?
                .unwrap_or(heads),
            head_dim: self
                .meta_u("llama.rope.dimension_count")?
                .unwrap_or(hidden / heads.max(1)),
            rms_norm_eps: self
                .meta_f("llama.attention.layer_norm_rms_epsilon")?
                .unwrap_or(1e-5),
            rope_theta: self.meta_f("llama.rope.freq_base")?.unwrap_or(10_000.0),
            rope_scaling: None,
            max_position_embeddings: self.meta_u("llama.context_length")?.unwrap_or(2048),
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            bos_token_id: tok("tokenizer.ggml.bos_token_id")?,
            eos_token_id: tok("tokenizer.ggml.eos_token_id")?,
            pad_token_id: None,
        };
        cfg.validate()
            .map_err(|e| Error::file(&self.path, e.to_string()))?;
        Ok(cfg)
    }

    /// Read one tensor as a `QTensor`.
    pub fn qtensor(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        if !self.content.tensor_infos.contains_key(name) {
            return Err(Error::file(
                &self.path,
                format!("tensor `{name}` is missing"),
            ));
        }
        self.content
            .tensor(&mut self.file, name, device)
            .map_err(|e| {
                Error::file(
                    &self.path,
                    format!(
                        "tensor `{name}` cannot be read (truncated or corrupted?): {}",
                        crate::st::brief(&e)
                    ),
                )
            })
    }

    /// The tokenizer stored in the file (`tokenizer.ggml.*`).
    ///
    /// candle builds GPT-2-style byte-level BPE vocabularies (`tokenizer.ggml.pre`
    /// other than qwen2/llama3/smaug-bpe/lfm2) with a pre-tokenizer that adds
    /// a prefix space, so "The" became "ĠThe". llama.cpp and transformers' GGUF
    /// converter add one only when `tokenizer.ggml.add_space_prefix` is true;
    /// the pre-tokenizer is rebuilt that way, so the ids match transformers'
    /// (tested on SmolLM2 in caracal-align's `smollm2_rm`).
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        use candle_core::quantized::tokenizer::TokenizerFromGguf;
        let mut t = tokenizers::Tokenizer::from_gguf(&self.content).map_err(|e| {
            Error::file(
                &self.path,
                format!("has no usable tokenizer: {}", crate::st::brief(&e)),
            )
        })?;
        let text = |k: &str| self.meta(k).and_then(|v| v.to_string().ok()).cloned();
        let gpt2 = text("tokenizer.ggml.model").as_deref() == Some("gpt2");
        let pre = text("tokenizer.ggml.pre").unwrap_or_default();
        if gpt2 && !matches!(pre.as_str(), "qwen2" | "smaug-bpe" | "lfm2" | "llama3") {
            let space = self
                .meta("tokenizer.ggml.add_space_prefix")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false);
            t.with_pre_tokenizer(Some(
                tokenizers::pre_tokenizers::byte_level::ByteLevel::new(space, true, true),
            ));
        }
        Ok(Tokenizer::Hf(Box::new(t)))
    }
}

struct Source<'a> {
    g: &'a mut GgufFile,
    how: GgufWeights,
    device: Device,
}

impl Source<'_> {
    fn check(&self, name: &str, t: &QTensor, shape: &[usize]) -> Result<()> {
        if t.shape().dims() != shape {
            return Err(Error::file(
                &self.g.path,
                format!(
                    "tensor `{name}` has shape {:?} but the metadata implies {shape:?}",
                    t.shape().dims()
                ),
            ));
        }
        Ok(())
    }
}

impl WeightSource for Source<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let g = gguf_name(name);
        let q = self.g.qtensor(&g, &self.device)?;
        self.check(&g, &q, shape)?;
        Ok(q.dequantize(&self.device)?.to_dtype(DType::F32)?)
    }

    fn linear(&mut self, name: &str, shape: (usize, usize)) -> Result<Linear> {
        let mut g = gguf_name(name);
        if name == "lm_head.weight" && !self.g.content.tensor_infos.contains_key(&g) {
            g = "token_embd.weight".into(); // tied output, as llama.cpp runs it
        }
        let q = self.g.qtensor(&g, &self.device)?;
        self.check(&g, &q, &[shape.0, shape.1])?;
        match self.how {
            GgufWeights::Dequantized => Ok(Linear::Dense(Var::from_tensor(
                &q.dequantize(&self.device)?.to_dtype(DType::F32)?,
            )?)),
            GgufWeights::Quantized => Ok(Linear::Quant(Arc::new(QMatMul::from_qtensor(q)?), shape)),
        }
    }

    fn has(&self, name: &str) -> bool {
        // Quantized: run the tied output through QMatMul as llama.cpp does.
        (name == "lm_head.weight" && self.how == GgufWeights::Quantized)
            || self.g.content.tensor_infos.contains_key(&gguf_name(name))
    }
}

/// Load a `llama` GGUF file as a model and its tokenizer.
pub fn load(
    path: impl AsRef<Path>,
    how: GgufWeights,
    device: &Device,
) -> Result<(Llama, Tokenizer)> {
    let mut g = GgufFile::open(path)?;
    let cfg = g.config()?;
    let tok = if g.meta("tokenizer.ggml.model").is_some() {
        g.tokenizer()?
    } else if cfg.vocab_size == 256 {
        Tokenizer::Bytes
    } else {
        return Err(Error::file(
            &g.path,
            "metadata field `tokenizer.ggml.model` is missing; the file has no tokenizer",
        ));
    };
    let mut src = Source {
        g: &mut g,
        how,
        device: device.clone(),
    };
    let mut model = Llama::from_source(&cfg, &mut src, device)?;
    model.set_qk_interleaved(true);
    Ok((model, tok))
}
