//! `caracal`: one command over the caracal library crates. Each subcommand
//! runs on embedded defaults when given no input.

mod alloc;
mod bench;
mod cmd;
mod report;

use clap::{Parser, Subcommand};

/// Count every heap allocation so benchmarks can report peak bytes.
#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

#[derive(Parser)]
#[command(
    name = "caracal",
    version,
    about = "Eight LinkedIn ML systems in one Rust toolkit: fused training kernels, \
             log-affine models, graph learning, and more.",
    long_about = None
)]
struct Cli {
    /// Worker threads for parallel loops (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every capability on embedded defaults and write report/index.html
    /// and report/summary.json.
    Tour(cmd::tour::TourArgs),
    /// Benchmarks, measured side by side in one run.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Log-affine models fitted by iterative proportional scaling.
    #[command(subcommand)]
    Loglin(cmd::loglin::LoglinCmd),
    /// Dependency graphs from non-Gaussian data.
    #[command(subcommand)]
    Graph(cmd::graph::GraphCmd),
    /// Causal language models: train, evaluate, generate.
    #[command(subcommand)]
    Lm(cmd::lm::LmCmd),
    /// LiGR transformer ranking: simulate, train, evaluate, scaling.
    #[command(subcommand)]
    Rank(cmd::rank::RankCmd),
    /// Data-driven attribution of marketing conversions.
    #[command(subcommand)]
    Attribution(cmd::attribution::AttributionCmd),
    /// Reward models: Bradley–Terry with batch-wise sum-to-zero regularization (BSR).
    #[command(subcommand)]
    Rm(cmd::rm::RmCmd),
    /// Direct alignment losses: DPO, IPO, robust, hinge, SimPO, AlphaPO, CPO, ORPO.
    #[command(subcommand)]
    Align(cmd::align::AlignCmd),
    /// On-policy RL for language models: RLOO and GRPO.
    #[command(subcommand)]
    Rl(cmd::rl::RlCmd),
    /// Knowledge distillation of a student language model from a teacher.
    Distill(cmd::distill::DistillArgs),
    /// Structured pruning of a language model into a genuinely smaller one.
    Prune(cmd::prune::PruneArgs),
    /// Small language models: distillation and compression studies.
    #[command(subcommand)]
    Slm(cmd::slm::SlmCmd),
}

fn main() {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot set {n} threads: {e}");
            std::process::exit(2);
        }
    }
    let res = match cli.cmd {
        Command::Tour(a) => cmd::tour::run(a),
        Command::Bench(b) => bench::run(b),
        Command::Loglin(c) => cmd::loglin::run(c),
        Command::Graph(c) => cmd::graph::run(c),
        Command::Lm(c) => cmd::lm::run(c),
        Command::Rank(c) => cmd::rank::run(c),
        Command::Attribution(c) => cmd::attribution::run(c),
        Command::Rm(c) => cmd::rm::run(c),
        Command::Align(c) => cmd::align::run(c),
        Command::Rl(c) => cmd::rl::run(c),
        Command::Distill(a) => cmd::distill::run(a),
        Command::Prune(a) => cmd::prune::run(a),
        Command::Slm(c) => cmd::slm::run(c),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
