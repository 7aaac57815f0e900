//! Open a model from whatever the user points at: a training checkpoint
//! (`.safetensors` written by the trainer), a Hugging Face folder, or a GGUF
//! file.

use crate::gguf::{self, GgufWeights};
use crate::model::Llama;
use crate::tokenizer::Tokenizer;
use crate::{hf, train};
use candle_core::{DType, Device};
use caracal_core::{Error, Result};
use std::path::Path;

/// A model and its tokenizer, found from one path.
pub fn load_model(
    path: &Path,
    gguf_weights: GgufWeights,
    device: &Device,
) -> Result<(Llama, Tokenizer)> {
    if !path.exists() {
        return Err(Error::file(path, "does not exist"));
    }
    if path.is_dir() {
        let ck = path.join("checkpoint.safetensors");
        if ck.exists() && !path.join("config.json").exists() {
            return load_model(&ck, gguf_weights, device);
        }
        let model = hf::load_dir(path, DType::F32, device)?;
        let tj = path.join("tokenizer.json");
        let tok = if tj.exists() {
            Tokenizer::from_file(&tj)?
        } else {
            Tokenizer::Bytes
        };
        return Ok((model, tok));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("gguf") => gguf::load(path, gguf_weights, device),
        Some("safetensors") => {
            let l = train::checkpoint::load(path, device)?;
            let tok = match l.meta.tokenizer.as_str() {
                "bytes" => Tokenizer::Bytes,
                p => Tokenizer::from_file(p)?,
            };
            Ok((l.model, tok))
        }
        _ => Err(Error::file(
            path,
            "is not a model: expected a .gguf file, a caracal checkpoint (.safetensors) or a Hugging Face folder",
        )),
    }
}
