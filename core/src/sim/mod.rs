//! Deterministic simulation: many replicas, one seeded PRNG, a simulated network and clock.
//!
//! Each run draws what the options leave open from its seed (swarm testing): cluster
//! shape, Byzantine replicas and their strategies, crashes, loss, partitions. Faults happen
//! in the first phase; then the network heals, crashed replicas are back, and the run must
//! converge. The checkers in [`checker`] judge every run; a seed replays it exactly.

pub mod adversary;
pub mod checker;
pub mod disk;
pub mod network;
pub mod own_votes;
pub mod rng;
pub mod twins;

use crate::bugs::PlantedBugs;
use crate::client::{ClientId, ClientRegistry, SignedTransfer};
use crate::crypto::{SimKeys, SimSigner, Verifier};
use crate::leader::LeaderSchedule;
use crate::ledger::{Outcome, Transfer};
use crate::replica::{Action, HealthEvent, Input, ReceiptStatus, Replica, ReplicaConfig};
use crate::topology::{ReplicaId, Topology, TopologyError};
use crate::transaction::{OpaqueTx, PayloadKind, Transaction};
use crate::vote_pattern::VotePattern;
use adversary::{Adversary, Coalition, Strategy, STRATEGIES};
use checker::{AdmissionCounts, Observations, Violation};
use disk::{Held, SimDisk};
use network::{Network, Partition};
use own_votes::OwnVotes;
use rng::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use twins::Twin;

/// Simulated microseconds per replica tick.
pub const TICK_US: u64 = 1_000;
/// Accounts in the simulated ledger, and their opening balance.
pub const ACCOUNTS: u64 = 64;
pub const OPENING_BALANCE: u64 = 1_000_000;
/// Share of payments (per mille) that move a large part of a balance.
pub const LARGE_PAYMENT_PER_MILLE: u64 = 60;
/// A client resends a transaction without a receipt after this long.
pub const CLIENT_RETRY_US: u64 = 400_000;
/// Committed global blocks between checkpoints in simulated runs (short runs reach several).
pub const CHECKPOINT_INTERVAL_BLOCKS: u64 = 8;
/// Opaque workload: data lengths run below this (0 included).
pub const OPAQUE_SIM_DATA_BYTES_MAX: u64 = 96;
/// Events one run may process before it is cut (a livelock guard).
pub const EVENTS_PER_RUN_MAX: u64 = 20_000_000;
/// Most health entries one run records in [`RunReport::health`].
pub const HEALTH_ENTRIES_MAX: usize = 10_000;
/// Period of a scripted crash loop, and how long the replica stays down in each period.
pub const CRASH_LOOP_PERIOD_US: u64 = 300_000;
pub const CRASH_LOOP_DOWN_US: u64 = 150_000;

/// One scripted fault (resilience tests). With [`SimOptions::fault`] set, the run draws no
/// random fault: it injects exactly this one at time 0 of the fault phase and heals it at
/// the end of that phase (`fault_ms`), like the random faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The replica that leads global round 1 (best-ranked by the leader schedule) is
    /// Byzantine and equivocates ([`Strategy::Equivocate`]) for the whole run.
    ByzantineLeader,
    /// Nothing crosses between the members of this domain (index) and the rest.
    DomainPartition(u32),
    /// Every replica of every domain of this provider is down until the heal.
    ProviderOutage(String),
    /// This replica's disk is found corrupted: it stops at 1/4 of the fault phase and
    /// restarts at 1/2. The simulator flips no bytes: it models a replica whose corrupted
    /// range was detected (checksums) and dropped on restart, keeping its durable voting
    /// state, and repaired from peers by batch fetch, i.e. [`Replica::recover`], or by
    /// state transfer of a stable checkpoint when peers truncated what it lacks. (Rebuilding
    /// a replica from genesis is not modelled.)
    DiskCorruption(u32),
    /// Every message between replicas takes `extra_ms` longer.
    LatencySpike { extra_ms: u64 },
    /// This replica crashes every [`CRASH_LOOP_PERIOD_US`] and restarts
    /// [`CRASH_LOOP_DOWN_US`] later, during the fault phase.
    CrashLoop(u32),
}

/// What to simulate; `None` fields are drawn from the seed.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    pub replicas: Option<u32>,
    pub domains: Option<u32>,
    pub byzantine: Option<u32>,
    pub crashes: Option<bool>,
    /// Whether one honest replica loses its whole disk (drawn where the fault budget
    /// allows it: see [`Sim::plan_disk_loss`]).
    pub disk_losses: Option<bool>,
    pub shards: Option<u32>,
    /// A fixed topology (the demo's); overrides replicas, domains and shards.
    pub topology: Option<Arc<Topology>>,
    pub bug: Option<String>,
    /// Simulated length of the fault phase and of the stabilisation phase, in ms.
    pub fault_ms: u64,
    pub stable_ms: u64,
    /// Client transactions per simulated second, over the whole cluster.
    pub tx_per_s: u64,
    pub trace: bool,
    /// A scripted fault instead of random ones (see [`Fault`]).
    pub fault: Option<Fault>,
    /// One more scripted crash on top of whatever else is drawn: (replica, down at ms, back
    /// at ms). Long enough, the others truncate past it and it catches up by state transfer.
    pub crash: Option<(ReplicaId, u64, u64)>,
    /// This replica is Byzantine and corrupts every snapshot chunk it serves.
    pub corrupt_snapshots: Option<ReplicaId>,
    /// Every drawn Byzantine replica follows this strategy (instead of one drawn per replica).
    pub strategy: Option<Strategy>,
    /// Whenever every record of an honest replica is durable, restore a copy from them and
    /// check it has the live replica's durable state (slow: for tests of `restore`).
    pub audit_restores: bool,
    /// What the cluster orders, overriding the topology's: the clients' transfers, or
    /// opaque data of the same clients.
    pub transactions: Option<PayloadKind>,
}

impl SimOptions {
    pub fn standard() -> SimOptions {
        SimOptions {
            fault_ms: 2_000,
            stable_ms: 10_000,
            tx_per_s: 400,
            ..SimOptions::default()
        }
    }
}

