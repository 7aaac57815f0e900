//! Tokenizers: raw bytes (vocabulary 256, nothing to load), or a Hugging
//! Face `tokenizer.json` / a GGUF-embedded vocabulary through the
//! `tokenizers` crate.

use caracal_core::{Error, Result};
use std::path::Path;

/// Text ↔ token ids.
#[derive(Clone)]
pub enum Tokenizer {
    /// Each UTF-8 byte is a token (`0..256`).
    Bytes,
    /// A Hugging Face tokenizer.
    Hf(Box<tokenizers::Tokenizer>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tokenizer::Bytes => write!(f, "Tokenizer::Bytes"),
            Tokenizer::Hf(t) => write!(f, "Tokenizer::Hf(vocab {})", t.get_vocab_size(true)),
        }
    }
}

impl Tokenizer {
    /// Load a `tokenizer.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::file(path, "does not exist"));
        }
        tokenizers::Tokenizer::from_file(path)
            .map(|t| Tokenizer::Hf(Box::new(t)))
            .map_err(|e| Error::file(path, format!("is not a valid tokenizer.json: {e}")))
    }

    /// The vocabulary size (with added tokens).
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Bytes => 256,
            Tokenizer::Hf(t) => t.get_vocab_size(true),
        }
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Bytes => Ok(text.bytes().map(u32::from).collect()),
            Tokenizer::Hf(t) => Ok(t
                .encode(text, false)
                .map_err(|e| Error::invalid(format!("cannot tokenize: {e}")))?
                .get_ids()
                .to_vec()),
        }
    }

    /// Token ids of `text` with the tokenizer's own special-token rules (its
    /// post-processor may add BOS/EOS), as `tokenizer(text)` in
    /// transformers. The byte tokenizer has none.
    pub fn encode_with_special(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Bytes => self.encode(text),
            Tokenizer::Hf(t) => Ok(t
                .encode(text, true)
                .map_err(|e| Error::invalid(format!("cannot tokenize: {e}")))?
                .get_ids()
                .to_vec()),
        }
    }

    /// The token string of `id`, special tokens included.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            Tokenizer::Bytes => None,
            Tokenizer::Hf(t) => t.id_to_token(id),
        }
    }

    /// Write a `tokenizer.json` (atomically); the byte tokenizer has no file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match self {
            Tokenizer::Bytes => Err(Error::invalid(
                "the byte tokenizer has no tokenizer.json to write",
            )),
            Tokenizer::Hf(t) => {
                let s = t.to_string(false).map_err(|e| {
                    Error::file(path, format!("cannot serialize the tokenizer: {e}"))
                })?;
                caracal_core::write_atomic(path, s.as_bytes())
            }
        }
    }

    /// Text of `ids` (invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Tokenizer::Bytes => {
                let b: Vec<u8> = ids.iter().map(|&i| i.min(255) as u8).collect();
                Ok(String::from_utf8_lossy(&b).into_owned())
            }
            Tokenizer::Hf(t) => t
                .decode(ids, true)
                .map_err(|e| Error::invalid(format!("cannot decode token ids: {e}"))),
        }
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match self {
            Tokenizer::Bytes => None,
            Tokenizer::Hf(t) => t.token_to_id(token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_missing_file_is_named() {
        let t = Tokenizer::Bytes;
        let ids = t.encode("héllo").unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!(t.decode(&ids).unwrap(), "héllo");
        let e = Tokenizer::from_file("/nonexistent/tokenizer.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/tokenizer.json"), "{e}");
    }
}
