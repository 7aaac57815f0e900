//! A reward model: a Llama decoder with a one-label scoring head read at the
//! last non-pad token (Hugging Face's `LlamaForSequenceClassification` with
//! `num_labels = 1`), its tokenizer and the EOS text that TRL appends.
//!
//! It opens a Hugging Face classifier folder (with its `score.weight`), a
//! causal-LM folder or a GGUF file (dequantized) with a fresh head, or a
//! caracal reward-model checkpoint, and saves a classifier folder that
//! `transformers` loads back.
//!
//! **Padding.** The reward is read at the rightmost token that is not the
//! pad token, so a pad id equal to the EOS id would read the token before
//! EOS (TRL #2758, transformers #35352). When the model's own pad equals its
//! EOS (SmolLM2's GGUF sets both to 2), a distinct pad token is chosen
//! (`<|endoftext|>`, `<pad>`, ... whichever the vocabulary has) and a note
//! says so; a pad that the user sets equal to EOS is refused.

use crate::train::checkpoint;
use candle_core::{DType, Device, Tensor};
use caracal_core::{Error, Result};
use caracal_models::{gguf, hf, HeadInit, Llama, SequenceClassifier, Tokenizer};
use std::path::Path;

/// Which token pads sequences.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum PadChoice {
    /// The model's own pad token when it differs from EOS, else a distinct
    /// one from the vocabulary.
    #[default]
    Auto,
    /// A token given by the user (its text).
    Token(String),
    /// A token id given by the user.
    Id(u32),
}

/// How to open a reward model.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Initialization of a fresh head (the folder or file has none).
    pub head_init: HeadInit,
    /// Seed of a fresh head.
    pub seed: u64,
    pub pad: PadChoice,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            head_init: HeadInit::InvSqrtHidden,
            seed: 0,
            pad: PadChoice::Auto,
        }
    }
}

/// A scalar reward model with its tokenizer.
#[derive(Clone, Debug)]
pub struct RewardModel {
    pub clf: SequenceClassifier,
    pub tokenizer: Tokenizer,
    /// The EOS token's text, appended to responses (`None`: the tokenizer
    /// has no EOS, e.g. raw bytes).
    pub eos_text: Option<String>,
    /// Whether the head was freshly initialized (not loaded).
    pub fresh_head: bool,
    /// Things the user should be told (e.g. the pad token that was chosen).
    pub notes: Vec<String>,
}

/// Pad candidates, in order, when the model's pad equals its EOS.
const PAD_CANDIDATES: [&str; 6] = [
    "<|endoftext|>",
    "<pad>",
    "<|pad|>",
    "[PAD]",
    "<|finetune_right_pad_id|>",
    "<unk>",
];

