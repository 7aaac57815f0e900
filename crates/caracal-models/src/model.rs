//! The Llama-family decoder (Touvron et al., "LLaMA", 2023, §2.2):
//! pre-norm blocks `x += Attn(RMSNorm(x))`, `x += MLP(RMSNorm(x))` with
//! RoPE on queries and keys, grouped-query attention and a SwiGLU MLP
//! (Shazeer, "GLU Variants Improve Transformer", 2020, eq. 6):
//! `down(silu(gate·x) ⊙ up·x)`.
//!
//! Tensor names follow Hugging Face's `LlamaForCausalLM`.

use crate::attention::{
    candle_order_attention, causal_attention_fused, causal_mask_offset,
    scaled_dot_product_attention,
};
use crate::config::LlamaConfig;
use crate::kernel_mode::KernelMode;
use crate::kv_cache::KvCache;
use crate::linear::Linear;
use crate::rotary;
use candle_core::{DType, Device, Tensor, Var, D};
use caracal_core::{Error, Result};
use caracal_kernels::{CeOptions, FlceOptions, Reduction};

/// Where a model's weights come from: a checkpoint, a random initializer, a
/// GGUF file. `name` is the Hugging Face name; `shape` the expected one.
pub trait WeightSource {
    /// A dense tensor (embeddings, norms, or a linear weight).
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor>;
    /// A linear weight `[out, in]`; dense by default.
    fn linear(&mut self, name: &str, shape: (usize, usize)) -> Result<Linear> {
        Ok(Linear::Dense(Var::from_tensor(
            &self.tensor(name, &[shape.0, shape.1])?,
        )?))
    }
    /// Whether the source holds a separate `lm_head.weight` (else tied).
    fn has(&self, name: &str) -> bool;
}

/// A point inside a decoder block whose activations
/// [`Llama::forward_hidden_with_taps`] shows to its caller: exactly the
/// tensors the block multiplies or adds, so calibration statistics
/// (pruning Hessians `XXᵀ`, activation importances) see what the weights see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tap {
    /// The residual stream entering the block, `[B, T, H]`.
    BlockInput,
    /// The concatenated per-head attention outputs that `o_proj`
    /// multiplies, `[B, T, Hq·D]` (query head `h` in columns
    /// `h·D..(h+1)·D`; it reads key/value head `h / n_rep`).
    OProjInput,
    /// The SwiGLU output `silu(gate·x) ⊙ up·x` that `down_proj`
    /// multiplies, `[B, T, I]`.
    DownProjInput,
}

/// The callback of [`Llama::forward_hidden_with_taps`]: `(layer, tap, x)`.
pub type TapFn<'a> = dyn FnMut(usize, Tap, &Tensor) -> Result<()> + 'a;

/// One block's view of the taps: `(tap, x)`.
type BlockTap<'a> = dyn FnMut(Tap, &Tensor) -> Result<()> + 'a;

/// One decoder block.
#[derive(Clone, Debug)]
struct Block {
    attn_norm: Var,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    mlp_norm: Var,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama-family causal language model.
#[derive(Clone, Debug)]
pub struct Llama {
    cfg: LlamaConfig,
    /// Which kernels every layer runs.
    pub mode: KernelMode,
    embed: Var,
    blocks: Vec<Block>,
    norm: Var,
    /// `None`: tied to the embedding.
    lm_head: Option<Linear>,
    inv_freq: Vec<f64>,
    /// GGUF files store Q/K rows in the interleaved RoPE layout.
    qk_interleaved: bool,
    device: Device,
}

impl Llama {
    /// Build a model, asking `src` for every tensor by its Hugging Face name.
    pub fn from_source(
        cfg: &LlamaConfig,
        src: &mut dyn WeightSource,
        device: &Device,
    ) -> Result<Self> {
        Self::build(cfg, src, device, true)
    }

    /// Build the decoder only, for a model whose output is not the LM head
    /// (Hugging Face's `LlamaForSequenceClassification` stores no
    /// `lm_head.weight`): a separate LM head is read when the source has
    /// one, and otherwise the embedding stands in for it.
    pub fn from_source_backbone(
        cfg: &LlamaConfig,
        src: &mut dyn WeightSource,
        device: &Device,
    ) -> Result<Self> {
        Self::build(cfg, src, device, false)
    }

