//! Preference pairs in TRL's JSONL formats, and their tokenization as TRL's
//! `RewardTrainer` does it for plain text.
//!
//! Each line is `{"prompt": .., "chosen": .., "rejected": ..}` or, with the
//! prompt implicit (already at the start of both responses),
//! `{"chosen": .., "rejected": ..}`. For each response the EOS token's text
//! is appended when the response does not already end with it, and
//! `prompt + response` is tokenized once with the tokenizer's own
//! special-token rules. Pairs longer than `max_length` tokens on either
//! side are dropped and counted, never truncated.

use caracal_core::{Error, Result};
use caracal_models::Tokenizer;
use std::path::Path;

/// One preference pair as written in the file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PreferencePair {
    /// `None`: the implicit-prompt form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub chosen: String,
    pub rejected: String,
}

/// A pair as token ids, with the file line it came from (1-based).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenPair {
    pub line: usize,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

/// What tokenization kept, dropped and noticed.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PairStats {
    /// Pairs read from the file.
    pub read: usize,
    /// Pairs kept.
    pub kept: usize,
    /// Dropped: longer than `max_length` tokens on either side.
    pub too_long: usize,
    /// Kept, but chosen and rejected are the same text (they add `log 2`
    /// to the BT loss and carry no preference).
    pub identical: usize,
    /// Kept, with an empty chosen or rejected response (EOS alone).
    pub empty: usize,
}

impl PairStats {
    /// Count a kept pair's oddities: identical sides, and an empty side.
    pub fn count_kept(&mut self, p: &PreferencePair) {
        if p.chosen == p.rejected {
            self.identical += 1;
        }
        if p.chosen.trim().is_empty() || p.rejected.trim().is_empty() {
            self.empty += 1;
        }
    }

    /// One line per thing a user should know, empty when nothing is wrong.
    pub fn warnings(&self, file: &str) -> Vec<String> {
        let mut w = Vec::new();
        if self.too_long > 0 {
            w.push(format!(
                "{file}: {} of {} pairs are longer than --max-length tokens and were dropped",
                self.too_long, self.read
            ));
        }
        if self.identical > 0 {
            w.push(format!(
                "{file}: {} pairs have identical chosen and rejected responses (kept; they carry no preference)",
                self.identical
            ));
        }
        if self.empty > 0 {
            w.push(format!(
                "{file}: {} pairs have an empty chosen or rejected response (kept, scored on the EOS token alone)",
                self.empty
            ));
        }
        w
    }
}

/// Read a JSONL file of pairs; a malformed line is an error naming it.
pub fn read_pairs(path: &Path) -> Result<Vec<PreferencePair>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read as UTF-8 text: {e}")))?;
    parse_pairs(&text, path)
}

/// Parse JSONL text of pairs; `source` names it in errors.
pub fn parse_pairs(text: &str, source: &Path) -> Result<Vec<PreferencePair>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| Error::file(source, format!("line {n}: {m}"));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("is not valid JSON ({e})")))?;
        let o = v
            .as_object()
            .ok_or_else(|| bad("must be a JSON object with `chosen` and `rejected`".into()))?;
        let field = |k: &str, required: bool| -> Result<Option<String>> {
            match o.get(k) {
                None | Some(serde_json::Value::Null) if !required => Ok(None),
                None | Some(serde_json::Value::Null) => Err(bad(format!(
                    "field `{k}` is missing; each line needs `chosen` and `rejected` (and optionally `prompt`)"
                ))),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Array(_)) => Err(bad(format!(
                    "field `{k}` is a list of messages (conversational format), which is not supported; give plain text"
                ))),
                Some(other) => Err(bad(format!("field `{k}` is {other}; expected a string"))),
            }
        };
        out.push(PreferencePair {
            prompt: field("prompt", false)?,
            chosen: field("chosen", true)?.unwrap_or_default(),
            rejected: field("rejected", true)?.unwrap_or_default(),
        });
    }
    if out.is_empty() {
        return Err(Error::file(source, "holds no preference pairs"));
    }
    Ok(out)
}

/// Token ids of `prompt + response` with the EOS text appended when
/// missing, as TRL's `RewardTrainer` builds them.
pub fn encode_response(
    tok: &Tokenizer,
    eos_text: Option<&str>,
    prompt: Option<&str>,
    response: &str,
) -> Result<Vec<u32>> {
    let mut text = String::with_capacity(response.len() + 32);
    if let Some(p) = prompt {
        text.push_str(p);
    }
    text.push_str(response);
    if let Some(eos) = eos_text {
        if !response.ends_with(eos) {
            text.push_str(eos);
        }
    }
    let ids = tok.encode_with_special(&text)?;
    if ids.is_empty() {
        caracal_core::bail!("a response tokenizes to no tokens; give non-empty text");
    }
    Ok(ids)
}

