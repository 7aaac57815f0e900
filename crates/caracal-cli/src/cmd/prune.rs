//! `caracal prune`: structured pruning (caracal-compress).

use anyhow::Result;

/// Options of `caracal prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {}

pub fn run(_a: PruneArgs) -> Result<()> {
    anyhow::bail!("caracal prune is being built")
}
