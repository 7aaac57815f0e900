//! Advantages of on-policy RL from `k` sampled completions per prompt,
//! laid out prompt by prompt (`rewards[i·k .. (i+1)·k]` belong to prompt `i`).
//!
//! - **RLOO** (Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style
//!   Optimization for Learning from Human Feedback in LLMs", ACL 2024, eq. 5):
//!   `A_i = R_i − (1/(k−1))·Σ_{j≠i} R_j`, the leave-one-out baseline.
//! - **GRPO** (Shao et al., "DeepSeekMath", 2024, §4.1.2): `A_i = (R_i −
//!   mean(R))/(std(R) + ε)` within the group, `std` with Bessel's correction
//!   (`torch.std`'s default, as TRL), ε = 1e-4.
//! - The KL-shaped reward of RLOO (RM-Robustness, TRL):
//!   `R_i = r_i − β·Σ_t (log π_old − log π_ref)` on the sequence.

use caracal_core::Result;

fn groups(rewards: &[f64], k: usize) -> Result<std::slice::Chunks<'_, f64>> {
    if k < 2 {
        caracal_core::bail!(
            "k is {k}; a leave-one-out or group baseline needs at least 2 samples per prompt"
        );
    }
    if rewards.is_empty() || !rewards.len().is_multiple_of(k) {
        caracal_core::bail!(
            "{} rewards do not split into groups of k = {k} samples per prompt",
            rewards.len()
        );
    }
    if let Some(r) = rewards.iter().find(|r| !r.is_finite()) {
        caracal_core::bail!("a reward is {r}; every reward must be finite");
    }
    Ok(rewards.chunks(k))
}

/// RLOO's leave-one-out advantages.
pub fn rloo(rewards: &[f64], k: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(rewards.len());
    for g in groups(rewards, k)? {
        let s: f64 = g.iter().sum();
        out.extend(g.iter().map(|r| r - (s - r) / (k - 1) as f64));
    }
    Ok(out)
}

/// GRPO's group-normalized advantages.
pub fn grpo(rewards: &[f64], k: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(rewards.len());
    for g in groups(rewards, k)? {
        let m = g.iter().sum::<f64>() / k as f64;
        let sd = (g.iter().map(|r| (r - m).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt();
        out.extend(g.iter().map(|r| (r - m) / (sd + 1e-4)));
    }
    Ok(out)
}

/// The KL-shaped sequence reward `r − β·(log π_old(y) − log π_ref(y))`
/// (sequence log-probs summed over the completion).
pub fn kl_shaped(reward: f64, logp_old: f64, logp_ref: f64, beta: f64) -> f64 {
    reward - beta * (logp_old - logp_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// shared/reference/alignment.md §3: R = [1, 0, .5] → A = [.75, −.75, 0].
    #[test]
    fn rloo_matches_the_reference_vector() {
        let a = rloo(&[1.0, 0.0, 0.5, 2.0, 2.0, 5.0], 3).unwrap();
        for (x, y) in a.iter().zip([0.75, -0.75, 0.0, -1.5, -1.5, 3.0]) {
            assert!((x - y).abs() < 1e-15, "{a:?}");
        }
        // Leave-one-out advantages sum to zero within a group.
        assert!(a[..3].iter().sum::<f64>().abs() < 1e-15);
    }

    #[test]
    fn grpo_normalizes_within_each_group() {
        // mean 0.5, sample std 0.5: A = ±(0.5/0.5001), 0.
        let a = grpo(&[1.0, 0.0, 0.5, 3.0, 3.0, 3.0], 3).unwrap();
        let s = 0.5 / (0.5 + 1e-4);
        for (x, y) in a.iter().zip([s, -s, 0.0, 0.0, 0.0, 0.0]) {
            assert!((x - y).abs() < 1e-12, "{a:?}");
        }
        assert!((kl_shaped(1.0, -3.0, -4.0, 0.05) - 0.95).abs() < 1e-15);
    }

    #[test]
    fn bad_groups_are_one_sentence_errors() {
        assert!(rloo(&[1.0, 2.0], 1)
            .unwrap_err()
            .to_string()
            .contains("k is 1"));
        assert!(grpo(&[1.0, 2.0, 3.0], 2)
            .unwrap_err()
            .to_string()
            .contains("do not split"));
        assert!(rloo(&[1.0, f64::NAN], 2)
            .unwrap_err()
            .to_string()
            .contains("finite"));
    }
}
