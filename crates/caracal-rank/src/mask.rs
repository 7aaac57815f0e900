//! The LiGR attention mask over one sequence `[history (H) ; candidates (N)]`.
//!
//! - a history item attends to earlier history items and itself (causal),
//!   never to candidates;
//! - a candidate attends to the whole history and, in set-wise mode, to every
//!   candidate of its session (itself included); in pointwise mode, to itself
//!   only.
//!
//! Padding slots (`valid = false`) are never attended to. Because history
//! rows never see candidates, the history states (and their K/V) do not
//! depend on the candidates: this is what makes caching them exact.

/// The additive value of a blocked entry (finite, so the backward pass never
/// meets `inf − inf`; `exp(−1e9)` is exactly 0 in f32).
pub const BLOCKED: f32 = -1e9;

/// How candidates see each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CandidateAttention {
    /// Each candidate sees the history and itself.
    Pointwise,
    /// Each candidate sees the history and all candidates of its session.
    SetWise,
}

/// Whether query `i` may attend to key `j` in a sequence of `h` history
/// slots followed by candidate slots.
pub fn allowed(i: usize, j: usize, h: usize, mode: CandidateAttention) -> bool {
    match (i < h, j < h) {
        (true, true) => j <= i,
        (true, false) => false,
        (false, true) => true,
        (false, false) => mode == CandidateAttention::SetWise || i == j,
    }
}

/// The `(H+N)²` additive mask, row-major, for one sequence.
pub fn attention_mask(
    hist_valid: &[bool],
    cand_valid: &[bool],
    mode: CandidateAttention,
) -> Vec<f32> {
    let h = hist_valid.len();
    let valid: Vec<bool> = hist_valid.iter().chain(cand_valid).copied().collect();
    let l = valid.len();
    let mut m = vec![BLOCKED; l * l];
    for i in 0..l {
        if !valid[i] {
            continue;
        }
        for j in 0..l {
            if valid[j] && allowed(i, j, h, mode) {
                m[i * l + j] = 0.0;
            }
        }
    }
    m
}

/// The candidate rows of [`attention_mask`] with every slot valid: `N × (H+N)`,
/// the mask of the cached serving pass.
pub fn candidate_rows(h: usize, n: usize, mode: CandidateAttention) -> Vec<f32> {
    let l = h + n;
    let mut m = vec![BLOCKED; n * l];
    for c in 0..n {
        for j in 0..l {
            if allowed(h + c, j, h, mode) {
                m[c * l + j] = 0.0;
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use CandidateAttention::*;

    fn show(m: &[f32], l: usize) -> Vec<String> {
        m.chunks(l)
            .map(|r| {
                r.iter()
                    .map(|&x| if x == 0.0 { '1' } else { '.' })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn history_is_causal_candidates_see_history_and_their_set() {
        let m = attention_mask(&[true; 3], &[true; 2], SetWise);
        assert_eq!(show(&m, 5), ["1....", "11...", "111..", "11111", "11111"]);
        let m = attention_mask(&[true; 3], &[true; 2], Pointwise);
        assert_eq!(show(&m, 5), ["1....", "11...", "111..", "1111.", "111.1"]);
    }

    #[test]
    fn padding_is_never_attended_and_candidate_rows_match() {
        // Left-padded history, right-padded candidates.
        let m = attention_mask(&[false, true, true], &[true, true, false], SetWise);
        assert_eq!(
            show(&m, 6),
            ["......", ".1....", ".11...", ".1111.", ".1111.", "......"]
        );
        let r = candidate_rows(2, 2, SetWise);
        let full = attention_mask(&[true; 2], &[true; 2], SetWise);
        assert_eq!(r, full[2 * 4..]);
        // Empty history: a candidate still sees itself.
        assert_eq!(show(&attention_mask(&[], &[true], Pointwise), 1), ["1"]);
    }
}
