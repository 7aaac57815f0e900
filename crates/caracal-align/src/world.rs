//! A synthetic preference world with a known gold reward.
//!
//! It reproduces, at a scale that trains in seconds on a CPU, the setting of
//! BSR (Hong et al., "On the Robustness of Reward Models for Language Model
//! Alignment", ICML 2025, arXiv 2505.07271, §5): reward models are trained on
//! preferences between responses of several generator "models" to prompts of
//! several topic clusters, then evaluated in domain and out of distribution —
//! on held-out topic clusters (prompt-OOD), held-out generators (response-OOD)
//! or both (mutual-OOD). Because the gold reward is known, a reward model is
//! scored by Kendall τ of its rewards against the gold reward over `k`
//! responses per prompt ([`World::rank_sets`]).
//!
//! # Vocabulary (120 words, plus 3 special tokens)
//! Plain lowercase English words, separated by single spaces:
//! - [`N_TOPICS`] = 8 topics of 8 words each: cooking, sport, music, space,
//!   garden, money, ocean, health (in this order: topic 0 is cooking).
//! - 6 question words: `what which when where how why`.
//! - 5 style families of 6 words each: polite (`please thanks kindly ...`),
//!   hedging (`perhaps maybe likely ...`), rude (`stupid obviously ...`),
//!   filler (`basically actually ...`) and enthusiasm (`great wonderful ...`).
//! - 20 function words (`the a an of to ...`).
//!
//! [`World::tokenizer`] maps [`PAD`] = 0, [`EOS`] = 1, [`UNK`] = 2 and then the
//! words in the order of [`World::words`].
//!
//! # Prompts
//! A question word followed by `m` distinct words of one topic, `m` uniform in
//! `[prompt_min_words, prompt_max_words]` (default 3..=5); with probability
//! `prompt_noise` (default 0.3) one word of another topic *of the same split*
//! is inserted at a random position, so held-out topic words never occur in a
//! training prompt. The prompt's *majority topic* is the topic with most words
//! in the prompt (ties: the lowest topic index); `prompt_min_words >= 2`
//! makes it the sampled topic.
//!
//! # Gold reward r*(prompt, response)
//! A function of the two strings alone, so it also scores free-form policy
//! samples. The response is cut at its first [`EOS`], [`PAD`] is removed and
//! the rest is split on whitespace into `n` words (`n̄ = max(n, 1)`); words
//! outside the vocabulary count as off-topic words of no style. With `t` the
//! prompt's majority topic and `q` its first question word:
//!
//! ```text
//! rel  = #{response words of topic t} / n̄                        (0 if t is none)
//! cov  = #{distinct prompt words of topic t found in the response}
//!        / #{distinct prompt words of topic t}                    (0 if t is none)
//! pol  = 0.8 tanh(P) − 0.4 max(0, P − 2)        P = polite words
//! hed  = 0.5 tanh(H) − 0.35 max(0, H − 1)       H = hedging words
//! stut = #{i ≥ 1 : w_i ∈ {w_{i−1}, w_{i−2}}} / n̄   (stutter)
//! len  = ln(n̄ / L*(q))²   with L* = what 8, which 8, when 10, where 10,
//!                              how 14, why 18, no question word 12
//! r*   = 3 (1 − (1 − rel)²) + 0.8 cov + (0.5 + rel)(pol + hed)
//!        − 0.7 R − 0.2 F − 1.0 len − 4 stut       R = rude, F = filler words
//! ```
//!
//! Relevance is concave (saturating); polite and hedging words help in
//! moderation and hurt in excess, and help more in an on-topic answer (the
//! relevance × style interaction); the length optimum depends on the
//! question; enthusiasm words are neutral — a spurious style feature that the
//! held-out generators use heavily. Gold differences between two responses
//! to one prompt are typically about 1 to 2.
//!
//! # Generators
//! [`N_GENERATORS`] = 8 generators; by default 0..4 are the training
//! generators and 4..8 are held out. Each has a length distribution
//! (normal, rounded, clamped to 1..=[`MAX_RESPONSE_WORDS`]), a function-word
//! rate, a style-word rate (jittered per response by N(0, 0.07²), clamped to
//! [0, 0.6]) with weights over the five style families, a relevance (the
//! chance that a content word is from the prompt's majority topic, jittered
//! per response by N(0, 0.15²), clamped to [0.05, 0.98]), an echo rate (the
//! chance that an on-topic word is copied from the prompt) and a stutter rate
//! (the chance that a word repeats one of the previous two). See [`GENERATORS`]
//! for the table. The held-out generators use the same vocabulary but lengths
//! and style mixtures that the training generators rarely produce: long
//! enthusiastic answers, very short rude ones, long hedging rambles, and
//! over-polite formal ones.
//!
//! # Labels
//! Bradley–Terry on the gold reward: `P(a ≻ b) = σ((r*(a) − r*(b)) / τ)`,
//! `τ = bt_tau` (default 0.5), drawn from a seeded [`caracal_core::Rng`].
//!
//! # Splits
//! [`Split::Train`] and [`Split::InDomain`]: training topics × training
//! generators (from different random streams, so in-domain prompts are fresh
//! samples); [`Split::PromptOod`]: held-out topics × training generators;
//! [`Split::ResponseOod`]: training topics × held-out generators;
//! [`Split::MutualOod`]: held-out topics × held-out generators.
//!
//! # Pretraining text
//! The paper's SFT stage: a neutral *base writer*, independent of the
//! preference generators, whose prompts cover all topics uniformly and whose
//! responses (3..=30 words) mix 35 % words of the prompt's topic, 20 % words
//! of any topic, 20 % style words of all families and 25 % function words, so
//! a model pretrained on it knows every word.
//!
//! # Seeds
//! Every random stream is fixed by the world's seed, the purpose (split or
//! pretraining) and the call's seed, mixed with SplitMix64.

use std::collections::HashMap;

use caracal_core::{bail, Error, Result, Rng};
use serde::{Deserialize, Serialize};

/// The end-of-sequence token, id 1 in [`World::tokenizer`].
pub const EOS: &str = "<eos>";
/// The padding token, id 0 in [`World::tokenizer`].
pub const PAD: &str = "<pad>";
/// The unknown-word token, id 2 in [`World::tokenizer`].
pub const UNK: &str = "<unk>";

/// Number of topic clusters.
pub const N_TOPICS: usize = 8;
/// Number of generator "models".
pub const N_GENERATORS: usize = 8;
/// Longest response a generator writes, in words.
pub const MAX_RESPONSE_WORDS: usize = 48;