/// Everything a run measured and found.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub seed: u64,
    pub shape: String,
    pub violations: Vec<Violation>,
    pub committed_blocks: u64,
    /// Transactions executed with a final outcome (applied, or refused by admission).
    pub committed_txs: u64,
    pub submitted_txs: u64,
    pub local_view_changes: u64,
    pub global_timeouts: u64,
    pub vote_pattern_switches: u64,
    pub evidence: BTreeMap<String, u64>,
    /// Submission to first locally final receipt, simulated microseconds.
    pub local_latency_us: Vec<u64>,
    /// Submission to first globally final receipt, simulated microseconds.
    pub global_latency_us: Vec<u64>,
    pub simulated_us: u64,
    pub events: u64,
    pub trace: Vec<String>,
    /// (simulated us, replica, kind, detail): every health event of an honest replica
    /// (kinds `local_view_change`, `global_timeout`, `vote_pattern_switched`, `evidence`),
    /// and in scripted-fault mode what the simulator did (`crash`, `restart`, `partition`,
    /// `latency_spike`, `heal`). At most [`HEALTH_ENTRIES_MAX`] entries.
    pub health: Vec<(u64, ReplicaId, String, String)>,
    /// First block an honest replica executed at or after the heal.
    pub first_commit_after_heal_us: Option<u64>,
    /// Highest global block an honest replica executed before the heal (0: the global
    /// tier made no progress during the fault phase).
    pub height_at_heal: u64,
    /// Transactions a client had a locally or globally final receipt for that are not
    /// executed on every honest replica at the end (must be 0), of domains within their
    /// fault bound.
    pub lost_txs: u64,
    /// Highest stable checkpoint height an honest replica reached.
    pub stable_checkpoint_height: u64,
    /// Snapshots installed by honest replicas (state transfers completed).
    pub snapshots_installed: u64,
    /// Blocks honest replicas executed after installing a snapshot.
    pub executed_after_install: u64,
    /// Snapshot chunks honest replicas rejected (corrupt or not matching the certificate).
    pub snapshot_chunks_rejected: u64,
    /// Most batches, blocks and executed-log entries an honest replica held at the end.
    pub retained_max: (usize, usize, usize),
    /// The strategy of each Byzantine replica of the run.
    pub strategies: Vec<Strategy>,
    /// Restarts from durable records, records a crash lost (not yet durable), and crashes
    /// that tore the record being written.
    pub restores: u64,
    pub lost_records: u64,
    pub torn_tails: u64,
    /// Whole disks lost (the replica rejoined with none); of those replicas, how many had
    /// learned their floors from their peers by the end, and how many voted again in the
    /// global tier (past its floor).
    pub disk_losses: u64,
    /// The disk loss came on top of f Byzantine replicas: the run is judged for safety only,
    /// and `live` says whether it converged anyway.
    pub disk_loss_over_budget: bool,
    pub live: bool,
    pub rejoin_floors_learned: u64,
    pub rejoins_voting_globally: u64,
    /// Restores checked against the live replica (with `audit_restores`).
    pub audited_restores: u64,
    /// Logs compacted at a durable stable checkpoint, the most records one disk held (what a
    /// restart replays: bounded by the checkpoint interval, not the run's length), and the
    /// most records one replica appended in the run.
    pub compactions: u64,
    pub log_records_max: usize,
    pub log_records_appended: u64,
    /// Locally final predictions compared with the global order.
    pub admission: AdmissionCounts,
    /// Debits homed in a domain beyond its fault bound that did not execute: only that
    /// domain may order them, and nothing promises it can (no liveness is checked for them).
    pub pending_beyond_bound: u64,
}

/// Names of the bugs `--plant-bug` accepts, with what each breaks.
pub fn bug_names() -> &'static [(&'static str, &'static str)] {
    crate::bugs::BUG_NAMES
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown bug {0:?}; `ccbft sim --list-bugs` lists them")]
    UnknownBug(String),
    #[error("{byzantine} Byzantine replicas exceed f = {f} for {n} replicas")]
    TooManyByzantine { byzantine: u32, f: u32, n: u32 },
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

#[derive(Debug)]
enum Event {
    Tick(ReplicaId),
    Deliver {
        from: ReplicaId,
        to: ReplicaId,
        message: crate::messages::Message,
    },
    Submit {
        client_tx: usize,
    },
    Crash(ReplicaId),
    /// A crash that also destroys the disk: the restart rejoins with an empty one.
    LoseDisk(ReplicaId),
    Restart(ReplicaId),
    Heal,
    /// A flush of `id`'s disk completed (ignored if the disk crashed since: `epoch`).
    Flushed {
        id: ReplicaId,
        epoch: u64,
        upto: u64,
    },
}

struct ClientTx {
    tx: Transaction,
    domain: u32,
    submitted_us: u64,
    attempts: u32,
    local_final_us: Option<u64>,
    global_final_us: Option<u64>,
}

struct Sim {
    rng: Rng,
    topology: Arc<Topology>,
    keys: SimKeys,
    signers: Vec<SimSigner>,
    replicas: Vec<Replica>,
    /// What each replica was built from, to restore it from its disk.
    configs: Vec<ReplicaConfig>,
    bugs: PlantedBugs,
    disks: Vec<SimDisk>,
    /// Write latencies and torn writes draw from their own stream, so the disk model does
    /// not reshuffle the network's draws.
    disk_rng: Rng,
    /// Disks destroyed and not yet replaced (the replica is down), and the replicas that
    /// rejoined without one.
    wiped: BTreeSet<ReplicaId>,
    rejoined: BTreeSet<ReplicaId>,
    own_votes: OwnVotes,
    down: BTreeSet<ReplicaId>,
    adversaries: BTreeMap<ReplicaId, Adversary<SimSigner>>,
    /// The second instances of the replicas playing [`Strategy::Twins`].
    twins: BTreeMap<ReplicaId, Twin>,
    /// Proofs of misbehaviour against honest replicas (each one is a bug).
    false_accusations: Vec<String>,
    network: Network,
    events: BTreeMap<(u64, u64), Event>,
    next_event: u64,
    now: u64,
    clients: Vec<ClientTx>,
    by_key: BTreeMap<u128, usize>,
    heal_us: u64,
    observations: Observations,
    report: RunReport,
    trace: bool,
    scripted: bool,
    audit_restores: bool,
}

/// When a drawn crash starts and ends: both in the first half of the fault phase's span, so
/// every crash is over before the heal.
fn crash_window(rng: &mut Rng, fault_us: u64) -> (u64, u64) {
    let at = rng.below(fault_us / 2);
    (at, at + 1 + rng.below(fault_us / 2))
}

/// Run one seed.
pub fn run(seed: u64, options: &SimOptions) -> Result<RunReport, SimError> {
    let bugs = match &options.bug {
        None => PlantedBugs::none(),
        Some(name) => PlantedBugs::named(name).ok_or_else(|| SimError::UnknownBug(name.clone()))?,
    };
    let mut sim = Sim::build(seed, options, bugs)?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sim.run_events(options);
        sim.finish()
    }));
    match outcome {
        Ok(report) => Ok(report),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            let mut report = std::mem::take(&mut sim.report);
            report.violations.push(Violation {
                seed,
                what: format!("assertion failed: {what}"),
            });
            Ok(report)
        }
    }
}

