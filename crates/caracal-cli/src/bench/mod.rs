//! `caracal bench ...`: side-by-side measurements in one run, medians and
//! peak allocated bytes.

pub mod align;
pub mod graph;
pub mod kernels;
#[cfg(feature = "cuda")]
pub mod kernels_cuda;
pub mod loglin;
pub mod prefill;
pub mod rank_serve;
pub mod timing;
pub mod train;

/// Which benchmark to run.
#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Fused kernels vs candle-composed references (forward+backward).
    Kernels(kernels::KernelBenchArgs),
    /// Log-affine model fitting algorithms.
    Loglin(loglin::LoglinBenchArgs),
    /// Graphical lasso and graph learning.
    Graph(graph::GraphBenchArgs),
    /// Training a Llama-family model with fused vs reference kernels.
    Train(train::TrainBenchArgs),
    /// LiGR serving: history computed once vs per-candidate recomputation.
    RankServe(rank_serve::RankServeBenchArgs),
    /// One DPO step: chunked per-token log-probs vs the same loss on full logits.
    Align(align::AlignBenchArgs),
    /// Prompt processing (prefill) throughput of several models side by side, last-position logits only.
    Prefill(prefill::PrefillBenchArgs),
}

pub fn run(b: BenchCmd) -> anyhow::Result<()> {
    match b {
        BenchCmd::Kernels(a) => kernels::run(a),
        BenchCmd::Loglin(a) => loglin::run(a),
        BenchCmd::Graph(a) => graph::run(a),
        BenchCmd::Train(a) => train::run(a),
        BenchCmd::RankServe(a) => rank_serve::run(a),
        BenchCmd::Align(a) => align::run(a),
        BenchCmd::Prefill(a) => prefill::run(a),
    }
}
