//! `caracal bench graph` (placeholder until the graph crate lands).

/// Options of `caracal bench graph`.
#[derive(clap::Args)]
pub struct GraphBenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_a: GraphBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("caracal bench graph is not built yet")
}
