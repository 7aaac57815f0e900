//! ID vocabularies: raw ids seen in training map to embedding rows `1..`,
//! every other id (seen first at serving time) to the out-of-vocabulary row 0.

use crate::data::{Feed, Post};
use std::collections::HashMap;

/// Row 0 of every embedding table: ids never seen in training.
pub const OOV: u32 = 0;

/// One field's id → row map.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Vocab {
    /// `ids[r - 1]` is the raw id of row `r`.
    pub ids: Vec<u64>,
    #[serde(skip)]
    map: HashMap<u64, u32>,
}

impl Vocab {
    /// A vocabulary of the distinct ids, in first-seen order.
    pub fn build(ids: impl IntoIterator<Item = u64>) -> Self {
        let mut v = Vocab::default();
        for id in ids {
            if !v.map.contains_key(&id) {
                v.ids.push(id);
                v.map.insert(id, v.ids.len() as u32);
            }
        }
        v
    }

    /// Rebuild the lookup after deserializing.
    pub fn reindex(&mut self) {
        self.map = self
            .ids
            .iter()
            .enumerate()
            .map(|(r, &id)| (id, r as u32 + 1))
            .collect();
    }

    /// The row of `id`, or [`OOV`].
    pub fn row(&self, id: u64) -> u32 {
        self.map.get(&id).copied().unwrap_or(OOV)
    }

    /// Rows in the embedding table (the OOV row included).
    pub fn rows(&self) -> usize {
        self.ids.len() + 1
    }
}

/// The vocabularies of the four post fields.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Vocabs {
    pub item: Vocab,
    pub actor: Vocab,
    pub topic: Vocab,
    pub kind: Vocab,
}

impl Vocabs {
    /// Every id in the feed's histories and candidates.
    pub fn from_feed(f: &Feed) -> Self {
        let posts: Vec<Post> = f
            .history
            .values()
            .flat_map(|h| h.iter().map(|e| e.post))
            .chain(
                f.sessions
                    .iter()
                    .flat_map(|s| s.candidates.iter().map(|c| c.post)),
            )
            .collect();
        Vocabs {
            item: Vocab::build(posts.iter().map(|p| p.item)),
            actor: Vocab::build(posts.iter().map(|p| p.actor)),
            topic: Vocab::build(posts.iter().map(|p| p.topic)),
            kind: Vocab::build(posts.iter().map(|p| p.kind)),
        }
    }

    /// Rebuild the lookups after deserializing.
    pub fn reindex(&mut self) {
        for v in [
            &mut self.item,
            &mut self.actor,
            &mut self.topic,
            &mut self.kind,
        ] {
            v.reindex();
        }
    }

    /// Rows of a post: `[item, actor, topic, kind]`.
    pub fn rows(&self, p: &Post) -> [u32; 4] {
        [
            self.item.row(p.item),
            self.actor.row(p.actor),
            self.topic.row(p.topic),
            self.kind.row(p.kind),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_ids_go_to_the_oov_row_and_survive_serde() {
        let v = Vocab::build([10, 20, 10, 30]);
        assert_eq!((v.row(10), v.row(20), v.row(30), v.row(99)), (1, 2, 3, OOV));
        assert_eq!(v.rows(), 4);
        let mut w: Vocab = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        w.reindex();
        assert_eq!(w.row(30), 3);
        assert_eq!(w.row(12345), OOV);
    }
}
