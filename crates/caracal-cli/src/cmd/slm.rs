//! `caracal slm`: small-language-model studies (caracal-compress).

use anyhow::{Context, Result};
use caracal_compress::distill::study::{run_distill_study, DistillStudyConfig};
use std::path::PathBuf;

/// Small language models: studies of distillation (and, next, the compression pipeline).
#[derive(clap::Subcommand)]
pub enum SlmCmd {
    /// Does distillation beat plain cross-entropy at equal steps? A teacher trained here on six plays, a student distilled (FKL, JSD-0.5) or trained on CE, held-out Hamlet.
    DistillStudy(DistillStudyArgs),
}

/// Options of `caracal slm distill-study`.
#[derive(clap::Args)]
pub struct DistillStudyArgs {
    /// full (the reported study, seeds 1–3), pilot (plain CE at each learning rate of the grid, seed 100) or tour (small, one seed).
    #[arg(long, default_value = "full")]
    pub scale: String,
    /// Folder of training plays (*.txt), as tools/fetch_fixtures.sh writes it.
    #[arg(long, default_value = ".cache/shakespeare/plays")]
    pub train_dir: PathBuf,
    /// The held-out text.
    #[arg(long, default_value = ".cache/shakespeare/hamlet.txt")]
    pub heldout: PathBuf,
    /// Override the seeds (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Write the report(s) here as JSON (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(c: SlmCmd) -> Result<()> {
    match c {
        SlmCmd::DistillStudy(a) => distill_study(a),
    }
}

/// The training plays in file-name order, concatenated.
fn read_plays(dir: &std::path::Path) -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "cannot list {} (run `bash tools/fetch_fixtures.sh` to fetch the plays)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{} holds no .txt plays", dir.display());
    }
    let mut text = String::new();
    for f in files {
        text.push_str(
            &std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read {} as UTF-8 text", f.display()))?,
        );
        text.push('\n');
    }
    Ok(text)
}

fn distill_study(a: DistillStudyArgs) -> Result<()> {
    let configs = match a.scale.as_str() {
        "full" => vec![DistillStudyConfig::full()],
        "pilot" => DistillStudyConfig::pilot(),
        "tour" => vec![DistillStudyConfig::tour()],
        other => anyhow::bail!("--scale {other} is unknown; use full, pilot or tour"),
    };
    let train = read_plays(&a.train_dir)?;
    let heldout = std::fs::read_to_string(&a.heldout).with_context(|| {
        format!(
            "cannot read {} (run `bash tools/fetch_fixtures.sh`)",
            a.heldout.display()
        )
    })?;
    let mut reports = Vec::new();
    for mut cfg in configs {
        if let Some(s) = &a.seeds {
            cfg.seeds = s.clone();
        }
        let r = run_distill_study(&cfg, &train, &heldout, |m| eprintln!("{m}"))?;
        println!(
            "teacher {} parameters (held-out perplexity {:.3}); student {} parameters, {} steps at lr {:e}:",
            r.teacher_params, r.teacher_heldout_ppl, r.student_params, cfg.student_train.steps, cfg.student_train.lr
        );
        print!("{}", r.table());
        println!(
            "claims (perplexity below CE's, mean over seeds): {:?}; total {:.1} s",
            r.claims, r.seconds
        );
        reports.push(r);
    }
    if let Some(p) = &a.out {
        caracal_core::write_json_atomic(p, &reports)?;
    }
    Ok(())
}
