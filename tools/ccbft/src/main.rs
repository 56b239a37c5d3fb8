//! `ccbft`: the operator's command line.
//!
//! Each subcommand lives in its own module; this file only parses and dispatches.
//!
//! Exit codes, for every command: 0 success; 1 the command ran and found a problem (a
//! violation, a failed test, an overdue report, a bad audit trail); 2 bad input or an error
//! (the message names it); 3 an incomplete run (the simulator hit its event cap: not judged).
//! Logs go to stderr, filtered by `RUST_LOG` (default `warn`).

mod cmd_cluster;
mod cmd_crypto;
mod cmd_demo;
mod cmd_dora;
mod cmd_ecdsa;
mod cmd_log;
mod cmd_node;
mod cmd_sim;
mod dora_watch;
mod live_target;
mod sim_target;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ccbft",
    version,
    about = "Cross-cloud BFT replicated ledger",
    after_help = "Exit codes: 0 success, 1 a problem found (violation, failed test, overdue report), 2 bad input or error, 3 incomplete run.\nRUST_LOG sets the log filter (default warn; info for `ccbft node`), e.g. RUST_LOG=ccbft_net=debug."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local three-cloud cluster of real replica processes (embedded default topology),
    /// drive signed payments, kill and restart a replica, and print a summary.
    Demo(cmd_demo::DemoArgs),
    /// Run the deterministic simulator over many seeds and check every invariant.
    Sim(cmd_sim::SimArgs),
    /// Run one replica of a cluster (real links, write-ahead log, client listener).
    Node(cmd_node::NodeArgs),
    /// A supervised cluster of replica processes on this host: up, status, down.
    Cluster(cmd_cluster::ClusterArgs),
    /// Submit a genesis client's signed transfers through a replica and report the answers.
    Submit(cmd_node::SubmitArgs),
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

/// Exit code of a run that found a problem.
pub const EXIT_FOUND: u8 = 1;
/// Exit code of bad input or an error.
pub const EXIT_ERROR: u8 = 2;
/// Exit code of a run the simulator could not finish (event cap).
pub const EXIT_INCOMPLETE: u8 = 3;

/// Writing into a closed pipe (`ccbft ... | head`) ends the process quietly, as it does for
/// other command-line tools, instead of a panic in `println!`.
fn default_sigpipe() {
    // SAFETY: resetting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The dashboard server writes to sockets (std sends with MSG_NOSIGNAL) and must not die
    // with a client; everything else prints to stdout.
    if !matches!(&cli.command, Command::Dora(args) if args.is_server()) {
        default_sigpipe();
    }
    // A replica reports what it executes; other commands print their results themselves.
    init_logging(if matches!(cli.command, Command::Node(_)) {
        "info"
    } else {
        "warn"
    });
    let result = match cli.command {
        Command::Demo(args) => cmd_demo::demo(args),
        Command::Sim(args) => cmd_sim::sim(args),
        Command::Node(args) => cmd_node::node(args),
        Command::Submit(args) => cmd_node::submit(args),
        Command::Cluster(args) => cmd_cluster::run(args),
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
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    fn undocumented(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name());
        if cmd.get_about().is_none() {
            found.push(format!("{path}: no description"));
        }
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                found.push(format!("{path}: {} has no help", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &path, found);
        }
    }

    #[test]
    fn every_command_option_and_argument_has_help() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut found = Vec::new();
        undocumented(&cli, "", &mut found);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
