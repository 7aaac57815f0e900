//! A feed simulator with known ground truth.
//!
//! Members have latent topic interests `θ_m`, post-type preferences `π_m`
//! and a few favourite actors. Posts have a topic, an actor (whose own topic
//! the post usually follows), a type and a latent quality `q_i`. A member's
//! utility for a post is
//!
//! ```text
//! u(m, i) = b + θ_m[topic_i] + π_m[type_i] + q_i + a·fav_m(actor_i)
//!             + r·[topic_i ∈ topics engaged in the last R history events]
//!             − g·age_i
//! ```
//!
//! so engagement depends on the history (its recent part most). Inside a
//! ranked session, repeated actors and topics give diminishing returns:
//!
//! ```text
//! u'(m, i | S) = u(m, i) − γ_a·#{j ∈ S, j ≠ i : actor_j = actor_i}
//!                         − γ_t·#{j ∈ S, j ≠ i : topic_j = topic_i}
//! ```
//!
//! `P(dwell) = σ(u')` and `P(contribute) = σ(u') · σ(u' + c·fav_m(actor_i) − 1.5)`,
//! the probabilities being written next to the labels as ground truth.
//! Set-wise scoring can see `S`; pointwise scoring cannot.

use crate::data::{action, Candidate, Event, Feed, Post, Session};
use caracal_core::{Result, Rng};

/// Sizes and effect strengths of the simulated feed.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SimConfig {
    pub members: usize,
    pub items: usize,
    pub actors: usize,
    pub topics: usize,
    pub kinds: usize,
    /// History events per member.
    pub history_len: usize,
    pub sessions_per_member: usize,
    pub candidates: usize,
    /// Diminishing return per repeated actor in a session (`γ_a`).
    pub actor_repeat_penalty: f64,
    /// Diminishing return per repeated topic in a session (`γ_t`).
    pub topic_repeat_penalty: f64,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            members: 1000,
            items: 800,
            actors: 80,
            topics: 16,
            kinds: 3,
            history_len: 24,
            sessions_per_member: 3,
            candidates: 12,
            actor_repeat_penalty: 1.0,
            topic_repeat_penalty: 0.6,
            seed: 7,
        }
    }
}

const BIAS: f64 = -1.0;
const FAV_ACTOR: f64 = 1.2;
const RECENT: f64 = 0.8;
const RECENT_WINDOW: usize = 6;
const AGE_SLOPE: f64 = 0.2;
const CONTRIB_FAV: f64 = 1.0;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

struct World {
    posts: Vec<Post>,
    quality: Vec<f64>,
    by_topic: Vec<Vec<usize>>,
    by_actor: Vec<Vec<usize>>,
}

struct Member {
    theta: Vec<f64>,
    pi: Vec<f64>,
    fav: Vec<u64>,
}

impl Member {
    fn utility(&self, w: &World, i: usize, recent_topics: &[u64], age: f64) -> f64 {
        let p = w.posts[i];
        let fav = if self.fav.contains(&p.actor) {
            1.0
        } else {
            0.0
        };
        let rec = if recent_topics.contains(&p.topic) {
            1.0
        } else {
            0.0
        };
        BIAS + self.theta[p.topic as usize]
            + self.pi[p.kind as usize]
            + w.quality[i]
            + FAV_ACTOR * fav
            + RECENT * rec
            - AGE_SLOPE * age
    }

    /// Retrieval: half by interest, a fifth from favourite actors, the rest at random.
    fn draw(&self, w: &World, rng: &mut Rng) -> usize {
        let u = rng.uniform();
        if u < 0.5 {
            // Topic ∝ exp(θ).
            let wts: Vec<f64> = self.theta.iter().map(|t| t.exp()).collect();
            let mut x = rng.uniform() * wts.iter().sum::<f64>();
            let mut topic = wts.len() - 1;
            for (k, wt) in wts.iter().enumerate() {
                if x < *wt {
                    topic = k;
                    break;
                }
                x -= wt;
            }
            let pool = &w.by_topic[topic];
            if !pool.is_empty() {
                return pool[rng.below(pool.len())];
            }
        } else if u < 0.7 && !self.fav.is_empty() {
            let pool = &w.by_actor[self.fav[rng.below(self.fav.len())] as usize];
            if !pool.is_empty() {
                return pool[rng.below(pool.len())];
            }
        }
        rng.below(w.posts.len())
    }
}

