//! The feed data: members, their histories and ranked sessions, in memory
//! and as CSV or Parquet files (the format is documented in the crate docs).

use caracal_core::table::Table;
use caracal_core::{Error, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Action ids in a history: what the member did with an impression.
pub mod action {
    /// Seen, not engaged.
    pub const SKIP: u32 = 0;
    /// Long dwell.
    pub const DWELL: u32 = 1;
    /// Contribution (like, comment, share); implies a dwell.
    pub const CONTRIBUTE: u32 = 2;
    /// Number of history actions.
    pub const COUNT: u32 = 3;
}

/// The ID features of one post.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Post {
    /// Post (item) id.
    pub item: u64,
    /// Author (original actor) id.
    pub actor: u64,
    /// Topic id.
    pub topic: u64,
    /// Post type id (text, image, video, ...).
    pub kind: u64,
}

/// One history event: a post the member saw and what they did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub post: Post,
    /// One of [`action`]; an unknown action maps to the out-of-vocabulary row.
    pub action: u32,
    /// Timestamp (any monotone unit).
    pub ts: i64,
}

/// One candidate of a ranked session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub post: Post,
    /// Update age at request time (a dense feature, e.g. in days).
    pub age: f32,
}

/// One ranked session (request): a member, a time and its candidates.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: u64,
    pub member: u64,
    pub ts: i64,
    pub candidates: Vec<Candidate>,
    /// `labels[c][t]` ∈ {0, 1}: task `t` observed on candidate `c` (empty when unlabeled).
    pub labels: Vec<Vec<f32>>,
    /// Ground-truth probabilities `truth[c][t]` (simulated data only).
    pub truth: Option<Vec<Vec<f32>>>,
}

/// Members, histories and sessions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Feed {
    /// Task names, in label-column order (`label_<task>` in CSV).
    pub tasks: Vec<String>,
    /// Every member, sorted.
    pub members: Vec<u64>,
    /// Each member's history sorted by time.
    pub history: BTreeMap<u64, Vec<Event>>,
    pub sessions: Vec<Session>,
}

/// `dir/<stem>.parquet` when it exists, else `dir/<stem>.csv`.
fn table_path(dir: &Path, stem: &str) -> std::path::PathBuf {
    let pq = dir.join(format!("{stem}.parquet"));
    if pq.exists() {
        pq
    } else {
        dir.join(format!("{stem}.csv"))
    }
}

impl Feed {
    /// The member's events strictly before `ts`, at most the last `max_len`.
    pub fn history_before(&self, member: u64, ts: i64, max_len: usize) -> &[Event] {
        let Some(h) = self.history.get(&member) else {
            return &[];
        };
        let end = h.partition_point(|e| e.ts < ts);
        &h[end.saturating_sub(max_len)..end]
    }

    /// Split by member into `(train, valid, test)` with the given fractions
    /// of members (the rest goes to test), shuffled by `seed`.
    pub fn split_by_member(&self, train: f64, valid: f64, seed: u64) -> Result<(Feed, Feed, Feed)> {
        caracal_core::ensure!(
            (0.0..=1.0).contains(&train) && (0.0..=1.0).contains(&valid) && train + valid <= 1.0,
            "split fractions {train} and {valid} must lie in [0, 1] and sum to at most 1"
        );
        let mut m = self.members.clone();
        caracal_core::Rng::new(seed).shuffle(&mut m);
        let n = m.len();
        let a = (train * n as f64).round() as usize;
        let b = (a + (valid * n as f64).round() as usize).min(n);
        let pick = |ms: &[u64]| -> Feed {
            let set: std::collections::BTreeSet<u64> = ms.iter().copied().collect();
            Feed {
                tasks: self.tasks.clone(),
                members: set.iter().copied().collect(),
                history: self
                    .history
                    .iter()
                    .filter(|(k, _)| set.contains(k))
                    .map(|(k, v)| (*k, v.clone()))
                    .collect(),
                sessions: self
                    .sessions
                    .iter()
                    .filter(|s| set.contains(&s.member))
                    .cloned()
                    .collect(),
            }
        };
        Ok((pick(&m[..a]), pick(&m[a..b]), pick(&m[b..])))
    }

    /// Error unless every session carries one label per task and candidate.
    pub fn ensure_labeled(&self) -> Result<()> {
        caracal_core::ensure!(
            !self.tasks.is_empty(),
            "the sessions have no label columns; add at least one `label_<task>` column (0/1) to sessions.csv"
        );
        for s in &self.sessions {
            caracal_core::ensure!(
                s.labels.len() == s.candidates.len()
                    && s.labels.iter().all(|l| l.len() == self.tasks.len()),
                "session {} has {} candidates but labels for {}; every candidate needs one label per task",
                s.id,
                s.candidates.len(),
                s.labels.len()
            );
        }
        Ok(())
    }

