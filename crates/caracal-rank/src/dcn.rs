//! The DCNv2 baseline (Wang et al., "DCN V2: Improved Deep & Cross Network
//! and Practical Lessons for Web-scale Learning to Rank Systems", WWW 2021,
//! eq. 1): a pointwise model over hand-pooled features.
//!
//! Input `x₀` = the candidate's ID embeddings (item, actor, topic, type), its
//! age, and member features pooled from the history without its order: per
//! ID field, the mean embedding over the history and over its engaged part
//! (dwell or contribution). These are the features LiGR reads, less the
//! order of the history (recency, which engaged event came last). Cross layers
//! `x_{l+1} = x₀ ⊙ (W_l x_l + b_l) + x_l` are stacked with a ReLU MLP, then
//! one logit per task. Candidates never see each other.

use crate::batch::{action_row, make_batch, Batch, Example};
use crate::data::action;
use crate::mask::CandidateAttention;
use crate::model::{checkpoint_json, checkpoint_parts, Scorer};
use crate::params::Params;
use crate::vocab::Vocabs;
use candle_core::{Device, Tensor};
use caracal_core::{Result, Rng};

/// Shape of a DCNv2 model.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DcnConfig {
    /// Embedding width per field.
    pub emb: usize,
    pub cross_layers: usize,
    /// Hidden widths of the MLP on top of the cross network.
    pub mlp: Vec<usize>,
    pub max_history: usize,
    pub n_tasks: usize,
    pub seed: u64,
}

impl Default for DcnConfig {
    fn default() -> Self {
        DcnConfig {
            emb: 16,
            cross_layers: 2,
            mlp: vec![64, 32],
            max_history: 24,
            n_tasks: 2,
            seed: 1,
        }
    }
}

/// A DCNv2 model.
#[derive(Clone)]
pub struct Dcn {
    pub cfg: DcnConfig,
    pub vocabs: Vocabs,
    params: Params,
}

const FIELDS: [&str; 4] = ["emb.item", "emb.actor", "emb.topic", "emb.kind"];

impl Dcn {
    pub fn new(cfg: DcnConfig, vocabs: Vocabs) -> Result<Self> {
        caracal_core::ensure!(
            cfg.emb > 0 && cfg.n_tasks > 0,
            "DCNv2: emb and n_tasks must be positive"
        );
        let mut rng = Rng::new(cfg.seed);
        let mut p = Params::new();
        let e = cfg.emb;
        let rows = [
            vocabs.item.rows(),
            vocabs.actor.rows(),
            vocabs.topic.rows(),
            vocabs.kind.rows(),
        ];
        for (n, r) in FIELDS.iter().zip(rows) {
            p.normal(n, &[r, e], 0.1, &mut rng)?;
        }
        let d0 = 12 * e + 1;
        for l in 0..cfg.cross_layers {
            p.normal(
                &format!("cross{l}.w"),
                &[d0, d0],
                0.1 / (d0 as f32).sqrt(),
                &mut rng,
            )?;
            p.constant(&format!("cross{l}.b"), &[d0], 0.0)?;
        }
        let mut din = d0;
        for (l, &h) in cfg.mlp.iter().enumerate() {
            p.normal(
                &format!("mlp{l}.w"),
                &[din, h],
                (2.0 / din as f32).sqrt(),
                &mut rng,
            )?;
            p.constant(&format!("mlp{l}.b"), &[h], 0.0)?;
            din = h;
        }
        p.normal(
            "head.w",
            &[din, cfg.n_tasks],
            1.0 / (din as f32).sqrt(),
            &mut rng,
        )?;
        p.constant("head.b", &[cfg.n_tasks], 0.0)?;
        Ok(Dcn {
            cfg,
            vocabs,
            params: p,
        })
    }

    /// Rebuild from [`Scorer::checkpoint`] JSON.
    pub fn from_checkpoint(v: &serde_json::Value) -> Result<Self> {
        let (cfg, vocabs, stored) = checkpoint_parts::<DcnConfig>(v, "DCNv2")?;
        let m = Dcn::new(cfg, vocabs)?;
        m.params.load_stored(&stored)?;
        Ok(m)
    }
}