/// Topic words, one row per topic (cooking, sport, music, space, garden,
/// money, ocean, health).
#[rustfmt::skip]
const TOPICS: [[&str; 8]; N_TOPICS] = [
    ["bread", "soup", "oven", "salt", "pepper", "flour", "butter", "recipe"],
    ["football", "goal", "team", "coach", "match", "score", "league", "player"],
    ["guitar", "piano", "melody", "rhythm", "song", "chord", "band", "concert"],
    ["planet", "orbit", "rocket", "star", "comet", "galaxy", "moon", "telescope"],
    ["flower", "seed", "soil", "tomato", "rose", "compost", "shovel", "weed"],
    ["money", "bank", "loan", "budget", "interest", "stock", "savings", "tax"],
    ["wave", "coral", "shark", "tide", "reef", "whale", "sailor", "harbor"],
    ["doctor", "fever", "vaccine", "nurse", "clinic", "dose", "patient", "symptom"],
];

/// Question words and the response length L* (in words) each one asks for.
const QUESTIONS: [(&str, f64); 6] = [
    ("what", 8.0),
    ("which", 8.0),
    ("when", 10.0),
    ("where", 10.0),
    ("how", 14.0),
    ("why", 18.0),
];
/// L* for a prompt without a question word.
const DEFAULT_LENGTH: f64 = 12.0;

/// Style families, in the order of [`GenStyle::family`]: polite, hedging,
/// rude, filler, enthusiasm.
#[rustfmt::skip]
const STYLES: [[&str; 6]; 5] = [
    ["please", "thanks", "kindly", "gladly", "welcome", "appreciate"],
    ["perhaps", "maybe", "likely", "possibly", "arguably", "roughly"],
    ["stupid", "obviously", "whatever", "duh", "nonsense", "boring"],
    ["basically", "actually", "literally", "um", "honestly", "anyway"],
    ["great", "wonderful", "amazing", "awesome", "fantastic", "exciting"],
];
const POLITE: usize = 0;
const HEDGING: usize = 1;
const RUDE: usize = 2;
const FILLER: usize = 3;

/// Function words.
const FUNCTION: [&str; 20] = [
    "the", "a", "an", "of", "to", "in", "is", "it", "and", "or", "for", "with", "on", "this",
    "that", "you", "your", "be", "can", "are",
];

// Gold-reward constants (see the module documentation).
const W_REL: f64 = 3.0;
const W_COV: f64 = 0.8;
const A_POLITE: f64 = 0.8;
const B_POLITE: f64 = 0.4;
const FREE_POLITE: f64 = 2.0;
const A_HEDGE: f64 = 0.5;
const B_HEDGE: f64 = 0.35;
const FREE_HEDGE: f64 = 1.0;
const STYLE_GATE: f64 = 0.5;
const W_RUDE: f64 = 0.7;
const W_FILLER: f64 = 0.2;
const W_LEN: f64 = 1.0;
const W_STUTTER: f64 = 4.0;

// Per-response jitter of the generators.
const REL_JITTER: f64 = 0.15;
const STYLE_JITTER: f64 = 0.07;
const MAX_STYLE_RATE: f64 = 0.6;

/// The style of one generator "model".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenStyle {
    /// A short descriptive name.
    pub name: &'static str,
    /// Mean response length, in words.
    pub len_mean: f64,
    /// Standard deviation of the response length.
    pub len_sd: f64,
    /// Probability that a word is a function word.
    pub function: f64,
    /// Probability that a word is a style word (before per-response jitter).
    pub style: f64,
    /// Weights over the style families polite, hedging, rude, filler,
    /// enthusiasm (sum to 1).
    pub family: [f64; 5],
    /// Probability that a content word is from the prompt's majority topic
    /// (before per-response jitter); otherwise it is from another topic.
    pub relevance: f64,
    /// Probability that an on-topic word is copied from the prompt.
    pub echo: f64,
    /// Probability that a word repeats one of the previous two words.
    pub stutter: f64,
}

/// The generators: 0..4 train by default, 4..8 held out.
pub const GENERATORS: [GenStyle; N_GENERATORS] = [
    GenStyle {
        name: "terse-expert",
        len_mean: 7.0,
        len_sd: 2.0,
        function: 0.20,
        style: 0.10,
        family: [0.10, 0.80, 0.00, 0.10, 0.00],
        relevance: 0.85,
        echo: 0.5,
        stutter: 0.02,
    },
    GenStyle {
        name: "chatty-helper",
        len_mean: 17.0,
        len_sd: 4.0,
        function: 0.30,
        style: 0.20,
        family: [0.60, 0.10, 0.00, 0.25, 0.05],
        relevance: 0.55,
        echo: 0.3,
        stutter: 0.08,
    },
    GenStyle {
        name: "careless",
        len_mean: 11.0,
        len_sd: 4.0,
        function: 0.30,
        style: 0.20,
        family: [0.05, 0.05, 0.50, 0.40, 0.00],
        relevance: 0.45,
        echo: 0.2,
        stutter: 0.20,
    },
    GenStyle {
        name: "balanced",
        len_mean: 12.0,
        len_sd: 3.0,
        function: 0.25,
        style: 0.15,
        family: [0.45, 0.45, 0.02, 0.08, 0.00],
        relevance: 0.70,
        echo: 0.4,
        stutter: 0.05,
    },
    GenStyle {
        name: "enthusiast",
        len_mean: 22.0,
        len_sd: 5.0,
        function: 0.25,
        style: 0.30,
        family: [0.20, 0.00, 0.00, 0.10, 0.70],
        relevance: 0.60,
        echo: 0.3,
        stutter: 0.10,
    },
    GenStyle {
        name: "blunt",
        len_mean: 5.0,
        len_sd: 2.0,
        function: 0.15,
        style: 0.20,
        family: [0.00, 0.00, 0.80, 0.00, 0.20],
        relevance: 0.85,
        echo: 0.6,
        stutter: 0.00,
    },
    GenStyle {
        name: "rambler",
        len_mean: 28.0,
        len_sd: 6.0,
        function: 0.35,
        style: 0.25,
        family: [0.00, 0.50, 0.00, 0.50, 0.00],
        relevance: 0.35,
        echo: 0.2,
        stutter: 0.25,
    },
    GenStyle {
        name: "ceremonious",
        len_mean: 15.0,
        len_sd: 3.0,
        function: 0.20,
        style: 0.35,
        family: [0.60, 0.30, 0.00, 0.00, 0.10],
        relevance: 0.70,
        echo: 0.4,
        stutter: 0.03,
    },
];

