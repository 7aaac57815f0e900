//! `caracal prune`: structured pruning (caracal-compress) into a genuinely
//! smaller Hugging Face folder.

use anyhow::Result;
use caracal_compress::prune::{
    prune_structured, save_pruned, CalibOptions, Method, OsscarOptions, PruneOptions,
};
use caracal_models::train::TokenData;
use caracal_models::{load_model, GgufWeights};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `caracal prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Remove whole FFN neurons and KV-head groups, so the matrices and the config shrink (required: unstructured pruning is not implemented yet).
    #[arg(long)]
    pub structured: bool,
    /// How each layer's kept groups are chosen: osscar (greedy elimination, local-search swaps and a least-squares refit of down_proj/o_proj), minitron (activation importance) or magnitude (weight L2 norm); the last two keep the weights as they are.
    #[arg(long, default_value = "osscar")]
    pub method: String,
    /// The model: a Hugging Face folder, a .gguf file (dequantized), or a caracal checkpoint (.safetensors).
    #[arg(long, value_name = "FILE.gguf|DIR")]
    pub model: PathBuf,
    /// Calibration text: a file, or a folder of .txt/.md files, tokenized with the model's tokenizer.
    #[arg(long, value_name = "TEXT")]
    pub calib: PathBuf,
    /// Most calibration windows; a short text gives fewer [default: 128].
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// Tokens per calibration window [default: 256].
    #[arg(long, value_name = "T")]
    pub seq_len: Option<usize>,
    /// Fraction of each layer's FFN neurons kept, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub ffn_keep: f64,
    /// KV-head groups (a KV head with its query heads) each layer keeps [default: all].
    #[arg(long, value_name = "K")]
    pub kv_groups_keep: Option<usize>,
    /// OSSCAR local-search passes after the greedy elimination (0: greedy only) [default: 3].
    #[arg(long)]
    pub swap_passes: Option<usize>,
    /// Hessian damping, as a fraction of its mean diagonal [default: 0.01].
    #[arg(long)]
    pub damping: Option<f64>,
    /// Output folder: config.json, model.safetensors, tokenizer.json and tokenizer_config.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the report as JSON (sizes, parameter counts, per-layer calibration errors).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: PruneArgs) -> Result<()> {
    if !a.structured {
        anyhow::bail!("only structured pruning is implemented; add --structured");
    }
    let defaults = PruneOptions::default();
    let calib = CalibOptions::default();
    let opts = PruneOptions {
        method: Method::parse(&a.method)?,
        ffn_keep: a.ffn_keep,
        kv_groups_keep: a.kv_groups_keep,
        calib: CalibOptions {
            samples: a.samples.unwrap_or(calib.samples),
            seq_len: a.seq_len.unwrap_or(calib.seq_len),
            ..calib
        },
        damping: a.damping.unwrap_or(defaults.damping),
        osscar: OsscarOptions {
            swap_passes: a.swap_passes.unwrap_or(defaults.osscar.swap_passes),
            ..defaults.osscar.clone()
        },
    };
    let t0 = Instant::now();
    let (model, tok) = load_model(
        &a.model,
        GgufWeights::Dequantized,
        &candle_core::Device::Cpu,
    )?;
    let tokens = tok.encode(&TokenData::read_text(&a.calib)?)?;
    let pruned = prune_structured(&model, &tokens, &opts)?;
    let how = save_pruned(&pruned.model, &tok, &a.model, &a.out)?;
    let r = &pruned.report;
    if a.json {
        let mut v = serde_json::to_value(r)?;
        v["model"] = json!(a.model.display().to_string());
        v["out"] = json!(a.out.display().to_string());
        v["tokenizer"] = json!(how.name());
        v["seconds"] = json!(t0.elapsed().as_secs_f64());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: FFN {} of {} neurons, {} of {} KV-head groups per layer; {} → {} parameters ({:.3}×)",
            r.method,
            r.after.intermediate_size,
            r.before.intermediate_size,
            r.after.num_key_value_heads,
            r.before.num_key_value_heads,
            r.before.params,
            r.after.params,
            r.params_ratio
        );
        println!(
            "mean relative calibration error ‖X(Ŵ−W)‖/‖XW‖ over {} tokens: down_proj {:.4}, o_proj {:.4}",
            r.calibration.tokens, r.mean_rel_error_down_proj, r.mean_rel_error_o_proj
        );
        println!("wrote {} (tokenizer {})", a.out.display(), how.name());
    }
    Ok(())
}
