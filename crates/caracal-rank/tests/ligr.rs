//! End-to-end behaviour of the LiGR model: masks seen through scores,
//! cached serving equal to a full pass, bad input, and learning.

use caracal_rank::data::{Candidate, Event, Post};
use caracal_rank::{
    evaluate, predict, simulate, train, CandidateAttention, Dcn, DcnConfig, Ligr, LigrConfig,
    LossKind, Ranker, Scorer, SimConfig, TrainConfig, Vocabs,
};

fn small_feed() -> caracal_rank::Feed {
    simulate(&SimConfig {
        members: 40,
        items: 300,
        history_len: 20,
        sessions_per_member: 2,
        candidates: 8,
        ..SimConfig::default()
    })
    .unwrap()
}

fn model(feed: &caracal_rank::Feed, mode: CandidateAttention) -> Ligr {
    Ligr::new(
        LigrConfig {
            d_model: 16,
            n_heads: 2,
            ffn_hidden: 32,
            max_history: 16,
            mode,
            seed: 3,
            ..LigrConfig::default()
        },
        Vocabs::from_feed(feed),
    )
    .unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn cached_history_scores_equal_full_and_naive_passes() {
    let feed = small_feed();
    for mode in [CandidateAttention::SetWise, CandidateAttention::Pointwise] {
        let r = Ranker::new(model(&feed, mode));
        for s in feed.sessions.iter().take(4) {
            let h = feed.history_before(s.member, s.ts, 100);
            let fast = r.score(h, &s.candidates).unwrap();
            let full = r.score_full(h, &s.candidates).unwrap();
            let naive = r.score_naive(h, &s.candidates).unwrap();
            assert!(
                max_diff(&fast, &full) < 1e-5,
                "{mode:?}: {}",
                max_diff(&fast, &full)
            );
            assert!(
                max_diff(&fast, &naive) < 1e-5,
                "{mode:?}: {}",
                max_diff(&fast, &naive)
            );
        }
    }
}

#[test]
fn set_wise_candidates_see_each_other_pointwise_ones_do_not() {
    let feed = small_feed();
    let s = &feed.sessions[0];
    let h = feed.history_before(s.member, s.ts, 100);
    let mut other = s.candidates.clone();
    other[1] = other[5];
    for (mode, changes) in [
        (CandidateAttention::SetWise, true),
        (CandidateAttention::Pointwise, false),
    ] {
        let r = Ranker::new(model(&feed, mode));
        let a = r.score(h, &s.candidates).unwrap();
        let b = r.score(h, &other).unwrap();
        let d = (a[0][0] - b[0][0]).abs();
        assert_eq!(d > 1e-6, changes, "{mode:?}: candidate 0 moved by {d}");
    }
    // The history matters: dropping it changes the scores.
    let r = Ranker::new(model(&feed, CandidateAttention::SetWise));
    let with = r.score(h, &s.candidates).unwrap();
    let without = r.score(&[], &s.candidates).unwrap();
    assert!(max_diff(&with, &without) > 1e-6);
}

#[test]
fn bad_input_has_clear_behaviour() {
    let feed = small_feed();
    let r = Ranker::new(model(&feed, CandidateAttention::SetWise));
    let s = &feed.sessions[0];
    let h = feed.history_before(s.member, s.ts, 100);
    // Empty history: scores exist, are probabilities and match the full pass.
    let e = r.score(&[], &s.candidates).unwrap();
    assert!(e.iter().flatten().all(|p| (0.0..=1.0).contains(p)));
    assert!(max_diff(&e, &r.score_full(&[], &s.candidates).unwrap()) < 1e-5);
    // One candidate.
    let one = r.score(h, &s.candidates[..1]).unwrap();
    assert_eq!(one.len(), 1);
    assert!(max_diff(&one, &r.score_full(h, &s.candidates[..1]).unwrap()) < 1e-5);
    // No candidates: an empty answer, not an error.
    assert!(r.score(h, &[]).unwrap().is_empty());
    // Ids never seen in training go to the OOV rows: finite, and equal to any other unseen id.
    let unseen = |id: u64| Candidate {
        post: Post {
            item: id,
            actor: id,
            topic: id,
            kind: id,
        },
        age: 1.0,
    };
    let hist_unseen = [Event {
        post: unseen(1 << 40).post,
        action: 99,
        ts: 0,
    }];
    let a = r.score(&hist_unseen, &[unseen(1 << 41)]).unwrap();
    let b = r.score(&hist_unseen, &[unseen(1 << 42)]).unwrap();
    assert!(a[0].iter().all(|p| p.is_finite()));
    assert_eq!(a, b);
    // A feed without label columns cannot be trained on, with a message naming the fix.
    let mut unlabeled = feed.clone();
    unlabeled.tasks.clear();
    for s in &mut unlabeled.sessions {
        s.labels.clear();
    }
    let m = model(&feed, CandidateAttention::SetWise);
    let err = train(&m, &unlabeled, &feed, &TrainConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("label_"), "{err}");
}

#[test]
fn training_improves_validation_auc_and_writes_checkpoint_and_log() {
    let feed = simulate(&SimConfig {
        members: 150,
        items: 600,
        history_len: 16,
        sessions_per_member: 2,
        candidates: 8,
        ..SimConfig::default()
    })
    .unwrap();
    let (tr, va, te) = feed.split_by_member(0.7, 0.15, 1).unwrap();
    let m = model(&tr, CandidateAttention::SetWise);
    let before = evaluate(&te, &predict(&m, &te, 64).unwrap(), 5)
        .unwrap()
        .mean_auc();
    let dir = std::env::temp_dir().join(format!("caracal-rank-train-{}", std::process::id()));
    let cfg = TrainConfig {
        epochs: 4,
        checkpoint: Some(dir.join("best.json")),
        log: Some(dir.join("log.jsonl")),
        ..TrainConfig::default()
    };
    let rep = train(&m, &tr, &va, &cfg).unwrap();
    let after = evaluate(&te, &predict(&m, &te, 64).unwrap(), 5).unwrap();
    assert!(
        after.mean_auc() > before + 0.03,
        "AUC {before} -> {}",
        after.mean_auc()
    );
    assert!(rep.epochs.len() >= 2);
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), rep.epochs.len());
    // The checkpoint reloads into the best model (which train() restored).
    let ck: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("best.json")).unwrap()).unwrap();
    let back = Ligr::from_checkpoint(&ck).unwrap();
    let p1 = predict(&m, &te, 64).unwrap();
    let p2 = predict(&back, &te, 64).unwrap();
    assert!(max_diff(&p1[0], &p2[0]) < 1e-6);
    std::fs::remove_dir_all(&dir).unwrap();
    // DCNv2 trains on the same data.
    let d = Dcn::new(
        DcnConfig {
            max_history: 16,
            ..DcnConfig::default()
        },
        Vocabs::from_feed(&tr),
    )
    .unwrap();
    let cfg = TrainConfig {
        epochs: 2,
        loss: LossKind::Pointwise,
        ..TrainConfig::default()
    };
    train(&d, &tr, &va, &cfg).unwrap();
    let rd = evaluate(&te, &predict(&d, &te, 64).unwrap(), 5).unwrap();
    assert!(rd.mean_auc() > 0.5, "DCNv2 AUC {}", rd.mean_auc());
    assert_eq!(d.name(), "DCNv2");
    // Its checkpoint reloads to the same predictions; a LiGR checkpoint is
    // not a DCNv2 one.
    let back = Dcn::from_checkpoint(&d.checkpoint().unwrap()).unwrap();
    let (p1, p2) = (
        predict(&d, &te, 64).unwrap(),
        predict(&back, &te, 64).unwrap(),
    );
    assert!(max_diff(&p1[0], &p2[0]) < 1e-6);
    let err = Dcn::from_checkpoint(&ck)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("not a DCNv2 checkpoint"), "{err}");
}

