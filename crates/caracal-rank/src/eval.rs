//! Offline evaluation: AUC per task, NDCG@k per session and diversity of the
//! top k (distinct actors and topics, intra-list similarity).
//!
//! A session is ranked by the sum of its task probabilities; its graded
//! relevance is the sum of its labels (dwell + contribution in the
//! simulator). Intra-list similarity (Ziegler et al., WWW 2005) is the mean,
//! over pairs of the top k, of `sim(i, j) = ([same topic] + [same actor] +
//! [same type]) / 3`; lower is more diverse.

use crate::batch::Example;
use crate::data::Feed;
use crate::model::Scorer;
use caracal_core::metrics::{auc, ndcg_at_k};
use caracal_core::Result;

/// Probabilities `[session][candidate][task]`.
pub type Predictions = Vec<Vec<Vec<f32>>>;

/// What [`evaluate`] measured.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    pub tasks: Vec<String>,
    /// AUC per task (NaN when a task has only one class).
    pub auc: Vec<f64>,
    pub k: usize,
    /// Mean NDCG@k over sessions with at least one positive.
    pub ndcg: f64,
    /// Mean number of distinct actors in the top k.
    pub distinct_actors: f64,
    /// Mean number of distinct topics in the top k.
    pub distinct_topics: f64,
    /// Mean intra-list similarity of the top k (lower is more diverse).
    pub ils: f64,
    pub sessions: usize,
}

impl EvalReport {
    /// Mean AUC over the tasks that have both classes.
    pub fn mean_auc(&self) -> f64 {
        let v: Vec<f64> = self.auc.iter().copied().filter(|a| a.is_finite()).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }
}

/// Predicted probabilities for every session of `feed`, `batch_size`
/// sessions at a time.
pub fn predict(model: &dyn Scorer, feed: &Feed, batch_size: usize) -> Result<Predictions> {
    let mut out = Vec::with_capacity(feed.sessions.len());
    for chunk in feed.sessions.chunks(batch_size.max(1)) {
        let ex: Vec<Example> = chunk
            .iter()
            .map(|s| Example::of(feed, s, model.max_history()))
            .collect();
        let batch = model.batch(&ex)?;
        let p = crate::model::sigmoid(&model.logits(&batch)?)?;
        let p: Vec<Vec<Vec<f32>>> = p.to_vec3()?;
        for (s, ps) in chunk.iter().zip(p) {
            out.push(ps.into_iter().take(s.candidates.len()).collect());
        }
    }
    Ok(out)
}

/// The ground-truth probabilities of a simulated feed, as predictions (the
/// oracle's row in a comparison).
pub fn oracle(feed: &Feed) -> Result<Predictions> {
    feed.sessions
        .iter()
        .map(|s| {
            s.truth.clone().ok_or_else(|| {
                caracal_core::Error::invalid("the feed has no ground truth (p_* columns)")
            })
        })
        .collect()
}

/// Evaluate `preds` against the labels of `feed` at cut-off `k`.
pub fn evaluate(feed: &Feed, preds: &Predictions, k: usize) -> Result<EvalReport> {
    feed.ensure_labeled()?;
    caracal_core::ensure!(k > 0, "eval: k must be at least 1");
    caracal_core::ensure!(
        preds.len() == feed.sessions.len(),
        "eval: {} predicted sessions for {} sessions",
        preds.len(),
        feed.sessions.len()
    );
    let t = feed.tasks.len();
    let mut labels = vec![Vec::new(); t];
    let mut scores = vec![Vec::new(); t];
    let (mut ndcg, mut n_ndcg) = (0.0, 0usize);
    let (mut da, mut dt, mut ils, mut n_div) = (0.0, 0.0, 0.0, 0usize);
    for (s, p) in feed.sessions.iter().zip(preds) {
        caracal_core::ensure!(
            p.len() == s.candidates.len() && p.iter().all(|r| r.len() == t),
            "eval: session {} has {} candidates but {} predictions",
            s.id,
            s.candidates.len(),
            p.len()
        );
        for (ls, ps) in s.labels.iter().zip(p) {
            for ti in 0..t {
                labels[ti].push(ls[ti] > 0.5);
                scores[ti].push(ps[ti] as f64);
            }
        }
        let score: Vec<f64> = p
            .iter()
            .map(|r| r.iter().map(|&x| x as f64).sum())
            .collect();
        let rel: Vec<f64> = s
            .labels
            .iter()
            .map(|r| r.iter().map(|&x| x as f64).sum())
            .collect();
        if rel.iter().any(|&r| r > 0.0) {
            ndcg += ndcg_at_k(&rel, &score, k)?;
            n_ndcg += 1;
        }
        if s.candidates.is_empty() {
            continue;
        }
        let mut order: Vec<usize> = (0..score.len()).collect();
        order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
        let top: Vec<_> = order
            .iter()
            .take(k)
            .map(|&i| s.candidates[i].post)
            .collect();
        let distinct = |f: &dyn Fn(&crate::data::Post) -> u64| {
            let mut v: Vec<u64> = top.iter().map(f).collect();
            v.sort_unstable();
            v.dedup();
            v.len() as f64
        };
        da += distinct(&|p| p.actor);
        dt += distinct(&|p| p.topic);
        let mut sim = 0.0;
        let mut pairs = 0usize;
        for i in 0..top.len() {
            for j in i + 1..top.len() {
                let (a, b) = (top[i], top[j]);
                sim += ((a.topic == b.topic) as u8
                    + (a.actor == b.actor) as u8
                    + (a.kind == b.kind) as u8) as f64
                    / 3.0;
                pairs += 1;
            }
        }
        ils += if pairs > 0 { sim / pairs as f64 } else { 0.0 };
        n_div += 1;
    }
    let auc: Vec<f64> = (0..t)
        .map(|ti| auc(&labels[ti], &scores[ti]).unwrap_or(f64::NAN))
        .collect();
    let mean = |x: f64, n: usize| if n > 0 { x / n as f64 } else { f64::NAN };
    Ok(EvalReport {
        tasks: feed.tasks.clone(),
        auc,
        k,
        ndcg: mean(ndcg, n_ndcg),
        distinct_actors: mean(da, n_div),
        distinct_topics: mean(dt, n_div),
        ils: mean(ils, n_div),
        sessions: feed.sessions.len(),
    })
}
