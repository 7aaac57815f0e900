//! `caracal graph` (placeholder until the graph crate lands).

use crate::report::Report;

/// Subcommands of `caracal graph`.
#[derive(clap::Subcommand)]
pub enum GraphCmd {
    /// Not built yet.
    Fit,
}

pub fn run(_c: GraphCmd) -> anyhow::Result<()> {
    anyhow::bail!("caracal graph is not built yet")
}

/// The tour's graph section.
pub fn tour(_r: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
