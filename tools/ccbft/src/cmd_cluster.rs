//! `ccbft cluster up|status|down`: a supervised cluster of replica processes on this host
//! (`ccbft_node::supervisor`).

use anyhow::anyhow;
use ccbft_node::supervisor::{self, ClusterDir, UpOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand)]
enum ClusterCommand {
    /// Start one supervised `ccbft node` per replica of the cluster file (keys generated
    /// when missing) and restart those that fail, until SIGTERM or Ctrl-C stops them all.
    Up {
        /// The cluster file (topology, addresses); copied into the data directory.
        #[arg(long)]
        config: PathBuf,
        /// The cluster's directory: keys, data, logs and run files.
        #[arg(long)]
        data: PathBuf,
        /// Genesis clients to generate with the keys (when there are none yet).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
        clients: u32,
        /// Delay every link by half the cluster file's round trip (one host standing in for
        /// several clouds).
        #[arg(long)]
        emulate_wan: bool,
    },
    /// Show each replica: process, hold, readiness, executed height, global leader.
    Status {
        /// The cluster's directory (as given to `cluster up`).
        #[arg(long)]
        data: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop the cluster's supervisor and with it every replica (logs made durable first).
    Down {
        /// The cluster's directory (as given to `cluster up`).
        #[arg(long)]
        data: PathBuf,
        /// Seconds to wait for everything to stop.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
}

pub fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClusterCommand::Up {
            config,
            data,
            clients,
            emulate_wan,
        } => {
            supervisor::up(&UpOptions {
                program: std::env::current_exe()?,
                config,
                dir: data,
                clients,
                emulate_wan,
            })
            .map_err(|e| anyhow!(e))?;
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Status { data, json } => status(&ClusterDir::new(&data), json),
        ClusterCommand::Down { data, timeout_s } => {
            let pid = supervisor::down(&ClusterDir::new(&data), Duration::from_secs(timeout_s))
                .map_err(|e| anyhow!(e))?;
            println!(
                "cluster in {} stopped (supervisor pid {pid})",
                data.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exit 0 when every replica runs and is ready, 1 otherwise.
fn status(dir: &ClusterDir, json: bool) -> anyhow::Result<ExitCode> {
    let replicas = supervisor::status(dir).map_err(|e| anyhow!(e))?;
    let supervisor = dir.supervisor_pid();
    if json {
        let value = serde_json::json!({ "supervisor_pid": supervisor, "replicas": replicas });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        match supervisor {
            Some(pid) => println!("supervisor pid {pid}"),
            None => println!("no supervisor runs"),
        }
        println!("replica  domain                 pid      state     height  leader  control");
        let show = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        for r in &replicas {
            let state = match (r.pid, r.ready, r.held) {
                (_, _, true) => "held",
                (Some(_), true, _) => "ready",
                (Some(_), false, _) => "starting",
                (None, _, _) => "down",
            };
            println!(
                "{:<8} {:<22} {:<8} {:<9} {:>6}  {:>6}  {}",
                r.id,
                r.domain,
                r.pid.map_or("-".to_string(), |p| p.to_string()),
                state,
                show(r.executed_height),
                show(r.global_leader),
                r.control
            );
        }
    }
    let healthy = replicas.iter().all(|r| r.pid.is_some() && r.ready);
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FOUND)
    })
}