    /// Write `members.csv`, `history.csv` and `sessions.csv` into `dir`
    /// (atomically, one file at a time).
    pub fn write_csv(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let mut m = String::from("member_id\n");
        for id in &self.members {
            let _ = writeln!(m, "{id}");
        }
        caracal_core::write_atomic(dir.join("members.csv"), m.as_bytes())?;
        let mut h = String::from("member_id,item_id,actor_id,topic_id,type_id,action,ts\n");
        for (mid, evs) in &self.history {
            for e in evs {
                let p = e.post;
                let _ = writeln!(
                    h,
                    "{mid},{},{},{},{},{},{}",
                    p.item, p.actor, p.topic, p.kind, e.action, e.ts
                );
            }
        }
        caracal_core::write_atomic(dir.join("history.csv"), h.as_bytes())?;
        let truth = self.sessions.iter().any(|s| s.truth.is_some());
        let mut s = String::from("session_id,member_id,ts,item_id,actor_id,topic_id,type_id,age");
        for t in &self.tasks {
            let _ = write!(s, ",label_{t}");
        }
        if truth {
            for t in &self.tasks {
                let _ = write!(s, ",p_{t}");
            }
        }
        s.push('\n');
        for ses in &self.sessions {
            for (c, cand) in ses.candidates.iter().enumerate() {
                let p = cand.post;
                let _ = write!(
                    s,
                    "{},{},{},{},{},{},{},{}",
                    ses.id, ses.member, ses.ts, p.item, p.actor, p.topic, p.kind, cand.age
                );
                for t in 0..self.tasks.len() {
                    let _ = write!(
                        s,
                        ",{}",
                        ses.labels.get(c).and_then(|l| l.get(t)).unwrap_or(&0.0)
                    );
                }
                if truth {
                    for t in 0..self.tasks.len() {
                        let v = ses
                            .truth
                            .as_ref()
                            .and_then(|tr| tr.get(c))
                            .and_then(|l| l.get(t));
                        let _ = write!(s, ",{}", v.unwrap_or(&f32::NAN));
                    }
                }
                s.push('\n');
            }
        }
        caracal_core::write_atomic(dir.join("sessions.csv"), s.as_bytes())
    }

    /// Read the three tables from `dir`, each as `<name>.parquet` when that
    /// file exists and as `<name>.csv` otherwise (same columns either way).
    /// `members` is optional (the members are then those of the history and
    /// sessions); `sessions` may have no `label_*` column (unlabeled data,
    /// for scoring only).
    pub fn read_csv(dir: impl AsRef<Path>) -> Result<Feed> {
        let dir = dir.as_ref();
        let hist = Table::read(table_path(dir, "history"))?;
        let ses = Table::read(table_path(dir, "sessions"))?;
        let members_path = table_path(dir, "members");
        let members = if members_path.exists() {
            Some(ids(&Table::read(&members_path)?, "member_id")?)
        } else {
            None
        };
        Self::from_tables(members, &hist, &ses)
    }

    /// Build a feed from parsed tables (see [`Feed::read_csv`]).
    pub fn from_tables(members: Option<Vec<u64>>, hist: &Table, ses: &Table) -> Result<Feed> {
        let mut history: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
        let hm = ids(hist, "member_id")?;
        let hp = posts(hist)?;
        let ha = ids(hist, "action")?;
        let ht = ints(hist, "ts")?;
        for i in 0..hist.n_rows() {
            history.entry(hm[i]).or_default().push(Event {
                post: hp[i],
                action: ha[i].min(u32::MAX as u64) as u32,
                ts: ht[i],
            });
        }
        for evs in history.values_mut() {
            evs.sort_by_key(|e| e.ts);
        }
        let tasks: Vec<String> = ses
            .names
            .iter()
            .filter_map(|n| n.strip_prefix("label_").map(str::to_string))
            .collect();
        let sid = ids(ses, "session_id")?;
        let smem = ids(ses, "member_id")?;
        let sts = ints(ses, "ts")?;
        let sp = posts(ses)?;
        let age = ses.f64s("age")?;
        let labels: Vec<Vec<f64>> = tasks
            .iter()
            .map(|t| ses.f64s(&format!("label_{t}")))
            .collect::<Result<_>>()?;
        for (t, col) in tasks.iter().zip(&labels) {
            if let Some(r) = col.iter().position(|&v| v != 0.0 && v != 1.0) {
                return Err(Error::file(
                    &ses.source,
                    format!("row {}, column `label_{t}`: labels must be 0 or 1", r + 2),
                ));
            }
        }
        let truth: Option<Vec<Vec<f64>>> =
            if !tasks.is_empty() && tasks.iter().all(|t| ses.names.contains(&format!("p_{t}"))) {
                Some(
                    tasks
                        .iter()
                        .map(|t| ses.f64s(&format!("p_{t}")))
                        .collect::<Result<_>>()?,
                )
            } else {
                None
            };
        // Group rows into sessions, keeping first-seen order.
        let mut order: Vec<u64> = Vec::new();
        let mut by_id: BTreeMap<u64, Session> = BTreeMap::new();
        for r in 0..ses.n_rows() {
            let s = by_id.entry(sid[r]).or_insert_with(|| {
                order.push(sid[r]);
                Session {
                    id: sid[r],
                    member: smem[r],
                    ts: sts[r],
                    candidates: Vec::new(),
                    labels: Vec::new(),
                    truth: truth.as_ref().map(|_| Vec::new()),
                }
            });
            if s.member != smem[r] || s.ts != sts[r] {
                return Err(Error::file(
                    &ses.source,
                    format!(
                        "row {}: session {} changes member or ts; all rows of a session share member_id and ts",
                        r + 2,
                        sid[r]
                    ),
                ));
            }
            s.candidates.push(Candidate {
                post: sp[r],
                age: age[r] as f32,
            });
            if !tasks.is_empty() {
                s.labels.push(labels.iter().map(|c| c[r] as f32).collect());
            }
            if let (Some(tr), Some(st)) = (&truth, s.truth.as_mut()) {
                st.push(tr.iter().map(|c| c[r] as f32).collect());
            }
        }
        let sessions: Vec<Session> = order.iter().filter_map(|id| by_id.remove(id)).collect();
        let members = members.unwrap_or_else(|| {
            let mut m: Vec<u64> = history.keys().copied().collect();
            m.extend(sessions.iter().map(|s| s.member));
            m
        });
        let mut members = members;
        members.sort_unstable();
        members.dedup();
        Ok(Feed {
            tasks,
            members,
            history,
            sessions,
        })
    }
}

