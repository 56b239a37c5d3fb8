//! `ccbft node`: run one replica of a cluster as this process; `ccbft submit`: a client's
//! signed transfers through it.

use anyhow::anyhow;
use ccbft_node::client_proto::Wait;
use ccbft_node::node::{run, NodeOptions};
use ccbft_node::submit::SubmitOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct NodeArgs {
    /// The cluster file (topology, addresses).
    #[arg(long)]
    config: PathBuf,
    /// The keys directory `ccbft keygen --clients K` wrote (replica keys, committee, genesis).
    #[arg(long)]
    keys: PathBuf,
    /// This replica's id in the cluster file.
    #[arg(long)]
    id: u32,
    /// This replica's data directory (its write-ahead log; created if absent).
    #[arg(long)]
    data: PathBuf,
    /// Delay each outgoing link by half the cluster file's round trip to that peer (a local
    /// cluster standing in for several clouds).
    #[arg(long)]
    emulate_wan: bool,
    /// Where the control plane listens (/metrics, /health, /events, admin); default the
    /// cluster file's `control_address`, else 127.0.0.1 on the replica's port + 2000.
    #[arg(long)]
    control: Option<String>,
    /// Run a Byzantine strategy (as `ccbft sim` names them) on what this replica sends: for
    /// tests, only in builds with the `adversary` feature, which release builds refuse.
    #[arg(long, value_name = "STRATEGY")]
    adversary: Option<String>,
    /// Compact the log at a stable checkpoint once it holds this many records past its
    /// last compaction (e.g. 20000). Off by default while an open liveness question after a
    /// restart from a compacted log is investigated (see the runtime issue).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    compact_after_records: Option<u64>,
    /// This replica belongs to a new cluster and has never run: its empty log is genesis.
    /// Without it, a replica whose log is empty (a lost or replaced disk) rejoins: it signs
    /// nothing until its peers bound what it signed before. Ignored once the log has records.
    #[arg(long)]
    genesis: bool,
}

pub fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    run(NodeOptions {
        cluster: args.config,
        keys: args.keys,
        id: args.id,
        data: args.data,
        emulate_wan: args.emulate_wan,
        control: args.control,
        adversary: args.adversary,
        compact_after_records: args.compact_after_records,
        genesis: args.genesis,
    })
    .map_err(|e| anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The cluster file (topology, addresses).
    #[arg(long)]
    config: PathBuf,
    /// The keys directory `ccbft keygen --clients K` wrote (client keys, genesis, link keys).
    #[arg(long)]
    keys: PathBuf,
    /// The genesis client that signs (it pays between two of its own accounts).
    #[arg(long, default_value_t = 0)]
    client: u32,
    /// Transfers to submit.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Transfers in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    window: u64,
    /// Answer when the transfer is globally final (executed), locally final (its home lane
    /// committed it, with the outcome it will have), or both (each as it comes).
    #[arg(long, default_value = "global", value_parser = ["global", "local", "both"])]
    wait: String,
    /// Amount of each transfer.
    #[arg(long, default_value_t = 1)]
    amount: u64,
    /// Idempotency key of the first transfer (the rest follow it); default: from the clock,
    /// so reruns are new payments. Reusing keys shows the replay protection (`duplicate`).
    #[arg(long)]
    first_key: Option<u128>,
    /// Seconds to wait for the last answer.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// Seconds a replica may leave every transfer in flight unanswered before the client
    /// resends them through the next replica of the home domain.
    #[arg(long, default_value_t = ccbft_node::submit::SILENCE_FAILOVER.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    failover_after_s: u64,
}

/// `ccbft submit`: signed transfers through a replica; prints what came back.
pub fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let first_key = args.first_key.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos())
            << 20
    });
    let options = SubmitOptions {
        cluster: args.config,
        keys: args.keys,
        client: args.client,
        count: args.count,
        window: usize::try_from(args.window)?,
        wait: match args.wait.as_str() {
            "local" => Wait::Local,
            "both" => Wait::Both,
            _ => Wait::Global,
        },
        amount: args.amount,
        first_key,
        timeout: Duration::from_secs(args.timeout_s),
        silence_failover: Duration::from_secs(args.failover_after_s),
        progress: None,
    };
    let report = ccbft_node::submit::run(options).map_err(|e| anyhow!(e))?;
    let replica = report.replica.map(|a| a.to_string()).unwrap_or_default();
    println!("submit via {replica}: {report}");
    if report.refused > 0 {
        eprintln!(
            "{} transfers refused at submission (see the log lines above)",
            report.refused
        );
        return Ok(ExitCode::from(crate::EXIT_FOUND));
    }
    Ok(ExitCode::SUCCESS)
}
