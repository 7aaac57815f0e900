//! The LiGR ranker (Borisyuk et al., "From Features to Transformers:
//! Redefining Ranking for Scalable Impact", arXiv 2502.03417).
//!
//! Tokens are posts: the sum of ID embeddings (item, actor, topic, type), an
//! action embedding (the history action, or a "candidate" marker), a recency
//! embedding for history slots and a learned direction scaled by the
//! candidate's age. Each LiGR layer is pre-norm with *learned gated
//! residuals* (the paper's "learned normalization"; eSASRec eq. 1):
//!
//! ```text
//! h'  = h  + σ(h  W_g1 + b_1) ⊙ MHA(RMSNorm(h))
//! h'' = h' + σ(h' W_g2 + b_2) ⊙ SwiGLU-FFN(RMSNorm(h'))
//! ```
//!
//! the gates reading the un-normalized stream. Attention uses the mask of
//! [`crate::mask`]: causal history, candidates over the history and (set-wise)
//! their session. A final RMSNorm and one linear head per task give the
//! logits of each candidate slot.

use crate::batch::{make_batch, Batch, Example, ACTION_ROWS};
use crate::mask::CandidateAttention;
use crate::model::{checkpoint_json, checkpoint_parts, sigmoid, Scorer};
use crate::params::Params;
use crate::vocab::Vocabs;
use candle_core::{Device, Tensor};
use caracal_core::{Result, Rng};
use caracal_kernels::{rms_norm, swiglu, CastingMode};
use caracal_models::scaled_dot_product_attention;

/// Shape and behaviour of a LiGR model.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LigrConfig {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// SwiGLU hidden width.
    pub ffn_hidden: usize,
    /// Longest history read (the most recent events are kept).
    pub max_history: usize,
    pub n_tasks: usize,
    /// Set-wise or pointwise candidate attention.
    pub mode: CandidateAttention,
    /// `false`: the "without history" ablation.
    pub use_history: bool,
    pub seed: u64,
}

impl Default for LigrConfig {
    fn default() -> Self {
        LigrConfig {
            d_model: 24,
            n_layers: 2,
            n_heads: 2,
            ffn_hidden: 48,
            max_history: 24,
            n_tasks: 2,
            mode: CandidateAttention::SetWise,
            use_history: true,
            seed: 1,
        }
    }
}

const EPS: f64 = 1e-6;

/// A LiGR model: configuration, vocabularies and weights.
#[derive(Clone)]
pub struct Ligr {
    pub cfg: LigrConfig,
    pub vocabs: Vocabs,
    params: Params,
}

/// Per-layer keys and values of one sequence, `[1, heads, T, d_head]`.
pub type LayerKv = (Tensor, Tensor);

impl Ligr {
    /// A freshly initialized model (seeded by `cfg.seed`).
    pub fn new(cfg: LigrConfig, vocabs: Vocabs) -> Result<Self> {
        caracal_core::ensure!(
            cfg.d_model > 0 && cfg.n_heads > 0 && cfg.d_model % cfg.n_heads == 0,
            "LiGR: d_model {} must be a positive multiple of n_heads {}",
            cfg.d_model,
            cfg.n_heads
        );
        caracal_core::ensure!(
            cfg.n_tasks > 0 && cfg.ffn_hidden > 0,
            "LiGR: needs at least one task and a positive ffn_hidden"
        );
        let mut rng = Rng::new(cfg.seed);
        let mut p = Params::new();
        let d = cfg.d_model;
        let e = 0.1;
        p.normal("emb.item", &[vocabs.item.rows(), d], e, &mut rng)?;
        p.normal("emb.actor", &[vocabs.actor.rows(), d], e, &mut rng)?;
        p.normal("emb.topic", &[vocabs.topic.rows(), d], e, &mut rng)?;
        p.normal("emb.kind", &[vocabs.kind.rows(), d], e, &mut rng)?;
        p.normal("emb.action", &[ACTION_ROWS, d], e, &mut rng)?;
        p.normal("emb.recency", &[cfg.max_history + 1, d], e, &mut rng)?;
        p.normal("emb.age", &[d], e, &mut rng)?;
        let s = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
        for l in 0..cfg.n_layers {
            let n = |k: &str| format!("layer{l}.{k}");
            p.constant(&n("norm1"), &[d], 1.0)?;
            for w in ["wq", "wk", "wv"] {
                p.normal(&n(w), &[d, d], s(d), &mut rng)?;
            }
            p.normal(&n("wo"), &[d, d], 0.5 * s(d), &mut rng)?;
            p.normal(&n("gate1.w"), &[d, d], 0.1 * s(d), &mut rng)?;
            p.constant(&n("gate1.b"), &[d], 0.0)?;
            p.constant(&n("norm2"), &[d], 1.0)?;
            p.normal(&n("w1"), &[d, cfg.ffn_hidden], s(d), &mut rng)?;
            p.normal(&n("w3"), &[d, cfg.ffn_hidden], s(d), &mut rng)?;
            p.normal(
                &n("w2"),
                &[cfg.ffn_hidden, d],
                0.5 * s(cfg.ffn_hidden),
                &mut rng,
            )?;
            p.normal(&n("gate2.w"), &[d, d], 0.1 * s(d), &mut rng)?;
            p.constant(&n("gate2.b"), &[d], 0.0)?;
        }
        p.constant("final_norm", &[d], 1.0)?;
        p.normal("head.w", &[d, cfg.n_tasks], s(d), &mut rng)?;
        p.constant("head.b", &[cfg.n_tasks], 0.0)?;
        Ok(Ligr {
            cfg,
            vocabs,
            params: p,
        })
    }