    fn build(
        cfg: &LlamaConfig,
        src: &mut dyn WeightSource,
        device: &Device,
        need_lm_head: bool,
    ) -> Result<Self> {
        cfg.validate()?;
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let (dq, dkv) = (
            cfg.num_attention_heads * cfg.head_dim,
            cfg.num_key_value_heads * cfg.head_dim,
        );
        let var = |t: Tensor| -> Result<Var> { Ok(Var::from_tensor(&t)?) };
        let embed = var(src.tensor("model.embed_tokens.weight", &[cfg.vocab_size, h])?)?;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            blocks.push(Block {
                attn_norm: var(src.tensor(&format!("{p}.input_layernorm.weight"), &[h])?)?,
                q: src.linear(&format!("{p}.self_attn.q_proj.weight"), (dq, h))?,
                k: src.linear(&format!("{p}.self_attn.k_proj.weight"), (dkv, h))?,
                v: src.linear(&format!("{p}.self_attn.v_proj.weight"), (dkv, h))?,
                o: src.linear(&format!("{p}.self_attn.o_proj.weight"), (h, dq))?,
                mlp_norm: var(src.tensor(&format!("{p}.post_attention_layernorm.weight"), &[h])?)?,
                gate: src.linear(&format!("{p}.mlp.gate_proj.weight"), (i, h))?,
                up: src.linear(&format!("{p}.mlp.up_proj.weight"), (i, h))?,
                down: src.linear(&format!("{p}.mlp.down_proj.weight"), (h, i))?,
            });
        }
        let norm = var(src.tensor("model.norm.weight", &[h])?)?;
        let lm_head = if (cfg.tie_word_embeddings || !need_lm_head) && !src.has("lm_head.weight") {
            None
        } else {
            Some(src.linear("lm_head.weight", (cfg.vocab_size, h))?)
        };
        Ok(Llama {
            cfg: cfg.clone(),
            mode: KernelMode::Fused,
            embed,
            blocks,
            norm,
            lm_head,
            inv_freq: rotary::inv_freq(cfg),
            qk_interleaved: false,
            device: device.clone(),
        })
    }

    /// A randomly initialized model: linear and embedding weights
    /// `N(0, 0.02²)` (Hugging Face's `initializer_range`), norms 1, from `seed`.
    pub fn random(cfg: &LlamaConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let mut src = RandomInit {
            rng: caracal_core::Rng::new(seed),
            dtype,
            device: device.clone(),
        };
        Self::from_source(cfg, &mut src, device)
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// Builder: run every layer with `mode`.
    pub fn with_mode(mut self, mode: KernelMode) -> Self {
        self.mode = mode;
        self
    }

    pub(crate) fn set_qk_interleaved(&mut self, yes: bool) {
        self.qk_interleaved = yes;
    }

    /// Whether the Q/K projection rows are stored in GGUF's interleaved
    /// RoPE layout (a model read from a GGUF file): within each head, row
    /// `2i + c` of the interleaved layout is row `c·D/2 + i` of Hugging
    /// Face's rotate-half layout.
    pub fn qk_interleaved(&self) -> bool {
        self.qk_interleaved
    }

    /// Every trainable tensor with its Hugging Face name, in a fixed order
    /// (quantized weights are not listed).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.clone())];
        for (l, b) in self.blocks.iter().enumerate() {
            let p = format!("model.layers.{l}");
            let lin = [
                ("self_attn.q_proj", &b.q),
                ("self_attn.k_proj", &b.k),
                ("self_attn.v_proj", &b.v),
                ("self_attn.o_proj", &b.o),
                ("mlp.gate_proj", &b.gate),
                ("mlp.up_proj", &b.up),
                ("mlp.down_proj", &b.down),
            ];
            out.push((format!("{p}.input_layernorm.weight"), b.attn_norm.clone()));
            out.push((
                format!("{p}.post_attention_layernorm.weight"),
                b.mlp_norm.clone(),
            ));
            for (n, w) in lin {
                if let Some(v) = w.var() {
                    out.push((format!("{p}.{n}.weight"), v.clone()));
                }
            }
        }
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        if let Some(v) = self.lm_head.as_ref().and_then(Linear::var) {
            out.push(("lm_head.weight".to_string(), v.clone()));
        }
        out
    }

