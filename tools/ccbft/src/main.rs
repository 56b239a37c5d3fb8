//! `ccbft`: the operator's command line.
//!
//! Each subcommand lives in its own module; this file only parses and dispatches.

mod cmd_crypto;
mod cmd_dora;
mod cmd_ecdsa;
mod cmd_log;
mod cmd_sim;
mod sim_target;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ccbft", version, about = "Cross-cloud BFT replicated ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local three-cloud cluster on the embedded default topology and print a summary.
    Demo(cmd_sim::DemoArgs),
    /// Run the deterministic simulator over many seeds and check every invariant.
    Sim(cmd_sim::SimArgs),
    /// Generate BLS replica keys with proofs of possession.
    Keygen(cmd_crypto::KeygenArgs),
    /// Distributed key generation: threshold BLS (default) or threshold ECDSA
    /// (--scheme ecdsa-secp256k1).
    Dkg(cmd_crypto::DkgArgs),
    /// Threshold ECDSA (secp256k1): sign digests and checkpoint attestations, verify them.
    Ecdsa(cmd_ecdsa::EcdsaArgs),
    /// Inspect or benchmark a write-ahead log.
    Log(cmd_log::LogArgs),
    /// DORA compliance engine: classification, deadlines, register, tests, audit, dashboard.
    Dora(cmd_dora::DoraArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => cmd_sim::demo(args),
        Command::Sim(args) => cmd_sim::sim(args),
        Command::Keygen(args) => cmd_crypto::keygen(args),
        Command::Dkg(args) => cmd_crypto::dkg(args),
        Command::Ecdsa(args) => cmd_ecdsa::run(args),
        Command::Log(args) => cmd_log::run(args),
        Command::Dora(args) => cmd_dora::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