#[test]
fn a_stopped_run_resumes_exactly() {
    let feed = simulate(&SimConfig {
        members: 60,
        items: 200,
        history_len: 8,
        sessions_per_member: 2,
        candidates: 5,
        ..SimConfig::default()
    })
    .unwrap();
    let (tr, va, te) = feed.split_by_member(0.7, 0.15, 1).unwrap();
    let dir = std::env::temp_dir().join(format!("caracal-rank-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = |name: &str, epochs: usize, resume: bool| TrainConfig {
        epochs,
        patience: 10,
        item_dropout: 0.1,
        log: Some(dir.join(format!("{name}.jsonl"))),
        state: Some(dir.join(format!("{name}.state.json"))),
        resume,
        ..TrainConfig::default()
    };
    // Uninterrupted: 5 epochs.
    let full = model(&tr, CandidateAttention::SetWise);
    let want = train(&full, &tr, &va, &cfg("full", 5, false)).unwrap();
    // Stopped after 2 epochs (the state of a run killed during epoch 3),
    // then resumed by a fresh process-like model for the remaining epochs.
    let part = model(&tr, CandidateAttention::SetWise);
    train(&part, &tr, &va, &cfg("part", 2, false)).unwrap();
    let resumed = model(&tr, CandidateAttention::SetWise);
    let got = train(&resumed, &tr, &va, &cfg("part", 5, true)).unwrap();
    assert_eq!(got.epochs.len(), 5);
    for (a, b) in got.epochs.iter().zip(&want.epochs) {
        assert_eq!(a.train_loss, b.train_loss, "epoch {}", a.epoch);
        assert_eq!(a.valid_auc, b.valid_auc, "epoch {}", a.epoch);
    }
    assert_eq!(got.best_epoch, want.best_epoch);
    let (p1, p2) = (
        predict(&full, &te, 64).unwrap(),
        predict(&resumed, &te, 64).unwrap(),
    );
    assert_eq!(max_diff(&p1[0], &p2[0]), 0.0);
    // The log has each epoch once.
    let log = std::fs::read_to_string(dir.join("part.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 5);
    // Resuming without a state is a clear error.
    let e = train(
        &model(&tr, CandidateAttention::SetWise),
        &tr,
        &va,
        &cfg("none", 2, true),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no training state"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