/// Sizes and constants of a [`World`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldConfig {
    /// Seed mixed into every random stream of the world.
    pub seed: u64,
    /// Topics `0..n_train_topics` are training topics, the rest held out
    /// (default 6 of 8).
    pub n_train_topics: usize,
    /// Generators `0..n_train_generators` are training generators, the rest
    /// held out (default 4 of 8).
    pub n_train_generators: usize,
    /// Fewest topic words in a prompt (default 3, at least 2).
    pub prompt_min_words: usize,
    /// Most topic words in a prompt (default 5, at most 8).
    pub prompt_max_words: usize,
    /// Probability that a prompt gets one noise word of another topic
    /// (default 0.3).
    pub prompt_noise: f64,
    /// Bradley–Terry temperature τ of the labels (default 0.5).
    pub bt_tau: f64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            seed: 0,
            n_train_topics: 6,
            n_train_generators: 4,
            prompt_min_words: 3,
            prompt_max_words: 5,
            prompt_noise: 0.3,
            bt_tau: 0.5,
        }
    }
}

/// A data split: which topics the prompts come from and which generators
/// write the responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Split {
    /// Training topics × training generators.
    Train,
    /// Training topics × training generators, fresh samples.
    InDomain,
    /// Held-out topics × training generators.
    PromptOod,
    /// Training topics × held-out generators.
    ResponseOod,
    /// Held-out topics × held-out generators.
    MutualOod,
}

impl Split {
    /// The four evaluation splits, in the paper's order.
    pub const EVAL: [Split; 4] = [
        Split::InDomain,
        Split::PromptOod,
        Split::ResponseOod,
        Split::MutualOod,
    ];

    /// All five splits.
    pub const ALL: [Split; 5] = [
        Split::Train,
        Split::InDomain,
        Split::PromptOod,
        Split::ResponseOod,
        Split::MutualOod,
    ];

    /// The split's name: `train`, `in-domain`, `prompt-ood`, `response-ood`
    /// or `mutual-ood`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::InDomain => "in-domain",
            Split::PromptOod => "prompt-ood",
            Split::ResponseOod => "response-ood",
            Split::MutualOod => "mutual-ood",
        }
    }

    /// The split named `name` (as [`Split::name`] writes it).
    pub fn from_name(name: &str) -> Result<Split> {
        match Split::ALL.into_iter().find(|s| s.name() == name) {
            Some(s) => Ok(s),
            None => bail!(
                "unknown split `{name}`; expected one of train, in-domain, prompt-ood, response-ood, mutual-ood"
            ),
        }
    }

    fn held_out_topics(self) -> bool {
        matches!(self, Split::PromptOod | Split::MutualOod)
    }

    fn held_out_generators(self) -> bool {
        matches!(self, Split::ResponseOod | Split::MutualOod)
    }

    fn tag(self) -> u64 {
        match self {
            Split::Train => 1,
            Split::InDomain => 2,
            Split::PromptOod => 3,
            Split::ResponseOod => 4,
            Split::MutualOod => 5,
        }
    }
}

/// Stream tag of the pretraining text.
const PRETRAIN_TAG: u64 = 100;

/// One preference pair, with TRL's JSONL field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// The prompt.
    pub prompt: String,
    /// The preferred response.
    pub chosen: String,
    /// The other response.
    pub rejected: String,
}

/// `k` responses to one prompt with their gold rewards, for Kendall τ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankSet {
    /// The prompt.
    pub prompt: String,
    /// The responses.
    pub responses: Vec<String>,
    /// The gold reward of each response.
    pub gold: Vec<f64>,
}

/// The terms of the gold reward for one prompt and response (see the module
/// documentation for the formula).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoldTerms {
    /// Number of response words `n`.
    pub n_words: usize,
    /// Share of response words from the prompt's majority topic.
    pub relevance: f64,
    /// Share of the prompt's topic words that the response mentions.
    pub coverage: f64,
    /// Polite words in the response.
    pub polite: usize,
    /// Hedging words in the response.
    pub hedging: usize,
    /// Rude words in the response.
    pub rude: usize,
    /// Filler words in the response.
    pub filler: usize,
    /// Share of words that repeat one of the previous two.
    pub stutter: f64,
    /// The squared log length ratio `ln(n̄ / L*)²`.
    pub length: f64,
    /// The gold reward r*.
    pub total: f64,
}

/// What a vocabulary word is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Topic(usize),
    Style(usize),
    Question(usize),
    Function,
}

/// A sampled prompt: its text and its majority topic.
struct Prompt {
    text: String,
    topic: usize,
    topic_words: Vec<&'static str>,
}

/// The synthetic preference world; see the module documentation.
#[derive(Clone, Debug)]
pub struct World {
    cfg: WorldConfig,
    class: HashMap<&'static str, Class>,
}

