//! `ccbft node`: start-up of one replica process. Reads the cluster file, the keys and the
//! genesis; opens the log and restores the replica from it; starts the transport and the
//! client listener; then runs the host until the process is stopped.

use crate::admin::Admin;
use crate::adversary::NodeAdversary;
use crate::control::NodeMetrics;
use crate::evidence_log::EvidenceLog;
use crate::genesis;
use crate::host::{Host, HostIo, Start};
use crate::keys;
use crate::log::ReplicaLog;
use ccbft_core::replica::ReplicaConfig;
use ccbft_core::topology::{ReplicaId, Topology};
use ccbft_core::vote_pattern::VotePattern;
use ccbft_net::client::{ClientListener, ClientListenerConfig};
use ccbft_net::shaper::ShaperControl;
use ccbft_net::{Endpoint, EndpointConfig, LinkLimits, PeerId};
use glommio::channels::local_channel::{self, LocalReceiver};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub cluster: PathBuf,
    /// The directory `ccbft keygen` wrote (replica keys, committee, genesis).
    pub keys: PathBuf,
    pub id: ReplicaId,
    /// This replica's own directory: its log lives in `data/wal`.
    pub data: PathBuf,
    /// Delay every outgoing link by half the cluster file's round trip to its peer (local
    /// clusters that stand in for several clouds; real deployments have real latency).
    pub emulate_wan: bool,
    /// Where the control plane listens (`/metrics`, `/health`, `/events`); default the
    /// cluster file's (`ReplicaSpec::control_addr`).
    pub control: Option<String>,
    /// Adversary mode (builds with the `adversary` feature, tests only): the simulator's
    /// Byzantine strategy of this name on everything the replica sends.
    pub adversary: Option<String>,
    /// Records the log collects past its base before it compacts at a stable checkpoint.
    /// None: the log is never compacted.
    pub compact_after_records: Option<u64>,
    /// This replica is one of a new cluster's: an empty log means it has never signed
    /// anything. Without it an empty log means a lost disk, and the replica rejoins.
    pub genesis: bool,
}

/// Timeouts of a replica on real links, in ticks of [`crate::host::TICK`] (1 ms).
const REQUEST_TIMEOUT_TICKS: u64 = 500;
const GLOBAL_TIMEOUT_MIN_TICKS: u64 = 1_000;
const GLOBAL_TIMEOUT_MAX_TICKS: u64 = 10_000;
/// Committed global blocks between signed state checkpoints.
const CHECKPOINT_INTERVAL_BLOCKS: u64 = 100;

/// Set by SIGTERM or SIGINT: a node stops at its next tick, once its log is durable; the
/// demo stops its cluster and removes its files.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether the process was asked to stop (after [`catch_stop_signals`]).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Asks the node to stop as SIGTERM does (the admin API's `/admin/stop`).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM and SIGINT set [`stop_requested`] instead of ending the process.
pub fn catch_stop_signals() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_stop_signal as *const () as libc::sighandler_t,
        );
    }
}

