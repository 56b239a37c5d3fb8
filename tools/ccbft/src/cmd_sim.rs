//! `ccbft` subcommands of the sim area (placeholder until its issue lands).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DemoArgs {}

#[derive(clap::Args)]
pub struct SimArgs {}

pub fn demo(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}

pub fn sim(_args: SimArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