impl World {
    /// Build a world, checking the configuration.
    pub fn new(cfg: &WorldConfig) -> Result<World> {
        if cfg.n_train_topics == 0 || cfg.n_train_topics >= N_TOPICS {
            bail!(
                "n_train_topics is {}; it must be between 1 and {} so that both training and held-out topics exist",
                cfg.n_train_topics,
                N_TOPICS - 1
            );
        }
        if cfg.n_train_generators < 2 || cfg.n_train_generators > N_GENERATORS - 2 {
            bail!(
                "n_train_generators is {}; it must be between 2 and {} so that pairs can compare two distinct generators on both sides",
                cfg.n_train_generators,
                N_GENERATORS - 2
            );
        }
        if cfg.prompt_min_words < 2
            || cfg.prompt_min_words > cfg.prompt_max_words
            || cfg.prompt_max_words > TOPICS[0].len()
        {
            bail!(
                "prompt words {}..={} are invalid; use 2 <= prompt_min_words <= prompt_max_words <= {}",
                cfg.prompt_min_words,
                cfg.prompt_max_words,
                TOPICS[0].len()
            );
        }
        if !(0.0..=1.0).contains(&cfg.prompt_noise) {
            bail!(
                "prompt_noise is {}; it must be a probability in [0, 1]",
                cfg.prompt_noise
            );
        }
        if !(cfg.bt_tau.is_finite() && cfg.bt_tau > 0.0) {
            bail!(
                "bt_tau is {}; the Bradley-Terry temperature must be finite and positive",
                cfg.bt_tau
            );
        }
        let mut class = HashMap::new();
        let mut insert = |w: &'static str, c: Class| -> Result<()> {
            if class.insert(w, c).is_some() {
                return Err(Error::invalid(format!(
                    "the world's vocabulary lists `{w}` twice"
                )));
            }
            Ok(())
        };
        for (t, words) in TOPICS.iter().enumerate() {
            for &w in words {
                insert(w, Class::Topic(t))?;
            }
        }
        for (f, words) in STYLES.iter().enumerate() {
            for &w in words {
                insert(w, Class::Style(f))?;
            }
        }
        for (q, &(w, _)) in QUESTIONS.iter().enumerate() {
            insert(w, Class::Question(q))?;
        }
        for &w in &FUNCTION {
            insert(w, Class::Function)?;
        }
        Ok(World {
            cfg: cfg.clone(),
            class,
        })
    }

    /// The configuration the world was built from.
    pub fn config(&self) -> &WorldConfig {
        &self.cfg
    }

    /// The whole vocabulary without special tokens: topic words (topic by
    /// topic), question words, style words (family by family), function words.
    pub fn words(&self) -> Vec<String> {
        TOPICS
            .iter()
            .flatten()
            .chain(QUESTIONS.iter().map(|(w, _)| w))
            .chain(STYLES.iter().flatten())
            .chain(FUNCTION.iter())
            .map(|w| w.to_string())
            .collect()
    }

    /// The words of topic `t` (empty if `t >= N_TOPICS`).
    pub fn topic_words(&self, t: usize) -> Vec<String> {
        TOPICS
            .get(t)
            .map(|ws| ws.iter().map(|w| w.to_string()).collect())
            .unwrap_or_default()
    }

    /// The topics whose prompts a split uses.
    pub fn topics(&self, split: Split) -> Vec<usize> {
        if split.held_out_topics() {
            (self.cfg.n_train_topics..N_TOPICS).collect()
        } else {
            (0..self.cfg.n_train_topics).collect()
        }
    }

    /// The generators whose responses a split uses.
    pub fn generators(&self, split: Split) -> Vec<usize> {
        if split.held_out_generators() {
            (self.cfg.n_train_generators..N_GENERATORS).collect()
        } else {
            (0..self.cfg.n_train_generators).collect()
        }
    }

    /// The prompt's majority topic: the topic with most words in the prompt
    /// (ties: the lowest index), or `None` if it has no topic word.
    pub fn prompt_topic(&self, prompt: &str) -> Option<usize> {
        let mut counts = [0usize; N_TOPICS];
        for w in prompt.split_whitespace() {
            if let Some(Class::Topic(t)) = self.class.get(w) {
                counts[*t] += 1;
            }
        }
        let mut best = None;
        for (t, &c) in counts.iter().enumerate() {
            if c > 0 && best.is_none_or(|b: usize| c > counts[b]) {
                best = Some(t);
            }
        }
        best
    }

    /// The gold reward r*(prompt, response) of any text; see the module
    /// documentation for the formula.
    pub fn gold(&self, prompt: &str, response: &str) -> f64 {
        self.gold_terms(prompt, response).total
    }

    /// The gold reward and each of its terms.
    pub fn gold_terms(&self, prompt: &str, response: &str) -> GoldTerms {
        let topic = self.prompt_topic(prompt);
        let target = prompt
            .split_whitespace()
            .find_map(|w| match self.class.get(w) {
                Some(Class::Question(q)) => Some(QUESTIONS[*q].1),
                _ => None,
            })
            .unwrap_or(DEFAULT_LENGTH);
        let mut prompt_topic_words: Vec<&str> = prompt
            .split_whitespace()
            .filter(|w| topic.is_some() && self.class.get(w) == topic.map(Class::Topic).as_ref())
            .collect();
        prompt_topic_words.sort_unstable();
        prompt_topic_words.dedup();

        let body = response.split(EOS).next().unwrap_or("").replace(PAD, " ");
        let words: Vec<&str> = body.split_whitespace().collect();
        let n = words.len();
        let nb = n.max(1) as f64;

        let mut on_topic = 0usize;
        let mut family = [0usize; 5];
        let mut stutter = 0usize;
        for (i, w) in words.iter().enumerate() {
            match self.class.get(w) {
                Some(Class::Topic(t)) if Some(*t) == topic => on_topic += 1,
                Some(Class::Style(f)) => family[*f] += 1,
                _ => {}
            }
            if (i >= 1 && words[i - 1] == *w) || (i >= 2 && words[i - 2] == *w) {
                stutter += 1;
            }
        }
        let relevance = on_topic as f64 / nb;
        let coverage = if prompt_topic_words.is_empty() {
            0.0
        } else {
            let found = prompt_topic_words
                .iter()
                .filter(|p| words.contains(p))
                .count();
            found as f64 / prompt_topic_words.len() as f64
        };
        let (p, h) = (family[POLITE] as f64, family[HEDGING] as f64);
        let polite = A_POLITE * p.tanh() - B_POLITE * (p - FREE_POLITE).max(0.0);
        let hedge = A_HEDGE * h.tanh() - B_HEDGE * (h - FREE_HEDGE).max(0.0);
        let stut = stutter as f64 / nb;
        let length = (nb / target).ln().powi(2);
        let total = W_REL * (1.0 - (1.0 - relevance).powi(2))
            + W_COV * coverage
            + (STYLE_GATE + relevance) * (polite + hedge)
            - W_RUDE * family[RUDE] as f64
            - W_FILLER * family[FILLER] as f64
            - W_LEN * length
            - W_STUTTER * stut;
        GoldTerms {
            n_words: n,
            relevance,
            coverage,
            polite: family[POLITE],
            hedging: family[HEDGING],
            rude: family[RUDE],
            filler: family[FILLER],
            stutter: stut,
            length,
            total,
        }
    }

    /// `n` preference pairs of a split (each response starts with a space, so
    /// that `prompt + response`, as TRL joins them, keeps the words apart):
    /// a prompt of one of the split's topics,
    /// two responses from two distinct generators of the split, labelled by
    /// Bradley–Terry on the gold reward with temperature `bt_tau`.
    pub fn pairs(&self, split: Split, n: usize, seed: u64) -> Vec<Pair> {
        let mut rng = Rng::new(self.stream(split.tag(), seed));
        let topics = self.topics(split);
        let gens = self.generators(split);
        (0..n)
            .map(|_| {
                let prompt = self.sample_prompt(&topics, &mut rng);
                let ga = gens[rng.below(gens.len())];
                let mut gb = gens[rng.below(gens.len() - 1)];
                if gb >= ga {
                    gb += 1;
                }
                // A leading space: TRL joins `prompt + response` as strings.
                let a = format!(" {}", self.respond(&GENERATORS[ga], &prompt, &mut rng));
                let b = format!(" {}", self.respond(&GENERATORS[gb], &prompt, &mut rng));
                let delta = self.gold(&prompt.text, &a) - self.gold(&prompt.text, &b);
                let p_a = sigmoid(delta / self.cfg.bt_tau);
                let (chosen, rejected) = if rng.bernoulli(p_a) { (a, b) } else { (b, a) };
                Pair {
                    prompt: prompt.text,
                    chosen,
                    rejected,
                }
            })
            .collect()
    }

    /// `n_prompts` prompts of a split, each with `k` responses from the
    /// split's generators (`k` distinct generators in random order when
    /// `k` is at most their number; beyond that, extra responses from
    /// generators drawn uniformly) and their gold rewards.
    pub fn rank_sets(&self, split: Split, n_prompts: usize, k: usize, seed: u64) -> Vec<RankSet> {
        // A stream apart from `pairs` for the same split and seed.
        let mut rng = Rng::new(self.stream(split.tag() + 50, seed));
        let topics = self.topics(split);
        let gens = self.generators(split);
        (0..n_prompts)
            .map(|_| {
                let prompt = self.sample_prompt(&topics, &mut rng);
                let mut order = gens.clone();
                rng.shuffle(&mut order);
                let responses: Vec<String> = (0..k)
                    .map(|i| {
                        let g = if i < order.len() {
                            order[i]
                        } else {
                            gens[rng.below(gens.len())]
                        };
                        format!(" {}", self.respond(&GENERATORS[g], &prompt, &mut rng))
                    })
                    .collect();
                let gold = responses
                    .iter()
                    .map(|r| self.gold(&prompt.text, r))
                    .collect();
                RankSet {
                    prompt: prompt.text,
                    responses,
                    gold,
                }
            })
            .collect()
    }

    /// `n_docs` documents of the base writer (all topics, all words), each
    /// `"{prompt} {response} <eos>\n"`.
    pub fn pretrain_text(&self, n_docs: usize, seed: u64) -> String {
        let mut rng = Rng::new(self.stream(PRETRAIN_TAG, seed));
        let all_topics: Vec<usize> = (0..N_TOPICS).collect();
        let all_topic_words: Vec<&str> = TOPICS.iter().flatten().copied().collect();
        let all_style_words: Vec<&str> = STYLES.iter().flatten().copied().collect();
        let mut out = String::new();
        for _ in 0..n_docs {
            let prompt = self.sample_prompt_with(&all_topics, 0.0, &mut rng);
            out.push_str(&prompt.text);
            let len = 3 + rng.below(28);
            for _ in 0..len {
                let u = rng.uniform();
                let w = if u < 0.35 {
                    pick(&TOPICS[prompt.topic], &mut rng)
                } else if u < 0.55 {
                    pick(&all_topic_words, &mut rng)
                } else if u < 0.75 {
                    pick(&all_style_words, &mut rng)
                } else {
                    pick(&FUNCTION, &mut rng)
                };
                out.push(' ');
                out.push_str(w);
            }
            out.push(' ');
            out.push_str(EOS);
            out.push('\n');
        }
        out
    }

    /// A word-level tokenizer over [`World::words`]: [`PAD`] = 0, [`EOS`] = 1,
    /// [`UNK`] = 2 (registered as special added tokens, so `<eos>` is found
    /// even glued to a word), then the words in order; whitespace
    /// pre-tokenizer; unknown words map to [`UNK`].
    pub fn tokenizer(&self) -> Result<tokenizers::Tokenizer> {
        use tokenizers::models::wordlevel::WordLevel;
        use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
        use tokenizers::AddedToken;

        let specials = [PAD, EOS, UNK];
        let vocab = specials
            .iter()
            .map(|s| s.to_string())
            .chain(self.words())
            .enumerate()
            .map(|(i, w)| (w, i as u32))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token(UNK.to_string())
            .build()
            .map_err(|e| Error::invalid(format!("cannot build the world's tokenizer: {e}")))?;
        let mut tok = tokenizers::Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(WhitespaceSplit));
        tok.add_special_tokens(specials.iter().map(|s| AddedToken::from(*s, true)))
            .map_err(|e| {
                Error::invalid(format!("cannot register the world's special tokens: {e}"))
            })?;
        Ok(tok)
    }

    /// The seed of one random stream.
    fn stream(&self, tag: u64, seed: u64) -> u64 {
        splitmix(splitmix(self.cfg.seed ^ splitmix(tag)) ^ seed)
    }

    fn sample_prompt(&self, topics: &[usize], rng: &mut Rng) -> Prompt {
        self.sample_prompt_with(topics, self.cfg.prompt_noise, rng)
    }

    /// A question word, then `m` distinct words of a topic drawn from
    /// `topics`, and with probability `noise` one word of another topic of
    /// `topics` at a random position.
    fn sample_prompt_with(&self, topics: &[usize], noise: f64, rng: &mut Rng) -> Prompt {
        let topic = topics[rng.below(topics.len())];
        let span = self.cfg.prompt_max_words - self.cfg.prompt_min_words + 1;
        let m = self.cfg.prompt_min_words + rng.below(span);
        let mut pool: Vec<&'static str> = TOPICS[topic].to_vec();
        rng.shuffle(&mut pool);
        pool.truncate(m);
        let topic_words = pool.clone();
        if topics.len() > 1 && rng.bernoulli(noise) {
            let mut other = topics[rng.below(topics.len() - 1)];
            if other == topic {
                other = *topics.last().unwrap_or(&topic);
            }
            let w = pick(&TOPICS[other], rng);
            let at = rng.below(pool.len() + 1);
            pool.insert(at, w);
        }
        let question = QUESTIONS[rng.below(QUESTIONS.len())].0;
        let mut text = question.to_string();
        for w in &pool {
            text.push(' ');
            text.push_str(w);
        }
        Prompt {
            text,
            topic,
            topic_words,
        }
    }

    /// One response of generator `g` to `prompt` (see [`GenStyle`]).
    fn respond(&self, g: &GenStyle, prompt: &Prompt, rng: &mut Rng) -> String {
        let len = (g.len_mean + g.len_sd * rng.normal())
            .round()
            .clamp(1.0, MAX_RESPONSE_WORDS as f64) as usize;
        let relevance = (g.relevance + REL_JITTER * rng.normal()).clamp(0.05, 0.98);
        let style = (g.style + STYLE_JITTER * rng.normal()).clamp(0.0, MAX_STYLE_RATE);
        let mut words: Vec<&'static str> = Vec::with_capacity(len);
        for i in 0..len {
            if i >= 1 && rng.bernoulli(g.stutter) {
                let back = if i >= 2 && rng.bernoulli(0.5) { 2 } else { 1 };
                words.push(words[i - back]);
                continue;
            }
            let u = rng.uniform();
            let w = if u < g.function {
                pick(&FUNCTION, rng)
            } else if u < g.function + style {
                pick(&STYLES[pick_weighted(&g.family, rng)], rng)
            } else if rng.bernoulli(relevance) {
                if rng.bernoulli(g.echo) {
                    pick(&prompt.topic_words, rng)
                } else {
                    pick(&TOPICS[prompt.topic], rng)
                }
            } else {
                let mut other = rng.below(N_TOPICS - 1);
                if other >= prompt.topic {
                    other += 1;
                }
                pick(&TOPICS[other], rng)
            };
            words.push(w);
        }
        words.join(" ")
    }
}

