//! `caracal bench rank-serve` (placeholder until its crate lands).

/// Options of `caracal bench rank-serve`.
#[derive(clap::Args)]
pub struct RankServeBenchArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_a: RankServeBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("caracal bench rank-serve is not built yet")
}
