//! RLOO and GRPO on a tiny world model: a reward that counts the cooking
//! words of a completion rises under training, the KL to the reference
//! grows from 0, and a run stopped midway and resumed ends exactly where an
//! uninterrupted run ends.

use candle_core::{DType, Device};
use caracal_align::rl::{Algo, RewardFn, RlOptions, RlTrainer};
use caracal_align::study::{deep_copy, world_model_config};
use caracal_align::world::{World, WorldConfig};
use caracal_core::Result;
use caracal_models::Llama;

/// +1 per word of the first topic (cooking) in the completion.
struct Cooking(Vec<String>);

impl RewardFn for Cooking {
    fn reward(&mut self, _prompt: &str, completion: &str, _ids: &[u32]) -> Result<f64> {
        Ok(completion
            .split_whitespace()
            .filter(|w| self.0.iter().any(|c| c == w))
            .count() as f64)
    }
}

fn setup(algo: Algo, steps: usize) -> (RlTrainer, Cooking, Vec<String>) {
    let world = World::new(&WorldConfig::default()).unwrap();
    let (tok, cfg) = world_model_config(&world, 32, 2).unwrap();
    let policy = Llama::random(&cfg, 3, DType::F32, &Device::Cpu).unwrap();
    let reference = deep_copy(&policy).unwrap();
    let opts = RlOptions {
        algo,
        k: 4,
        prompts_per_step: 4,
        steps,
        lr: 1e-2,
        max_new_tokens: 8,
        beta: 0.01,
        ckpt_every: 3,
        ..RlOptions::default()
    };
    let prompts: Vec<String> = world
        .pairs(caracal_align::world::Split::Train, 16, 0)
        .into_iter()
        .map(|p| p.prompt)
        .collect();
    (
        RlTrainer::new(policy, reference, tok, opts).unwrap(),
        Cooking(world.topic_words(0)),
        prompts,
    )
}

#[test]
fn rloo_and_grpo_raise_the_reward() {
    for algo in [Algo::Rloo, Algo::Grpo] {
        let (mut tr, mut reward, prompts) = setup(algo, 40);
        let stats: Vec<_> = (0..40)
            .map(|_| tr.train_step(&prompts, &mut reward).unwrap())
            .collect();
        let mean = |s: &[caracal_align::rl::RlStepStats]| {
            s.iter().map(|x| x.reward).sum::<f64>() / s.len() as f64
        };
        let (first, last) = (mean(&stats[..10]), mean(&stats[30..]));
        eprintln!(
            "{algo:?}: mean reward, steps 1–10 {first:.3} → steps 31–40 {last:.3}; KL {:.3}",
            stats[39].kl
        );
        assert!(
            last > first + 0.5,
            "{algo:?}: reward {first:.3} → {last:.3}"
        );
        assert!(
            stats[0].kl.abs() < 1e-4,
            "the first samples come from the reference itself"
        );
        assert!(stats.iter().all(|s| s.loss.is_finite() && s.length > 0.0));
    }
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_ends() {
    let tmp = std::env::temp_dir().join(format!("caracal-rl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let (mut tr, mut reward, prompts) = setup(Algo::Rloo, 6);
    tr.run(&prompts, &mut reward, &a, None, |_| {}).unwrap();
    let (mut tr, mut reward, _) = setup(Algo::Rloo, 6);
    tr.run(&prompts, &mut reward, &b, Some(4), |_| {}).unwrap();
    // Killed after step 4; the last checkpoint is step 3.
    let reference = deep_copy(&tr.reference).unwrap();
    let mut tr =
        RlTrainer::resume(&b.join("checkpoint.safetensors"), reference, &Device::Cpu).unwrap();
    assert_eq!(tr.step, 3);
    tr.run(&prompts, &mut reward, &b, None, |_| {}).unwrap();
    let read = |d: &std::path::Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let strip = |t: String| -> Vec<String> {
        t.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v.to_string()
            })
            .collect()
    };
    assert_eq!(strip(read(&a)), strip(read(&b)));
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn bad_options_are_one_sentence_errors() {
    for (o, want) in [
        (
            RlOptions {
                k: 1,
                ..RlOptions::default()
            },
            "--k is 1",
        ),
        (
            RlOptions {
                lr: 0.0,
                ..RlOptions::default()
            },
            "--lr is 0",
        ),
        (
            RlOptions {
                top_p: 1.5,
                ..RlOptions::default()
            },
            "--top-p 1.5",
        ),
    ] {
        assert!(o.validate().unwrap_err().to_string().contains(want));
    }
    assert!("ppo"
        .parse::<Algo>()
        .unwrap_err()
        .to_string()
        .contains("rloo or grpo"));
}
