//! Distillation: the objective against a reference composed of plain candle
//! ops (value and student gradients, every divergence, temperature and
//! weight), the trainer (the student approaches the teacher; exact resume),
//! and one-sentence errors.

use candle_core::{DType, Device, Tensor, D};
use caracal_compress::distill::{
    distill_loss, DistillObjective, DistillOptions, DistillTrainer, Divergence,
};
use caracal_models::train::{TokenData, TrainOptions};
use caracal_models::{Llama, LlamaConfig, Tokenizer};
use std::path::PathBuf;

const V: usize = 256;

fn teacher() -> Llama {
    Llama::random(&LlamaConfig::tiny(V, 32, 2), 1, DType::F32, &Device::Cpu).unwrap()
}

fn student(seed: u64) -> Llama {
    Llama::random(&LlamaConfig::tiny(V, 16, 1), seed, DType::F32, &Device::Cpu).unwrap()
}

fn log_softmax(z: &Tensor) -> Tensor {
    let m = z.max_keepdim(D::Minus1).unwrap().detach();
    let s = z.broadcast_sub(&m).unwrap();
    let lse = s
        .exp()
        .unwrap()
        .sum_keepdim(D::Minus1)
        .unwrap()
        .log()
        .unwrap();
    s.broadcast_sub(&lse).unwrap()
}

/// `Σ_rows Σ_v p·(a − b)` over the kept rows, `p` a probability tensor.
fn kl_rows(p: &Tensor, a: &Tensor, b: &Tensor, keep: &Tensor) -> Tensor {
    (p * (a - b).unwrap())
        .unwrap()
        .sum(1)
        .unwrap()
        .mul(keep)
        .unwrap()
        .sum_all()
        .unwrap()
}

/// The objective from full logits with plain candle ops.
fn reference(s: &Llama, t: &Llama, ids: &Tensor, tgt: &Tensor, obj: &DistillObjective) -> Tensor {
    let (b, n) = ids.dims2().unwrap();
    let zs = s.logits(ids).unwrap().reshape((b * n, V)).unwrap();
    let zt = t.logits(ids).unwrap().reshape((b * n, V)).unwrap().detach();
    let y: Vec<i64> = tgt.flatten_all().unwrap().to_vec1().unwrap();
    let keep_v: Vec<f32> = y.iter().map(|&v| (v != -100) as u8 as f32).collect();
    let kept = keep_v.iter().sum::<f32>() as f64;
    let keep = Tensor::new(keep_v, &Device::Cpu).unwrap();
    let tau = obj.temperature;
    let x = log_softmax(&(&zs / tau).unwrap()); // student, log Q
    let yy = log_softmax(&(&zt / tau).unwrap()); // teacher, log P
    let (q, p) = (x.exp().unwrap(), yy.exp().unwrap());
    let d = match obj.divergence {
        Divergence::Fkl => kl_rows(&p, &yy, &x, &keep),
        Divergence::Rkl => kl_rows(&q, &x, &yy, &keep),
        Divergence::Jsd { beta } => {
            let m = ((&p * beta).unwrap() + (&q * (1.0 - beta)).unwrap()).unwrap();
            let lm = m.log().unwrap();
            ((kl_rows(&p, &yy, &lm, &keep) * beta).unwrap()
                + (kl_rows(&q, &x, &lm, &keep) * (1.0 - beta)).unwrap())
            .unwrap()
        }
    };
    let kd = ((d / kept).unwrap() * (tau * tau)).unwrap();
    // Cross-entropy at τ = 1, mean over kept rows.
    let lz = log_softmax(&zs);
    let safe: Vec<u32> = y.iter().map(|&v| v.max(0) as u32).collect();
    let picked = lz
        .gather(
            &Tensor::new(safe, &Device::Cpu)
                .unwrap()
                .unsqueeze(1)
                .unwrap(),
            1,
        )
        .unwrap()
        .squeeze(1)
        .unwrap();
    let ce = (picked.mul(&keep).unwrap().sum_all().unwrap().neg().unwrap() / kept).unwrap();
    let r = obj.kd_weight;
    ((kd * r).unwrap() + (ce * (1.0 - r)).unwrap()).unwrap()
}

fn batch() -> (Tensor, Tensor) {
    let mut rng = caracal_core::Rng::new(7);
    let ids: Vec<u32> = (0..2 * 12).map(|_| rng.below(V) as u32).collect();
    let mut tgt: Vec<i64> = (0..2 * 12).map(|_| rng.below(V) as i64).collect();
    tgt[3] = -100;
    tgt[17] = -100;
    (
        Tensor::from_vec(ids, (2, 12), &Device::Cpu).unwrap(),
        Tensor::from_vec(tgt, (2, 12), &Device::Cpu).unwrap(),
    )
}

