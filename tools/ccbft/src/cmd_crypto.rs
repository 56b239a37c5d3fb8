//! `ccbft` subcommands of the crypto area (placeholder until its issue lands).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct KeygenArgs {}

#[derive(clap::Args)]
pub struct DkgArgs {}

pub fn keygen(_args: KeygenArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}

pub fn dkg(_args: DkgArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
