//! Training text as token ids, and batches of next-token windows.
//!
//! Batch `k` of step `s` is drawn from a generator seeded by
//! `(seed, s, k)` alone, so a resumed run sees exactly the batches an
//! uninterrupted run would have seen.

use crate::tokenizer::Tokenizer;
use candle_core::{Device, Tensor};
use caracal_core::{Error, Result, Rng};
use std::path::Path;

/// Token ids split into a training and a held-out part.
#[derive(Clone, Debug)]
pub struct TokenData {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

/// One batch: inputs `[B, T]` and targets `[B, T]` (i64, `ignore_index`
/// where a window ran past the end of the text).
pub struct Batch {
    pub ids: Tensor,
    pub targets: Tensor,
    /// Targets that count (not ignored).
    pub n_tokens: usize,
}

impl TokenData {
    /// Tokenize `text` and hold out its last `val_frac` for evaluation.
    pub fn from_text(text: &str, tok: &Tokenizer, val_frac: f64) -> Result<Self> {
        let ids = tok.encode(text)?;
        if ids.len() < 4 {
            caracal_core::bail!(
                "the training text has {} tokens; it needs at least 4",
                ids.len()
            );
        }
        let n_val = ((ids.len() as f64 * val_frac) as usize).clamp(2, ids.len() / 2);
        let split = ids.len() - n_val;
        Ok(TokenData {
            train: ids[..split].to_vec(),
            val: ids[split..].to_vec(),
        })
    }

    /// Read a text file, or every `.txt`/`.md` file of a folder (sorted,
    /// joined by blank lines).
    pub fn read_text(path: &Path) -> Result<String> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| Error::file(p, format!("cannot read as UTF-8 text: {e}")))
        };
        if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| Error::file(path, format!("cannot list: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "txt" || x == "md"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::file(path, "holds no .txt or .md files"));
            }
            let parts = files.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
            Ok(parts.join("\n\n"))
        } else {
            read(path)
        }
    }
}

/// The generator for micro-batch `micro` of optimizer step `step`.
pub fn batch_rng(seed: u64, step: usize, micro: usize) -> Rng {
    Rng::new(
        seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (micro as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// `b` windows of `t + 1` tokens starting at positions drawn from `rng`;
/// windows are padded (targets `ignore_index`) when the text is shorter.
pub fn random_batch(
    tokens: &[u32],
    b: usize,
    t: usize,
    rng: &mut Rng,
    ignore_index: i64,
    dev: &Device,
) -> Result<Batch> {
    let starts: Vec<usize> = (0..b)
        .map(|_| {
            let room = tokens.len().saturating_sub(t + 1);
            if room == 0 {
                0
            } else {
                rng.below(room + 1)
            }
        })
        .collect();
    window_batch(tokens, &starts, t, ignore_index, dev)
}

/// Windows at the given starts.
pub fn window_batch(
    tokens: &[u32],
    starts: &[usize],
    t: usize,
    ignore_index: i64,
    dev: &Device,
) -> Result<Batch> {
    let b = starts.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut tg = Vec::with_capacity(b * t);
    let mut n_tokens = 0;
    for &s in starts {
        for i in 0..t {
            ids.push(tokens.get(s + i).copied().unwrap_or(0));
            match tokens.get(s + i + 1) {
                Some(&y) if s + i < tokens.len() => {
                    tg.push(y as i64);
                    n_tokens += 1;
                }
                _ => tg.push(ignore_index),
            }
        }
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), dev)?,
        targets: Tensor::from_vec(tg, (b, t), dev)?,
        n_tokens,
    })
}

/// Non-overlapping evaluation windows over `tokens`: at most `max_windows`
/// batches of `b` windows of length `t` (the last one may be padded).
pub fn eval_batches(
    tokens: &[u32],
    b: usize,
    t: usize,
    max_batches: usize,
    ignore_index: i64,
    dev: &Device,
) -> Result<Vec<Batch>> {
    let starts: Vec<usize> = (0..tokens.len().saturating_sub(1)).step_by(t).collect();
    starts
        .chunks(b)
        .take(max_batches)
        .map(|s| window_batch(tokens, s, t, ignore_index, dev))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_shift_by_one_and_pad_with_ignore_index() {
        let toks: Vec<u32> = (0..10).collect();
        let b = window_batch(&toks, &[0, 7], 4, -100, &Device::Cpu).unwrap();
        let ids: Vec<Vec<u32>> = b.ids.to_vec2().unwrap();
        let tg: Vec<Vec<i64>> = b.targets.to_vec2().unwrap();
        assert_eq!(ids[0], vec![0, 1, 2, 3]);
        assert_eq!(tg[0], vec![1, 2, 3, 4]);
        assert_eq!(ids[1], vec![7, 8, 9, 0]);
        assert_eq!(tg[1], vec![8, 9, -100, -100]);
        assert_eq!(b.n_tokens, 6);
        let mut r1 = batch_rng(5, 3, 1);
        let mut r2 = batch_rng(5, 3, 1);
        assert_eq!(r1.next_u64(), r2.next_u64());
        assert_ne!(batch_rng(5, 3, 0).next_u64(), batch_rng(5, 4, 0).next_u64());
    }
}