impl Scorer for Dcn {
    fn params(&self) -> &Params {
        &self.params
    }

    fn batch(&self, examples: &[Example]) -> Result<Batch> {
        make_batch(
            examples,
            &self.vocabs,
            self.cfg.max_history,
            CandidateAttention::Pointwise,
            true,
            self.cfg.n_tasks,
            &Device::Cpu,
        )
    }

    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let (b, h, n) = (batch.b, batch.h, batch.n);
        let l = h + n;
        let e = self.cfg.emb;
        let dev = &Device::Cpu;
        let mut tok = Vec::with_capacity(4);
        for (name, ids) in FIELDS.iter().zip(&batch.fields) {
            tok.push(
                self.params
                    .get(name)?
                    .index_select(ids, 0)?
                    .reshape((b, l, e))?,
            );
        }
        let cand: Vec<Tensor> = tok
            .iter()
            .map(|t| t.narrow(1, h, n))
            .collect::<candle_core::Result<_>>()?;
        // Pooling weights over history slots: all valid, and engaged only.
        let acts: Vec<u32> = batch.fields[4].to_vec1()?;
        let engaged = [action_row(action::DWELL), action_row(action::CONTRIBUTE)];
        let (mut w_all, mut w_eng) = (vec![0f32; b * h], vec![0f32; b * h]);
        for bi in 0..b {
            let valid: Vec<usize> = (0..h).filter(|&k| batch.hist_valid[bi * h + k]).collect();
            let eng: Vec<usize> = valid
                .iter()
                .copied()
                .filter(|&k| engaged.contains(&acts[bi * l + k]))
                .collect();
            for &k in &valid {
                w_all[bi * h + k] = 1.0 / valid.len() as f32;
            }
            for &k in &eng {
                w_eng[bi * h + k] = 1.0 / eng.len() as f32;
            }
        }
        // Every ID field, pooled over the history and over its engaged part.
        let hist: Vec<Tensor> = tok
            .iter()
            .map(|t| t.narrow(1, 0, h)?.contiguous())
            .collect::<candle_core::Result<_>>()?;
        let w_all = Tensor::from_vec(w_all, (b, 1, h), dev)?;
        let w_eng = Tensor::from_vec(w_eng, (b, 1, h), dev)?;
        let mut parts: Vec<Tensor> = cand.clone();
        parts.push(batch.age.reshape((b, l, 1))?.narrow(1, h, n)?);
        for w in [&w_all, &w_eng] {
            for t in &hist {
                parts.push(if h > 0 {
                    w.matmul(t)?.broadcast_as((b, n, e))?
                } else {
                    Tensor::zeros((b, n, e), candle_core::DType::F32, dev)?
                });
            }
        }
        let x0 = Tensor::cat(&parts, 2)?.reshape((b * n, 12 * e + 1))?;
        let mut x = x0.clone();
        for c in 0..self.cfg.cross_layers {
            let lin = x
                .matmul(self.params.get(&format!("cross{c}.w"))?)?
                .broadcast_add(self.params.get(&format!("cross{c}.b"))?)?;
            x = ((&x0 * lin)? + x)?;
        }
        for m in 0..self.cfg.mlp.len() {
            x = x
                .matmul(self.params.get(&format!("mlp{m}.w"))?)?
                .broadcast_add(self.params.get(&format!("mlp{m}.b"))?)?
                .relu()?;
        }
        let z = x
            .matmul(self.params.get("head.w")?)?
            .broadcast_add(self.params.get("head.b")?)?;
        Ok(z.reshape((b, n, self.cfg.n_tasks))?)
    }

    fn max_history(&self) -> usize {
        self.cfg.max_history
    }

    fn n_tasks(&self) -> usize {
        self.cfg.n_tasks
    }

    fn name(&self) -> String {
        "DCNv2".into()
    }

    fn checkpoint(&self) -> Result<serde_json::Value> {
        checkpoint_json("dcnv2", &self.cfg, &self.vocabs, &self.params)
    }
}
