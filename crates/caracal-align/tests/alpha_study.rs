//! The AlphaPO study's pipeline at a toy size: on-policy pairs are ordered
//! by the gold reward, every method moves the policy away from the SFT
//! policy, the curves start from the same SFT log-likelihoods, and the
//! summary and claims read the runs.

use caracal_align::alpha_study::{run_alpha_study, AlphaStudyConfig};

#[test]
fn the_pipeline_runs_end_to_end_at_a_toy_size() {
    let mut cfg = AlphaStudyConfig::tour();
    cfg.study.pretrain_docs = 300;
    cfg.study.pretrain_steps = 30;
    cfg.study.hidden = 32;
    cfg.train_prompts = 48;
    cfg.k = 3;
    cfg.max_new_tokens = 8;
    cfg.eval_prompts = 12;
    cfg.eval_samples = 2;
    cfg.probe_pairs = 8;
    cfg.probe_points = 2;
    for m in &mut cfg.methods {
        m.lr = 3e-3;
    }
    let mut lines = Vec::new();
    let r = run_alpha_study(&cfg, |m| lines.push(m.to_string())).unwrap();
    let p = &r.pairs[0];
    assert_eq!(p.train + p.train_ties_dropped, 48, "{p:?}");
    assert!(
        p.train_gold_margin > 0.0,
        "chosen beats rejected on gold: {p:?}"
    );
    assert_eq!(r.runs.len(), 3);
    // Each method: progress line; plus pretraining, SFT and pairs lines.
    assert_eq!(lines.len(), 3 + 3, "{lines:?}");
    let first = r.runs[0].curve[0];
    for run in &r.runs {
        // 48 pairs / 16 = 3 steps, 2 points: step 0, the step that crosses
        // half of training (2) and the end.
        let steps: Vec<usize> = run.curve.iter().map(|c| c.step).collect();
        assert_eq!(steps, vec![0, 2, 3], "{run:?}");
        // Every method starts from the same SFT policy and the same pairs.
        assert_eq!(run.curve[0].heldout_chosen, first.heldout_chosen);
        assert_eq!(run.curve[0].train_rejected, first.train_rejected);
        assert!(run.eval.kl.abs() > 1e-4, "the policy moved: {run:?}");
        assert!((0.0..=1.0).contains(&run.eval.win_rate), "{run:?}");
        let last = run.curve[run.curve.len() - 1];
        assert!((run.chosen_change - (last.heldout_chosen - first.heldout_chosen)).abs() < 1e-12);
        // Preference training separates chosen from rejected on the training pairs.
        assert!(
            last.train_chosen - last.train_rejected > first.train_chosen - first.train_rejected,
            "{run:?}"
        );
    }
    assert_eq!(r.summary.len(), 3);
    assert_eq!(r.summary[0].win_rate.mean, r.runs[0].eval.win_rate);
    assert_eq!(r.claims.alphapo_ge_simpo_win.len(), 1);
    assert_eq!(
        r.claims.simpo_ge_dpo_win,
        Some(r.runs[1].eval.win_rate >= r.runs[0].eval.win_rate)
    );
}