impl RewardModel {
    /// Open a reward model from a Hugging Face folder, a GGUF file, or a
    /// caracal reward-model checkpoint (a folder holding
    /// `checkpoint.safetensors` or the file itself).
    pub fn load(path: &Path, opts: &LoadOptions, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(Error::file(path, "does not exist"));
        }
        let ck = if path.is_dir() {
            path.join(checkpoint::FILE)
        } else {
            path.to_path_buf()
        };
        let is_ckpt = ck.extension().is_some_and(|e| e == "safetensors")
            && ck.exists()
            && !(path.is_dir() && path.join("config.json").exists());
        if is_ckpt {
            return Ok(checkpoint::load(&ck, device)?.model);
        }
        if path.is_dir() {
            let d = hf::load_classifier_dir(path, DType::F32, device)?;
            let tj = path.join("tokenizer.json");
            let tok = if tj.exists() {
                Tokenizer::from_file(&tj)?
            } else if d.model.config().vocab_size == 256 {
                Tokenizer::Bytes
            } else {
                return Err(Error::file(
                    path,
                    "has no tokenizer.json; a reward model needs its tokenizer",
                ));
            };
            return Self::from_parts(d.model, d.score, tok, opts);
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("gguf") => {
                let (m, tok) = gguf::load(path, gguf::GgufWeights::Dequantized, device)?;
                Self::from_parts(m, None, tok, opts)
            }
            _ => Err(Error::file(
                path,
                "is not a reward model: expected a Hugging Face folder, a .gguf file or a caracal reward-model checkpoint",
            )),
        }
    }

    /// Assemble a reward model; `score` `None` draws a fresh head.
    pub fn from_parts(
        model: Llama,
        score: Option<Tensor>,
        tokenizer: Tokenizer,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let cfg = model.config().clone();
        let eos = cfg.eos_token_id;
        let mut notes = Vec::new();
        let pad = resolve_pad(&cfg, &tokenizer, &opts.pad, &mut notes)?;
        let fresh_head = score.is_none();
        let clf = match score {
            Some(s) => {
                if s.dims().first() != Some(&1) {
                    caracal_core::bail!(
                        "score.weight has shape {:?}; a reward model has one label ([1, {}])",
                        s.dims(),
                        cfg.hidden_size
                    );
                }
                SequenceClassifier::with_head(model, s, pad)?
            }
            None => SequenceClassifier::with_init(model, 1, pad, opts.head_init, opts.seed)?,
        };
        let eos_text = eos.and_then(|id| tokenizer.id_to_token(id));
        Ok(RewardModel {
            clf,
            tokenizer,
            eos_text,
            fresh_head,
            notes,
        })
    }

    /// The head `W_p` `[H]` as f32.
    pub fn head_vector(&self) -> Result<Vec<f32>> {
        Ok(self
            .clf
            .score
            .as_tensor()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// The pad id.
    pub fn pad_id(&self) -> u32 {
        self.clf.pad_id
    }

    /// Write a `LlamaForSequenceClassification` folder with the tokenizer
    /// (`tokenizer.json`, and a `tokenizer_config.json` naming the EOS and
    /// pad tokens, so that `AutoTokenizer.from_pretrained` pads as we do).
    pub fn save(&self, dir: &Path) -> Result<()> {
        hf::save_classifier_dir(&self.clf, dir)?;
        if let Tokenizer::Hf(_) = self.tokenizer {
            self.tokenizer.save(dir.join("tokenizer.json"))?;
            let cfg = self.clf.model.config();
            let name = |id: Option<u32>| id.and_then(|i| self.tokenizer.id_to_token(i));
            let mut tc = serde_json::json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": cfg.max_position_embeddings,
                "padding_side": "right",
            });
            for (k, id) in [
                ("eos_token", cfg.eos_token_id),
                ("bos_token", cfg.bos_token_id),
                ("pad_token", Some(self.clf.pad_id)),
                ("unk_token", self.tokenizer.token_id("<unk>")),
            ] {
                if let Some(t) = name(id) {
                    tc[k] = t.into();
                }
            }
            caracal_core::write_json_atomic(dir.join("tokenizer_config.json"), &tc)?;
        }
        Ok(())
    }

    /// Right-pad `seqs` into ids `[N, T]`.
    pub fn batch_ids(&self, seqs: &[&[u32]]) -> Result<Tensor> {
        let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if seqs.is_empty() || t == 0 {
            caracal_core::bail!("no sequences to score");
        }
        let mut flat = Vec::with_capacity(seqs.len() * t);
        for s in seqs {
            flat.extend_from_slice(s);
            flat.extend(std::iter::repeat_n(self.clf.pad_id, t - s.len()));
        }
        Ok(Tensor::from_vec(
            flat,
            (seqs.len(), t),
            self.clf.model.device(),
        )?)
    }

    /// Pooled final hidden states `[N, H]` and rewards `[N]` of `seqs`.
    pub fn forward(&self, seqs: &[&[u32]]) -> Result<(Tensor, Tensor)> {
        for (i, s) in seqs.iter().enumerate() {
            if s.last() == Some(&self.clf.pad_id) {
                caracal_core::bail!(
                    "sequence {i} ends with the pad token (id {}); its reward would be read at the wrong position",
                    self.clf.pad_id
                );
            }
        }
        let ids = self.batch_ids(seqs)?;
        let pooled = self.clf.pooled(&ids)?;
        let r = self.clf.head(&pooled)?.squeeze(1)?;
        Ok((pooled, r))
    }

    /// Rewards of `seqs` as f64, in micro-batches of `batch` sequences.
    pub fn rewards(&self, seqs: &[&[u32]], batch: usize) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(batch.max(1)) {
            let (_, r) = self.forward(chunk)?;
            out.extend(r.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(out)
    }
}