impl Sim {
    fn build(seed: u64, options: &SimOptions, bugs: PlantedBugs) -> Result<Sim, SimError> {
        let mut rng = Rng::new(seed);
        let topology = match &options.topology {
            Some(topology) => topology.clone(),
            None => {
                let n = options
                    .replicas
                    .unwrap_or_else(|| *rng.pick(&[4, 5, 7, 7, 10]));
                let d = options.domains.unwrap_or_else(|| 1 + rng.below(3) as u32);
                let shards = options.shards.unwrap_or_else(|| 1 + rng.below(2) as u32);
                Arc::new(Topology::synthetic(n, d, shards)?)
            }
        };
        let topology = match options.transactions {
            Some(kind) if kind != topology.transactions => Arc::new(Topology {
                transactions: kind,
                ..(*topology).clone()
            }),
            _ => topology,
        };
        let quorum = topology.quorum();
        let n = quorum.n;
        let byzantine = if options.fault.is_some() {
            0
        } else {
            options
                .byzantine
                .unwrap_or_else(|| rng.below(u64::from(quorum.f) + 1) as u32)
        };
        if byzantine > quorum.f {
            return Err(SimError::TooManyByzantine {
                byzantine,
                f: quorum.f,
                n,
            });
        }
        let keys = SimKeys::new(n, seed);
        let signers: Vec<SimSigner> = (0..n).map(|id| keys.signer(id)).collect();
        let vote_pattern = if rng.chance(500) {
            VotePattern::Linear
        } else {
            VotePattern::AllToAll
        };
        let rotation_rounds = *rng.pick(&[2, 3, 10]);
        let clients = Arc::new(sim_clients(&keys));
        let configs: Vec<ReplicaConfig> = (0..n)
            .map(|id| ReplicaConfig {
                topology: topology.clone(),
                me: id,
                genesis_accounts: (0..ACCOUNTS).map(|a| (a, OPENING_BALANCE)).collect(),
                clients: clients.clone(),
                request_timeout_ticks: 150,
                global_timeout_min_ticks: 400,
                global_timeout_max_ticks: 3_000,
                ticks_per_ms: 1_000 / TICK_US,
                rotation_rounds,
                vote_pattern,
                checkpoint_interval_blocks: CHECKPOINT_INTERVAL_BLOCKS,
            })
            .collect();
        let replicas = configs
            .iter()
            .map(|config| Replica::with_bugs(config.clone(), &signers[config.me as usize], bugs))
            .collect();
        let mut ids: Vec<ReplicaId> = (0..n).collect();
        let mut strategies: BTreeMap<ReplicaId, Strategy> = BTreeMap::new();
        for _ in 0..byzantine {
            let id = ids.remove(rng.below(ids.len() as u64) as usize);
            let drawn = *rng.pick(STRATEGIES);
            strategies.insert(id, options.strategy.unwrap_or(drawn));
        }
        if options.fault == Some(Fault::ByzantineLeader) {
            if quorum.f == 0 {
                return Err(SimError::TooManyByzantine {
                    byzantine: 1,
                    f: quorum.f,
                    n,
                });
            }
            let leader = LeaderSchedule::new(&topology, rotation_rounds).leader(1);
            strategies.insert(leader, Strategy::Equivocate);
        }
        if let Some(id) = options.corrupt_snapshots {
            if id >= n || byzantine + 1 > quorum.f {
                return Err(SimError::TooManyByzantine {
                    byzantine: byzantine + 1,
                    f: quorum.f,
                    n,
                });
            }
            strategies.insert(id, Strategy::CorruptSnapshots);
        }
        // The Byzantine replicas coordinate: each can sign with every member's key.
        let members: Vec<ReplicaId> = strategies.keys().copied().collect();
        let coalition = Coalition {
            signers: members.iter().map(|&id| keys.signer(id)).collect(),
            members,
            topology: topology.clone(),
            rotation_rounds,
        };
        let adversaries: BTreeMap<ReplicaId, Adversary<SimSigner>> = strategies
            .iter()
            .map(|(&id, &strategy)| {
                let adversary = Adversary::new(strategy, keys.signer(id), coalition.clone());
                (id, adversary)
            })
            .collect();
        let twins: BTreeMap<ReplicaId, Twin> = strategies
            .iter()
            .filter(|(_, &strategy)| strategy == Strategy::Twins)
            .map(|(&id, _)| {
                let config = configs[id as usize].clone();
                let replica = Replica::with_bugs(config, &signers[id as usize], bugs);
                (id, Twin::new(replica, n, &mut rng))
            })
            .collect();
        let byzantine = adversaries.len() as u32;
        let heal_us = options.fault_ms * 1_000;
        let shape = format!(
            "n={n} domains={} shards={} byzantine={byzantine} pattern={vote_pattern:?} rotation={rotation_rounds} strategies={:?}",
            topology.domains.len(),
            topology.shards,
            adversaries.values().map(|a| a.strategy).collect::<Vec<Strategy>>()
        );
        let mut sim = Sim {
            rng,
            network: Network::new(&topology),
            topology,
            keys,
            signers,
            replicas,
            disks: (0..n).map(|_| SimDisk::default()).collect(),
            disk_rng: Rng::new(seed ^ 0xd15c_0000_0000_0000),
            wiped: BTreeSet::new(),
            rejoined: BTreeSet::new(),
            own_votes: OwnVotes::default(),
            configs,
            bugs,
            down: BTreeSet::new(),
            adversaries,
            twins,
            false_accusations: Vec::new(),
            events: BTreeMap::new(),
            next_event: 0,
            now: 0,
            clients: Vec::new(),
            by_key: BTreeMap::new(),
            heal_us,
            observations: Observations::default(),
            report: RunReport {
                seed,
                shape,
                strategies: strategies.values().copied().collect(),
                ..RunReport::default()
            },
            trace: options.trace,
            scripted: options.fault.is_some(),
            audit_restores: options.audit_restores,
        };
        sim.plan(options);
        Ok(sim)
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.next_event += 1;
        self.events.insert((at, self.next_event), event);
    }

    fn honest(&self, id: ReplicaId) -> bool {
        !self.adversaries.contains_key(&id)
    }

    /// Lay out the run: ticks, the workload, and the faults of the first phase.
    fn plan(&mut self, options: &SimOptions) {
        let n = self.topology.n();
        for id in 0..n {
            let offset = self.rng.below(TICK_US);
            self.schedule(offset, Event::Tick(id));
        }
        self.plan_workload(options);
        self.plan_faults(options);
        if let Some((id, down_ms, up_ms)) = options.crash {
            assert!(
                down_ms < up_ms && id < n,
                "a crash of a replica, then its restart"
            );
            self.schedule(down_ms * 1_000, Event::Crash(id));
            self.schedule(up_ms * 1_000, Event::Restart(id));
        }
        self.schedule(self.heal_us, Event::Heal);
    }

