//! Training any [`Scorer`]: AdamW on shuffled session batches, validation
//! AUC after each epoch, early stopping that restores the best weights, an
//! atomic checkpoint of the best model and one JSON line per epoch. With a
//! state file, the whole run (weights, best weights, AdamW moments, RNG,
//! shuffle order, report) is saved atomically after every epoch, and a run
//! killed at any point resumes from its last finished epoch exactly as if
//! it had not stopped.

use crate::adamw::{AdamState, AdamW};
use crate::batch::Example;
use crate::data::Feed;
use crate::eval::{evaluate, predict};
use crate::loss::{loss, LossKind};
use crate::model::Scorer;
use crate::params::{Params, Stored};
use caracal_core::progress::{bar, JsonlLog};
use caracal_core::{Result, Rng};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// How to train.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Sessions per step.
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub loss: LossKind,
    /// Stop after this many epochs without a better validation AUC.
    pub patience: usize,
    /// Probability with which a training token's item id is replaced by the
    /// out-of-vocabulary row (ID dropout): it keeps the item-ID table from
    /// memorizing label noise before the shared structure is learned, and
    /// trains the row that unseen items use.
    #[serde(default)]
    pub item_dropout: f64,
    pub seed: u64,
    /// Where the best model is written (atomically) as JSON.
    pub checkpoint: Option<PathBuf>,
    /// Where one JSON object per epoch is appended.
    pub log: Option<PathBuf>,
    /// Where the training state is written (atomically) after every epoch.
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// Continue from `state` (which must exist) instead of starting over.
    #[serde(default)]
    pub resume: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 12,
            batch_size: 32,
            lr: 5e-3,
            weight_decay: 1e-4,
            loss: LossKind::Both {
                listwise_weight: 1.0,
            },
            patience: 3,
            item_dropout: 0.0,
            seed: 1,
            checkpoint: None,
            log: None,
            state: None,
            resume: false,
        }
    }
}

/// Everything a run needs to continue after its last finished epoch.
#[derive(serde::Serialize, serde::Deserialize)]
struct TrainState {
    /// Epochs finished.
    epoch: usize,
    /// Whether early stopping ended the run.
    stopped: bool,
    params: BTreeMap<String, Stored>,
    best: BTreeMap<String, Stored>,
    opt: AdamState,
    rng: ([u64; 4], Option<f64>),
    order: Vec<usize>,
    report: TrainReport,
}

fn stored(params: &Params, snap: &[candle_core::Tensor]) -> Result<BTreeMap<String, Stored>> {
    let mut m = BTreeMap::new();
    for (n, t) in params.names().iter().zip(snap) {
        m.insert(
            n.clone(),
            Stored {
                shape: t.dims().to_vec(),
                values: t.flatten_all()?.to_vec1()?,
            },
        );
    }
    Ok(m)
}

fn unstored(params: &Params, m: &BTreeMap<String, Stored>) -> Result<Vec<candle_core::Tensor>> {
    params
        .names()
        .iter()
        .zip(params.vars())
        .map(|(n, v)| {
            let s = m.get(n).ok_or_else(|| {
                caracal_core::Error::invalid(format!("the training state has no tensor `{n}`"))
            })?;
            caracal_core::ensure!(
                s.shape == v.dims(),
                "training-state tensor `{n}` has shape {:?}; the model expects {:?}",
                s.shape,
                v.dims()
            );
            Ok(candle_core::Tensor::from_vec(
                s.values.clone(),
                v.dims(),
                v.device(),
            )?)
        })
        .collect()
}

/// Keep the log's lines up to `epoch` (a run killed after logging an epoch
/// but before saving its state logs that epoch again on resume).
fn truncate_log(path: &std::path::Path, epoch: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| caracal_core::Error::file(path, format!("cannot read: {e}")))?;
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["epoch"].as_u64())
                .is_some_and(|e| e as usize <= epoch)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    caracal_core::write_atomic(path, kept.as_bytes())
}

/// One epoch's record.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    /// Mean validation AUC over tasks.
    pub valid_auc: f64,
    pub seconds: f64,
}

/// What [`train`] did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainReport {
    pub model: String,
    pub epochs: Vec<EpochLog>,
    pub best_epoch: usize,
    pub best_valid_auc: f64,
    pub seconds: f64,
    /// Sessions × epochs seen (for compute accounting).
    pub sessions_seen: usize,
}

