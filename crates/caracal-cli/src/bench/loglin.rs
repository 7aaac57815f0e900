//! `caracal bench loglin` (placeholder until the loglin crate lands).

/// Options of `caracal bench loglin`.
#[derive(clap::Args)]
pub struct LoglinBenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_a: LoglinBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("caracal bench loglin is not built yet")
}