    /// Rebuild from [`Scorer::checkpoint`] JSON.
    pub fn from_checkpoint(v: &serde_json::Value) -> Result<Self> {
        let (cfg, vocabs, stored) = checkpoint_parts::<LigrConfig>(v, "LiGR")?;
        let m = Ligr::new(cfg, vocabs)?;
        m.params.load_stored(&stored)?;
        Ok(m)
    }

    fn p(&self, name: &str) -> Result<&Tensor> {
        self.params.get(name)
    }

    /// Token embeddings `[B·L, d]` of a batch.
    pub(crate) fn embed(&self, batch: &Batch) -> Result<Tensor> {
        let names = [
            "emb.item",
            "emb.actor",
            "emb.topic",
            "emb.kind",
            "emb.action",
        ];
        let mut x = self.p("emb.recency")?.index_select(&batch.recency, 0)?;
        for (n, ids) in names.iter().zip(&batch.fields) {
            x = (x + self.p(n)?.index_select(ids, 0)?)?;
        }
        Ok((x + batch.age.broadcast_mul(self.p("emb.age")?)?)?)
    }

    fn heads(&self, x: &Tensor, b: usize, t: usize) -> Result<Tensor> {
        let h = self.cfg.n_heads;
        let dh = self.cfg.d_model / h;
        Ok(x.reshape((b, t, h, dh))?.transpose(1, 2)?.contiguous()?)
    }

    /// One LiGR layer over `x` `[B·T, d]` (queries), attending to
    /// `[prefix ; own]` keys/values. Returns the new stream and this
    /// layer's own K/V `[B, heads, T, d_head]`.
    fn layer(
        &self,
        l: usize,
        x: &Tensor,
        b: usize,
        t: usize,
        prefix: Option<&LayerKv>,
        mask: &Tensor,
    ) -> Result<(Tensor, LayerKv)> {
        let n = |k: &str| format!("layer{l}.{k}");
        let d = self.cfg.d_model;
        let a = rms_norm(x, self.p(&n("norm1"))?, EPS, 0.0, CastingMode::Llama)?;
        let q = self.heads(&a.matmul(self.p(&n("wq"))?)?, b, t)?;
        let k = self.heads(&a.matmul(self.p(&n("wk"))?)?, b, t)?;
        let v = self.heads(&a.matmul(self.p(&n("wv"))?)?, b, t)?;
        let (ka, va) = match prefix {
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
            None => (k.clone(), v.clone()),
        };
        let scale = 1.0 / ((d / self.cfg.n_heads) as f64).sqrt();
        let o = scaled_dot_product_attention(&q, &ka, &va, Some(mask), scale)?;
        let o = o
            .transpose(1, 2)?
            .reshape((b * t, d))?
            .matmul(self.p(&n("wo"))?)?;
        let g1 = sigmoid(
            &x.matmul(self.p(&n("gate1.w"))?)?
                .broadcast_add(self.p(&n("gate1.b"))?)?,
        )?;
        let x = (x + (g1 * o)?)?;
        let a = rms_norm(&x, self.p(&n("norm2"))?, EPS, 0.0, CastingMode::Llama)?;
        let f = swiglu(&a.matmul(self.p(&n("w1"))?)?, &a.matmul(self.p(&n("w3"))?)?)?
            .matmul(self.p(&n("w2"))?)?;
        let g2 = sigmoid(
            &x.matmul(self.p(&n("gate2.w"))?)?
                .broadcast_add(self.p(&n("gate2.b"))?)?,
        )?;
        Ok(((&x + (g2 * f)?)?, (k, v)))
    }

