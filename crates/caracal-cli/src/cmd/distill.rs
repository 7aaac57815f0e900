//! `caracal distill`: knowledge distillation of a student language model
//! from a teacher (caracal-compress). Parses, calls, prints.

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use caracal_compress::distill::{
    evaluate_student, DistillObjective, DistillOptions, DistillTrainer, Divergence,
};
use caracal_models::train::{TokenData, TrainOptions};
use caracal_models::{load_model, GgufWeights, Llama, LlamaConfig};
use std::path::PathBuf;

/// Options of `caracal distill`.
#[derive(clap::Args, Debug)]
pub struct DistillArgs {
    /// The teacher: a .gguf file (dequantized), a Hugging Face folder or a caracal checkpoint.
    #[arg(long)]
    pub teacher: PathBuf,
    /// The student: a Hugging Face folder (e.g. a pruned model) or a caracal checkpoint.
    #[arg(long, conflicts_with = "student_config")]
    pub student: Option<PathBuf>,
    /// A config.json for a randomly initialized student (same vocabulary as the teacher).
    #[arg(long)]
    pub student_config: Option<PathBuf>,
    /// Seed of the student's random initialization (with --student-config).
    #[arg(long, default_value_t = 0)]
    pub student_seed: u64,
    /// Training text (the last 5% is held out for evaluation).
    #[arg(long)]
    pub data: PathBuf,
    /// fkl (forward KL, teacher‖student), rkl (reverse KL) or jsd (generalized JSD with --beta).
    #[arg(long, default_value = "jsd")]
    pub loss: String,
    /// JSD's β, strictly between 0 and 1.
    #[arg(long, default_value_t = 0.5)]
    pub beta: f64,
    /// Softmax temperature τ of both distributions (the divergence is multiplied by τ²).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// r in L = r·KD + (1 − r)·CE (1: distillation only; 0: cross-entropy only).
    #[arg(long, default_value_t = 0.5)]
    pub kd_weight: f64,
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate (cosine decay to --min-lr after --warmup steps).
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-5)]
    pub min_lr: f64,
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate on the held-out text every N steps (0: at the end only).
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Held-out batches per evaluation.
    #[arg(long, default_value_t = 8)]
    pub eval_batches: usize,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 50)]
    pub ckpt_every: usize,
    /// Output folder: checkpoint.safetensors, metrics.jsonl and, at the end, the student as a Hugging Face folder.
    #[arg(long, default_value = "runs/distill")]
    pub out: PathBuf,
    /// Continue from `<out>/checkpoint.safetensors` (options from the checkpoint; give the same --teacher and --data).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many steps in total, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    /// Print the final evaluation as JSON.
    #[arg(long)]
    pub json: bool,
}

fn open(path: &std::path::Path, who: &str) -> Result<(Llama, caracal_models::Tokenizer)> {
    load_model(path, GgufWeights::Dequantized, &Device::Cpu)
        .with_context(|| format!("cannot open the {who} {}", path.display()))
}

pub fn run(a: DistillArgs) -> Result<()> {
    let dev = Device::Cpu;
    let (teacher, ttok) = open(&a.teacher, "teacher")?;
    let ck = a.out.join("checkpoint.safetensors");
    let mut tr = if a.resume {
        let tr = DistillTrainer::resume(&ck, teacher, &dev)
            .with_context(|| format!("cannot resume from {}", ck.display()))?;
        eprintln!("resuming at step {} of {}", tr.step, tr.opts.train.steps);
        tr
    } else {
        let student = match (&a.student, &a.student_config) {
            (Some(p), None) => open(p, "student")?.0,
            (None, Some(c)) => {
                let cfg = LlamaConfig::from_file(c)?;
                Llama::random(&cfg, a.student_seed, DType::F32, &dev)?
            }
            _ => anyhow::bail!("give the student: --student DIR or --student-config config.json"),
        };
        let opts = DistillOptions {
            objective: DistillObjective {
                divergence: Divergence::from_name(&a.loss, a.beta)?,
                temperature: a.temperature,
                kd_weight: a.kd_weight,
            },
            train: TrainOptions {
                steps: a.steps,
                batch_size: a.batch_size,
                seq_len: a.seq_len,
                grad_accum: a.grad_accum,
                lr: a.lr,
                min_lr: a.min_lr,
                warmup: a.warmup,
                seed: a.seed,
                eval_every: a.eval_every,
                eval_batches: a.eval_batches,
                ckpt_every: a.ckpt_every,
                ..TrainOptions::default()
            },
        };
        DistillTrainer::new(student, teacher, ttok, opts)?
    };
    let text = std::fs::read_to_string(&a.data)
        .with_context(|| format!("cannot read {} as UTF-8 text", a.data.display()))?;
    let data = TokenData::from_text(&text, &tr.tokenizer, 0.05)?;
    let o = tr.opts.train.clone();
    if data.train.len() <= o.seq_len || data.val.len() <= o.seq_len {
        anyhow::bail!(
            "{} has {} training and {} held-out tokens; each needs more than one window of --seq-len {}",
            a.data.display(),
            data.train.len(),
            data.val.len(),
            o.seq_len
        );
    }
    let before = evaluate_student(
        &tr.student,
        &tr.teacher,
        &data.val,
        o.batch_size,
        o.seq_len,
        o.eval_batches,
    )?;
    eprintln!(
        "student before: held-out ppl {:.3}, KL to the teacher {:.4} nats/token",
        before.ppl, before.kl_to_teacher
    );
    let last = tr.run(&data, &a.out, a.stop_after, |_, _| {})?;
    let Some(e) = last else {
        eprintln!("stopped at step {} of {}", tr.step, o.steps);
        return Ok(());
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "steps": tr.step,
                "objective": tr.opts.objective,
                "before": before,
                "after": e,
                "out": a.out,
            })
        );
    } else {
        println!(
            "distilled {} steps ({}, τ {}, r {}): held-out ppl {:.3} → {:.3}, KL to the teacher {:.4} → {:.4}; student written to {}",
            tr.step,
            tr.opts.objective.divergence.name(),
            tr.opts.objective.temperature,
            tr.opts.objective.kd_weight,
            before.ppl,
            e.ppl,
            before.kl_to_teacher,
            e.kl_to_teacher,
            a.out.display()
        );
    }
    Ok(())
}
