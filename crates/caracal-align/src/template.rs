//! TRL 1.16's two ways of turning a plain-text preference pair into a
//! prompt and completions, so that log-probs match the trainer a user
//! compares with:
//!
//! - [`Template::TrlDpo`] (`DPOTrainer`, `dpo_trainer.py` 1062–1125): the
//!   EOS text is appended to each completion when missing; `prompt`,
//!   `prompt + chosen` and `prompt + rejected` are tokenized (with the
//!   tokenizer's special-token rules); the completions start at the shorter
//!   of the two common prefixes with the prompt's tokens, shared by both
//!   sides (a token merged across the boundary counts as completion).
//! - [`Template::TrlCpo`] (`trl.experimental.cpo.CPOTrainer`,
//!   `build_tokenized_answer`, 434–571): `prompt + answer` is tokenized
//!   without special tokens and split at the prompt's length (one token
//!   earlier when the prompt's last token merged); the BOS id is prepended
//!   unless already first; the EOS id is appended unless already last;
//!   each side keeps its own prompt length (at most one token apart).
//!
//! Pairs longer than `max_length` are dropped and counted, never truncated.

use crate::logps::Completion;
use crate::pairs::{PairStats, PreferencePair};
use caracal_core::{Error, Result};
use caracal_models::Tokenizer;

/// A tokenization convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Template {
    TrlDpo,
    TrlCpo,
}

impl std::str::FromStr for Template {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "trl-dpo" => Ok(Template::TrlDpo),
            "trl-cpo" => Ok(Template::TrlCpo),
            other => Err(Error::invalid(format!(
                "template `{other}` is unknown; use trl-dpo or trl-cpo"
            ))),
        }
    }
}

/// The special tokens a template needs.
#[derive(Clone, Debug, Default)]
pub struct Specials {
    pub eos_id: Option<u32>,
    pub eos_text: Option<String>,
    pub bos_id: Option<u32>,
}

/// A pair as two scored sequences, with its file line (1-based).
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionPair {
    pub line: usize,
    pub chosen: Completion,
    pub rejected: Completion,
}

/// The length of the common prefix of two token sequences.
pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn dpo_pair(
    tok: &Tokenizer,
    sp: &Specials,
    p: &PreferencePair,
) -> Result<(Completion, Completion)> {
    let prompt = p.prompt.as_deref().unwrap_or("");
    let with_eos = |c: &str| -> String {
        match &sp.eos_text {
            Some(e) if !c.ends_with(e.as_str()) => format!("{c}{e}"),
            _ => c.to_string(),
        }
    };
    let pi = tok.encode_with_special(prompt)?;
    let ci = tok.encode_with_special(&format!("{prompt}{}", with_eos(&p.chosen)))?;
    let ri = tok.encode_with_special(&format!("{prompt}{}", with_eos(&p.rejected)))?;
    let start = common_prefix(&pi, &ci).min(common_prefix(&pi, &ri));
    Ok((Completion { ids: ci, start }, Completion { ids: ri, start }))
}

fn cpo_answer(tok: &Tokenizer, sp: &Specials, prompt: &str, answer: &str) -> Result<Completion> {
    let full = tok.encode(&format!("{prompt}{answer}"))?;
    let pi = tok.encode(prompt)?;
    let mut start = pi.len().min(full.len());
    if full[..start] != pi[..] {
        start = start.saturating_sub(1);
    }
    let mut ids = Vec::with_capacity(full.len() + 2);
    if let Some(b) = sp.bos_id {
        if full.first() != Some(&b) {
            ids.push(b);
            start += 1;
        }
    }
    ids.extend_from_slice(&full);
    if let Some(e) = sp.eos_id {
        if ids.last() != Some(&e) {
            ids.push(e);
        }
    }
    Ok(Completion { ids, start })
}

/// Tokenize `pairs` as `template` says, dropping (and counting) pairs
/// longer than `max_length`; an empty prompt under trl-dpo with no BOS
/// leaves nothing to predict the first completion token from and is an
/// error naming the pair.
pub fn tokenize(
    pairs: &[PreferencePair],
    tok: &Tokenizer,
    template: Template,
    sp: &Specials,
    max_length: usize,
) -> Result<(Vec<CompletionPair>, PairStats)> {
    crate::pairs::tokenize_each(pairs, max_length, |n, p| {
        let (c, r) = match template {
            Template::TrlDpo => dpo_pair(tok, sp, p)?,
            Template::TrlCpo => {
                let prompt = p.prompt.as_deref().unwrap_or("");
                let c = cpo_answer(tok, sp, prompt, &p.chosen)?;
                let r = cpo_answer(tok, sp, prompt, &p.rejected)?;
                if c.start.abs_diff(r.start) > 1 {
                    caracal_core::bail!(
                        "pair {n}: the prompt tokenizes to {} tokens before the chosen response and {} before the rejected one; they may differ by one at most",
                        c.start,
                        r.start
                    );
                }
                (c, r)
            }
        };
        for s in [&c, &r] {
            if s.start == 0 {
                caracal_core::bail!(
                    "pair {n}: the prompt is empty and the tokenizer adds no BOS, so nothing predicts the first completion token; give a prompt"
                );
            }
            // Length-averaged losses divide by the completion's token count.
            if s.is_empty() {
                caracal_core::bail!(
                    "pair {n}: a completion has no tokens (it is empty and the tokenizer has no EOS to append); give a non-empty completion"
                );
            }
        }
        let lens = [c.ids.len(), r.ids.len()];
        Ok((
            CompletionPair {
                line: n,
                chosen: c,
                rejected: r,
            },
            lens,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(p: &str, c: &str, r: &str) -> PreferencePair {
        PreferencePair {
            prompt: Some(p.into()),
            chosen: c.into(),
            rejected: r.into(),
        }
    }

    #[test]
    fn byte_tokenizer_conventions() {
        let tok = Tokenizer::Bytes;
        let sp = Specials {
            eos_id: Some(35),
            eos_text: Some("#".into()),
            bos_id: Some(2),
        };
        let (v, st) = tokenize(&[pair("ab", "c", "de")], &tok, Template::TrlDpo, &sp, 100).unwrap();
        assert_eq!(st.kept, 1);
        assert_eq!(
            v[0].chosen,
            Completion {
                ids: vec![97, 98, 99, 35],
                start: 2
            }
        );
        assert_eq!(v[0].rejected.start, 2);
        let (v, _) = tokenize(&[pair("ab", "c", "de")], &tok, Template::TrlCpo, &sp, 100).unwrap();
        assert_eq!(
            v[0].chosen,
            Completion {
                ids: vec![2, 97, 98, 99, 35],
                start: 3
            }
        );
        let (v, st) = tokenize(&[pair("ab", "c", "de")], &tok, Template::TrlCpo, &sp, 4).unwrap();
        assert!(v.is_empty() && st.too_long == 1);
        let e = tokenize(&[pair("", "c", "d")], &tok, Template::TrlDpo, &sp, 10).unwrap_err();
        assert!(e.to_string().contains("prompt is empty"), "{e}");
        // No EOS to append: an empty completion has no token to average over.
        let none = Specials::default();
        let e = tokenize(&[pair("ab", "", "d")], &tok, Template::TrlDpo, &none, 10).unwrap_err();
        assert!(
            e.to_string().contains("pair 1: a completion has no tokens"),
            "{e}"
        );
        assert!("trl-xyz"
            .parse::<Template>()
            .unwrap_err()
            .to_string()
            .contains("trl-dpo or trl-cpo"));
    }
}