/// The loop every pair tokenizer shares: `encode` turns pair `n` (1-based)
/// into its tokenized form and the token lengths of its two sides; pairs
/// longer than `max_length` on either side are dropped and counted, never
/// truncated, and the kept ones are counted for their oddities.
pub(crate) fn tokenize_each<T>(
    pairs: &[PreferencePair],
    max_length: usize,
    mut encode: impl FnMut(usize, &PreferencePair) -> Result<(T, [usize; 2])>,
) -> Result<(Vec<T>, PairStats)> {
    if max_length == 0 {
        caracal_core::bail!("--max-length is 0; it must be at least 1");
    }
    let mut stats = PairStats {
        read: pairs.len(),
        ..PairStats::default()
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (i, p) in pairs.iter().enumerate() {
        let (t, lens) = encode(i + 1, p)?;
        if lens.iter().any(|&l| l > max_length) {
            stats.too_long += 1;
            continue;
        }
        stats.count_kept(p);
        out.push(t);
    }
    stats.kept = out.len();
    Ok((out, stats))
}

/// Tokenize pairs, dropping (and counting) those longer than `max_length`.
pub fn tokenize_pairs(
    pairs: &[PreferencePair],
    tok: &Tokenizer,
    eos_text: Option<&str>,
    max_length: usize,
) -> Result<(Vec<TokenPair>, PairStats)> {
    tokenize_each(pairs, max_length, |n, p| {
        let enc = |r: &str| {
            encode_response(tok, eos_text, p.prompt.as_deref(), r)
                .map_err(|e| Error::invalid(format!("pair {n}: {e}")))
        };
        let (c, r) = (enc(&p.chosen)?, enc(&p.rejected)?);
        let lens = [c.len(), r.len()];
        Ok((
            TokenPair {
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

    #[test]
    fn reads_both_forms_and_names_bad_lines() {
        let p = Path::new("pairs.jsonl");
        let v = parse_pairs(
            "{\"prompt\":\"Q \",\"chosen\":\"a\",\"rejected\":\"b\"}\n\n{\"chosen\":\"Q a\",\"rejected\":\"Q b\"}\n",
            p,
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].prompt.as_deref(), Some("Q "));
        assert_eq!(v[1].prompt, None);
        for (text, want) in [
            ("{\"chosen\":\"a\"}", "line 1: field `rejected` is missing"),
            (
                "{\"chosen\":\"a\",\"rejected\":\"b\"}\n{oops",
                "line 2: is not valid JSON",
            ),
            ("[1,2]", "line 1: must be a JSON object"),
            (
                "{\"chosen\":[{\"role\":\"user\"}],\"rejected\":\"b\"}",
                "conversational",
            ),
            ("{\"chosen\":1,\"rejected\":\"b\"}", "expected a string"),
            ("\n\n", "holds no preference pairs"),
        ] {
            let e = parse_pairs(text, p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("pairs.jsonl"), "{e}");
        }
    }

    #[test]
    fn appends_eos_once_and_filters_long_pairs() {
        let tok = Tokenizer::Bytes;
        let ids = encode_response(&tok, Some("#"), Some("ab"), "c").unwrap();
        assert_eq!(ids, b"abc#".iter().map(|&b| b as u32).collect::<Vec<_>>());
        let ids = encode_response(&tok, Some("#"), Some("ab"), "c#").unwrap();
        assert_eq!(ids.len(), 4);
        let pairs = vec![
            PreferencePair {
                prompt: Some("p".into()),
                chosen: "same".into(),
                rejected: "same".into(),
            },
            PreferencePair {
                prompt: None,
                chosen: "a much longer response".into(),
                rejected: "".into(),
            },
        ];
        let (kept, st) = tokenize_pairs(&pairs, &tok, Some("#"), 8).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].line, 1);
        assert_eq!(
            st,
            PairStats {
                read: 2,
                kept: 1,
                too_long: 1,
                identical: 1,
                empty: 0
            }
        );
        assert_eq!(st.warnings("f").len(), 2);
        let (_, st) = tokenize_pairs(&pairs, &tok, Some("#"), 100).unwrap();
        assert_eq!(st.empty, 1);
        assert!(tokenize_pairs(&pairs, &tok, None, 0).is_err());
    }
}
