//! `caracal rank` (placeholder until its crate lands).

use crate::report::Report;

/// Subcommands of `caracal rank`.
#[derive(clap::Subcommand)]
pub enum RankCmd {
    /// Not built yet.
    Placeholder,
}

pub fn run(_c: RankCmd) -> anyhow::Result<()> {
    anyhow::bail!("caracal rank is not built yet")
}

/// The tour's rank section.
pub fn tour(_r: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