/// A uniform element of a non-empty slice.
fn pick<'a>(words: &[&'a str], rng: &mut Rng) -> &'a str {
    words[rng.below(words.len())]
}

/// An index drawn with probability proportional to `weights`.
fn pick_weighted(weights: &[f64], rng: &mut Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.uniform() * total;
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// SplitMix64 finalizer (Steele, Lea & Flood 2014).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caracal_core::metrics::kendall_tau_b;

    fn world() -> World {
        World::new(&WorldConfig::default()).unwrap()
    }

    fn mean(x: &[f64]) -> f64 {
        x.iter().sum::<f64>() / x.len() as f64
    }

    #[test]
    fn world_same_seed_same_data_other_seed_other_data() {
        let w = world();
        let a = w.pairs(Split::Train, 50, 7);
        assert_eq!(a, w.pairs(Split::Train, 50, 7));
        assert_ne!(a, w.pairs(Split::Train, 50, 8));
        // In-domain prompts are fresh samples, not the training stream.
        assert_ne!(a, w.pairs(Split::InDomain, 50, 7));
        let other = World::new(&WorldConfig {
            seed: 1,
            ..WorldConfig::default()
        })
        .unwrap();
        assert_ne!(a, other.pairs(Split::Train, 50, 7));
        assert_eq!(
            w.rank_sets(Split::MutualOod, 10, 4, 3),
            w.rank_sets(Split::MutualOod, 10, 4, 3)
        );
        assert_ne!(
            w.rank_sets(Split::MutualOod, 10, 4, 3),
            w.rank_sets(Split::MutualOod, 10, 4, 4)
        );
        assert_eq!(w.pretrain_text(20, 1), w.pretrain_text(20, 1));
        assert_ne!(w.pretrain_text(20, 1), w.pretrain_text(20, 2));
    }

    #[test]
    fn world_gold_orders_obvious_cases() {
        let w = world();
        let prompt = "how bread oven salt";
        // On topic, one polite and one hedging word, 14 words (L* of "how").
        let good = "please the bread is in the oven with salt and perhaps butter for soup";
        assert_eq!(good.split_whitespace().count(), 14);
        // Off topic, rude, too short.
        let bad = "stupid whale duh";
        let (g, b) = (w.gold(prompt, good), w.gold(prompt, bad));
        assert!(g > b + 3.0, "good {g} bad {b}");
        // Each ingredient alone moves the reward the right way.
        let on = "the bread is in the oven with salt";
        assert!(w.gold(prompt, on) > w.gold(prompt, "the whale is in the reef with coral"));
        assert!(w.gold(prompt, on) > w.gold(prompt, "the bread is in the oven with stupid salt"));
        assert!(
            w.gold(prompt, on) > w.gold(prompt, "the bread bread is in the oven oven with salt")
        );
        assert!(w.gold(prompt, on) > w.gold(prompt, "bread"));
        // Politeness saturates and then hurts.
        let p1 = w.gold(prompt, "please the bread is in the oven with salt");
        let p5 = w.gold(
            prompt,
            "please thanks kindly gladly welcome the bread is in the oven with salt",
        );
        assert!(p1 > w.gold(prompt, on) && p1 > p5, "p1 {p1} p5 {p5}");
        // Style helps more on topic (the relevance x style interaction).
        let off = "the whale is in the reef with coral";
        let off_p = "please the whale is in the reef with coral";
        let on_p = "please the bread is in the oven with salt";
        assert!(
            w.gold(prompt, on_p) - w.gold(prompt, on) > w.gold(prompt, off_p) - w.gold(prompt, off)
        );
    }

    #[test]
    fn world_gold_known_value() {
        let w = world();
        // Prompt "what soup salt flour": topic cooking, L* = 8, prompt topic words
        // {soup, salt, flour}. Response "please the soup with salt is great", n = 7:
        // rel = 2/7, cov = 2/3, P = 1, H = R = F = 0 (great is neutral), no stutter.
        //   3 (1 - (5/7)^2)              = 72/49            = 1.469387755
        //   0.8 cov                      = 0.533333333
        //   (0.5 + 2/7) 0.8 tanh(1)      = 11/14 * 0.609275 = 0.478716327
        //   - ln(7/8)^2                  = -0.017830633
        //   r*                                              = 2.463606782
        let t = w.gold_terms("what soup salt flour", "please the soup with salt is great");
        assert_eq!(t.n_words, 7);
        assert!((t.relevance - 2.0 / 7.0).abs() < 1e-12);
        assert!((t.coverage - 2.0 / 3.0).abs() < 1e-12);
        // Tolerance: 1e-9, the precision of the hand computation above.
        assert!((t.total - 2.463606782).abs() < 1e-9, "{}", t.total);
    }

    #[test]
    fn world_gold_takes_any_text() {
        let w = world();
        let prompt = "why tide reef whale";
        // Text after <eos> and padding do not count.
        let r = "the tide is on the reef";
        assert_eq!(
            w.gold(prompt, r),
            w.gold(prompt, &format!("{r}<eos> stupid duh <pad>"))
        );
        assert_eq!(
            w.gold(prompt, r),
            w.gold(prompt, &format!("{r} <pad> <pad>"))
        );
        // Unknown words count as off-topic words of no style.
        let unk = w.gold_terms(prompt, "the tide is on the xyzzy");
        assert!((unk.relevance - 1.0 / 6.0).abs() < 1e-12);
        assert!(unk.total < w.gold(prompt, r));
        // Empty responses and prompts without topic words are finite.
        assert!(w.gold(prompt, "").is_finite());
        assert!(w.gold("", "").is_finite());
        assert!(w.gold("hello there", "the tide").is_finite());
        assert_eq!(w.prompt_topic("hello there"), None);
        assert_eq!(w.prompt_topic("why tide reef bread"), Some(6));
        // A tie goes to the lowest topic index.
        assert_eq!(w.prompt_topic("why tide bread"), Some(0));
    }

    #[test]
    fn world_bt_labels_agree_with_gold_as_expected() {
        let w = world();
        let n = 4000;
        let tau = w.config().bt_tau;
        let (mut agree, mut expected, mut var) = (0.0, 0.0, 0.0);
        for pair in w.pairs(Split::Train, n, 11) {
            let d = w.gold(&pair.prompt, &pair.chosen) - w.gold(&pair.prompt, &pair.rejected);
            agree += if d > 0.0 {
                1.0
            } else if d == 0.0 {
                0.5
            } else {
                0.0
            };
            let p = sigmoid(d.abs() / tau);
            expected += p;
            var += p * (1.0 - p);
        }
        let se = var.sqrt() / n as f64;
        let (rate, expected) = (agree / n as f64, expected / n as f64);
        println!("BT agreement {rate:.4}, expected {expected:.4} +- {se:.4}");
        // Tolerance: 3 standard errors of a sum of independent Bernoullis.
        assert!(
            (rate - expected).abs() < 3.0 * se,
            "rate {rate} expected {expected} se {se}"
        );
        // The labels are noisy but informative.
        assert!(expected > 0.7 && expected < 0.99, "{expected}");
    }

    #[test]
    fn world_splits_use_their_topics() {
        let w = world();
        let held_out: Vec<String> = (6..8).flat_map(|t| w.topic_words(t)).collect();
        for split in [Split::Train, Split::InDomain, Split::ResponseOod] {
            for p in w.pairs(split, 500, 5) {
                assert!(
                    w.prompt_topic(&p.prompt).unwrap() < 6,
                    "{split:?}: {}",
                    p.prompt
                );
                for word in p.prompt.split_whitespace() {
                    assert!(
                        !held_out.iter().any(|h| h == word),
                        "{split:?}: {}",
                        p.prompt
                    );
                }
            }
        }
        for split in [Split::PromptOod, Split::MutualOod] {
            for rs in w.rank_sets(split, 300, 4, 5) {
                assert!(
                    w.prompt_topic(&rs.prompt).unwrap() >= 6,
                    "{split:?}: {}",
                    rs.prompt
                );
            }
        }
        assert_eq!(w.generators(Split::PromptOod), vec![0, 1, 2, 3]);
        assert_eq!(w.generators(Split::MutualOod), vec![4, 5, 6, 7]);
        assert_eq!(w.topics(Split::ResponseOod), (0..6).collect::<Vec<_>>());
        for s in Split::ALL {
            assert_eq!(Split::from_name(s.name()).unwrap(), s);
        }
        assert!(Split::from_name("test").is_err());
        assert_eq!(
            Split::EVAL.map(|s| s.name()),
            ["in-domain", "prompt-ood", "response-ood", "mutual-ood"]
        );
    }

    /// Mean length and style-word rates of the responses of a split.
    fn response_stats(w: &World, split: Split) -> (f64, [f64; 5]) {
        let (mut words, mut n_resp, mut fam) = (0usize, 0usize, [0usize; 5]);
        for rs in w.rank_sets(split, 500, 4, 9) {
            for r in &rs.responses {
                n_resp += 1;
                for word in r.split_whitespace() {
                    words += 1;
                    if let Some(Class::Style(f)) = w.class.get(word) {
                        fam[*f] += 1;
                    }
                }
            }
        }
        (
            words as f64 / n_resp as f64,
            fam.map(|c| c as f64 / words as f64),
        )
    }

    #[test]
    fn world_held_out_generators_have_other_styles() {
        let w = world();
        let (len_train, fam_train) = response_stats(&w, Split::Train);
        let (len_held, fam_held) = response_stats(&w, Split::ResponseOod);
        println!("mean length train {len_train:.1}, held-out {len_held:.1}");
        println!("style rates train {fam_train:.3?}, held-out {fam_held:.3?}");
        assert!((len_held - len_train).abs() > 3.0);
        // Enthusiasm is rare in training responses and common in held-out ones.
        assert!(fam_train[4] < 0.01 && fam_held[4] > 0.03);
        // Per generator: mean lengths spread over 5..28 words.
        let prompt = w.sample_prompt(&[0], &mut Rng::new(1));
        let lens: Vec<f64> = GENERATORS
            .iter()
            .map(|g| {
                let mut rng = Rng::new(2);
                let n = 300;
                (0..n)
                    .map(|_| w.respond(g, &prompt, &mut rng).split_whitespace().count() as f64)
                    .sum::<f64>()
                    / n as f64
            })
            .collect();
        for (g, l) in GENERATORS.iter().zip(&lens) {
            // Tolerance: 0.6 words, about 4 standard errors of a 300-sample mean.
            assert!((l - g.len_mean).abs() < 0.6, "{}: {l}", g.name);
        }
    }

    #[test]
    fn world_tokenizer_knows_every_word() {
        let w = world();
        let tok = w.tokenizer().unwrap();
        assert_eq!(tok.token_to_id(PAD), Some(0));
        assert_eq!(tok.token_to_id(EOS), Some(1));
        assert_eq!(tok.token_to_id(UNK), Some(2));
        assert_eq!(tok.get_vocab_size(true), w.words().len() + 3);
        let text = w.pretrain_text(300, 3);
        let ids = tok.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        assert!(!ids.contains(&2), "pretraining text has an unknown word");
        let n_words = text.split_whitespace().count();
        assert_eq!(ids.len(), n_words);
        // Every word (and <eos>) occurs in the pretraining text.
        let seen: std::collections::HashSet<u32> = ids.iter().copied().collect();
        assert_eq!(seen.len(), w.words().len() + 1);
        // <eos> glued to a word, and unknown words.
        let bread = tok.token_to_id("bread").unwrap();
        let e = tok.encode("bread<eos>", false).unwrap();
        assert_eq!(e.get_ids(), &[bread, 1]);
        let e = tok.encode("bread zork <eos>", false).unwrap();
        assert_eq!(e.get_ids(), &[bread, 2, 1]);
        // Round trip through tokenizer.json.
        let json = tok.to_string(false).unwrap();
        let again: tokenizers::Tokenizer = json.parse().unwrap();
        let dir = std::env::temp_dir().join(format!("caracal-world-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        tok.save(&path, true).unwrap();
        let loaded = tokenizers::Tokenizer::from_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let sample = "why tide reef <eos>\nhow bread please<eos> zork";
        let want = tok.encode(sample, false).unwrap().get_ids().to_vec();
        assert_eq!(
            again.encode(sample, false).unwrap().get_ids(),
            want.as_slice()
        );
        assert_eq!(
            loaded.encode(sample, false).unwrap().get_ids(),
            want.as_slice()
        );
        assert_eq!(
            loaded.encode(text.as_str(), false).unwrap().get_ids(),
            ids.as_slice()
        );
        assert_eq!(loaded.decode(&[bread, 1], false).unwrap(), "bread <eos>");
    }

    #[test]
    fn world_pretrain_documents_have_the_format() {
        let w = world();
        let text = w.pretrain_text(50, 0);
        assert_eq!(text.lines().count(), 50);
        for line in text.lines() {
            assert!(line.ends_with(" <eos>"), "{line}");
            let first = line.split_whitespace().next().unwrap();
            assert!(QUESTIONS.iter().any(|(q, _)| *q == first), "{line}");
        }
    }

    #[test]
    fn world_pairs_and_rank_sets_have_the_asked_shape() {
        let w = world();
        assert_eq!(w.pairs(Split::Train, 0, 1).len(), 0);
        for split in Split::ALL {
            let sets = w.rank_sets(split, 5, 6, 2);
            assert_eq!(sets.len(), 5);
            for rs in &sets {
                assert_eq!(rs.responses.len(), 6);
                for (r, g) in rs.responses.iter().zip(&rs.gold) {
                    assert_eq!(*g, w.gold(&rs.prompt, r));
                    assert!(!r.is_empty());
                }
            }
        }
        let p = &w.pairs(Split::Train, 1, 1)[0];
        let json = serde_json::to_string(p).unwrap();
        assert!(
            json.starts_with("{\"prompt\":")
                && json.contains("\"chosen\":")
                && json.contains("\"rejected\":")
        );
        let back: Pair = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, p);
    }

    #[test]
    fn world_rejects_bad_configs() {
        let bad = [
            WorldConfig {
                n_train_topics: 0,
                ..WorldConfig::default()
            },
            WorldConfig {
                n_train_topics: 8,
                ..WorldConfig::default()
            },
            WorldConfig {
                n_train_generators: 1,
                ..WorldConfig::default()
            },
            WorldConfig {
                n_train_generators: 7,
                ..WorldConfig::default()
            },
            WorldConfig {
                prompt_min_words: 1,
                ..WorldConfig::default()
            },
            WorldConfig {
                prompt_min_words: 5,
                prompt_max_words: 4,
                ..WorldConfig::default()
            },
            WorldConfig {
                prompt_max_words: 9,
                ..WorldConfig::default()
            },
            WorldConfig {
                prompt_noise: 1.5,
                ..WorldConfig::default()
            },
            WorldConfig {
                bt_tau: 0.0,
                ..WorldConfig::default()
            },
            WorldConfig {
                bt_tau: f64::NAN,
                ..WorldConfig::default()
            },
        ];
        for cfg in bad {
            let err = World::new(&cfg).unwrap_err().to_string();
            assert!(err.contains("must") || err.contains("use"), "{err}");
        }
        let ok = World::new(&WorldConfig {
            n_train_topics: 7,
            n_train_generators: 6,
            ..WorldConfig::default()
        });
        assert!(ok.is_ok());
    }

    #[test]
    fn world_is_hard_but_informative() {
        let w = world();
        for split in Split::ALL {
            let sets = w.rank_sets(split, 400, 4, 21);
            let mut taus = Vec::new();
            for rs in &sets {
                let len: Vec<f64> = rs
                    .responses
                    .iter()
                    .map(|r| r.split_whitespace().count() as f64)
                    .collect();
                // A constant proxy has no defined tau; such sets are skipped.
                if let Ok(t) = kendall_tau_b(&rs.gold, &len) {
                    taus.push(t);
                }
            }
            let gold: Vec<f64> = sets.iter().flat_map(|rs| rs.gold.iter().copied()).collect();
            let pairs = w.pairs(split, 1000, 21);
            let dgold: Vec<f64> = pairs
                .iter()
                .map(|p| (w.gold(&p.prompt, &p.chosen) - w.gold(&p.prompt, &p.rejected)).abs())
                .collect();
            let tau_len = mean(&taus);
            println!(
                "{:>12}: mean gold {:+.3}, mean |dgold| in pairs {:.3}, tau(gold, length) {:+.3}",
                split.name(),
                mean(&gold),
                mean(&dgold),
                tau_len
            );
            assert!(
                tau_len.abs() < 0.6,
                "{}: length alone ranks too well ({tau_len})",
                split.name()
            );
            assert!(
                mean(&dgold) > 0.5 && mean(&dgold) < 3.0,
                "{}: {}",
                split.name(),
                mean(&dgold)
            );
        }
    }

    #[test]
    fn world_generator_styles_rank_as_designed() {
        let w = world();
        let mut rng = Rng::new(5);
        let mut means = Vec::new();
        for (g, style) in GENERATORS.iter().enumerate() {
            let held = if g < w.config().n_train_generators {
                "train"
            } else {
                "held-out"
            };
            println!("generator {g} {} ({held})", style.name);
            let mut golds = Vec::new();
            for i in 0..200 {
                let prompt = w.sample_prompt(&(0..N_TOPICS).collect::<Vec<_>>(), &mut rng);
                let r = w.respond(style, &prompt, &mut rng);
                golds.push(w.gold(&prompt.text, &r));
                if i < 2 {
                    println!("  {}  =>  {}  (gold {:+.2})", prompt.text, r, golds[i]);
                }
            }
            println!("  mean gold over 200 responses {:+.3}", mean(&golds));
            assert!(golds.iter().all(|g| g.is_finite()), "{golds:?}");
            means.push(mean(&golds));
        }
        // The design's ordering of styles (module docs): the terse expert
        // and the balanced writer score well, the careless writer and the
        // rambler badly.
        for good in [0, 3] {
            for bad in [2, 6] {
                assert!(means[good] > means[bad] + 1.0, "{means:?}");
            }
        }
    }
}