fn ids(t: &Table, col: &str) -> Result<Vec<u64>> {
    t.text(col)?
        .iter()
        .enumerate()
        .map(|(r, v)| {
            v.parse::<u64>().map_err(|_| {
                Error::file(
                    &t.source,
                    format!(
                        "row {}, column `{col}`: `{v}` is not a non-negative integer id",
                        r + 2
                    ),
                )
            })
        })
        .collect()
}

fn ints(t: &Table, col: &str) -> Result<Vec<i64>> {
    t.text(col)?
        .iter()
        .enumerate()
        .map(|(r, v)| {
            v.parse::<i64>().map_err(|_| {
                Error::file(
                    &t.source,
                    format!("row {}, column `{col}`: `{v}` is not an integer", r + 2),
                )
            })
        })
        .collect()
}

fn posts(t: &Table) -> Result<Vec<Post>> {
    let item = ids(t, "item_id")?;
    let actor = ids(t, "actor_id")?;
    let topic = ids(t, "topic_id")?;
    let kind = ids(t, "type_id")?;
    Ok((0..t.n_rows())
        .map(|i| Post {
            item: item[i],
            actor: actor[i],
            topic: topic[i],
            kind: kind[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str, name: &str) -> Table {
        Table::from_reader(text.as_bytes(), name).unwrap()
    }

    #[test]
    fn missing_label_columns_read_as_unlabeled_and_training_refuses_them() {
        let h = table(
            "member_id,item_id,actor_id,topic_id,type_id,action,ts\n1,5,2,3,0,1,10\n",
            "history.csv",
        );
        let s = table(
            "session_id,member_id,ts,item_id,actor_id,topic_id,type_id,age\n7,1,20,6,2,3,0,0.5\n",
            "sessions.csv",
        );
        let f = Feed::from_tables(None, &h, &s).unwrap();
        assert!(f.tasks.is_empty());
        assert_eq!(f.sessions[0].candidates.len(), 1);
        let e = f.ensure_labeled().unwrap_err().to_string();
        assert!(e.contains("label_"), "{e}");
        // A missing feature column is named in the error.
        let s2 = table(
            "session_id,member_id,ts,item_id,actor_id,type_id,age\n7,1,20,6,2,0,0.5\n",
            "sessions.csv",
        );
        let e = Feed::from_tables(None, &h, &s2).unwrap_err().to_string();
        assert!(e.contains("topic_id"), "{e}");
    }

    #[test]
    fn history_before_excludes_the_session_time_and_truncates() {
        let h = table(
            "member_id,item_id,actor_id,topic_id,type_id,action,ts\n1,5,2,3,0,1,30\n1,6,2,3,0,0,10\n1,7,2,3,0,2,20\n",
            "history.csv",
        );
        let s = table(
            "session_id,member_id,ts,item_id,actor_id,topic_id,type_id,age,label_dwell\n7,1,30,6,2,3,0,0.5,1\n",
            "sessions.csv",
        );
        let f = Feed::from_tables(None, &h, &s).unwrap();
        let hb = f.history_before(1, 30, 10);
        assert_eq!(
            hb.iter().map(|e| e.post.item).collect::<Vec<_>>(),
            vec![6, 7]
        );
        assert_eq!(f.history_before(1, 30, 1)[0].post.item, 7);
        assert!(f.history_before(99, 30, 5).is_empty());
    }
}
