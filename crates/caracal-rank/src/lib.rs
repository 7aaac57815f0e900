//! LiGR: a transformer ranker for feeds (Borisyuk et al., "From Features to
//! Transformers: Redefining Ranking for Scalable Impact", arXiv 2502.03417).
//!
//! A member's history (posts and what they did with them) and a session's
//! candidates form one sequence. LiGR layers — pre-norm, with sigmoid-gated
//! residuals on attention and on the SwiGLU FFN — read it under a mask where
//! the history is causal and each candidate sees the whole history and, in
//! set-wise mode, the other candidates of its session. Multi-task heads give
//! one probability per task; training minimizes pointwise BCE and/or a
//! listwise softmax. At serving time the history's keys/values are computed
//! once and every candidate is scored in a single pass.
//!
//! # Data format (CSV or Parquet)
//!
//! A feed is a folder of three tables; ids are non-negative integers, extra
//! columns are ignored. Each table is `<name>.csv` with a header row, or
//! `<name>.parquet` (flat columns, any common codec), which wins when both
//! exist.
//!
//! | file | columns |
//! |---|---|
//! | `members.csv` (optional) | `member_id` |
//! | `history.csv` | `member_id, item_id, actor_id, topic_id, type_id, action, ts` — one row per impression; `action` 0 = skip, 1 = long dwell, 2 = contribution (other values: the out-of-vocabulary action) |
//! | `sessions.csv` | `session_id, member_id, ts, item_id, actor_id, topic_id, type_id, age`, then one `label_<task>` column (0/1) per task, and optionally `p_<task>` ground-truth probabilities |
//!
//! A session's history is its member's events with `ts` strictly before the
//! session's `ts`, the most recent `max_history` kept. Rows of one session
//! share `member_id` and `ts`. Training needs at least one `label_*` column;
//! without one the file still reads (for scoring) and training says which
//! column to add. Ids never seen in training use row 0 of their embedding
//! table (see [`vocab`]). Parquet input is not implemented yet.
//!
//! # Example
//!
//! ```
//! use caracal_rank::{simulate, Ligr, LigrConfig, Ranker, SimConfig, Vocabs};
//! let feed = simulate(&SimConfig { members: 20, items: 200, ..SimConfig::default() }).unwrap();
//! let model = Ligr::new(LigrConfig { d_model: 16, ..LigrConfig::default() }, Vocabs::from_feed(&feed)).unwrap();
//! let s = &feed.sessions[0];
//! let history = feed.history_before(s.member, s.ts, 32);
//! let ranker = Ranker::new(model);
//! let fast = ranker.score(history, &s.candidates).unwrap();
//! let full = ranker.score_full(history, &s.candidates).unwrap();
//! assert_eq!(fast.len(), s.candidates.len());
//! for (a, b) in fast.iter().flatten().zip(full.iter().flatten()) {
//!     assert!((a - b).abs() < 1e-5);
//! }
//! ```

// Data.
pub mod data;
pub mod sim;
pub mod vocab;

// Model inputs and the attention mask.
pub mod batch;
pub mod mask;

// Models.
pub mod dcn;
pub mod ligr;
pub mod model;
pub mod params;

// Training and evaluation.
pub mod adamw;
pub mod eval;
pub mod experiment;
pub mod loss;
pub mod scaling;
pub mod train;

// Serving.
pub mod serve;

pub use data::{Candidate, Event, Feed, Post, Session};
pub use dcn::{Dcn, DcnConfig};
pub use eval::{evaluate, predict, EvalReport};
pub use ligr::{Ligr, LigrConfig};
pub use loss::LossKind;
pub use mask::CandidateAttention;
pub use model::Scorer;
pub use serve::Ranker;
pub use sim::{simulate, SimConfig};
pub use train::{train, TrainConfig, TrainReport};
pub use vocab::{Vocab, Vocabs};