    fn plan_workload(&mut self, options: &SimOptions) {
        let total = options.tx_per_s * options.fault_ms / 1_000;
        for i in 0..total {
            let at = i * options.fault_ms * 1_000 / total.max(1);
            let from = self.rng.below(ACCOUNTS);
            let to = (from + 1 + self.rng.below(ACCOUNTS - 1)) % ACCOUNTS;
            let amount = 1 + self.rng.below(OPENING_BALANCE / 100);
            let amount = large_payment(self.report.seed, i).unwrap_or(amount);
            let transfer = Transfer {
                key: (u128::from(self.report.seed) << 64) | u128::from(i),
                from,
                to,
                amount,
            };
            let tx: Transaction = match self.topology.transactions {
                PayloadKind::Transfers => sim_client_sign(&self.keys, transfer).into(),
                PayloadKind::Opaque => self.opaque_tx(&transfer).into(),
            };
            let drawn = self.rng.below(self.topology.domains.len() as u64) as u32;
            // A transfer goes to its debited account's home domain, the only one that takes
            // it; opaque data to any domain.
            let domain = match &tx {
                Transaction::Transfer(_) => {
                    crate::client::home_domain(from, self.topology.domains.len() as u32)
                }
                Transaction::Opaque(_) => drawn,
            };
            self.by_key.insert(tx.key(), self.clients.len());
            self.clients.push(ClientTx {
                tx,
                domain,
                submitted_us: at,
                attempts: 0,
                local_final_us: None,
                global_final_us: None,
            });
            self.schedule(
                at,
                Event::Submit {
                    client_tx: self.clients.len() - 1,
                },
            );
            // A client that replays a request (the same idempotency key) elsewhere.
            if self.rng.chance(30) {
                let again = at + 1 + self.rng.below(50_000);
                self.schedule(
                    again,
                    Event::Submit {
                        client_tx: self.clients.len() - 1,
                    },
                );
            }
        }
        self.report.submitted_txs = total;
    }

    /// An opaque transaction of the debiting client, with data whose length follows from the
    /// key: no draw, so a seed runs the same faults whatever the cluster orders.
    fn opaque_tx(&self, like: &Transfer) -> OpaqueTx {
        let client = ClientId::try_from(like.from).expect("simulated accounts fit a client id");
        let len = (like.key as u64 % OPAQUE_SIM_DATA_BYTES_MAX) as usize;
        let data: Vec<u8> = like
            .key
            .to_le_bytes()
            .iter()
            .cycle()
            .take(len)
            .copied()
            .collect();
        OpaqueTx {
            client,
            key: like.key,
            signature: self
                .keys
                .sign_client(client, &OpaqueTx::signed_bytes(client, like.key, &data)),
            data: data.into(),
        }
    }

    fn plan_faults(&mut self, options: &SimOptions) {
        let fault_us = options.fault_ms * 1_000;
        if let Some(fault) = &options.fault {
            self.plan_scripted(fault, fault_us);
            return;
        }
        self.network.loss_per_mille = *self.rng.pick(&[0, 0, 5, 20]);
        if self.rng.chance(400) {
            let n = self.topology.n();
            let side: BTreeSet<ReplicaId> = if self.rng.chance(500) {
                let domain = self.rng.below(self.topology.domains.len() as u64) as u32;
                self.topology.domain_members(domain).into_iter().collect()
            } else {
                (0..n).filter(|_| self.rng.chance(300)).collect()
            };
            self.network.partition = if self.rng.chance(500) {
                Partition::Symmetric { side }
            } else {
                Partition::Asymmetric { side }
            };
        }
        if self.rng.chance(200) {
            self.network.slow = [self.rng.below(u64::from(self.topology.n())) as u32].into();
            self.network.slow_extra_us = 100_000;
        }
        let crashes = options.crashes.unwrap_or_else(|| self.rng.chance(500));
        // Up to f honest replicas crash, however many are Byzantine: a replica restarted from
        // its durable records is honest, so safety does not count it against f, and every
        // crash ends before the heal, so liveness is judged with all of them back.
        let budget = self.topology.quorum().f;
        if crashes && budget > 0 {
            let honest: Vec<ReplicaId> = (0..self.topology.n())
                .filter(|&id| self.honest(id))
                .collect();
            for _ in 0..1 + self.rng.below(u64::from(budget)) {
                let id = *self.rng.pick(&honest);
                let (at, back) = crash_window(&mut self.rng, fault_us);
                self.schedule(at, Event::Crash(id));
                self.schedule(back, Event::Restart(id));
            }
        }
        self.plan_disk_loss(options, fault_us);
    }

    /// One honest replica may lose its whole disk in the fault phase. It then counts
    /// against the fault bounds until it has learned its floors (it signs nothing before),
    /// so it is drawn only where they allow one more fault: the Byzantine replicas leave
    /// global room, its domain has none and tolerates a silent member, and enough peers
    /// exist to answer it. Drawn from a stream of its own, so the other draws stay the same.
    fn plan_disk_loss(&mut self, options: &SimOptions, fault_us: u64) {
        let mut rng = Rng::new(self.report.seed ^ 0xd15c_1055_0000_0000);
        let quorum = self.topology.quorum();
        // With f Byzantine replicas already, a replica without its disk is one fault more than
        // the global tier tolerates: safety must still hold (it signs nothing it may have signed
        // before), but progress is not promised, so such runs are drawn more rarely and judged
        // for safety alone.
        let over_budget = self.adversaries.len() as u32 + 1 > quorum.f;
        let chance = if over_budget { 100 } else { 400 };
        if !options.disk_losses.unwrap_or_else(|| rng.chance(chance))
            || crate::replica::answers_needed(&quorum) > quorum.n - 1
        {
            return;
        }
        let candidates: Vec<ReplicaId> = (0..self.topology.n())
            .filter(|&id| self.honest(id) && self.domain_allows_disk_loss(id))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let id = *rng.pick(&candidates);
        let (at, back) = crash_window(&mut rng, fault_us);
        self.report.disk_loss_over_budget = over_budget;
        self.schedule(at, Event::LoseDisk(id));
        self.schedule(back, Event::Restart(id));
    }

    fn domain_allows_disk_loss(&self, id: ReplicaId) -> bool {
        let domain = self.topology.domain_of(id);
        let quorum = self.topology.domain_quorum(domain);
        let members = self.topology.domain_members(domain);
        members.iter().all(|&m| self.honest(m))
            && quorum.n > quorum.q
            && crate::replica::answers_needed(&quorum) < quorum.n
    }

