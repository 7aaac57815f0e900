//! Write the pruned model as a Hugging Face folder that
//! `caracal lm eval --model DIR` (and `transformers`) load with the right
//! tokenizer: `config.json`, `model.safetensors`, and the source model's
//! tokenizer as `tokenizer.json` + `tokenizer_config.json`.

use caracal_core::{Error, Result};
use caracal_models::{hf, Llama, Tokenizer};
use serde_json::json;
use std::path::Path;

/// Where the written folder's tokenizer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerOut {
    /// Copied from the source folder.
    Copied,
    /// Serialized from the loaded tokenizer (a GGUF's vocabulary, a
    /// checkpoint's tokenizer).
    Written,
    /// The byte tokenizer: no file (a folder without `tokenizer.json` is
    /// read as bytes).
    Bytes,
}

impl TokenizerOut {
    pub fn name(self) -> &'static str {
        match self {
            TokenizerOut::Copied => "copied",
            TokenizerOut::Written => "written",
            TokenizerOut::Bytes => "bytes",
        }
    }
}

/// Files copied from a source folder when present.
const TOKENIZER_FILES: [&str; 3] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Write `model` and `tok` (loaded from `source`) into the folder `out`.
pub fn save_pruned(
    model: &Llama,
    tok: &Tokenizer,
    source: &Path,
    out: &Path,
) -> Result<TokenizerOut> {
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, format!("cannot create: {e}")))?;
    hf::save_dir(model, out)?;
    let copy = |name: &str| -> Result<bool> {
        let from = source.join(name);
        if !source.is_dir() || !from.is_file() {
            return Ok(false);
        }
        let bytes =
            std::fs::read(&from).map_err(|e| Error::file(&from, format!("cannot read: {e}")))?;
        caracal_core::write_atomic(out.join(name), &bytes)?;
        Ok(true)
    };
    let how = match tok {
        Tokenizer::Bytes => {
            for n in TOKENIZER_FILES {
                let p = out.join(n);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| {
                        Error::file(&p, format!("cannot remove a stale tokenizer file: {e}"))
                    })?;
                }
            }
            TokenizerOut::Bytes
        }
        Tokenizer::Hf(_) => {
            let copied = copy("tokenizer.json")?;
            if !copied {
                tok.save(out.join("tokenizer.json"))?;
            }
            copy("special_tokens_map.json")?;
            if !copy("tokenizer_config.json")? {
                let cfg = model.config();
                let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
                caracal_core::write_json_atomic(
                    out.join("tokenizer_config.json"),
                    &json!({
                        "tokenizer_class": "PreTrainedTokenizerFast",
                        "bos_token": name(cfg.bos_token_id),
                        "eos_token": name(cfg.eos_token_id),
                        "pad_token": name(cfg.pad_token_id),
                        "model_max_length": cfg.max_position_embeddings,
                        "clean_up_tokenization_spaces": false,
                    }),
                )?;
            }
            if copied {
                TokenizerOut::Copied
            } else {
                TokenizerOut::Written
            }
        }
    };
    Ok(how)
}
