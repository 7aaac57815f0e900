//! `caracal align`: direct alignment losses (DPO, IPO, robust, hinge,
//! SimPO, AlphaPO, CPO, ORPO) on a policy, with TRL's tokenization and
//! metric names (caracal-align).

use anyhow::{Context, Result};
use candle_core::Device;
use caracal_align::direct::{DirectLoss, DirectParams};
use caracal_align::direct_eval::evaluate_direct;
use caracal_align::read_pairs;
use caracal_align::template::{tokenize, Specials, Template};
use caracal_models::{load_model, GgufWeights, Llama};
use std::path::PathBuf;

/// Subcommands of `caracal align`.
#[derive(clap::Subcommand)]
pub enum AlignCmd {
    /// Evaluate a policy on preference pairs with a direct alignment loss (TRL's metrics).
    Eval(EvalArgs),
}

/// Options of `caracal align eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The policy: a Hugging Face folder, a .gguf file (dequantized) or a caracal checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// The reference model (dpo, ipo, hinge, robust); same vocabulary as the policy.
    #[arg(long)]
    pub ref_model: Option<PathBuf>,
    /// JSONL pairs {"prompt","chosen","rejected"} (plain text).
    #[arg(long)]
    pub pairs: PathBuf,
    /// The loss, one of dpo, ipo, hinge, robust, simpo, alphapo, cpo, orpo.
    #[arg(long, default_value = "dpo")]
    pub loss: String,
    /// β (TRL's `beta`).
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// AlphaPO's α (0 falls back to SimPO and says so).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub alpha: f64,
    /// SimPO/AlphaPO's margin γ, absolute as TRL's `simpo_gamma` (SimPO's scripts give γ/β: multiply by β).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub gamma: f64,
    /// ε of robust DPO (and of cDPO with --loss dpo, which TRL 1.16's sigmoid loss ignores).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// CPO's NLL weight (TRL's `cpo_alpha`).
    #[arg(long, default_value_t = 1.0)]
    pub cpo_alpha: f64,
    /// ORPO's λ.
    #[arg(long, default_value_t = 0.1)]
    pub orpo_lambda: f64,
    /// Tokenization: trl-dpo (DPOTrainer) or trl-cpo (CPOTrainer); default: the convention of the TRL trainer implementing the loss.
    #[arg(long)]
    pub template: Option<String>,
    /// Pairs per micro-batch, in file order (TRL's per_device_eval_batch_size).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Drop pairs longer than this many tokens (counted, never truncated).
    #[arg(long, default_value_t = 1024)]
    pub max_length: usize,
    /// Print JSON with TRL's metric names.
    #[arg(long)]
    pub json: bool,
}

/// Dispatch.
pub fn run(cmd: AlignCmd) -> Result<()> {
    match cmd {
        AlignCmd::Eval(a) => eval(a),
    }
}

fn open(path: &std::path::Path) -> Result<(Llama, caracal_models::Tokenizer)> {
    load_model(path, GgufWeights::Dequantized, &Device::Cpu)
        .with_context(|| format!("cannot open model {}", path.display()))
}

fn eval(a: EvalArgs) -> Result<()> {
    let params = DirectParams {
        beta: a.beta,
        alpha: a.alpha,
        gamma: a.gamma,
        label_smoothing: a.label_smoothing,
        cpo_alpha: a.cpo_alpha,
        orpo_lambda: a.orpo_lambda,
    };
    let (loss, notes) = DirectLoss::from_name(&a.loss, &params)?;
    for n in notes {
        eprintln!("note: {n}");
    }
    let template = match &a.template {
        Some(t) => t.parse::<Template>()?,
        None => loss.default_template(),
    };
    if loss.needs_reference() && a.ref_model.is_none() {
        anyhow::bail!(
            "--loss {} compares the policy with a reference model; give --ref-model",
            a.loss
        );
    }
    let (policy, tok) = open(&a.model)?;
    let reference = match (&a.ref_model, loss.needs_reference()) {
        (Some(p), true) => {
            let (r, _) = open(p)?;
            if r.config().vocab_size != policy.config().vocab_size {
                anyhow::bail!(
                    "the reference model has a vocabulary of {} tokens and the policy {}; they must share one tokenizer",
                    r.config().vocab_size,
                    policy.config().vocab_size
                );
            }
            Some(r)
        }
        (Some(_), false) => {
            eprintln!(
                "note: --loss {} uses no reference model; --ref-model is ignored",
                a.loss
            );
            None
        }
        _ => None,
    };
    let cfg = policy.config();
    let sp = Specials {
        eos_id: cfg.eos_token_id,
        eos_text: cfg.eos_token_id.and_then(|i| tok.id_to_token(i)),
        bos_id: cfg.bos_token_id,
    };
    let pairs = read_pairs(&a.pairs)?;
    let (cp, stats) = tokenize(&pairs, &tok, template, &sp, a.max_length)?;
    for w in stats.warnings(&a.pairs.display().to_string()) {
        eprintln!("warning: {w}");
    }
    let pad = cfg.pad_token_id.unwrap_or(0);
    let m = evaluate_direct(&policy, reference.as_ref(), &cp, &loss, a.batch_size, pad)?;
    if a.json {
        let mut v = m.to_trl_json();
        v["pairs"] = cp.len().into();
        v["pairs_read"] = stats.read.into();
        v["template"] = format!("{template:?}").into();
        println!("{v}");
        return Ok(());
    }
    println!(
        "{} pairs ({:?} template), {}: loss {:.6}, rewards chosen {:.4} rejected {:.4}, accuracy {:.4}, margin {:.4}, logps chosen {:.4} rejected {:.4}{}",
        cp.len(),
        template,
        a.loss,
        m.loss,
        m.rewards_chosen,
        m.rewards_rejected,
        m.rewards_accuracies,
        m.rewards_margins,
        m.logps_chosen,
        m.logps_rejected,
        m.nll_loss.map(|n| format!(", nll {n:.4}")).unwrap_or_default()
    );
    Ok(())
}
