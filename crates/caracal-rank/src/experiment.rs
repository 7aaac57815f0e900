//! The comparison on simulated data: LiGR set-wise, its ablations (pointwise
//! candidates, no history), DCNv2 and two ground-truth oracles (the true
//! probabilities, and the true probabilities without the in-session repeat
//! penalties — the ceiling of any pointwise scorer), trained on the same
//! split and evaluated on held-out members.

use crate::data::Feed;
use crate::dcn::{Dcn, DcnConfig};
use crate::eval::{evaluate, oracle, predict, EvalReport};
use crate::ligr::{Ligr, LigrConfig};
use crate::mask::CandidateAttention;
use crate::model::Scorer;
use crate::sim::{simulate, SimConfig};
use crate::train::{train, TrainConfig, TrainReport};
use crate::vocab::Vocabs;
use caracal_core::Result;

/// Sizes of the comparison.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CompareConfig {
    pub sim: SimConfig,
    pub ligr: LigrConfig,
    pub dcn: DcnConfig,
    pub train: TrainConfig,
    /// NDCG and diversity cut-off.
    pub k: usize,
}

impl Default for CompareConfig {
    /// The configuration of `examples/compare.rs`: the default simulator,
    /// history read up to its full length by both models, and the same
    /// training recipe for every model (AdamW 1e-2, batch 32, ≤ 12 epochs,
    /// patience 4, item-ID dropout 0.5; DCNv2 with the pointwise loss).
    fn default() -> Self {
        let sim = SimConfig::default();
        CompareConfig {
            ligr: LigrConfig {
                max_history: sim.history_len,
                ..LigrConfig::default()
            },
            dcn: DcnConfig {
                max_history: sim.history_len,
                ..DcnConfig::default()
            },
            train: TrainConfig {
                lr: 1e-2,
                patience: 4,
                item_dropout: 0.5,
                ..TrainConfig::default()
            },
            sim,
            k: 5,
        }
    }
}

/// One row of the comparison table.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CompareRow {
    pub model: String,
    pub params: usize,
    pub eval: EvalReport,
    pub train: Option<TrainReport>,
}

/// Train and evaluate one model on a split.
pub fn fit_eval(
    model: &dyn Scorer,
    tr: &Feed,
    va: &Feed,
    te: &Feed,
    cfg: &TrainConfig,
    k: usize,
) -> Result<CompareRow> {
    let rep = train(model, tr, va, cfg)?;
    let eval = evaluate(te, &predict(model, te, 256)?, k)?;
    Ok(CompareRow {
        model: model.name(),
        params: model.params().count(),
        eval,
        train: Some(rep),
    })
}

/// Simulate, split by member 70/15/15, and compare every model.
pub fn compare(cfg: &CompareConfig) -> Result<Vec<CompareRow>> {
    let feed = simulate(&cfg.sim)?;
    let (tr, va, te) = feed.split_by_member(0.7, 0.15, cfg.sim.seed)?;
    let vocabs = Vocabs::from_feed(&tr);
    let mut rows = Vec::new();
    let variants = [
        (CandidateAttention::SetWise, true),
        (CandidateAttention::Pointwise, true),
        (CandidateAttention::SetWise, false),
    ];
    for (mode, use_history) in variants {
        let m = Ligr::new(
            LigrConfig {
                mode,
                use_history,
                n_tasks: feed.tasks.len(),
                ..cfg.ligr.clone()
            },
            vocabs.clone(),
        )?;
        rows.push(fit_eval(&m, &tr, &va, &te, &cfg.train, cfg.k)?);
    }
    let d = Dcn::new(
        DcnConfig {
            n_tasks: feed.tasks.len(),
            ..cfg.dcn.clone()
        },
        vocabs,
    )?;
    let dcn_train = TrainConfig {
        loss: crate::loss::LossKind::Pointwise,
        ..cfg.train.clone()
    };
    rows.push(fit_eval(&d, &tr, &va, &te, &dcn_train, cfg.k)?);
    rows.push(CompareRow {
        model: "oracle (true probabilities)".into(),
        params: 0,
        eval: evaluate(&te, &oracle(&te)?, cfg.k)?,
        train: None,
    });
    // The same feed without the repeat penalties draws the same members,
    // histories and candidates: its truth is the pointwise part of the utility.
    let flat = simulate(&SimConfig {
        actor_repeat_penalty: 0.0,
        topic_repeat_penalty: 0.0,
        ..cfg.sim.clone()
    })?;
    let (_, _, te_flat) = flat.split_by_member(0.7, 0.15, cfg.sim.seed)?;
    rows.push(CompareRow {
        model: "pointwise oracle (no set effects)".into(),
        params: 0,
        eval: evaluate(&te, &oracle(&te_flat)?, cfg.k)?,
        train: None,
    });
    Ok(rows)
}