    /// Check token ids `[B, T]` against the vocabulary.
    fn check_ids(&self, ids: &Tensor) -> Result<(usize, usize)> {
        let (b, t) = ids.dims2().map_err(|_| {
            Error::invalid(format!(
                "token ids have shape {:?}; expected [batch, seq]",
                ids.dims()
            ))
        })?;
        if t == 0 || b == 0 {
            caracal_core::bail!("token ids have shape [{b}, {t}]; expected a non-empty batch");
        }
        let max = ids
            .to_dtype(DType::I64)?
            .flatten_all()?
            .max(0)?
            .to_scalar::<i64>()?;
        if max as usize >= self.cfg.vocab_size {
            caracal_core::bail!(
                "token id {max} is outside the vocabulary of {} tokens",
                self.cfg.vocab_size
            );
        }
        Ok((b, t))
    }

    /// Hidden states after the final norm, `[B, T, H]`, for token ids
    /// `[B, T]`. With a cache, the ids continue the cached sequence.
    pub fn forward_hidden(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.forward_inner(ids, cache, None)
    }

    /// [`Llama::forward_hidden`] (no cache) that also hands `taps` the
    /// activations of every [`Tap`] point of every layer, in layer order,
    /// as the block computes them; the result is the same tensor. An error
    /// from `taps` stops the pass.
    pub fn forward_hidden_with_taps(&self, ids: &Tensor, taps: &mut TapFn<'_>) -> Result<Tensor> {
        self.forward_inner(ids, None, Some(taps))
    }

