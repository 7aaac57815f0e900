//! KTO training on the `dpo_tiny` fixture (tiny random Llama policy and
//! reference with SmolLM2's tokenizer, `kto.jsonl`): the first step's loss
//! is the evaluation's loss on the same batch and KL pairs; training raises
//! the reward margin of desirable over undesirable examples; a run stopped
//! and resumed ends exactly where an uninterrupted run ends; the reference
//! log-probs are cached and recomputed when the examples change; bad input
//! is one sentence.

use candle_core::{DType, Device};
use caracal_align::direct::KtoOptions;
use caracal_align::direct_train::{cached_reference_logps, reference_cache_path};
use caracal_align::kto::{evaluate_kto, kl_sequences, read_examples, tokenize, KtoSeq};
use caracal_align::kto_train::{
    kl_dataset, kto_reference_key, kto_reference_logps, KtoReference, KtoTrainOptions, KtoTrainer,
};
use caracal_align::logps::Completion;
use caracal_align::PairTraining;
use caracal_models::{hf, Llama, Tokenizer};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dpo_tiny")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("caracal-kto-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tok() -> Tokenizer {
    Tokenizer::from_file(fixture().join("policy/tokenizer.json")).unwrap()
}

fn model(name: &str) -> Llama {
    hf::load_dir(fixture().join(name), DType::F32, &Device::Cpu).unwrap()
}

fn examples(path: &Path) -> Vec<KtoSeq> {
    let ex = read_examples(path).unwrap();
    let (seqs, dropped) = tokenize(&ex, &tok(), Some("<|im_end|>"), 1024).unwrap();
    assert_eq!(dropped, 0);
    seqs
}

fn options(batch_size: usize, grad_accum: usize, epochs: usize, lr: f64) -> KtoTrainOptions {
    KtoTrainOptions {
        kto: KtoOptions::default(),
        max_length: 1024,
        pad_id: 0,
        train: PairTraining {
            epochs,
            batch_size,
            grad_accum,
            lr,
            warmup_ratio: 0.1,
            ckpt_every: 3,
            seed: 7,
            ..PairTraining::default()
        },
    }
}

/// A fresh trainer on the fixture's examples, with their KL sequences.
fn trainer(opts: KtoTrainOptions) -> (KtoTrainer, Vec<KtoSeq>, Vec<Completion>) {
    let seqs = examples(&fixture().join("kto.jsonl"));
    let kl = kl_dataset(&seqs, opts.train.batch_size);
    let b = opts.train.batch_size;
    let r = kto_reference_logps(&model("ref"), &seqs, &kl, b, 0, "k".into()).unwrap();
    let n = seqs.len();
    let tr = KtoTrainer::new(model("policy"), tok(), opts, n, r).unwrap();
    (tr, seqs, kl)
}

#[test]
fn kl_pairs_are_fixed_in_groups_of_the_batch_size() {
    let seqs = examples(&fixture().join("kto.jsonl"));
    let kl = kl_dataset(&seqs, 3);
    let want: Vec<Completion> = seqs.chunks(3).flat_map(kl_sequences).collect();
    assert_eq!(kl, want);
    // Example 3 opens a group: its KL completion is that of example 5, the
    // last of its group of three.
    let (p, c) = (&seqs[3].seq, &seqs[5].seq);
    assert_eq!(kl[3].ids[..p.start], p.ids[..p.start]);
    assert_eq!(kl[3].ids[p.start..], c.ids[c.start..]);
    assert_eq!(kl_dataset(&seqs, 8), kl_sequences(&seqs));
}

/// With one micro-batch holding every example, the first step's loss, KL
/// and rewards are the evaluation's on the same KL pairs, whatever the
/// shuffled order.
#[test]
fn first_step_loss_equals_the_evaluation() {
    let (mut tr, seqs, kl) = trainer(options(8, 1, 1, 1e-3));
    let m = evaluate_kto(
        &model("policy"),
        &model("ref"),
        &seqs,
        &KtoOptions::default(),
        8,
        0,
    )
    .unwrap();
    let s = tr.train_step(&seqs, &kl).unwrap();
    assert!(m.kl > 0.1, "the fixture's KL is positive: {}", m.kl);
    assert!((s.loss - m.loss).abs() < 1e-6, "{} vs {}", s.loss, m.loss);
    assert!((s.kl - m.kl).abs() < 1e-6, "{} vs {}", s.kl, m.kl);
    assert!((s.rewards_chosen.unwrap() - m.rewards_chosen).abs() < 1e-6);
    assert!((s.rewards_rejected.unwrap() - m.rewards_rejected).abs() < 1e-6);
    assert!(s.grad_norm > 0.0 && s.step == 1);
}

