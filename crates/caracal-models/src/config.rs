//! The model's hyper-parameters, read from (and written as) a Hugging Face
//! `config.json` for `LlamaForCausalLM`.
//!
//! Every field is checked once, here; an error names the file and the field.

use caracal_core::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

/// Llama-3 RoPE frequency scaling (Meta, "The Llama 3 Herd of Models", 2024;
/// Hugging Face `_compute_llama3_parameters`).
#[derive(Clone, Debug, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// A decoder-only Llama-family configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}

impl LlamaConfig {
    /// SmolLM2-135M (Allal et al., "SmolLM2", 2025): 30 layers, d = 576,
    /// FFN 1536, 9/3 heads, vocab 49,152, tied embeddings, θ = 100,000.
    pub fn smollm2_135m() -> Self {
        LlamaConfig {
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: 3,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 100_000.0,
            rope_scaling: None,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_id: Some(2),
            pad_token_id: None,
        }
    }

    /// A small model for tests, the tour and the byte-level default
    /// (vocab 256): `hidden`, `layers`, 4 query heads and 2 key/value heads.
    pub fn tiny(vocab_size: usize, hidden: usize, layers: usize) -> Self {
        LlamaConfig {
            vocab_size,
            hidden_size: hidden,
            intermediate_size: hidden * 8 / 3 / 8 * 8,
            num_hidden_layers: layers,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: hidden / 4,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 4096,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }

    /// Query heads per key/value head (GQA group size).
    pub fn n_rep(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Read and check a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read the model config: {e}")))?;
        Self::from_json_str(&text, path)
    }

    /// Parse and check a config from JSON text; `path` names it in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::file(path, format!("is not valid JSON ({e})")))?;
        let o = v
            .as_object()
            .ok_or_else(|| Error::file(path, "must hold a JSON object"))?;
        Self::from_json(o, path)
    }

    /// Build from a parsed JSON object (Hugging Face field names).
    pub fn from_json(o: &Map<String, Value>, path: &Path) -> Result<Self> {
        let f = Fields { o, path };
        if let Some(mt) = o.get("model_type").and_then(Value::as_str) {
            if !matches!(mt, "llama" | "mistral" | "smollm" | "smollm2") {
                return Err(f.err("model_type", &format!("is \"{mt}\"; expected \"llama\"")));
            }
        }
        let hidden_size = f.usize_req("hidden_size")?;
        let num_attention_heads = f.usize_req("num_attention_heads")?;
        let num_key_value_heads = f
            .usize_opt("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        let head_dim = match f.usize_opt("head_dim")? {
            Some(d) => d,
            None => {
                if !hidden_size.is_multiple_of(num_attention_heads) {
                    return Err(f.err(
                        "hidden_size",
                        &format!("is {hidden_size}, not a multiple of num_attention_heads = {num_attention_heads}; set head_dim"),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        // transformers ≥ 5 nests θ and the scaling under `rope_parameters`.
        let rope = o.get("rope_parameters").filter(|v| !v.is_null());
        let (rope_src, rope_field) = match rope {
            Some(r) => (Some(r), "rope_parameters"),
            None => (
                o.get("rope_scaling").filter(|v| !v.is_null()),
                "rope_scaling",
            ),
        };
        let mut rope_theta = f.f64_opt("rope_theta")?.unwrap_or(10_000.0);
        let mut rope_scaling = None;
        if let Some(r) = rope_src {
            let ro = r
                .as_object()
                .ok_or_else(|| f.err(rope_field, "must be an object"))?;
            let sub = Fields { o: ro, path };
            if let Some(t) = sub.f64_opt("rope_theta")? {
                rope_theta = t;
            }
            let kind = ro
                .get("rope_type")
                .or_else(|| ro.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("default");
            match kind {
                "default" => {}
                "llama3" => {
                    let g = |k: &str| -> Result<f64> {
                        sub.f64_opt(k)?.ok_or_else(|| {
                            f.err(
                                &format!("{rope_field}.{k}"),
                                "is missing (needed for rope_type \"llama3\")",
                            )
                        })
                    };
                    let s = Llama3Scaling {
                        factor: g("factor")?,
                        low_freq_factor: g("low_freq_factor")?,
                        high_freq_factor: g("high_freq_factor")?,
                        original_max_position_embeddings: g("original_max_position_embeddings")?
                            as usize,
                    };
                    if !(s.factor > 0.0
                        && s.high_freq_factor > s.low_freq_factor
                        && s.low_freq_factor > 0.0)
                    {
                        return Err(f.err(
                            rope_field,
                            "needs factor > 0 and high_freq_factor > low_freq_factor > 0",
                        ));
                    }
                    rope_scaling = Some(s);
                }
                other => {
                    return Err(f.err(
                        &format!("{rope_field}.rope_type"),
                        &format!("is \"{other}\"; supported: \"default\", \"llama3\""),
                    ))
                }
            }
        }
        let cfg = LlamaConfig {
            vocab_size: f.usize_req("vocab_size")?,
            hidden_size,
            intermediate_size: f.usize_req("intermediate_size")?,
            num_hidden_layers: f.usize_req("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f.f64_opt("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: f.usize_opt("max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: match o.get("tie_word_embeddings") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(f.err("tie_word_embeddings", "must be true or false")),
            },
            bos_token_id: f.token_id("bos_token_id")?,
            eos_token_id: f.token_id("eos_token_id")?,
            pad_token_id: f.token_id("pad_token_id")?,
        };
        cfg.validate().map_err(|e| match e {
            Error::Invalid(m) => Error::file(path, m),
            e => e,
        })?;
        Ok(cfg)
    }

    /// Check that the fields fit together; the message names the field.
    pub fn validate(&self) -> Result<()> {
        let pos = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ];
        for (name, v) in pos {
            if v == 0 {
                caracal_core::bail!("field `{name}` is 0; it must be positive");
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            caracal_core::bail!(
                "field `num_key_value_heads` is {}, which does not divide num_attention_heads = {}",
                self.num_key_value_heads,
                self.num_attention_heads
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            caracal_core::bail!(
                "field `head_dim` is {}; RoPE needs an even head dimension",
                self.head_dim
            );
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            caracal_core::bail!(
                "field `rms_norm_eps` is {}; it must be finite and non-negative",
                self.rms_norm_eps
            );
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            caracal_core::bail!(
                "field `rope_theta` is {}; it must be positive",
                self.rope_theta
            );
        }
        for (name, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
            ("pad_token_id", self.pad_token_id),
        ] {
            if let Some(id) = id {
                if id as usize >= self.vocab_size {
                    caracal_core::bail!(
                        "field `{name}` is {id}, outside the vocabulary of {} tokens",
                        self.vocab_size
                    );
                }
            }
        }
        Ok(())
    }

    /// The config as a Hugging Face `config.json` object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
        });
        if let Some(s) = &self.rope_scaling {
            v["rope_scaling"] = json!({
                "rope_type": "llama3",
                "factor": s.factor,
                "low_freq_factor": s.low_freq_factor,
                "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_position_embeddings,
            });
        }
        v
    }

    /// Number of parameters (tied embeddings counted once).
    pub fn n_params(&self) -> usize {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let attn = h * d * (2 * self.num_attention_heads + 2 * self.num_key_value_heads);
        let layer = attn + 3 * h * i + 2 * h;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * h
        };
        self.vocab_size * h + self.num_hidden_layers * layer + h + head
    }
}

/// Typed access to JSON fields with errors that name the file and field.
struct Fields<'a> {
    o: &'a Map<String, Value>,
    path: &'a Path,
}

impl Fields<'_> {
    fn err(&self, field: &str, msg: &str) -> Error {
        Error::file(self.path, format!("field `{field}` {msg}"))
    }

    fn usize_opt(&self, k: &str) -> Result<Option<usize>> {
        match self.o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| self.err(k, &format!("is {v}; expected a non-negative integer"))),
        }
    }