#[test]
fn the_objective_equals_plain_candle_ops_in_value_and_gradient() {
    let (t, s) = (teacher(), student(2));
    let (ids, tgt) = batch();
    for divergence in [
        Divergence::Fkl,
        Divergence::Rkl,
        Divergence::Jsd { beta: 0.5 },
        Divergence::Jsd { beta: 0.2 },
    ] {
        for (temperature, kd_weight) in [(1.0, 0.5), (2.0, 1.0), (0.7, 0.0), (1.5, 0.3)] {
            let obj = DistillObjective {
                divergence,
                temperature,
                kd_weight,
            };
            let got = distill_loss(&s, &t, &ids, &tgt, -100, &obj).unwrap();
            let want = reference(&s, &t, &ids, &tgt, &obj);
            let (g, w) = (
                got.loss
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap(),
                want.to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap(),
            );
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{obj:?}: loss {g} vs reference {w}"
            );
            let (gg, gw) = (got.loss.backward().unwrap(), want.backward().unwrap());
            for (name, v) in s.named_vars() {
                let a = gg.get(v.as_tensor()).expect("student gradient");
                let b = gw.get(v.as_tensor()).expect("reference gradient");
                let diff = (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                let scale = b
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    diff <= 1e-4 * scale.max(1e-3),
                    "{obj:?} {name}: gradient differs by {diff} (scale {scale})"
                );
            }
            // The teacher gets no gradient.
            for (name, v) in t.named_vars() {
                assert!(
                    gg.get(v.as_tensor()).is_none(),
                    "teacher {name} got a gradient"
                );
            }
        }
    }
}

fn opts(steps: usize) -> DistillOptions {
    DistillOptions {
        objective: DistillObjective {
            divergence: Divergence::Fkl,
            temperature: 1.0,
            kd_weight: 1.0,
        },
        train: TrainOptions {
            steps,
            batch_size: 4,
            seq_len: 16,
            lr: 1e-2,
            min_lr: 1e-3,
            warmup: 2,
            seed: 3,
            eval_every: 0,
            eval_batches: 4,
            ckpt_every: 5,
            ..TrainOptions::default()
        },
    }
}

fn text_data() -> TokenData {
    let text = "the quick brown fox jumps over the lazy dog; ".repeat(60);
    TokenData::from_text(&text, &Tokenizer::Bytes, 0.1).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("caracal-distill-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn the_student_approaches_the_teacher_and_resumes_exactly() {
    let data = text_data();
    let mut tr = DistillTrainer::new(student(2), teacher(), Tokenizer::Bytes, opts(20)).unwrap();
    let before = tr.evaluate(&data.val).unwrap();
    let straight = tmp("straight");
    let after = tr.run(&data, &straight, None, |_, _| {}).unwrap().unwrap();
    assert!(
        after.kl_to_teacher < 0.8 * before.kl_to_teacher,
        "KL to the teacher {} → {}",
        before.kl_to_teacher,
        after.kl_to_teacher
    );
    // Killed after 7 steps (checkpoint at 5), resumed, finished.
    let killed = tmp("killed");
    let mut a = DistillTrainer::new(student(2), teacher(), Tokenizer::Bytes, opts(20)).unwrap();
    a.run(&data, &killed, Some(7), |_, _| {}).unwrap();
    let mut b = DistillTrainer::resume(
        &killed.join("checkpoint.safetensors"),
        teacher(),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(b.step, 5);
    b.run(&data, &killed, None, |_, _| {}).unwrap();
    let w = |d: &PathBuf| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(w(&straight), w(&killed), "resumed weights differ");
    let lines = |d: &PathBuf| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v
            })
            .collect()
    };
    assert_eq!(lines(&straight), lines(&killed));
    assert_eq!(lines(&straight).len(), 20);
}

#[test]
fn bad_input_is_one_sentence() {
    let err = |r: caracal_core::Result<DistillTrainer>| r.err().expect("an error").to_string();
    let other_vocab =
        Llama::random(&LlamaConfig::tiny(128, 16, 1), 0, DType::F32, &Device::Cpu).unwrap();
    let e = err(DistillTrainer::new(
        other_vocab,
        teacher(),
        Tokenizer::Bytes,
        opts(3),
    ));
    assert!(
        e.contains("vocabulary of 256 tokens and the student 128"),
        "{e}"
    );
    let mut o = opts(3);
    o.objective.temperature = 0.0;
    let e = err(DistillTrainer::new(
        student(2),
        teacher(),
        Tokenizer::Bytes,
        o,
    ));
    assert!(e.contains("--temperature is 0"), "{e}");
    let mut o = opts(3);
    o.objective.kd_weight = 1.5;
    let e = err(DistillTrainer::new(
        student(2),
        teacher(),
        Tokenizer::Bytes,
        o,
    ));
    assert!(e.contains("--kd-weight is 1.5"), "{e}");
    let e = Divergence::from_name("jsd", 1.0).unwrap_err().to_string();
    assert!(e.contains("0 < β < 1"), "{e}");
    let e = Divergence::from_name("tvd", 0.5).unwrap_err().to_string();
    assert!(e.contains("no fused-linear kernel yet"), "{e}");
    assert_eq!(Divergence::from_name("fkl", 0.3).unwrap(), Divergence::Fkl);
    // Held-out text shorter than one window.
    let tr = DistillTrainer::new(student(2), teacher(), Tokenizer::Bytes, opts(3)).unwrap();
    let e = tr.evaluate(&[1]).unwrap_err().to_string();
    assert!(e.contains("shorter than one window"), "{e}");
}

