//! `caracal attribution` (placeholder until its crate lands).

use crate::report::Report;

/// Subcommands of `caracal attribution`.
#[derive(clap::Subcommand)]
pub enum AttributionCmd {
    /// Not built yet.
    Placeholder,
}

pub fn run(_c: AttributionCmd) -> anyhow::Result<()> {
    anyhow::bail!("caracal attribution is not built yet")
}

/// The tour's attribution section.
pub fn tour(_r: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
