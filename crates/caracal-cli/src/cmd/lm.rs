//! `caracal lm` (placeholder until its crate lands).

use crate::report::Report;

/// Subcommands of `caracal lm`.
#[derive(clap::Subcommand)]
pub enum LmCmd {
    /// Not built yet.
    Placeholder,
}

pub fn run(_c: LmCmd) -> anyhow::Result<()> {
    anyhow::bail!("caracal lm is not built yet")
}

/// The tour's lm section.
pub fn tour(_r: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