/// With r = 0 the distillation trainer is the LM trainer: same batches,
/// same loss, same optimizer, so the same weights bit for bit.
#[test]
fn plain_ce_in_the_distillation_trainer_is_the_lm_trainer() {
    let data = text_data();
    let mut o = opts(6);
    o.objective.kd_weight = 0.0;
    let mut d = DistillTrainer::new(student(4), teacher(), Tokenizer::Bytes, o.clone()).unwrap();
    for _ in 0..6 {
        d.train_step(&data).unwrap();
    }
    let mut t = caracal_models::train::Trainer::new(student(4), o.train, "bytes").unwrap();
    for _ in 0..6 {
        t.train_step(&data).unwrap();
    }
    for ((n, a), (_, b)) in d
        .student
        .named_vars()
        .iter()
        .zip(t.model.named_vars().iter())
    {
        let diff = (a.as_tensor() - b.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{n}");
    }
}

/// The study at toy size: every condition runs on every seed, the summary
/// reads the runs, and the claim compares with plain CE.
#[test]
fn the_study_runs_at_a_toy_size() {
    use caracal_compress::distill::study::{run_distill_study, DistillStudyConfig};
    let mut cfg = DistillStudyConfig::tour();
    cfg.teacher_train.steps = 10;
    cfg.student_train.steps = 6;
    cfg.seeds = vec![1, 2];
    cfg.eval_batches = 2;
    let train = caracal_models::train::grammar_corpus(0, 30_000);
    let heldout = caracal_models::train::grammar_corpus(1, 8_000);
    let mut lines = Vec::new();
    let cache = tmp("teacher-cache");
    let r = run_distill_study(&cfg, &train, &heldout, Some(&cache), |m| {
        lines.push(m.to_string())
    })
    .unwrap();
    assert_eq!(r.runs.len(), 6);
    assert_eq!(lines.len(), 2 + 6, "{lines:?}");
    assert_eq!(r.summary.len(), 3);
    let ce: Vec<f64> = r
        .runs
        .iter()
        .filter(|x| x.condition == "CE only")
        .map(|x| x.heldout.ppl)
        .collect();
    assert!((r.summary[0].ppl_mean - (ce[0] + ce[1]) / 2.0).abs() < 1e-12);
    assert_eq!(r.claims.len(), 2);
    assert_eq!(r.claims[0].1, r.summary[1].ppl_mean < r.summary[0].ppl_mean);
    assert!(r.teacher_heldout_ppl.is_finite() && r.teacher_params > r.student_params);
    // A second run reads the cached teacher and gives the same numbers.
    let mut again = Vec::new();
    let r2 = run_distill_study(&cfg, &train, &heldout, Some(&cache), |m| {
        again.push(m.to_string())
    })
    .unwrap();
    assert!(again[0].starts_with("teacher read from"), "{again:?}");
    assert_eq!(r2.teacher_heldout_ppl, r.teacher_heldout_ppl);
    assert_eq!(r2.runs[1].heldout.ppl, r.runs[1].heldout.ppl);
    // The pilot's conditions differ only in their learning rate, and it
    // takes effect.
    let mut pilot = DistillStudyConfig::pilot();
    pilot.teacher_train = cfg.teacher_train.clone();
    pilot.teacher = cfg.teacher;
    pilot.student = cfg.student;
    pilot.student_train = cfg.student_train.clone();
    pilot.eval_batches = 2;
    let p = run_distill_study(&pilot, &train, &heldout, Some(&cache), |_| {}).unwrap();
    assert_eq!(p.runs.len(), 3);
    assert!(
        p.runs[0].heldout.ppl != p.runs[2].heldout.ppl,
        "{:?}",
        p.runs
    );
    // Too little text is one sentence.
    let e = run_distill_study(&cfg, "short", &heldout, None, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than one window"), "{e}");
}