fn resolve_pad(
    cfg: &caracal_models::LlamaConfig,
    tok: &Tokenizer,
    choice: &PadChoice,
    notes: &mut Vec<String>,
) -> Result<u32> {
    let eos = cfg.eos_token_id;
    let check_user = |id: u32, what: String| -> Result<u32> {
        if Some(id) == eos {
            caracal_core::bail!(
                "the pad token {what} equals the EOS token; rewards would be read before EOS, so choose a different pad token"
            );
        }
        if id as usize >= cfg.vocab_size {
            caracal_core::bail!(
                "the pad token {what} is outside the vocabulary of {} tokens",
                cfg.vocab_size
            );
        }
        Ok(id)
    };
    match choice {
        PadChoice::Id(id) => check_user(*id, format!("id {id}")),
        PadChoice::Token(t) => {
            let id = tok.token_id(t).ok_or_else(|| {
                Error::invalid(format!(
                    "the pad token `{t}` is not in the tokenizer's vocabulary"
                ))
            })?;
            check_user(id, format!("`{t}` (id {id})"))
        }
        PadChoice::Auto => {
            if let Some(p) = cfg.pad_token_id.filter(|&p| Some(p) != eos) {
                return Ok(p);
            }
            if matches!(tok, Tokenizer::Bytes) {
                // Raw bytes: NUL, or 0xFF when NUL is the EOS.
                let id = if eos == Some(0) { 255 } else { 0 };
                if cfg.pad_token_id.is_some() {
                    notes.push(format!(
                        "the model's pad token equals its EOS; padding with byte {id} instead"
                    ));
                }
                return Ok(id);
            }
            for c in PAD_CANDIDATES {
                if let Some(id) = tok.token_id(c) {
                    if Some(id) != eos && (id as usize) < cfg.vocab_size {
                        let why = match cfg.pad_token_id {
                            Some(p) => format!("the model's pad token (id {p}) equals its EOS"),
                            None => "the model sets no pad token".to_string(),
                        };
                        notes.push(format!(
                            "{why}; padding with `{c}` (id {id}) so the reward is read at the last real token"
                        ));
                        return Ok(id);
                    }
                }
            }
            caracal_core::bail!(
                "the model has no pad token distinct from its EOS and the vocabulary has none of {}; pass --pad-token",
                PAD_CANDIDATES.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caracal_models::LlamaConfig;

    #[test]
    fn pad_equal_to_eos_is_replaced_or_refused() {
        let mut cfg = LlamaConfig::tiny(256, 16, 1);
        cfg.eos_token_id = Some(2);
        cfg.pad_token_id = Some(2);
        let m = Llama::random(&cfg, 0, DType::F32, &Device::Cpu).unwrap();
        let opts = LoadOptions {
            pad: PadChoice::Id(2),
            ..Default::default()
        };
        let e = RewardModel::from_parts(m.clone(), None, Tokenizer::Bytes, &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("equals the EOS token"), "{e}");
        let rm =
            RewardModel::from_parts(m, None, Tokenizer::Bytes, &LoadOptions::default()).unwrap();
        assert_eq!(rm.pad_id(), 0);
        assert!(rm.notes[0].contains("equals its EOS"), "{:?}", rm.notes);
        // A sequence ending in the pad token is refused, never mis-scored.
        let e = rm.forward(&[&[5, 0]]).unwrap_err().to_string();
        assert!(e.contains("ends with the pad token"), "{e}");
    }

    #[test]
    fn rewards_do_not_depend_on_batch_composition() {
        let cfg = LlamaConfig::tiny(256, 16, 2);
        let m = Llama::random(&cfg, 3, DType::F32, &Device::Cpu).unwrap();
        let rm =
            RewardModel::from_parts(m, None, Tokenizer::Bytes, &LoadOptions::default()).unwrap();
        let seqs: Vec<Vec<u32>> = vec![vec![5, 6, 7], vec![9, 8, 7, 6, 5, 4], vec![3]];
        let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        let together = rm.rewards(&refs, 3).unwrap();
        let alone = rm.rewards(&refs, 1).unwrap();
        for (a, b) in together.iter().zip(&alone) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(together.iter().all(|r| r.is_finite()));
    }
}