/// Simulate a feed (two tasks: `dwell` and `contribute`) with ground-truth
/// probabilities on every candidate.
pub fn simulate(cfg: &SimConfig) -> Result<Feed> {
    caracal_core::ensure!(
        cfg.members > 0 && cfg.items > 0 && cfg.actors > 0 && cfg.topics > 0 && cfg.kinds > 0,
        "simulate: members, items, actors, topics and kinds must all be positive"
    );
    caracal_core::ensure!(
        cfg.candidates > 0,
        "simulate: sessions need at least one candidate"
    );
    let mut rng = Rng::new(cfg.seed);
    let actor_topic: Vec<u64> = (0..cfg.actors)
        .map(|_| rng.below(cfg.topics) as u64)
        .collect();
    let mut posts = Vec::with_capacity(cfg.items);
    let mut quality = Vec::with_capacity(cfg.items);
    let mut by_topic = vec![Vec::new(); cfg.topics];
    let mut by_actor = vec![Vec::new(); cfg.actors];
    for i in 0..cfg.items {
        let actor = rng.below(cfg.actors);
        let topic = if rng.bernoulli(0.8) {
            actor_topic[actor]
        } else {
            rng.below(cfg.topics) as u64
        };
        let p = Post {
            item: i as u64,
            actor: actor as u64,
            topic,
            kind: rng.below(cfg.kinds) as u64,
        };
        by_topic[topic as usize].push(i);
        by_actor[actor].push(i);
        posts.push(p);
        quality.push(0.5 * rng.normal());
    }
    let world = World {
        posts,
        quality,
        by_topic,
        by_actor,
    };
    let mut feed = Feed {
        tasks: vec!["dwell".into(), "contribute".into()],
        ..Feed::default()
    };
    let mut session_id = 0u64;
    for m in 0..cfg.members as u64 {
        let member = Member {
            theta: (0..cfg.topics).map(|_| 1.2 * rng.normal()).collect(),
            pi: (0..cfg.kinds).map(|_| 0.5 * rng.normal()).collect(),
            fav: (0..3).map(|_| rng.below(cfg.actors) as u64).collect(),
        };
        let mut events: Vec<Event> = Vec::with_capacity(cfg.history_len);
        let mut recent: Vec<u64> = Vec::new();
        for t in 0..cfg.history_len {
            let i = member.draw(&world, &mut rng);
            let u = member.utility(&world, i, &recent, 0.0);
            let post = world.posts[i];
            let act = if rng.bernoulli(sigmoid(u)) {
                let fav = if member.fav.contains(&post.actor) {
                    1.0
                } else {
                    0.0
                };
                if rng.bernoulli(sigmoid(u + CONTRIB_FAV * fav - 1.5)) {
                    action::CONTRIBUTE
                } else {
                    action::DWELL
                }
            } else {
                action::SKIP
            };
            events.push(Event {
                post,
                action: act,
                ts: t as i64,
            });
            recent = events
                .iter()
                .rev()
                .take(RECENT_WINDOW)
                .filter(|e| e.action != action::SKIP)
                .map(|e| e.post.topic)
                .collect();
        }
        for s in 0..cfg.sessions_per_member {
            let ts = (cfg.history_len + s) as i64;
            let idx: Vec<usize> = (0..cfg.candidates)
                .map(|_| member.draw(&world, &mut rng))
                .collect();
            let ages: Vec<f64> = idx.iter().map(|_| 5.0 * rng.uniform()).collect();
            let mut cands = Vec::with_capacity(idx.len());
            let mut labels = Vec::with_capacity(idx.len());
            let mut truth = Vec::with_capacity(idx.len());
            for (c, &i) in idx.iter().enumerate() {
                let p = world.posts[i];
                let same_actor = idx
                    .iter()
                    .filter(|&&j| world.posts[j].actor == p.actor)
                    .count()
                    - 1;
                let same_topic = idx
                    .iter()
                    .filter(|&&j| world.posts[j].topic == p.topic)
                    .count()
                    - 1;
                let u = member.utility(&world, i, &recent, ages[c])
                    - cfg.actor_repeat_penalty * same_actor as f64
                    - cfg.topic_repeat_penalty * same_topic as f64;
                let fav = if member.fav.contains(&p.actor) {
                    1.0
                } else {
                    0.0
                };
                let p_dwell = sigmoid(u);
                let p_contrib_given = sigmoid(u + CONTRIB_FAV * fav - 1.5);
                let dwell = rng.bernoulli(p_dwell);
                // Both draws always happen, so the stream does not depend on the labels.
                let contrib = rng.bernoulli(p_contrib_given) && dwell;
                cands.push(Candidate {
                    post: p,
                    age: ages[c] as f32,
                });
                labels.push(vec![dwell as u8 as f32, contrib as u8 as f32]);
                truth.push(vec![p_dwell as f32, (p_dwell * p_contrib_given) as f32]);
            }
            feed.sessions.push(Session {
                id: session_id,
                member: m,
                ts,
                candidates: cands,
                labels,
                truth: Some(truth),
            });
            session_id += 1;
        }
        feed.members.push(m);
        feed.history.insert(m, events);
    }
    Ok(feed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig {
            members: 60,
            items: 300,
            sessions_per_member: 2,
            ..SimConfig::default()
        }
    }

    #[test]
    fn simulation_is_seeded_and_round_trips_through_csv() {
        let a = simulate(&small()).unwrap();
        let b = simulate(&small()).unwrap();
        assert_eq!(a, b);
        let dir = std::env::temp_dir().join(format!("caracal-rank-sim-{}", std::process::id()));
        a.write_csv(&dir).unwrap();
        let r = Feed::read_csv(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(r.tasks, a.tasks);
        assert_eq!(r.members, a.members);
        assert_eq!(r.history, a.history);
        assert_eq!(r.sessions.len(), a.sessions.len());
        for (x, y) in r.sessions.iter().zip(&a.sessions) {
            assert_eq!(x.candidates, y.candidates);
            assert_eq!(x.labels, y.labels);
        }
    }

    #[test]
    fn repeats_lower_the_true_engagement_and_nothing_else() {
        let with = simulate(&small()).unwrap();
        let without = simulate(&SimConfig {
            actor_repeat_penalty: 0.0,
            topic_repeat_penalty: 0.0,
            ..small()
        })
        .unwrap();
        let (mut lowered, mut unique) = (0, 0);
        for (s, t) in with.sessions.iter().zip(&without.sessions) {
            assert_eq!(s.candidates, t.candidates);
            for (c, cand) in s.candidates.iter().enumerate() {
                let repeats = s
                    .candidates
                    .iter()
                    .filter(|o| o.post.topic == cand.post.topic || o.post.actor == cand.post.actor)
                    .count()
                    > 1;
                let (p, q) = (
                    s.truth.as_ref().unwrap()[c][0],
                    t.truth.as_ref().unwrap()[c][0],
                );
                if repeats {
                    assert!(p < q);
                    lowered += 1;
                } else {
                    assert_eq!(p, q);
                    unique += 1;
                }
            }
        }
        assert!(lowered > 0 && unique > 0);
        let rate = with
            .sessions
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l[0] as f64))
            .sum::<f64>()
            / with
                .sessions
                .iter()
                .map(|s| s.candidates.len())
                .sum::<usize>() as f64;
        assert!((0.1..0.6).contains(&rate), "dwell rate {rate}");
    }
}
