//! Serving a LiGR model: the member's history is run through every layer
//! once and its keys/values cached; all candidates are then scored in one
//! pass, their queries attending to `[cached history K/V ; candidate K/V]`.
//!
//! History rows never attend to candidates (see [`crate::mask`]), so the
//! cached states are exactly those of the full sequence: the scores equal a
//! full forward pass up to floating-point rounding.

use crate::batch::{make_batch, Example};
use crate::data::{Candidate, Event};
use crate::ligr::{LayerKv, Ligr};
use crate::mask::{attention_mask, candidate_rows, CandidateAttention};
use crate::model::{sigmoid, Scorer};
use candle_core::{Device, Tensor};
use caracal_core::Result;

/// A trained LiGR model ready to score requests.
pub struct Ranker {
    pub model: Ligr,
}

/// A member's history run through every layer, reusable across candidate sets.
pub struct HistoryCache {
    /// History length actually used (after truncation to the model's maximum).
    pub len: usize,
    kv: Vec<LayerKv>,
}

impl Ranker {
    pub fn new(model: Ligr) -> Self {
        Ranker { model }
    }

    /// Run the most recent `max_history` events of `history` through every
    /// layer and keep each layer's K/V. An empty history gives an empty cache.
    pub fn encode_history(&self, history: &[Event]) -> Result<HistoryCache> {
        let m = &self.model;
        let h = if m.cfg.use_history {
            history.len().min(m.cfg.max_history)
        } else {
            0
        };
        if h == 0 {
            return Ok(HistoryCache {
                len: 0,
                kv: Vec::new(),
            });
        }
        let hist = &history[history.len() - h..];
        // A batch holding only the history: one dummy candidate is added by
        // make_batch's layout, so build the history tokens directly instead.
        let dummy = [Candidate {
            post: hist[0].post,
            age: 0.0,
        }];
        let ex = Example {
            history: hist,
            candidates: &dummy,
            labels: None,
        };
        let batch = m.batch(&[ex])?;
        let x = m.embed(&batch)?.narrow(0, 0, h)?;
        let mask = Tensor::from_vec(
            attention_mask(&vec![true; h], &[], m.cfg.mode),
            (1, 1, h, h),
            &Device::Cpu,
        )?;
        let (_, kv) = m.run_layers(x, 1, h, &mask)?;
        Ok(HistoryCache { len: h, kv })
    }

    /// Probabilities `[candidate][task]` of `candidates` given a cached history.
    pub fn score_cached(
        &self,
        cache: &HistoryCache,
        candidates: &[Candidate],
    ) -> Result<Vec<Vec<f32>>> {
        let m = &self.model;
        let n = candidates.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let ex = Example {
            history: &[],
            candidates,
            labels: None,
        };
        let batch = make_batch(
            &[ex],
            &m.vocabs,
            m.cfg.max_history,
            m.cfg.mode,
            false,
            m.cfg.n_tasks,
            &Device::Cpu,
        )?;
        let xc = m.embed(&batch)?;
        let h = cache.len;
        let mask = Tensor::from_vec(
            candidate_rows(h, n, m.cfg.mode),
            (1, 1, n, h + n),
            &Device::Cpu,
        )?;
        let z = m.candidates_over_cache(xc, n, &cache.kv, &mask)?;
        Ok(sigmoid(&z)?.to_vec2()?)
    }

    /// `Ranker::score(member_history, candidates)`: the history's K/V once,
    /// then every candidate in one pass. Returns probabilities
    /// `[candidate][task]`; ids unseen in training use the OOV rows.
    pub fn score(&self, history: &[Event], candidates: &[Candidate]) -> Result<Vec<Vec<f32>>> {
        let cache = self.encode_history(history)?;
        self.score_cached(&cache, candidates)
    }

    /// The same scores from one full forward pass over `[history ; candidates]`.
    pub fn score_full(&self, history: &[Event], candidates: &[Candidate]) -> Result<Vec<Vec<f32>>> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let ex = Example {
            history: &history[history.len() - history.len().min(self.model.cfg.max_history)..],
            candidates,
            labels: None,
        };
        let batch = self.model.batch(&[ex])?;
        let p = sigmoid(&self.model.logits(&batch)?)?;
        Ok(p.squeeze(0)?.to_vec2()?)
    }

    /// Naive serving: for every candidate, recompute the history and the
    /// candidate (set-wise: the session's whole candidate set, which it
    /// attends to) and keep that candidate's score.
    pub fn score_naive(
        &self,
        history: &[Event],
        candidates: &[Candidate],
    ) -> Result<Vec<Vec<f32>>> {
        (0..candidates.len())
            .map(|c| self.score_naive_at(history, candidates, c))
            .collect()
    }

    /// One step of [`Ranker::score_naive`]: candidate `c`'s probabilities
    /// from its own full recomputation.
    pub fn score_naive_at(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        c: usize,
    ) -> Result<Vec<f32>> {
        caracal_core::ensure!(
            c < candidates.len(),
            "candidate {c} of {}",
            candidates.len()
        );
        Ok(match self.model.cfg.mode {
            CandidateAttention::SetWise => self.score_full(history, candidates)?.swap_remove(c),
            CandidateAttention::Pointwise => {
                self.score_full(history, &candidates[c..=c])?.swap_remove(0)
            }
        })
    }
}
