//! `ccbft` subcommands of the dora area (placeholder until its issue lands).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DoraArgs {}

pub fn run(_args: DoraArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