    fn usize_req(&self, k: &str) -> Result<usize> {
        self.usize_opt(k)?
            .ok_or_else(|| self.err(k, "is missing; a Llama config.json must set it"))
    }

    fn f64_opt(&self, k: &str) -> Result<Option<f64>> {
        match self.o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(k, &format!("is {v}; expected a number"))),
        }
    }

    /// A token id, or the first of a list of ids (Llama-3 lists several EOS).
    fn token_id(&self, k: &str) -> Result<Option<u32>> {
        match self.o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) if a.is_empty() => Ok(None),
            Some(Value::Array(a)) => a[0]
                .as_u64()
                .map(|x| Some(x as u32))
                .ok_or_else(|| self.err(k, "must hold integer token ids")),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as u32))
                .ok_or_else(|| self.err(k, &format!("is {v}; expected a token id"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_bad_fields() {
        let p = Path::new("config.json");
        let c = LlamaConfig::smollm2_135m();
        let back = LlamaConfig::from_json_str(&c.to_json().to_string(), p).unwrap();
        assert_eq!(back, c);
        assert!(
            (c.n_params() as f64 - 134.5e6).abs() < 1e6,
            "{}",
            c.n_params()
        );

        let mut v = c.to_json();
        v.as_object_mut().unwrap().remove("hidden_size");
        let e = LlamaConfig::from_json_str(&v.to_string(), p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.json") && e.contains("`hidden_size`") && e.contains("missing"),
            "{e}"
        );

        let mut v = c.to_json();
        v["num_key_value_heads"] = json!(4);
        let e = LlamaConfig::from_json_str(&v.to_string(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`num_key_value_heads`"), "{e}");

        let mut v = c.to_json();
        v["vocab_size"] = json!("many");
        let e = LlamaConfig::from_json_str(&v.to_string(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`vocab_size`") && e.contains("integer"), "{e}");

        let mut v = c.to_json();
        v["rope_scaling"] = json!({"rope_type": "yarn", "factor": 2.0});
        let e = LlamaConfig::from_json_str(&v.to_string(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rope_type") && e.contains("yarn"), "{e}");

        let e = LlamaConfig::from_json_str("{\"vocab_size\": 3", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.json") && e.contains("JSON"), "{e}");
    }

    #[test]
    fn reads_transformers5_rope_parameters() {
        let mut v = LlamaConfig::tiny(256, 64, 2).to_json();
        v.as_object_mut().unwrap().remove("rope_theta");
        v["rope_parameters"] = json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64});
        let c = LlamaConfig::from_json_str(&v.to_string(), Path::new("c.json")).unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert_eq!(c.rope_scaling.unwrap().factor, 8.0);
    }
}
