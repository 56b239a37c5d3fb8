//! `ccbft node`: run one replica of a cluster as this process.

use anyhow::anyhow;
use ccbft_node::node::{run, NodeOptions};
use std::path::PathBuf;
use std::process::ExitCode;

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
}

pub fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    run(NodeOptions {
        cluster: args.config,
        keys: args.keys,
        id: args.id,
        data: args.data,
    })
    .map_err(|e| anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}