/// Runs replica `options.id` until it is stopped (SIGTERM, SIGINT: the log is made durable
/// first), its transport closes or its log fails.
pub fn run(options: NodeOptions) -> Result<(), String> {
    catch_stop_signals();
    let topology = Arc::new(Topology::load(&options.cluster).map_err(|e| e.to_string())?);
    let spec = topology
        .replica(options.id)
        .ok_or_else(|| {
            format!(
                "replica {} is not in {}",
                options.id,
                options.cluster.display()
            )
        })?
        .clone();
    let client_addr = spec.client_addr().map_err(|e| e.to_string())?;
    let keys = keys::load(&options.keys, options.id, &topology).map_err(|e| e.to_string())?;
    let genesis = genesis::load(&options.keys).map_err(|e| e.to_string())?;
    let config = ReplicaConfig {
        topology: topology.clone(),
        me: options.id,
        genesis_accounts: genesis.accounts,
        clients: Arc::new(genesis.clients),
        request_timeout_ticks: REQUEST_TIMEOUT_TICKS,
        global_timeout_min_ticks: GLOBAL_TIMEOUT_MIN_TICKS,
        global_timeout_max_ticks: GLOBAL_TIMEOUT_MAX_TICKS,
        ticks_per_ms: 1,
        rotation_rounds: u64::from(topology.leader_rotation_blocks),
        vote_pattern: VotePattern::AllToAll,
        checkpoint_interval_blocks: CHECKPOINT_INTERVAL_BLOCKS,
    };
    // Start-up input first: a bad strategy name is refused before anything listens.
    let adversary = options
        .adversary
        .as_deref()
        .map(|name| {
            let seed = u64::from(options.id);
            let rotation = u64::from(topology.leader_rotation_blocks);
            NodeAdversary::new(name, keys.signer.clone(), topology.clone(), rotation, seed)
        })
        .transpose()?;
    if let Some(adversary) = &adversary {
        tracing::warn!("ADVERSARY MODE: strategy {}", adversary.name());
    }
    // Always a shaper: the admin API cuts links with it; without --emulate-wan it starts
    // with every link unshaped.
    let peers: Vec<ReplicaId> = (0..topology.n()).filter(|&p| p != options.id).collect();
    let shaper = if options.emulate_wan {
        wan_shaper(&topology, options.id)?
    } else {
        ShaperControl::new(&peers)
    };
    let token = crate::admin::load_or_create_token(&options.data)?;
    let admin = Arc::new(Admin::new(token, shaper.clone(), peers));
    let control_addr = match &options.control {
        Some(addr) => addr.clone(),
        None => spec.control_addr().map_err(|e| e.to_string())?.to_string(),
    };
    let evidence = EvidenceLog::new(&options.data);
    let metrics = Arc::new(NodeMetrics::default());
    metrics.set(|m| &m.replica, u64::from(options.id));
    // Until the log says otherwise, the replica is not known to be past a rejoin.
    metrics.set(|m| &m.rejoining, 1);
    let control = crate::control::serve(&control_addr, metrics.clone(), admin)
        .map_err(|e| format!("control plane on {control_addr}: {e}"))?;
    tracing::info!(
        "control plane on http://{} (admin token in {})",
        control.addr,
        options.data.join(crate::admin::ADMIN_TOKEN_FILE).display()
    );
    let data = options.data.clone();
    let shards = topology.shards;
    let compact_after = options.compact_after_records;
    let name = format!("replica-{}", options.id);
    let executor = ccbft_storage::wal::executor_builder(&name)
        .spawn(move || async move {
            let (log, restored, durable_rx, quarantined) =
                open_log(&data, shards, compact_after).await?;
            let start = if restored.last > 0 || (options.genesis && !quarantined) {
                Start::Restore
            } else {
                tracing::warn!(
                    "the log is empty and this is not a new cluster's first start: rejoining \
                     (signing nothing until the peers bound what this replica signed before)"
                );
                Start::Rejoin {
                    nonce: random_nonce()?,
                }
            };
            tracing::info!(
                records = restored.last,
                torn_tail = restored.torn_tail,
                "restored from {}",
                data.join("wal").display()
            );
            let endpoint = Endpoint::start(EndpointConfig {
                me: PeerId(options.id),
                key: keys.link.clone(),
                peers: keys.peers.clone(),
                listen: spec.address.parse().map_err(|e| format!("{e}"))?,
                limits: LinkLimits::default(),
                shaper: Some(shaper),
            })
            .map_err(|e| e.to_string())?;
            let clients =
                ClientListener::start(ClientListenerConfig::new(client_addr, keys.link.clone()))
                    .map_err(|e| e.to_string())?;
            tracing::info!(
                "replica {} up: links {}, clients {client_addr}",
                options.id,
                spec.address
            );
            let io = HostIo {
                endpoint,
                clients,
                log,
                metrics,
                evidence,
                adversary,
            };
            let host = Host::new(config, keys.signer, keys.verifier, io, &restored, start)?;
            host.run(durable_rx).await
        })
        .map_err(|e| format!("starting the executor: {e}"))?;
    let result = executor.join().map_err(|e| format!("executor: {e}"))?;
    control.stop();
    result
}

/// The replica's log, the receiver of its durable watermarks, and whether the log was
/// quarantined. A log whose acknowledged records are damaged is moved aside and the replica
/// starts empty, to rejoin (`log::quarantine`); any other failure stops the node with its
/// reason.
async fn open_log(
    data: &std::path::Path,
    shards: u32,
    compact_after: Option<u64>,
) -> Result<(ReplicaLog, crate::log::Restored, LocalReceiver<u64>, bool), String> {
    let failed = |e: crate::log::LogError| format!("opening the log in {}: {e}", data.display());
    let (durable_tx, durable_rx) = local_channel::new_bounded(1024);
    match ReplicaLog::open(data, shards, compact_after, durable_tx).await {
        Ok((log, restored)) => Ok((log, restored, durable_rx, false)),
        Err(e) if e.is_corruption() => {
            let moved = crate::log::quarantine(data)?;
            tracing::error!(
                "{e}; the damaged log is moved to {} and this replica rejoins by state transfer",
                moved.display()
            );
            let (durable_tx, durable_rx) = local_channel::new_bounded(1024);
            let (log, restored) = ReplicaLog::open(data, shards, compact_after, durable_tx)
                .await
                .map_err(failed)?;
            Ok((log, restored, durable_rx, true))
        }
        Err(e) => Err(failed(e)),
    }
}

/// A rejoin's nonce: fresh, so answers to an earlier rejoin cannot be replayed into it.
fn random_nonce() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// One-way delays from `me` to every replica: half the cluster file's round trip.
fn wan_shaper(topology: &Topology, me: ReplicaId) -> Result<Arc<ShaperControl>, String> {
    let row: Vec<Duration> = (0..topology.n())
        .map(|peer| Duration::from_micros(u64::from(topology.rtt_between_us(me, peer)) / 2))
        .collect();
    ShaperControl::from_latency_row(me, &row, Duration::ZERO).map_err(|e| e.to_string())
}