    /// Inject exactly `fault` (no random draw); the heal at `heal_us` ends it.
    fn plan_scripted(&mut self, fault: &Fault, fault_us: u64) {
        let n = self.topology.n();
        match fault {
            Fault::ByzantineLeader => {} // the adversary was chosen in `build`
            Fault::DomainPartition(domain) => {
                let side: BTreeSet<ReplicaId> =
                    self.topology.domain_members(*domain).into_iter().collect();
                let name = self
                    .topology
                    .domains
                    .get(*domain as usize)
                    .map(|d| d.name.clone())
                    .unwrap_or_default();
                for &id in &side {
                    self.record_health(id, "partition", format!("domain {name} cut off"));
                }
                self.network.partition = Partition::Symmetric { side };
            }
            Fault::ProviderOutage(provider) => {
                for (index, domain) in self.topology.domains.clone().iter().enumerate() {
                    if domain.provider.eq_ignore_ascii_case(provider) {
                        for id in self.topology.domain_members(index as u32) {
                            self.schedule(0, Event::Crash(id));
                            self.schedule(self.heal_us, Event::Restart(id));
                        }
                    }
                }
            }
            Fault::DiskCorruption(id) => {
                let id = (*id).min(n - 1);
                self.schedule(fault_us / 4, Event::Crash(id));
                self.schedule(fault_us / 2, Event::Restart(id));
            }
            Fault::LatencySpike { extra_ms } => {
                self.network.slow = (0..n).collect();
                self.network.slow_extra_us = extra_ms * 1_000;
                for id in 0..n {
                    self.record_health(
                        id,
                        "latency_spike",
                        format!("+{extra_ms} ms on every message"),
                    );
                }
            }
            Fault::CrashLoop(id) => {
                let id = (*id).min(n - 1);
                let mut at = 0;
                while at + CRASH_LOOP_DOWN_US < fault_us {
                    self.schedule(at, Event::Crash(id));
                    self.schedule(at + CRASH_LOOP_DOWN_US, Event::Restart(id));
                    at += CRASH_LOOP_PERIOD_US;
                }
            }
        }
    }

    /// Record one health entry (bounded); simulator-side entries only in scripted mode.
    fn record_health(&mut self, id: ReplicaId, kind: &str, detail: String) {
        if self.report.health.len() < HEALTH_ENTRIES_MAX {
            self.report
                .health
                .push((self.now, id, kind.to_string(), detail));
        }
    }