    /// Final norm and task heads: `[M, d]` → `[M, T]`.
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        let x = rms_norm(x, self.p("final_norm")?, EPS, 0.0, CastingMode::Llama)?;
        Ok(x.matmul(self.p("head.w")?)?
            .broadcast_add(self.p("head.b")?)?)
    }

    /// Run the layers over whole sequences; returns the final stream
    /// `[B·L, d]` and each layer's K/V.
    pub(crate) fn run_layers(
        &self,
        x: Tensor,
        b: usize,
        l: usize,
        mask: &Tensor,
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        let mut x = x;
        let mut kvs = Vec::with_capacity(self.cfg.n_layers);
        for li in 0..self.cfg.n_layers {
            let (nx, kv) = self.layer(li, &x, b, l, None, mask)?;
            x = nx;
            kvs.push(kv);
        }
        Ok((x, kvs))
    }

    /// Candidate logits `[N, T]` from candidate embeddings `[N, d]` and the
    /// cached history K/V (one per layer, or none for an empty history): queries from the candidates only,
    /// keys/values `[history ; candidates]`, `mask` `[1, 1, N, H+N]`.
    pub(crate) fn candidates_over_cache(
        &self,
        xc: Tensor,
        n: usize,
        cache: &[LayerKv],
        mask: &Tensor,
    ) -> Result<Tensor> {
        let mut x = xc;
        for li in 0..self.cfg.n_layers {
            x = self.layer(li, &x, 1, n, cache.get(li), mask)?.0;
        }
        self.head(&x)
    }

    /// Number of scalar weights.
    pub fn n_params(&self) -> usize {
        self.params.count()
    }

    /// Weights outside the embedding tables ("dense" parameters).
    pub fn n_dense_params(&self) -> usize {
        self.params
            .names()
            .iter()
            .zip(self.params.vars())
            .filter(|(n, _)| !n.starts_with("emb."))
            .map(|(_, v)| v.elem_count())
            .sum()
    }
}

impl Scorer for Ligr {
    fn params(&self) -> &Params {
        &self.params
    }

    fn batch(&self, examples: &[Example]) -> Result<Batch> {
        make_batch(
            examples,
            &self.vocabs,
            self.cfg.max_history,
            self.cfg.mode,
            self.cfg.use_history,
            self.cfg.n_tasks,
            &Device::Cpu,
        )
    }

    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let (b, h, n) = (batch.b, batch.h, batch.n);
        let l = h + n;
        let x = self.embed(batch)?;
        let (x, _) = self.run_layers(x, b, l, &batch.mask)?;
        let xc = x
            .reshape((b, l, self.cfg.d_model))?
            .narrow(1, h, n)?
            .reshape((b * n, self.cfg.d_model))?;
        Ok(self.head(&xc)?.reshape((b, n, self.cfg.n_tasks))?)
    }

    fn max_history(&self) -> usize {
        self.cfg.max_history
    }

    fn n_tasks(&self) -> usize {
        self.cfg.n_tasks
    }

    fn name(&self) -> String {
        let mut s = String::from("LiGR");
        if !self.cfg.use_history {
            s.push_str(" w/o history");
        }
        s.push_str(match self.cfg.mode {
            CandidateAttention::SetWise => " set-wise",
            CandidateAttention::Pointwise => " pointwise",
        });
        s
    }

    fn checkpoint(&self) -> Result<serde_json::Value> {
        checkpoint_json("ligr", &self.cfg, &self.vocabs, &self.params)
    }
}
