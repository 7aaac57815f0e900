//! The embedded default corpus: English-like sentences from a small seeded
//! probabilistic grammar, so `caracal lm train` runs without downloading
//! anything. Agreement (a/an, singular verbs) and clause nesting give a
//! byte-level model structure to learn beyond word frequencies.

use caracal_core::Rng;

const NAMES: &[&str] = &[
    "Ada", "Brook", "Cyrus", "Dora", "Emil", "Farah", "Gus", "Hana",
];
const ADJ: &[&str] = &[
    "small", "old", "quiet", "bright", "heavy", "green", "clever", "tired", "wooden", "eager",
];
const NOUNS: &[&str] = &[
    "fox", "river", "teacher", "garden", "lamp", "sailor", "owl", "village", "letter", "engine",
    "apple", "island",
];
const VT: &[&str] = &[
    "sees",
    "finds",
    "paints",
    "follows",
    "carries",
    "admires",
    "fixes",
    "remembers",
];
const VI: &[&str] = &["sleeps", "waits", "sings", "wanders", "laughs", "rests"];
const PREP: &[&str] = &["near", "under", "behind", "beside", "across", "inside"];
const ADV: &[&str] = &[
    "slowly",
    "again",
    "today",
    "at dawn",
    "with care",
    "in silence",
];
const CONJ: &[&str] = &["and", "but", "so", "while"];

fn pick<'a>(r: &mut Rng, xs: &[&'a str]) -> &'a str {
    xs[r.below(xs.len())]
}

fn noun_phrase(r: &mut Rng, depth: usize) -> String {
    if r.bernoulli(0.15) {
        return pick(r, NAMES).to_string();
    }
    let noun = pick(r, NOUNS);
    let adj = r.bernoulli(0.5).then(|| pick(r, ADJ));
    let first = adj.unwrap_or(noun);
    let det = if r.bernoulli(0.5) {
        "the"
    } else if first.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let mut s = match adj {
        Some(a) => format!("{det} {a} {noun}"),
        None => format!("{det} {noun}"),
    };
    if depth < 1 && r.bernoulli(0.2) {
        s = format!("{s} that {}", verb_phrase(r, depth + 1));
    } else if depth < 2 && r.bernoulli(0.15) {
        s = format!("{s} {} {}", pick(r, PREP), noun_phrase(r, depth + 1));
    }
    s
}

fn verb_phrase(r: &mut Rng, depth: usize) -> String {
    let mut s = if r.bernoulli(0.3) {
        pick(r, VI).to_string()
    } else {
        format!("{} {}", pick(r, VT), noun_phrase(r, depth + 1))
    };
    if r.bernoulli(0.3) {
        s = format!("{s} {}", pick(r, ADV));
    }
    s
}

fn sentence(r: &mut Rng) -> String {
    let mut s = format!("{} {}", noun_phrase(r, 0), verb_phrase(r, 0));
    if r.bernoulli(0.25) {
        s = format!(
            "{s}, {} {} {}",
            pick(r, CONJ),
            noun_phrase(r, 1),
            verb_phrase(r, 1)
        );
    }
    let mut c = s.chars();
    let first = c
        .next()
        .map(|f| f.to_uppercase().collect::<String>())
        .unwrap_or_default();
    format!("{first}{}.", c.as_str())
}

/// About `n_bytes` of text from the grammar, in paragraphs of 3–6
/// sentences, fixed by `seed`.
pub fn grammar_corpus(seed: u64, n_bytes: usize) -> String {
    let mut r = Rng::new(seed);
    let mut out = String::with_capacity(n_bytes + 256);
    while out.len() < n_bytes {
        let n = 3 + r.below(4);
        let para: Vec<String> = (0..n).map(|_| sentence(&mut r)).collect();
        out.push_str(&para.join(" "));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_english_like() {
        let a = grammar_corpus(1, 5000);
        assert_eq!(a, grammar_corpus(1, 5000));
        assert_ne!(a, grammar_corpus(2, 5000));
        assert!(a.len() >= 5000 && a.is_ascii());
        assert!(a.contains(". ") && a.contains("the "));
        assert!(!a.contains(" a a") && !a.contains(" a e") && !a.contains(" a o"));
    }
}