/// Train `model` in place on `train`, early-stopping on `valid`.
pub fn train(
    model: &dyn Scorer,
    train: &Feed,
    valid: &Feed,
    cfg: &TrainConfig,
) -> Result<TrainReport> {
    train.ensure_labeled()?;
    valid.ensure_labeled()?;
    caracal_core::ensure!(
        !train.sessions.is_empty(),
        "train: the training feed has no sessions"
    );
    caracal_core::ensure!(
        train.tasks.len() == model.n_tasks(),
        "train: the data has {} tasks ({}) but the model has {} heads",
        train.tasks.len(),
        train.tasks.join(", "),
        model.n_tasks()
    );
    caracal_core::ensure!(
        cfg.batch_size > 0 && cfg.lr > 0.0,
        "train: batch_size and lr must be positive"
    );
    let start = Instant::now();
    let mut rng = Rng::new(cfg.seed);
    let mut opt = AdamW::new(model.params(), cfg.lr, cfg.weight_decay);
    let mut report = TrainReport {
        model: model.name(),
        epochs: Vec::new(),
        best_epoch: 0,
        best_valid_auc: f64::NEG_INFINITY,
        seconds: 0.0,
        sessions_seen: 0,
    };
    let mut best = model.params().snapshot()?;
    let mut order: Vec<usize> = (0..train.sessions.len()).collect();
    let mut first_epoch = 1;
    if cfg.resume {
        let p = cfg.state.as_ref().ok_or_else(|| {
            caracal_core::Error::invalid("train: resume needs a training-state path")
        })?;
        caracal_core::ensure!(
            p.exists(),
            "train: there is no training state at {}; start without resume",
            p.display()
        );
        let text = std::fs::read_to_string(p)
            .map_err(|e| caracal_core::Error::file(p, format!("cannot read: {e}")))?;
        let st: TrainState = serde_json::from_str(&text)
            .map_err(|e| caracal_core::Error::file(p, format!("is not a training state ({e})")))?;
        caracal_core::ensure!(
            st.report.model == model.name() && st.order.len() == order.len(),
            "train: the state at {} is for {} on {} sessions, not {} on {}",
            p.display(),
            st.report.model,
            st.order.len(),
            model.name(),
            order.len()
        );
        model.params().load_stored(&st.params)?;
        best = unstored(model.params(), &st.best)?;
        opt.load_state(model.params(), &st.opt)?;
        rng = Rng::from_state(st.rng.0, st.rng.1);
        order = st.order;
        report = st.report;
        first_epoch = if st.stopped {
            cfg.epochs + 1
        } else {
            st.epoch + 1
        };
        if let Some(l) = &cfg.log {
            truncate_log(l, st.epoch)?;
        }
    }
    let mut log = match &cfg.log {
        Some(p) => Some(JsonlLog::append(p)?),
        None => None,
    };
    let steps_per_epoch = train.sessions.len().div_ceil(cfg.batch_size);
    let remaining = (cfg.epochs + 1).saturating_sub(first_epoch);
    let pb = bar((steps_per_epoch * remaining) as u64, &model.name());
    let previous_seconds = report.seconds;
    for epoch in first_epoch..=cfg.epochs {
        let t0 = Instant::now();
        rng.shuffle(&mut order);
        let (mut total, mut steps) = (0.0, 0usize);
        for idx in order.chunks(cfg.batch_size) {
            let ex: Vec<Example> = idx
                .iter()
                .map(|&i| Example::of(train, &train.sessions[i], model.max_history()))
                .collect();
            let mut batch = model.batch(&ex)?;
            if cfg.item_dropout > 0.0 {
                let mut ids: Vec<u32> = batch.fields[0].to_vec1()?;
                for id in ids.iter_mut() {
                    if rng.bernoulli(cfg.item_dropout) {
                        *id = crate::vocab::OOV;
                    }
                }
                let n = ids.len();
                batch.fields[0] = candle_core::Tensor::from_vec(ids, n, batch.fields[0].device())?;
            }
            let labels = batch
                .labels
                .as_ref()
                .ok_or_else(|| caracal_core::Error::invalid("train: a session has no labels"))?;
            let z = model.logits(&batch)?;
            let l = loss(cfg.loss, &z, labels, &batch.cand_weight)?;
            let lv = l.to_scalar::<f32>()? as f64;
            if !lv.is_finite() {
                return Err(caracal_core::Error::Numeric(format!(
                    "train: the loss became {lv} at epoch {epoch}; lower the learning rate"
                )));
            }
            opt.step(model.params(), &l.backward()?)?;
            total += lv;
            steps += 1;
            report.sessions_seen += idx.len();
            pb.inc(1);
        }
        let valid_auc = if valid.sessions.is_empty() {
            f64::NAN
        } else {
            evaluate(valid, &predict(model, valid, 256)?, 5)?.mean_auc()
        };
        let rec = EpochLog {
            epoch,
            train_loss: total / steps.max(1) as f64,
            valid_auc,
            seconds: t0.elapsed().as_secs_f64(),
        };
        pb.set_message(format!(
            "loss {:.4} valid AUC {:.4}",
            rec.train_loss, valid_auc
        ));
        if let Some(log) = log.as_mut() {
            let mut v = serde_json::to_value(&rec).unwrap_or_default();
            v["model"] = serde_json::Value::String(model.name());
            log.log(&v)?;
        }
        let improved =
            valid_auc > report.best_valid_auc || (valid_auc.is_nan() && epoch == cfg.epochs);
        report.epochs.push(rec);
        let took_best = improved || report.best_epoch == 0;
        if took_best {
            report.best_epoch = epoch;
            report.best_valid_auc = valid_auc;
            best = model.params().snapshot()?;
            if let Some(p) = &cfg.checkpoint {
                let bytes = serde_json::to_vec(&model.checkpoint()?)
                    .map_err(|e| caracal_core::Error::file(p, format!("cannot serialize: {e}")))?;
                caracal_core::write_atomic(p, &bytes)?;
            }
        }
        let stop = !took_best && epoch - report.best_epoch >= cfg.patience;
        if let Some(p) = &cfg.state {
            report.seconds = previous_seconds + start.elapsed().as_secs_f64();
            let st = TrainState {
                epoch,
                stopped: stop,
                params: model.params().to_stored()?,
                best: stored(model.params(), &best)?,
                opt: opt.state()?,
                rng: rng.state(),
                order: order.clone(),
                report: report.clone(),
            };
            let bytes = serde_json::to_vec(&st)
                .map_err(|e| caracal_core::Error::file(p, format!("cannot serialize: {e}")))?;
            caracal_core::write_atomic(p, &bytes)?;
        }
        if stop {
            break;
        }
    }
    pb.finish_and_clear();
    model.params().restore(&best)?;
    report.seconds = previous_seconds + start.elapsed().as_secs_f64();
    Ok(report)
}