#[test]
fn training_raises_the_reward_margin() {
    let (mut tr, seqs, kl) = trainer(options(4, 1, 15, 2e-3));
    let o = KtoOptions::default();
    let reference = model("ref");
    let before = evaluate_kto(&tr.policy, &reference, &seqs, &o, 4, 0).unwrap();
    assert_eq!(tr.total_steps(), 30);
    for _ in 0..30 {
        tr.train_step(&seqs, &kl).unwrap();
    }
    let after = evaluate_kto(&tr.policy, &reference, &seqs, &o, 4, 0).unwrap();
    eprintln!(
        "margin {:.4} → {:.4}, loss {:.4} → {:.4}",
        before.rewards_margins, after.rewards_margins, before.loss, after.loss
    );
    assert!(
        after.rewards_margins > before.rewards_margins + 0.5,
        "margin {} → {}",
        before.rewards_margins,
        after.rewards_margins
    );
    assert!(after.loss < before.loss - 0.05);
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_ends() {
    let t = tmp("resume");
    let (a, b) = (t.join("a"), t.join("b"));
    let opts = options(2, 2, 4, 1e-3);
    let (mut tr, seqs, kl) = trainer(opts.clone());
    assert_eq!(tr.total_steps(), 8);
    tr.run(&seqs, &kl, &a, None, |_| {}).unwrap();
    let (mut tr, _, _) = trainer(opts.clone());
    tr.run(&seqs, &kl, &b, Some(5), |_| {}).unwrap();
    assert!(!b.join("model.safetensors").exists());
    // Killed after step 5; the last checkpoint is step 3.
    let reference = kto_reference_logps(&model("ref"), &seqs, &kl, 2, 0, "k".into()).unwrap();
    let mut tr = KtoTrainer::resume(&b.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    assert_eq!((tr.step, &tr.opts), (3, &opts));
    let e = tr.train_step(&seqs, &kl).unwrap_err().to_string();
    assert!(e.contains("not attached"), "{e}");
    tr.set_reference(reference).unwrap();
    tr.run(&seqs, &kl, &b, None, |_| {}).unwrap();
    let lines = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v.to_string()
            })
            .collect()
    };
    assert_eq!(lines(&a).len(), 8);
    assert_eq!(lines(&a), lines(&b));
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    std::fs::remove_dir_all(&t).ok();
}

#[test]
fn the_reference_cache_is_reused_and_recomputed_when_the_examples_change() {
    let t = tmp("cache");
    let data = t.join("kto.jsonl");
    std::fs::copy(fixture().join("kto.jsonl"), &data).unwrap();
    let ref_dir = fixture().join("ref");
    let reference = model("ref");
    let lookup = |compute: &mut dyn FnMut() -> bool| -> (KtoReference, bool, PathBuf) {
        let seqs = examples(&data);
        let kl = kl_dataset(&seqs, 4);
        let key = kto_reference_key(&ref_dir, &seqs, &kl).unwrap();
        let cache = reference_cache_path(&data, &key);
        let (r, hit) = cached_reference_logps(&cache, &key, || {
            assert!(compute(), "the cache should have served this");
            kto_reference_logps(&reference, &seqs, &kl, 4, 0, key.clone())
        })
        .unwrap();
        (r, hit, cache)
    };
    let (r1, hit, cache) = lookup(&mut || true);
    assert!(!hit && cache.exists() && r1.logps.len() == 8 && r1.kl_logps.len() == 8);
    assert!(cache
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("kto.ref-logps-"));
    let (r2, hit, cache2) = lookup(&mut || false);
    assert!(hit && r2 == r1 && cache2 == cache);
    // Another completion: another key, computed again.
    let text = std::fs::read_to_string(&data)
        .unwrap()
        .replace("Eight.", "Six.");
    std::fs::write(&data, text).unwrap();
    let (r3, hit, cache3) = lookup(&mut || true);
    assert!(!hit && cache3 != cache && r3.key != r1.key);
    assert_ne!(r3.logps[2], r1.logps[2]);
    assert_eq!(r3.logps[0], r1.logps[0]);
    std::fs::remove_dir_all(&t).ok();
}

#[test]
fn bad_input_is_one_sentence() {
    let seqs = examples(&fixture().join("kto.jsonl"));
    let kl = kl_dataset(&seqs, 4);
    let r = kto_reference_logps(&model("ref"), &seqs, &kl, 4, 0, "k".into()).unwrap();
    let err = |res: caracal_core::Result<KtoTrainer>| match res {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    let new = |opts: KtoTrainOptions, n: usize, r: KtoReference| {
        err(KtoTrainer::new(model("policy"), tok(), opts, n, r))
    };
    let e = new(options(4, 1, 1, 1e-3), 0, r.clone());
    assert!(e.contains("no training examples"), "{e}");
    let e = new(options(4, 1, 1, 1e-3), 7, r.clone());
    assert!(e.contains("cover 8 examples"), "{e}");
    let mut o = options(4, 1, 1, 1e-3);
    o.kto.beta = 0.0;
    let e = new(o, 8, r.clone());
    assert!(e.contains("β is 0"), "{e}");
    let e = new(options(4, 1, 1, 0.0), 8, r.clone());
    assert!(e.contains("--lr is 0"), "{e}");
    // Examples that are not those the run was started with.
    let mut tr = KtoTrainer::new(model("policy"), tok(), options(4, 1, 1, 1e-3), 8, r).unwrap();
    let e = tr.train_step(&seqs[..7], &kl[..7]).unwrap_err().to_string();
    assert!(e.contains("started on 8 training examples"), "{e}");
    // A learning rate that blows the policy up is a numeric error, not NaN weights.
    let mut o = options(8, 1, 3, 1e30);
    o.train.warmup_ratio = 0.0;
    o.train.clip = None;
    let r8 = kto_reference_logps(
        &model("ref"),
        &seqs,
        &kl_dataset(&seqs, 8),
        8,
        0,
        "k".into(),
    )
    .unwrap();
    let kl8 = kl_dataset(&seqs, 8);
    let mut tr = KtoTrainer::new(model("policy"), tok(), o, 8, r8).unwrap();
    let mut last = Ok(());
    for _ in 0..3 {
        last = tr.train_step(&seqs, &kl8).map(|_| ());
        if last.is_err() {
            break;
        }
    }
    let e = last.unwrap_err().to_string();
    assert!(e.contains("lower the learning rate"), "{e}");
}
