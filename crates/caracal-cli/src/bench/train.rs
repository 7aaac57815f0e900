//! `caracal bench train` (placeholder until its crate lands).

/// Options of `caracal bench train`.
#[derive(clap::Args)]
pub struct TrainBenchArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_a: TrainBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("caracal bench train is not built yet")
}
