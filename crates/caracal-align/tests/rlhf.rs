//! The RLHF experiment's pipeline at a toy size: it pretrains, trains a
//! reward model, runs RLOO and scores the SFT and RLOO policies; the SFT
//! policy scores the same in every run (same sampling seeds), and the RLOO
//! policy has moved away from it (KL > 0).

use caracal_align::loss::RewardObjective;
use caracal_align::rlhf::{run_rlhf, RlhfConfig};

#[test]
fn the_pipeline_runs_end_to_end_at_a_toy_size() {
    let mut cfg = RlhfConfig::full();
    cfg.study.pretrain_docs = 200;
    cfg.study.pretrain_steps = 5;
    cfg.study.hidden = 32;
    cfg.study.train_pairs = 32;
    cfg.study.rm.train.batch_size = 8;
    cfg.objectives = vec![
        RewardObjective::default(),
        RewardObjective {
            bsr: Some(1e-3),
            ..Default::default()
        },
    ];
    cfg.seeds = vec![1];
    cfg.rl.steps = 2;
    cfg.rl.lr = 1e-2;
    cfg.rl.max_new_tokens = 6;
    cfg.train_prompts = 8;
    cfg.eval_prompts = 3;
    cfg.eval_samples = 2;
    let mut lines = Vec::new();
    let r = run_rlhf(&cfg, |m| lines.push(m.to_string())).unwrap();
    assert_eq!(r.runs.len(), 2);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let (a, b) = (&r.runs[0], &r.runs[1]);
    assert_eq!(
        a.before.gold, b.before.gold,
        "the SFT policy is scored on the same samples"
    );
    assert!(
        a.before.kl.abs() < 1e-4,
        "the SFT policy against itself: {}",
        a.before.kl
    );
    for run in &r.runs {
        for v in [
            run.after.gold,
            run.after.proxy,
            run.after.kl,
            run.after.length,
        ] {
            assert!(v.is_finite(), "{run:?}");
        }
        assert!(run.after.kl.abs() > 1e-4, "RLOO moved the policy: {run:?}");
    }
}
