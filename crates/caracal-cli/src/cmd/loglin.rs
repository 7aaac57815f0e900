//! `caracal loglin` (placeholder until the loglin crate lands).

use crate::report::Report;

/// Subcommands of `caracal loglin`.
#[derive(clap::Subcommand)]
pub enum LoglinCmd {
    /// Not built yet.
    Fit,
}

pub fn run(_c: LoglinCmd) -> anyhow::Result<()> {
    anyhow::bail!("caracal loglin is not built yet")
}

/// The tour's loglin section.
pub fn tour(_r: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
