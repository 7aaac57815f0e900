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
    /// Keep the trained teacher in this folder and reuse it when its settings and text match (the pilot and the study share it).
    #[arg(long, default_value = "runs/distill-study-teacher")]
    pub teacher_cache: PathBuf,
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
        "pilot" => vec![DistillStudyConfig::pilot()],
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
        let r = run_distill_study(&cfg, &train, &heldout, Some(&a.teacher_cache), |m| {
            eprintln!("{m}")
        })?;
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

/// The tour's compression section: the distillation study's tour setting on
/// the embedded grammar corpus (training text from seed 0, held-out text
/// from seed 1), so it needs no download.
pub fn tour(r: &mut crate::report::Report) -> Result<()> {
    use crate::report::table;
    use caracal_models::train::grammar_corpus;
    use serde_json::json;
    let cfg = DistillStudyConfig::tour();
    let (train, heldout) = (grammar_corpus(0, 300_000), grammar_corpus(1, 40_000));
    let rep = run_distill_study(&cfg, &train, &heldout, None, |m| eprintln!("  {m}"))?;
    let mut rows = Vec::new();
    let mut summary = serde_json::Map::new();
    for c in &rep.summary {
        rows.push(vec![
            c.condition.clone(),
            format!("{:.3}", c.ppl_mean),
            format!("{:.4}", c.kl_mean),
        ]);
        summary.insert(format!("{}_heldout_ppl", c.condition), json!(c.ppl_mean));
    }
    let html = format!(
        "<p>Distillation against plain cross-entropy at equal steps: a byte-level {th}×{tl} teacher ({tp} parameters, \
         held-out perplexity {tppl:.3}) trained here on the embedded grammar corpus, and a {sh}×{sl} student ({sp} \
         parameters) trained {steps} steps from the same initialization and batches under each objective \
         (r = 0.5 mixes the divergence with cross-entropy; τ = 1), one seed. Perplexity and forward KL to the teacher on \
         held-out grammar text. Study time {s:.1} s. The reported study (six plays, Hamlet held out, seeds 1–3): \
         <code>caracal slm distill-study</code>.</p>{t}",
        th = cfg.teacher.hidden,
        tl = cfg.teacher.layers,
        tp = rep.teacher_params,
        tppl = rep.teacher_heldout_ppl,
        sh = cfg.student.hidden,
        sl = cfg.student.layers,
        sp = rep.student_params,
        steps = cfg.student_train.steps,
        s = rep.seconds,
        t = table(&["objective", "held-out perplexity", "KL to the teacher (nats/token)"], &rows)
    );
    summary.insert("teacher_heldout_ppl".into(), json!(rep.teacher_heldout_ppl));
    summary.insert("seconds".into(), json!(rep.seconds));
    r.add(
        "compress",
        "Distillation against cross-entropy (caracal-compress)",
        html,
        serde_json::Value::Object(summary),
    );
    Ok(())
}