    fn run_events(&mut self, options: &SimOptions) {
        let end = (options.fault_ms + options.stable_ms) * 1_000;
        while let Some(((at, _), event)) = self.events.pop_first() {
            if at > end || self.report.events >= EVENTS_PER_RUN_MAX {
                break;
            }
            self.now = at;
            self.report.events += 1;
            self.handle(event);
        }
        self.report.simulated_us = self.now;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(id) => {
                self.schedule(self.now + TICK_US, Event::Tick(id));
                self.tick_twin(id);
                if !self.down.contains(&id) {
                    self.step(id, Input::Tick);
                    self.inject(id);
                }
            }
            Event::Deliver { from, to, message } => {
                if self.twins.get(&to).is_some_and(|twin| twin.hears(from)) {
                    self.step_twin(to, Input::Message { from, message });
                } else if !self.down.contains(&to) {
                    if let Some(adversary) = self.adversaries.get_mut(&to) {
                        adversary.observe(&message);
                    }
                    self.step(to, Input::Message { from, message });
                }
            }
            Event::Submit { client_tx } => self.submit(client_tx),
            Event::Crash(id) => {
                self.trace_line(format!("crash r{id}"));
                if self.scripted && !self.down.contains(&id) {
                    self.record_health(id, "crash", format!("r{id} stopped"));
                }
                if self.down.insert(id) {
                    let loss = self.disks[id as usize].crash(&mut self.disk_rng);
                    self.report.lost_records += loss.lost;
                    self.report.torn_tails += u64::from(loss.torn);
                }
            }
            Event::LoseDisk(id) => {
                self.trace_line(format!("r{id} loses its disk"));
                self.handle(Event::Crash(id));
                if self.wiped.insert(id) {
                    // A flush in flight to the old disk must not land on the new one.
                    let epoch = self.disks[id as usize].epoch + 1;
                    self.disks[id as usize] = SimDisk::default();
                    self.disks[id as usize].epoch = epoch;
                    self.report.disk_losses += 1;
                    self.own_votes.disk_lost(id);
                }
            }
            Event::Restart(id) => {
                if self.down.remove(&id) {
                    self.trace_line(format!("restart r{id} from durable state"));
                    if self.scripted {
                        self.record_health(
                            id,
                            "restart",
                            format!("r{id} restarted from durable state"),
                        );
                    }
                    self.restore(id);
                }
            }
            Event::Heal => {
                self.trace_line("heal: network reliable, all replicas up".into());
                if self.scripted {
                    for id in self.down.clone() {
                        self.record_health(id, "restart", format!("r{id} restarted at heal"));
                    }
                    self.record_health(0, "heal", "fault phase over: network reliable".into());
                }
                self.network.heal();
                for id in std::mem::take(&mut self.down) {
                    self.restore(id);
                }
            }
            Event::Flushed { id, epoch, upto } => self.flushed(id, epoch, upto),
        }
    }

    /// Restart a replica from the records its disk kept, and nothing else.
    fn restore(&mut self, id: ReplicaId) {
        if self.wiped.remove(&id) {
            return self.rejoin(id);
        }
        let index = id as usize;
        let disk = &self.disks[index];
        self.replicas[index] = Replica::restore_with_bugs(
            self.configs[index].clone(),
            &self.signers[index],
            self.bugs,
            &disk.log(),
            disk.last(),
        );
        self.report.restores += 1;
        if !self.honest(id) {
            return;
        }
        let replica = &self.replicas[index];
        self.observations.restarted(id, replica.executed_height());
        let (forgotten, sent) = self
            .own_votes
            .forgotten_at_restart(id, |message| replica.remembers(message));
        let records = self.disks[index].held();
        self.trace_line(format!(
            "restore r{id} from {records} records: {sent} votes sent since the last restart, {} forgotten",
            forgotten.len()
        ));
        if let Some(first) = forgotten.first() {
            self.report.violations.push(Violation {
                seed: self.report.seed,
                what: format!(
                    "durability: restored r{id} forgot {} message(s) it sent, first {}",
                    forgotten.len(),
                    OwnVotes::describe(first)
                ),
            });
        }
    }

    /// Start a replica on a new, empty disk: it rejoins ([`Replica::rejoin`]).
    fn rejoin(&mut self, id: ReplicaId) {
        let index = id as usize;
        let nonce = self.disk_rng.next_u64();
        let (replica, actions) = Replica::rejoin_with_bugs(
            self.configs[index].clone(),
            &self.signers[index],
            self.bugs,
            nonce,
        )
        .expect("disk losses are drawn only where a rejoin is possible");
        self.replicas[index] = replica;
        self.rejoined.insert(id);
        self.observations.restarted(id, 0);
        self.trace_line(format!("r{id} rejoins on an empty disk"));
        self.settle(id, actions);
    }

    fn flushed(&mut self, id: ReplicaId, epoch: u64, upto: u64) {
        let disk = &mut self.disks[id as usize];
        if disk.epoch != epoch {
            return; // the replica crashed while this write was in flight
        }
        let (free, next) = disk.flushed(upto, &mut self.disk_rng);
        if disk.compact_if_due(self.topology.shards) {
            self.report.compactions += 1;
        }
        self.report.log_records_max = self.report.log_records_max.max(disk.held());
        self.report.log_records_appended = self.report.log_records_appended.max(disk.last());
        self.schedule_flush(id, next);
        for held in free {
            self.send(id, held.to, held.message);
        }
        if !self.down.contains(&id) {
            self.step(id, Input::Durable { upto });
            self.audit_restore(id);
        }
    }

    /// With every record durable, a restore from them has the live replica's durable state.
    fn audit_restore(&mut self, id: ReplicaId) {
        let index = id as usize;
        let disk = &self.disks[index];
        if !self.audit_restores || !self.honest(id) || disk.durable() != disk.last() {
            return;
        }
        self.report.audited_restores += 1;
        let records = disk.log();
        let restored = Replica::restore_with_bugs(
            self.configs[index].clone(),
            &self.signers[index],
            self.bugs,
            &records,
            disk.last(),
        );
        let (live, copy) = (
            self.replicas[index].durable_state(),
            restored.durable_state(),
        );
        if live != copy {
            self.report.violations.push(Violation {
                seed: self.report.seed,
                what: format!(
                    "restore: r{id} from {} records has {copy:?}, live {live:?}",
                    records.len()
                ),
            });
        }
    }

    fn schedule_flush(&mut self, id: ReplicaId, flush: Option<(u64, u64)>) {
        if let Some((upto, latency_us)) = flush {
            let epoch = self.disks[id as usize].epoch;
            self.schedule(self.now + latency_us, Event::Flushed { id, epoch, upto });
        }
    }

    /// A client sends (or resends) a transaction: first to a replica of its own domain, and
    /// after two unanswered tries to any replica (failover to another domain).
    fn submit(&mut self, index: usize) {
        let client = &mut self.clients[index];
        if client.global_final_us.is_some() {
            return;
        }
        client.attempts += 1;
        let (tx, domain, attempts) = (client.tx.clone(), client.domain, client.attempts);
        // Two tries at home, then fail over domain by domain (DESIGN.md: clients fail over to
        // another domain's replicas), so a client never keeps retrying a stuck domain by luck.
        let domains = self.topology.domains.len() as u32;
        let at = match attempts {
            _ if tx.as_transfer().is_some() => domain, // only the home domain takes it
            0..=2 => domain,
            k => (domain + k - 2) % domains,
        };
        let candidates: Vec<ReplicaId> = self.topology.domain_members(at);
        let target = *self.rng.pick(&candidates);
        if self.now < self.heal_us + CLIENT_RETRY_US * 20 {
            self.schedule(
                self.now + CLIENT_RETRY_US,
                Event::Submit { client_tx: index },
            );
        }
        if !self.down.contains(&target) {
            self.step(target, Input::Client(tx));
        }
    }

    fn step(&mut self, id: ReplicaId, input: Input) {
        let signer = &self.signers[id as usize];
        let actions = self.replicas[id as usize].step(input, signer);
        self.settle(id, actions);
    }

    /// Carry out a replica's actions, and step it with what they give back.
    fn settle(&mut self, id: ReplicaId, actions: Vec<Action>) {
        let mut inputs = Vec::new();
        let mut actions = actions;
        loop {
            for action in actions {
                if let Some(next) = self.perform(id, action) {
                    inputs.push(next);
                }
            }
            let Some(input) = inputs.pop() else {
                break;
            };
            let signer = &self.signers[id as usize];
            actions = self.replicas[id as usize].step(input, signer);
        }
        if self.honest(id) {
            // Memory is a safety property too: a bound that does not hold is an attack.
            self.replicas[id as usize].assert_bounded();
        }
    }

    /// The second instance of a Twins replica ticks like any replica (it is another
    /// machine: the first one's crashes do not stop it), and its partition is redrawn
    /// every [`twins::REPARTITION_US`].
    fn tick_twin(&mut self, id: ReplicaId) {
        let n = self.topology.n();
        let Some(twin) = self.twins.get_mut(&id) else {
            return;
        };
        if self.now % twins::REPARTITION_US < TICK_US {
            twin.repartition(n, &mut self.rng);
        }
        self.step_twin(id, Input::Tick);
    }

    /// Step a twin: it sends only to its own peers, and its records go nowhere (a Byzantine
    /// replica owes no durability); everything else is carried out as for any replica.
    fn step_twin(&mut self, id: ReplicaId, input: Input) {
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let Some(twin) = self.twins.get_mut(&id) else {
                return;
            };
            let actions = twin.replica.step(input, &self.signers[id as usize]);
            let peers = twin.peers.clone();
            for action in actions {
                match action {
                    Action::Send { to, message, .. } => {
                        let to = to.into_iter().filter(|p| peers.contains(p)).collect();
                        self.deliver_later(id, vec![(to, message, 0)]);
                    }
                    Action::Persist { .. } => {}
                    action => inputs.extend(self.perform(id, action)),
                }
            }
        }
    }

    /// Carry out one action; a verification answers at once with the next input.
    fn perform(&mut self, id: ReplicaId, action: Action) -> Option<Input> {
        match action {
            Action::Send { to, message, after } => {
                let held = Held { after, to, message };
                if self.bugs.send_before_durable {
                    self.send(id, held.to, held.message);
                } else if let Some(Held { to, message, .. }) = self.disks[id as usize].hold(held) {
                    self.send(id, to, message);
                }
            }
            Action::Verify { token, checks } => {
                let failed = self.keys.failed(&checks);
                return Some(Input::Verified { token, failed });
            }
            Action::Persist { seq, record } => {
                let flush = self.disks[id as usize].append(seq, record, &mut self.disk_rng);
                self.schedule_flush(id, flush);
            }
            Action::Receipt { key, status } => self.receipt(id, key, status),
            Action::Deliver { transactions, .. } => self.delivered(id, transactions),
            Action::Executed {
                height,
                block,
                parent,
                state_root,
                transactions,
            } => {
                if self.honest(id) {
                    if self.now < self.heal_us {
                        self.report.height_at_heal = self.report.height_at_heal.max(height);
                    }
                    if self.now >= self.heal_us && self.report.first_commit_after_heal_us.is_none()
                    {
                        self.report.first_commit_after_heal_us = Some(self.now);
                    }
                    self.observations
                        .executed(id, height, block, parent, state_root);
                    self.trace_line(format!(
                        "r{id} executed height {height} ({transactions} txs) root {:02x?}",
                        &state_root[..4]
                    ));
                }
            }
            Action::Evidence(evidence) => {
                if evidence.proof().is_some() && self.honest(evidence.offender()) {
                    // Proofs carry the offender's own signatures: one against an honest
                    // replica means it signed two conflicting messages.
                    self.false_accusations.push(format!(
                        "honest replica r{} proven to {} (found by r{id})",
                        evidence.offender(),
                        evidence.kind()
                    ));
                }
                *self
                    .report
                    .evidence
                    .entry(evidence.kind().to_string())
                    .or_default() += 1;
                self.trace_line(format!(
                    "r{id} evidence: {} by r{}",
                    evidence.kind(),
                    evidence.offender()
                ));
            }
            Action::Health(event) => self.health(id, event),
            Action::SnapshotInstalled {
                height,
                block,
                state_root,
            } => {
                if self.honest(id) {
                    self.report.snapshots_installed += 1;
                    self.observations.installed(id, height, block, state_root);
                    self.trace_line(format!(
                        "r{id} installed snapshot of height {height} root {:02x?}",
                        &state_root[..4]
                    ));
                }
            }
        }
        None
    }

    fn send(&mut self, from: ReplicaId, to: Vec<ReplicaId>, message: crate::messages::Message) {
        let to = match self.twins.get(&from) {
            Some(twin) => to.into_iter().filter(|&p| !twin.hears(p)).collect(),
            None => to,
        };
        if self.honest(from) {
            if let Some(what) = self.own_votes.observe(from, &message) {
                self.report.violations.push(Violation {
                    seed: self.report.seed,
                    what,
                });
            }
        }
        let outgoing = match self.adversaries.get_mut(&from) {
            Some(adversary) => adversary.transform(to, message, &mut self.rng),
            None => vec![(to, message, 0)],
        };
        self.deliver_later(from, outgoing);
    }

    /// What a Byzantine replica sends on its own this tick.
    fn inject(&mut self, id: ReplicaId) {
        if let Some(adversary) = self.adversaries.get_mut(&id) {
            let outgoing = adversary.on_tick(&mut self.rng);
            self.deliver_later(id, outgoing);
        }
    }

    fn deliver_later(&mut self, from: ReplicaId, outgoing: Vec<adversary::Outgoing>) {
        for (targets, message, extra_us) in outgoing {
            for target in targets {
                if let Some(delay) = self.network.delay_us(from, target, &mut self.rng) {
                    let at = self.now + delay + extra_us;
                    self.schedule(
                        at,
                        Event::Deliver {
                            from,
                            to: target,
                            message: message.clone(),
                        },
                    );
                }
            }
        }
    }

    fn receipt(&mut self, id: ReplicaId, key: u128, status: ReceiptStatus) {
        if !self.honest(id) {
            return;
        }
        if let ReceiptStatus::GloballyFinal {
            outcome, height, ..
        }
        | ReceiptStatus::Delivered { outcome, height } = status
        {
            self.observations
                .outcome(id, key, height, outcome == Outcome::Applied);
        }
        let Some(&index) = self.by_key.get(&key) else {
            self.observations.foreign(id, key);
            return;
        };
        match status {
            ReceiptStatus::LocallyFinal { lane, seq, outcome } => {
                self.observations.predicted(id, key, lane, seq, outcome)
            }
            ReceiptStatus::GloballyFinal {
                lane, seq, outcome, ..
            } => self.observations.settled(key, lane, seq, outcome),
            _ => {}
        }
        let client = &mut self.clients[index];
        match status {
            ReceiptStatus::GloballyFinal { transfer, .. }
                if client.tx.as_transfer().map(|tx| tx.transfer) != Some(transfer) =>
            {
                self.observations.altered(id, key);
            }
            ReceiptStatus::Rejected { reason } => self.observations.rejected(id, key, reason),
            ReceiptStatus::LocallyFinal { .. } | ReceiptStatus::LocallyOrdered { .. }
                if client.local_final_us.is_none() =>
            {
                client.local_final_us = Some(self.now);
                self.report
                    .local_latency_us
                    .push(self.now - client.submitted_us);
            }
            ReceiptStatus::GloballyFinal { .. } | ReceiptStatus::Delivered { .. }
                if client.global_final_us.is_none() =>
            {
                client.global_final_us = Some(self.now);
                self.report
                    .global_latency_us
                    .push(self.now - client.submitted_us);
            }
            _ => {}
        }
    }

    /// An honest replica delivers only what a client signed: the exact bytes submitted.
    fn delivered(&mut self, id: ReplicaId, transactions: Vec<OpaqueTx>) {
        if !self.honest(id) {
            return;
        }
        for tx in transactions {
            let key = tx.ledger_key();
            match self.by_key.get(&key) {
                None => self.observations.foreign(id, key),
                Some(&index) if self.clients[index].tx != Transaction::Opaque(tx.clone()) => {
                    self.observations.altered(id, key)
                }
                Some(_) => {}
            }
        }
    }

    fn health(&mut self, id: ReplicaId, event: HealthEvent) {
        match &event {
            HealthEvent::LocalViewChange { .. } => self.report.local_view_changes += 1,
            HealthEvent::GlobalTimeout { .. } => self.report.global_timeouts += 1,
            HealthEvent::VotePatternSwitched { .. } => self.report.vote_pattern_switches += 1,
            HealthEvent::Evidence { .. }
            | HealthEvent::CheckFailed { .. }
            | HealthEvent::Diverged { .. }
            | HealthEvent::SnapshotChunkRejected { .. } => {}
        }
        if self.honest(id) {
            let (kind, detail) = match &event {
                HealthEvent::LocalViewChange { lane, view } => {
                    ("local_view_change", format!("lane {lane:?} view {view:?}"))
                }
                HealthEvent::GlobalTimeout { round, leader } => {
                    ("global_timeout", format!("round {round} leader r{leader}"))
                }
                HealthEvent::VotePatternSwitched {
                    round,
                    from,
                    to,
                    reason,
                } => (
                    "vote_pattern_switched",
                    format!("round {round} {from:?} -> {to:?}: {reason}"),
                ),
                HealthEvent::Evidence { kind, offender } => {
                    ("evidence", format!("{kind} by r{offender}"))
                }
                HealthEvent::CheckFailed {
                    from,
                    check,
                    signer,
                } => (
                    "check_failed",
                    format!("{check} (signer {signer:?}) from r{from}"),
                ),
                HealthEvent::Diverged { height } => {
                    self.observations.diverged(id, *height);
                    (
                        "diverged",
                        format!("state differs from checkpoint {height}"),
                    )
                }
                HealthEvent::SnapshotChunkRejected { peer, height } => {
                    self.report.snapshot_chunks_rejected += 1;
                    (
                        "snapshot_chunk_rejected",
                        format!("chunk from r{peer} for checkpoint {height}"),
                    )
                }
            };
            self.record_health(id, kind, detail);
        }
        if self.trace {
            self.trace_line(format!("r{id} {event:?}"));
        }
    }

    fn trace_line(&mut self, line: String) {
        if self.trace {
            self.report
                .trace
                .push(format!("{:>9.3} ms  {line}", self.now as f64 / 1_000.0));
        }
    }

    fn finish(&mut self) -> RunReport {
        for id in 0..self.topology.n() {
            let line = format!(
                "end r{id}{}: {}",
                if self.honest(id) { "" } else { " (byzantine)" },
                self.replicas[id as usize].describe()
            );
            self.trace_line(line);
        }
        let honest: Vec<&Replica> = self
            .replicas
            .iter()
            .filter(|r| self.honest(r.id()))
            .collect();
        let byzantine_per_domain = |domain: u32| {
            self.adversaries
                .keys()
                .filter(|&&id| self.topology.domain_of(id) == domain)
                .count() as u32
        };
        let beyond_bound =
            |domain: u32| byzantine_per_domain(domain) > self.topology.domain_quorum(domain).f;
        // Debits of an account homed in a domain beyond its fault bound are not promised to
        // make progress: only that domain may order them (DESIGN.md, "Execution").
        let promised: BTreeSet<u128> = self
            .clients
            .iter()
            .filter(|c| c.tx.as_transfer().is_none() || !beyond_bound(c.domain))
            .map(|c| c.tx.key())
            .collect();
        let unfinished = |key: u128| {
            honest
                .iter()
                .any(|r| !self.observations.finalised_on(r.id(), key))
        };
        if self.trace {
            let lines: Vec<String> = self
                .clients
                .iter()
                .filter(|c| promised.contains(&c.tx.key()) && unfinished(c.tx.key()))
                .map(|c| describe_unfinished(c, &self.topology))
                .collect();
            let now_ms = self.now as f64 / 1_000.0;
            for line in lines {
                self.report.trace.push(format!("{now_ms:>9.3} ms  {line}"));
            }
        }
        let mut violations = self
            .observations
            .check(self.report.seed, &honest, &promised);
        self.report.pending_beyond_bound = self
            .clients
            .iter()
            .filter(|c| !promised.contains(&c.tx.key()))
            .filter(|c| unfinished(c.tx.key()))
            .count() as u64;
        let (reversals, admission) = self
            .observations
            .check_admission(self.report.seed, beyond_bound);
        violations.extend(reversals);
        self.report.admission = admission;
        self.report.live = !violations.iter().any(|v| v.what.starts_with("liveness:"));
        if self.report.disk_loss_over_budget {
            violations.retain(|v| !v.what.starts_with("liveness:"));
        }
        violations.extend(self.false_accusations.iter().take(1).map(|what| Violation {
            seed: self.report.seed,
            what: what.clone(),
        }));
        violations.extend(checker::check_local_agreement(
            self.report.seed,
            &self.topology,
            &honest,
            byzantine_per_domain,
        ));
        let lost = self
            .clients
            .iter()
            .filter(|c| c.local_final_us.is_some() || c.global_final_us.is_some())
            // A domain beyond its fault bound may lose what it made locally final: those
            // count in `pending_beyond_bound`.
            .filter(|c| promised.contains(&c.tx.key()))
            .filter(|c| unfinished(c.tx.key()))
            .count() as u64;
        let rejoined = |passed: fn(&Replica) -> bool| {
            self.rejoined
                .iter()
                .filter(|&&id| passed(&self.replicas[id as usize]))
                .count() as u64
        };
        let floors_learned = rejoined(Replica::rejoin_floors_known);
        let voting_globally = rejoined(Replica::global_floor_passed);
        let mut report = std::mem::take(&mut self.report);
        report.lost_txs = lost;
        report.rejoin_floors_learned = floors_learned;
        report.rejoins_voting_globally = voting_globally;
        // Violations found during the run (self-contradiction, forgotten votes, failed
        // restores) come first, then the end-of-run checkers'.
        report.violations.extend(violations);
        report.committed_blocks = honest
            .iter()
            .map(|r| r.executed_height())
            .max()
            .unwrap_or(0);
        report.stable_checkpoint_height = honest
            .iter()
            .filter_map(|r| r.stable_checkpoint().map(|c| c.id.height))
            .max()
            .unwrap_or(0);
        report.executed_after_install = self.observations.executed_after_install();
        for replica in &honest {
            let (batches, blocks, log) = replica.retained();
            let max = &mut report.retained_max;
            *max = (max.0.max(batches), max.1.max(blocks), max.2.max(log));
        }
        report.committed_txs = honest
            .iter()
            .map(|r| r.ledger().executed_count() + r.ledger().rejected_count())
            .max()
            .unwrap_or(0);
        report
    }
}