    fn forward_inner(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        mut taps: Option<&mut TapFn<'_>>,
    ) -> Result<Tensor> {
        let (b, t) = self.check_ids(ids)?;
        let h = self.cfg.hidden_size;
        let start = cache.as_ref().map_or(0, |c| c.len());
        let dt = self.dtype();
        let ids = ids.to_dtype(DType::U32)?.flatten_all()?;
        let mut x = self
            .embed
            .as_tensor()
            .index_select(&ids, 0)?
            .reshape((b, t, h))?;
        let (cos, sin) = if self.mode == KernelMode::Candle {
            rotary::cos_sin_half_f32(&self.cfg, &self.inv_freq, start, t, dt, &self.device)?
        } else {
            rotary::cos_sin(&self.inv_freq, start, t, dt, &self.device)?
        };
        let mask = if t > 1 {
            Some(causal_mask_offset(t, start, dt, &self.device)?)
        } else {
            None
        };
        for (l, blk) in self.blocks.iter().enumerate() {
            let kv = cache.as_deref_mut().map(|c| c.layer(l));
            let mut tap = taps
                .as_deref_mut()
                .map(|f| move |p: Tap, y: &Tensor| -> Result<()> { f(l, p, y) });
            let tap = tap.as_mut().map(|f| f as &mut BlockTap<'_>);
            x = self.block(blk, &x, &cos, &sin, mask.as_ref(), kv, tap)?;
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        self.mode
            .rms_norm(&x, self.norm.as_tensor(), self.cfg.rms_norm_eps)
    }

    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        blk: &Block,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        kv: Option<&mut Option<(Tensor, Tensor)>>,
        mut tap: Option<&mut BlockTap<'_>>,
    ) -> Result<Tensor> {
        let mut see = |p: Tap, y: &Tensor| -> Result<()> {
            match tap.as_deref_mut() {
                Some(f) => f(p, y),
                None => Ok(()),
            }
        };
        see(Tap::BlockInput, x)?;
        let c = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let d = c.head_dim;
        let hn = self
            .mode
            .rms_norm(x, blk.attn_norm.as_tensor(), c.rms_norm_eps)?;
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            let y = y.reshape((b, t, n, d))?.transpose(1, 2)?;
            // Candle mode rotates the interleaved pairs in place (`rope_i`).
            Ok(if self.qk_interleaved && self.mode != KernelMode::Candle {
                // [.., (D/2, 2)] → [.., (2, D/2)]: interleaved pairs to rotate-half.
                y.reshape((b, n, t, d / 2, 2))?
                    .transpose(3, 4)?
                    .reshape((b, n, t, d))?
            } else {
                y
            })
        };
        let q = heads(blk.q.forward(&hn)?, c.num_attention_heads)?;
        let k = heads(blk.k.forward(&hn)?, c.num_key_value_heads)?;
        let v = blk
            .v
            .forward(&hn)?
            .reshape((b, t, c.num_key_value_heads, d))?
            .transpose(1, 2)?;
        let (q, k) = match self.mode {
            KernelMode::Candle => {
                let r = |x: &Tensor| -> Result<Tensor> {
                    let x = x.contiguous()?;
                    Ok(if self.qk_interleaved {
                        candle_nn::rotary_emb::rope_i(&x, cos, sin)?
                    } else {
                        candle_nn::rotary_emb::rope(&x, cos, sin)?
                    })
                };
                (r(&q)?, r(&k)?)
            }
            _ => self.mode.rope(&q, &k, cos, sin)?,
        };
        let (k, v) = match kv {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (
                        Tensor::cat(&[&pk, &k], 2)?,
                        Tensor::cat(&[&pv, &v.contiguous()?], 2)?,
                    ),
                    None => (k, v.contiguous()?),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let scale = 1.0 / (d as f64).sqrt();
        let att = match self.mode {
            // The mask is always causal here: the fused softmax applies it.
            KernelMode::Fused => causal_attention_fused(&q, &k, &v, scale)?,
            KernelMode::Reference => scaled_dot_product_attention(&q, &k, &v, mask, scale)?,
            KernelMode::Candle => candle_order_attention(&q, &k, &v, mask)?,
        };
        let att = att
            .transpose(1, 2)?
            .reshape((b, t, c.num_attention_heads * d))?;
        see(Tap::OProjInput, &att)?;
        let x = (x + blk.o.forward(&att)?)?;
        let hn = self
            .mode
            .rms_norm(&x, blk.mlp_norm.as_tensor(), c.rms_norm_eps)?;
        let m = self
            .mode
            .swiglu(&blk.gate.forward(&hn)?, &blk.up.forward(&hn)?)?;
        see(Tap::DownProjInput, &m)?;
        Ok((&x + blk.down.forward(&m)?)?)
    }

    /// Whether any linear weight is quantized (a GGUF loaded with
    /// [`crate::GgufWeights::Quantized`]): such a model runs, but cannot train.
    pub fn is_quantized(&self) -> bool {
        let q = |l: &Linear| matches!(l, Linear::Quant(..));
        self.lm_head.as_ref().is_some_and(q)
            || self.blocks.iter().any(|b| {
                [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down]
                    .into_iter()
                    .any(q)
            })
    }

    /// A one-sentence error when the model cannot be trained (quantized
    /// weights).
    pub fn ensure_trainable(&self) -> Result<()> {
        if self.is_quantized() {
            caracal_core::bail!(
                "the model has quantized weights, and a quantized model cannot be trained; load the GGUF dequantized"
            );
        }
        Ok(())
    }

    /// The output projection's dense weight `[V, H]` (the embedding when
    /// tied), or `None` when it is quantized.
    pub fn lm_head_weight(&self) -> Option<&Tensor> {
        match &self.lm_head {
            None => Some(self.embed.as_tensor()),
            Some(Linear::Dense(v)) => Some(v.as_tensor()),
            Some(Linear::Quant(..)) => None,
        }
    }

    /// Project hidden states `[..., H]` to logits `[..., V]`.
    pub fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            None => Linear::Dense(self.embed.clone()).forward(hidden),
            Some(l) => l.forward(hidden),
        }
    }

    /// Logits `[B, T, V]` for every position of `ids` `[B, T]`.
    pub fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        self.project(&self.forward_hidden(ids, None)?)
    }

    /// Logits `[B, T, V]` continuing the cached sequence.
    pub fn logits_cached(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.project(&self.forward_hidden(ids, Some(cache))?)
    }

    /// A fresh KV cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.num_hidden_layers)
    }

    /// Next-token cross-entropy of `ids` `[B, T]` against `targets` `[B, T]`
    /// (integer; `ignore_index` entries excluded), reduced as asked.
    ///
    /// Fused mode hands the hidden states and the LM-head weight to the
    /// fused linear cross-entropy, so the `[B·T, V]` logits are never held;
    /// Reference mode forms the logits and runs the candle-composed CE.
    pub fn loss(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<Tensor> {
        if targets.dims() != ids.dims() {
            caracal_core::bail!(
                "targets have shape {:?} but ids have {:?}; they must match",
                targets.dims(),
                ids.dims()
            );
        }
        let hidden = self.forward_hidden(ids, None)?;
        let (b, t, h) = hidden.dims3()?;
        let x = hidden.reshape((b * t, h))?;
        let tgt = targets.flatten_all()?.to_dtype(DType::I64)?;
        let ce = CeOptions {
            ignore_index,
            reduction,
            ..CeOptions::default()
        };
        match (self.mode, self.lm_head_weight()) {
            (KernelMode::Fused, Some(w)) => {
                let opts = FlceOptions {
                    ce,
                    ..FlceOptions::default()
                };
                Ok(caracal_kernels::fused_linear_cross_entropy(&x, w, None, &tgt, &opts)?.loss)
            }
            (KernelMode::Fused, None) => {
                Ok(caracal_kernels::cross_entropy(&self.project(&x)?, &tgt, &ce)?.loss)
            }
            (KernelMode::Reference | KernelMode::Candle, _) => {
                let logits = self.project(&x)?;
                Ok(
                    caracal_kernels::cross_entropy::reference::cross_entropy(&logits, &tgt, &ce)?
                        .loss,
                )
            }
        }
    }

    /// Per-token log-probabilities `log p(targets[b, t] | ids[b, ..=t])`,
    /// `[B, T]` (f32; f64 for an f64 model), 0 where the target is
    /// `ignore_index`: the negated per-token cross-entropy
    /// (`Reduction::None`). In Fused mode this is the fused linear
    /// cross-entropy, so the `[B·T, V]` logits never exist (its backward
    /// recomputes each chunk with the per-token upstream gradient); in
    /// Reference mode the logits are formed and the candle-composed CE runs.
    /// The one primitive under every preference loss.
    pub fn token_logps(&self, ids: &Tensor, targets: &Tensor, ignore_index: i64) -> Result<Tensor> {
        let (b, t) = ids.dims2().map_err(|_| {
            Error::invalid(format!(
                "token ids have shape {:?}; expected [batch, seq]",
                ids.dims()
            ))
        })?;
        let nll = self.loss(ids, targets, ignore_index, Reduction::None)?;
        Ok(nll.neg()?.reshape((b, t))?)
    }

    /// [`Llama::token_logps`] through the full `[B·T, V]` logits (the fused
    /// cross-entropy on materialized logits): the same numbers, the memory
    /// a non-chunked implementation needs. The baseline of `caracal bench align`.
    pub fn token_logps_full(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        ignore_index: i64,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2().map_err(|_| {
            Error::invalid(format!(
                "token ids have shape {:?}; expected [batch, seq]",
                ids.dims()
            ))
        })?;
        if targets.dims() != ids.dims() {
            caracal_core::bail!(
                "targets have shape {:?} but ids have {:?}; they must match",
                targets.dims(),
                ids.dims()
            );
        }
        let hidden = self.forward_hidden(ids, None)?;
        let logits = self.project(&hidden.reshape((b * t, self.cfg.hidden_size))?)?;
        let ce = CeOptions {
            ignore_index,
            reduction: Reduction::None,
            ..CeOptions::default()
        };
        let tgt = targets.flatten_all()?.to_dtype(DType::I64)?;
        let nll = caracal_kernels::cross_entropy(&logits, &tgt, &ce)?.loss;
        Ok(nll.neg()?.reshape((b, t))?)
    }

    /// Log-probabilities `[B, T, V]` (f32) for every position.
    pub fn log_probs(&self, ids: &Tensor) -> Result<Tensor> {
        let z = self.logits(ids)?.to_dtype(DType::F32)?;
        let m = z.max_keepdim(D::Minus1)?;
        let zm = z.broadcast_sub(&m)?;
        Ok(zm.broadcast_sub(&zm.exp()?.sum_keepdim(D::Minus1)?.log()?)?)
    }
}

/// `N(0, 0.02²)` weights and unit norms from a seeded generator.
struct RandomInit {
    rng: caracal_core::Rng,
    dtype: DType,
    device: Device,
}

impl WeightSource for RandomInit {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let t = if name.ends_with("norm.weight") {
            Tensor::ones(shape, DType::F32, &self.device)?
        } else {
            Tensor::from_vec(self.rng.normal_vec_f32(n, 0.02), shape, &self.device)?
        };
        Ok(t.to_dtype(self.dtype)?)
    }

    fn has(&self, _name: &str) -> bool {
        false
    }
}
