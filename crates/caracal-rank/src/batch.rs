//! Tokenizing sessions into padded tensors: each row is one session laid out
//! as `[history (left-padded to H) ; candidates (right-padded to N)]`.

use crate::data::{action, Candidate, Event, Feed, Session};
use crate::mask::{attention_mask, CandidateAttention};
use crate::vocab::{Vocabs, OOV};
use candle_core::{Device, Tensor};
use caracal_core::Result;

/// Embedding rows of the action table: row 0 out-of-vocabulary, rows
/// `1..=3` the history actions, row 4 the "candidate" marker.
pub const ACTION_ROWS: usize = action::COUNT as usize + 2;
/// The action row that marks a candidate slot.
pub const CANDIDATE_ACTION: u32 = action::COUNT + 1;

/// The action row of a raw history action.
pub fn action_row(a: u32) -> u32 {
    if a < action::COUNT {
        a + 1
    } else {
        OOV
    }
}

/// One session's inputs, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Example<'a> {
    /// History, oldest first (already truncated to the model's maximum).
    pub history: &'a [Event],
    pub candidates: &'a [Candidate],
    /// `labels[c][t]`, when training or evaluating.
    pub labels: Option<&'a [Vec<f32>]>,
}

impl<'a> Example<'a> {
    /// The example of a feed session with its history before the session time.
    pub fn of(feed: &'a Feed, s: &'a Session, max_history: usize) -> Self {
        Example {
            history: feed.history_before(s.member, s.ts, max_history),
            candidates: &s.candidates,
            labels: if s.labels.is_empty() {
                None
            } else {
                Some(&s.labels)
            },
        }
    }
}

/// A padded batch of sessions.
pub struct Batch {
    pub b: usize,
    /// History slots per row.
    pub h: usize,
    /// Candidate slots per row.
    pub n: usize,
    /// Rows of `[item, actor, topic, kind, action]`, each `u32 [B·(H+N)]`.
    pub fields: [Tensor; 5],
    /// Recency row `u32 [B·(H+N)]`: `1 + k` for the `k`-th most recent
    /// history event, 0 for candidates and padding.
    pub recency: Tensor,
    /// Candidate age `f32 [B·(H+N), 1]` (0 for history and padding).
    pub age: Tensor,
    /// Additive attention mask `f32 [B, 1, H+N, H+N]`.
    pub mask: Tensor,
    /// Valid history slots, `B·H`, row-major.
    pub hist_valid: Vec<bool>,
    /// Valid candidate slots, `B·N`, row-major.
    pub cand_valid: Vec<bool>,
    /// Labels `f32 [B, N, T]` (0 on padding), when every example has them.
    pub labels: Option<Tensor>,
    /// 1 on valid candidate slots, `f32 [B, N]`.
    pub cand_weight: Tensor,
    /// Number of tasks (label columns).
    pub n_tasks: usize,
}

/// Tokenize `examples` with `vocabs`. `use_history = false` drops every
/// history (the "no history" ablation).
pub fn make_batch(
    examples: &[Example],
    vocabs: &Vocabs,
    max_history: usize,
    mode: CandidateAttention,
    use_history: bool,
    n_tasks: usize,
    dev: &Device,
) -> Result<Batch> {
    caracal_core::ensure!(!examples.is_empty(), "make_batch: no sessions given");
    let hist = |e: &Example<'_>| -> usize {
        if use_history {
            e.history.len().min(max_history)
        } else {
            0
        }
    };
    let h = examples.iter().map(hist).max().unwrap_or(0);
    let n = examples
        .iter()
        .map(|e| e.candidates.len())
        .max()
        .unwrap_or(0);
    caracal_core::ensure!(
        n > 0,
        "make_batch: every session needs at least one candidate"
    );
    let b = examples.len();
    let l = h + n;
    let mut fields: [Vec<u32>; 5] = Default::default();
    for f in fields.iter_mut() {
        f.reserve(b * l);
    }
    let mut recency = Vec::with_capacity(b * l);
    let mut age = Vec::with_capacity(b * l);
    let mut mask = Vec::with_capacity(b * l * l);
    let mut hist_valid = Vec::with_capacity(b * h);
    let mut cand_valid = Vec::with_capacity(b * n);
    let all_labeled = examples.iter().all(|e| e.labels.is_some());
    let mut labels = Vec::with_capacity(if all_labeled { b * n * n_tasks } else { 0 });
    let mut weight = Vec::with_capacity(b * n);
    for e in examples {
        let hl = hist(e);
        let evs = &e.history[e.history.len() - hl..];
        let pad = h - hl;
        let push = |fields: &mut [Vec<u32>; 5], r: [u32; 4], a: u32| {
            for k in 0..4 {
                fields[k].push(r[k]);
            }
            fields[4].push(a);
        };
        for _ in 0..pad {
            push(&mut fields, [OOV; 4], OOV);
            recency.push(0);
            age.push(0.0);
        }
        for (k, ev) in evs.iter().enumerate() {
            push(&mut fields, vocabs.rows(&ev.post), action_row(ev.action));
            recency.push((hl - k) as u32);
            age.push(0.0);
        }
        let hv: Vec<bool> = (0..h).map(|k| k >= pad).collect();
        for c in 0..n {
            match e.candidates.get(c) {
                Some(cand) => {
                    push(&mut fields, vocabs.rows(&cand.post), CANDIDATE_ACTION);
                    age.push(if cand.age.is_finite() { cand.age } else { 0.0 });
                }
                None => {
                    push(&mut fields, [OOV; 4], OOV);
                    age.push(0.0);
                }
            }
            recency.push(0);
        }
        let cv: Vec<bool> = (0..n).map(|c| c < e.candidates.len()).collect();
        mask.extend(attention_mask(&hv, &cv, mode));
        hist_valid.extend(&hv);
        cand_valid.extend(&cv);
        for (c, &valid) in cv.iter().enumerate() {
            weight.push(if valid { 1.0f32 } else { 0.0 });
            if all_labeled {
                let row = e.labels.and_then(|ls| ls.get(c));
                for t in 0..n_tasks {
                    labels.push(row.and_then(|r| r.get(t)).copied().unwrap_or(0.0));
                }
            }
        }
        if let Some(ls) = e.labels {
            caracal_core::ensure!(
                ls.len() == e.candidates.len() && ls.iter().all(|r| r.len() == n_tasks),
                "a session has {} candidates but {} label rows, or not {n_tasks} labels per candidate",
                e.candidates.len(),
                ls.len()
            );
        }
    }
    let u = |v: Vec<u32>| Tensor::from_vec(v, b * l, dev);
    let [f0, f1, f2, f3, f4] = fields;
    Ok(Batch {
        b,
        h,
        n,
        fields: [u(f0)?, u(f1)?, u(f2)?, u(f3)?, u(f4)?],
        recency: u(recency)?,
        age: Tensor::from_vec(age, (b * l, 1), dev)?,
        mask: Tensor::from_vec(mask, (b, 1, l, l), dev)?,
        hist_valid,
        cand_valid,
        labels: if all_labeled {
            Some(Tensor::from_vec(labels, (b, n, n_tasks), dev)?)
        } else {
            None
        },
        cand_weight: Tensor::from_vec(weight, (b, n), dev)?,
        n_tasks,
    })
}