/// A trace line for a promised transaction some honest replica has not executed.
fn describe_unfinished(client: &ClientTx, topology: &Topology) -> String {
    let lane = client.tx.as_transfer().map(|t| {
        let lane = crate::client::home_lane(
            t.transfer.from,
            topology.domains.len() as u32,
            topology.shards,
        );
        format!(
            " from {} home lane {}/{}",
            t.transfer.from, lane.domain, lane.shard
        )
    });
    format!(
        "unfinished {:#x}{} domain {} submitted {} us, {} attempts, local final {:?}, global final {:?}",
        client.tx.key(),
        lane.unwrap_or_default(),
        client.domain,
        client.submitted_us,
        client.attempts,
        client.local_final_us,
        client.global_final_us,
    )
}

/// Now and then a payment of a large part of the balance, so that debits of one account
/// compete and home-lane admission refuses some. Chosen by a hash of the transfer's place,
/// not by a draw, so that the rest of a seed's run is what it was without them.
fn large_payment(seed: u64, index: u64) -> Option<u64> {
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(&index.to_le_bytes(), seed);
    (hash % 1_000 < LARGE_PAYMENT_PER_MILLE)
        .then(|| OPENING_BALANCE / 4 + (hash >> 10) % (OPENING_BALANCE / 2))
}

/// The simulated clients: client `a` owns account `a`, with its key from the run's key set.
pub fn sim_clients(keys: &SimKeys) -> ClientRegistry {
    let ids = 0..ACCOUNTS as ClientId;
    ClientRegistry::new(
        ids.clone().map(|id| (id, keys.client_key(id))),
        ids.map(|id| (u64::from(id), id)),
    )
    .expect("distinct simulated clients")
}

/// `transfer` signed by the owner of its debited account (see [`sim_clients`]).
pub fn sim_client_sign(keys: &SimKeys, transfer: Transfer) -> SignedTransfer {
    let client = ClientId::try_from(transfer.from).expect("simulated accounts fit a client id");
    SignedTransfer {
        transfer,
        client,
        signature: keys.sign_client(client, &SignedTransfer::signed_bytes(&transfer, client)),
    }
}
