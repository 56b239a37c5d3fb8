//! One replica: its domain's PBFT lanes, the global HotStuff instance, the batch store and
//! execution, behind one sans-IO `step(input) -> actions` interface.
//!
//! Incoming messages are held until the host has verified every signature they carry
//! ([`Action::Verify`], answered by [`Input::Verified`]); the runtime batches these checks.
//! Actions come out in the order the host must honour: a `Persist` precedes the `Send`s
//! that depend on it.

mod admission;
mod checkpoints;
mod receipt;
mod rejoin;

pub use receipt::Receipt;
pub use rejoin::{answers_needed, RejoinError, REJOIN_REQUEST_MS};

use crate::bugs::PlantedBugs;
use crate::certificates::CertRules;
use crate::client::{self, ClientRegistry, SignedTransfer, TxRejection};
use crate::crypto::{Check, Digest, Signer};
use crate::durable::{LocalRecord, Record, RecordSeq};
use crate::evidence::Evidence;
use crate::hotstuff::{Global, GlobalConfig, GlobalEvent, GlobalOutput};
use crate::leader::LeaderSchedule;
use crate::ledger::{AccountId, Ledger, Outcome, Transfer};
use crate::messages::{
    Block, GlobalMessage, Lane, LocalCert, LocalMessage, Message, Payload, Seq, View,
};
use crate::pbft::{LocalConfig, LocalOutput, LocalShard};
use crate::topology::{ReplicaId, Topology};
use crate::transaction::{OpaqueTx, PayloadKind, Transaction};
use crate::vote_pattern::{PolicyConfig, VotePattern, VotePatternPolicy};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Messages awaiting signature verification.
pub const VERIFY_PENDING_MAX: usize = 4_096;
/// Of those, the most one peer may have waiting (its share of the verify queue), so one
/// flooding peer cannot starve the others.
pub const VERIFY_PENDING_PER_PEER_MAX: usize = 256;
/// Unsigned requests (batches, blocks, sync, snapshot chunks) served per peer per window.
pub const REQUESTS_PER_PEER_PER_WINDOW_MAX: u32 = 64;
pub const REQUEST_WINDOW_TICKS: u64 = 10;
const _: () = assert!(VERIFY_PENDING_PER_PEER_MAX <= VERIFY_PENDING_MAX);
/// Client transactions awaiting their signature check; past it a client gets `Overloaded`.
pub const CLIENT_VERIFY_PENDING_MAX: usize = 16_384;
const _: () =
    assert!(VERIFY_PENDING_PER_PEER_MAX * crate::topology::REPLICAS_MAX >= VERIFY_PENDING_MAX);
/// Committed batches served per batch request.
pub const BATCHES_PER_REQUEST_MAX: u64 = 256;
/// Versions of one (lane, sequence) kept: only a domain beyond its fault bound makes two.
pub const BATCH_VERSIONS_MAX: usize = 4;
/// Executed batches kept per lane to serve lagging peers (deeper lag needs state transfer).
pub const BATCH_RETENTION_SEQS: u64 = 1_024;
/// How long a domain's vote aggregator waits for the rest of its domain; links inside a
/// domain are sub-millisecond, so this is several intra-domain round trips.
pub const AGGREGATION_WAIT_MS: u64 = 2;
/// Ticks before a batch request for the same lane is repeated.
pub const BATCH_REQUEST_RETRY_TICKS: u64 = 20;

#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub topology: Arc<Topology>,
    pub me: ReplicaId,
    pub genesis_accounts: Vec<(AccountId, u64)>,
    /// Client keys and account owners, from the genesis: who may debit what.
    pub clients: Arc<ClientRegistry>,
    /// Ticks a forwarded request waits before the local tier suspects its primary.
    pub request_timeout_ticks: u64,
    pub global_timeout_min_ticks: u64,
    pub global_timeout_max_ticks: u64,
    pub ticks_per_ms: u64,
    /// Rounds per leader slot of the global tier.
    pub rotation_rounds: u64,
    pub vote_pattern: VotePattern,
    /// Committed global blocks between signed state checkpoints (production: 100).
    pub checkpoint_interval_blocks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Tick,
    /// A client transaction submitted to this replica.
    Client(Transaction),
    Message {
        from: ReplicaId,
        message: Message,
    },
    /// The host's answer to [`Action::Verify`]: the positions (in its `checks`) of the checks
    /// that failed; empty when every one passed. The host may check many messages' checks in
    /// one batch and bisect only when it fails (STYLE.md 13); it reports each message apart,
    /// so a bad signature costs only the message that carries it.
    Verified {
        token: u64,
        failed: Vec<u32>,
    },
    /// Every record up to `upto` is durable (the host's log reached it).
    Durable {
        upto: RecordSeq,
    },
}

/// What [`Replica::durable_state`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableState {
    pub views: Vec<View>,
    pub last_voted_round: u64,
    pub high_qc_round: u64,
    pub committed_height: u64,
    pub executed_height: u64,
    pub state_root: Digest,
}

/// What a client learns about its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// Committed by the debited account's home lane (its LC exists), with the outcome the
    /// transfer will have in the global order: home-lane admission decides it from the
    /// lane's order alone (`ledger::admission`), so no global order reverses it while the
    /// domain has at most f_d Byzantine members.
    LocallyFinal {
        lane: Lane,
        seq: Seq,
        outcome: Outcome,
    },
    /// Opaque cluster: committed by the local tier (its LC exists); its place in the
    /// global order follows.
    LocallyOrdered { lane: Lane, seq: Seq },
    /// Executed in the global order, as batch `seq` of `lane`; `transfer` is what executed,
    /// for the client to compare with what it signed.
    GloballyFinal {
        height: u64,
        lane: Lane,
        seq: Seq,
        outcome: Outcome,
        transfer: Transfer,
    },
    /// An opaque transaction was ordered in the global block `height`; `outcome` is
    /// `Applied` when it was delivered to the application ([`Action::Deliver`]), `Duplicate`
    /// when its key was delivered before (within the idempotency window).
    Delivered { height: u64, outcome: Outcome },
    /// Refused at submission: queues are full. Retry later (nothing was accepted).
    Overloaded,
    /// Refused at submission: not signed by the owner of the debited account. A retry of the
    /// same bytes is refused again.
    Rejected { reason: TxRejection },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    LocalViewChange {
        lane: Lane,
        view: View,
    },
    GlobalTimeout {
        round: u64,
        leader: ReplicaId,
    },
    VotePatternSwitched {
        round: u64,
        from: VotePattern,
        to: VotePattern,
        reason: String,
    },
    Evidence {
        kind: &'static str,
        offender: ReplicaId,
    },
    /// q replicas certified a state root other than ours: this replica stopped executing.
    Diverged {
        height: u64,
    },
    /// A message from `from` failed a check: `check` names its kind, `signer` the replica whose
    /// signature it claimed to be (for a signature check).
    CheckFailed {
        from: ReplicaId,
        check: &'static str,
        signer: Option<ReplicaId>,
    },
    /// A state-transfer chunk failed verification; another peer is asked.
    SnapshotChunkRejected {
        peer: ReplicaId,
        height: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send once every record up to `after` is durable (0: at once).
    Send {
        to: Vec<ReplicaId>,
        message: Message,
        after: RecordSeq,
    },
    /// Append `record` to the log as number `seq` (consecutive from 1).
    Persist {
        seq: RecordSeq,
        record: Record,
    },
    Verify {
        token: u64,
        checks: Vec<Check>,
    },
    Receipt {
        key: u128,
        status: ReceiptStatus,
    },
    /// Opaque cluster: the transactions of global block `height`, in the global order, for
    /// the application; each key is delivered once (within the idempotency window). Their
    /// data shares the bytes the batches arrived in.
    Deliver {
        height: u64,
        transactions: Vec<OpaqueTx>,
    },
    /// A global block executed; `transactions` counts the transactions it ran.
    Executed {
        height: u64,
        block: Digest,
        parent: Digest,
        state_root: Digest,
        transactions: u64,
    },
    Evidence(Evidence),
    Health(HealthEvent),
    /// State transfer installed the certified snapshot of `height`; execution continues
    /// from `height + 1` (nothing at or below it is executed here).
    SnapshotInstalled {
        height: u64,
        block: Digest,
        state_root: Digest,
    },
}

impl Action {
    /// A send; `Replica::step` names the records it waits for.
    pub(crate) fn send(to: Vec<ReplicaId>, message: Message) -> Action {
        Action::Send {
            to,
            message,
            after: 0,
        }
    }

    /// A record to persist; `Replica::step` numbers it.
    pub(crate) fn persist(record: Record) -> Action {
        Action::Persist { seq: 0, record }
    }
}

pub struct Replica {
    config: ReplicaConfig,
    bugs: PlantedBugs,
    lanes: Vec<Lane>,
    /// Our domain's lanes, indexed by shard.
    shards: Vec<LocalShard>,
    global: Global,
    /// Committed batches of every lane we hold (durable batch store). More than one version
    /// per sequence only from a domain with a Byzantine majority; the global order names
    /// the digest it orders.
    batches: BTreeMap<(usize, Seq), Vec<(LocalCert, Payload)>>,
    /// Highest contiguous sequence held per lane.
    contiguous: Vec<Seq>,
    batch_requests: BTreeMap<usize, u64>,
    ledger: Ledger,
    executed: Vec<(Digest, u64)>,
    to_execute: VecDeque<Arc<Block>>,
    last_executed_cut: Vec<Seq>,
    /// The LC of the last executed batch of every lane (a checkpoint's lanes resume there).
    executed_lcs: Vec<Option<LocalCert>>,
    executed_height: u64,
    ckpt: checkpoints::Checkpoints,
    verifying: BTreeMap<u64, (ReplicaId, Message)>,
    /// Client transactions waiting for their signature check, by token.
    verifying_clients: BTreeMap<u64, Transaction>,
    /// Messages waiting for verification, per sending peer.
    verifying_from: BTreeMap<ReplicaId, usize>,
    /// Requests served per peer in the current window: (window, count).
    requests_from: BTreeMap<ReplicaId, (u64, u32)>,
    rules: Arc<CertRules>,
    /// Per shard of our domain, the admission decisions behind its locally final receipts.
    decisions: Vec<admission::LaneDecisions>,
    /// Answers gathered while rejoining after a disk loss ([`Replica::rejoin`]).
    rejoin: Option<rejoin::Rejoin>,
    next_token: u64,
    /// The last record numbered, and how far the host reported records durable.
    last_record: RecordSeq,
    durable_upto: RecordSeq,
    now: u64,
}

impl Replica {
    pub fn new(config: ReplicaConfig, signer: &dyn Signer) -> Replica {
        Replica::with_bugs(config, signer, PlantedBugs::none())
    }

    pub(crate) fn with_bugs(
        config: ReplicaConfig,
        signer: &dyn Signer,
        bugs: PlantedBugs,
    ) -> Replica {
        assert_eq!(signer.id(), config.me, "a replica signs only as itself");
        let topology = config.topology.clone();
        let lanes: Vec<Lane> = (0..topology.domains.len() as u32)
            .flat_map(|domain| (0..topology.shards).map(move |shard| Lane { domain, shard }))
            .collect();
        let my_domain = topology.domain_of(config.me);
        let rules = Arc::new(CertRules::new(&topology, bugs));
        let shards = (0..topology.shards)
            .map(|shard| {
                let local = LocalConfig {
                    lane: Lane {
                        domain: my_domain,
                        shard,
                    },
                    members: topology.domain_members(my_domain),
                    quorum: topology.domain_quorum(my_domain),
                    request_timeout_ticks: config.request_timeout_ticks,
                    rules: rules.clone(),
                };
                LocalShard::new(local, config.me, bugs)
            })
            .collect();
        let mut ledger =
            Ledger::genesis(config.genesis_accounts.iter().copied()).expect("valid genesis");
        assert!(
            ledger.genesis_total() <= u128::from(u64::MAX),
            "the genesis total fits a u64, so no credit overflows (admission relies on it)"
        );
        if bugs.double_execute {
            ledger.plant_double_execute();
        }
        let global = Global::new(
            Replica::global_config(&config, &lanes, rules.clone()),
            schedule(&config),
            policy(&config),
            bugs,
        );
        Replica {
            contiguous: vec![0; lanes.len()],
            last_executed_cut: vec![0; lanes.len()],
            executed_lcs: vec![None; lanes.len()],
            executed_height: 0,
            ckpt: checkpoints::Checkpoints::new(
                topology.quorum().q as usize,
                config.checkpoint_interval_blocks,
                lanes.len(),
            ),
            lanes,
            shards,
            global,
            batches: BTreeMap::new(),
            batch_requests: BTreeMap::new(),
            ledger,
            executed: Vec::new(),
            to_execute: VecDeque::new(),
            verifying: BTreeMap::new(),
            verifying_clients: BTreeMap::new(),
            verifying_from: BTreeMap::new(),
            requests_from: BTreeMap::new(),
            rules,
            decisions: (0..topology.shards)
                .map(|_| admission::LaneDecisions::new(bugs.admit_without_reservation))
                .collect(),
            rejoin: None,
            next_token: 0,
            last_record: 0,
            durable_upto: 0,
            now: 0,
            bugs,
            config,
        }
    }

    fn global_config(
        config: &ReplicaConfig,
        lanes: &[Lane],
        rules: Arc<CertRules>,
    ) -> GlobalConfig {
        GlobalConfig {
            me: config.me,
            replicas: config.topology.replicas.iter().map(|r| r.id).collect(),
            quorum: config.topology.quorum(),
            lanes: lanes.to_vec(),
            timeout_min_ticks: config.global_timeout_min_ticks,
            timeout_max_ticks: config.global_timeout_max_ticks,
            ticks_per_ms: config.ticks_per_ms,
            domain_members: config
                .topology
                .domain_members(config.topology.domain_of(config.me)),
            aggregation_wait_ticks: AGGREGATION_WAIT_MS * config.ticks_per_ms,
            checkpoint_interval_blocks: config.checkpoint_interval_blocks,
            rules,
        }
    }

    /// Rebuild a replica from the records it persisted, and nothing else: the safety state
    /// and lanes from their records, the ledger and leader reputation by executing the
    /// committed blocks again (from the installed snapshot or the stable checkpoint a
    /// compacted log starts with, if any). What was not durable (votes of others, queues,
    /// timers, pending verifications) is gone. `last` is the number of the last record
    /// persisted: `records.len()` for a whole log, more for one compacted by
    /// [`crate::durable::compact`]; the next record is numbered `last + 1`.
    pub fn restore(
        config: ReplicaConfig,
        signer: &dyn Signer,
        records: &[Record],
        last: RecordSeq,
    ) -> Replica {
        Replica::restore_with_bugs(config, signer, PlantedBugs::none(), records, last)
    }

    pub(crate) fn restore_with_bugs(
        config: ReplicaConfig,
        signer: &dyn Signer,
        bugs: PlantedBugs,
        records: &[Record],
        last: RecordSeq,
    ) -> Replica {
        assert!(
            records.len() as RecordSeq <= last,
            "compaction only drops records"
        );
        let mut replica = Replica::with_bugs(config, signer, bugs);
        let mut discarded = Vec::new();
        for record in records {
            replica.replay(record.clone(), signer, &mut discarded);
            discarded.clear(); // all of it happened before the restart
        }
        replica.shards.iter_mut().for_each(LocalShard::restored);
        replica.global.restored();
        replica.last_record = last;
        replica.durable_upto = last;
        replica
    }

    fn replay(&mut self, record: Record, signer: &dyn Signer, actions: &mut Vec<Action>) {
        match record {
            Record::GlobalSafety {
                last_voted_round,
                proposed_round,
                high_qc,
                high_tc,
            } => self
                .global
                .replay_safety(last_voted_round, proposed_round, high_qc, high_tc),
            Record::Rejoined(state) => self.replay_rejoined(state),
            Record::GlobalCommitted(block) => {
                if self.global.replay_commit(block.clone()) {
                    self.to_execute.push_back(block);
                    self.execute_ready(signer, actions);
                }
            }
            Record::Local { lane, record } => {
                if self.bugs.restore_forgets_commit
                    && matches!(record, LocalRecord::CommitSent { .. })
                {
                    return;
                }
                self.shards[lane.shard as usize].replay(record, signer)
            }
            Record::Batch { lc, payload } => self.on_batch(lc, payload, signer, actions),
            Record::StableCheckpoint(state) => {
                self.replay_stable_checkpoint(state, signer, actions)
            }
            Record::SnapshotInstalled(state) => {
                self.replay_snapshot_installed(state, signer, actions)
            }
        }
    }

    pub fn id(&self) -> ReplicaId {
        self.config.me
    }

    /// Every buffer a peer can fill is within its bound; the simulator calls this after
    /// every step of an honest replica.
    pub fn assert_bounded(&self) {
        let n = self.config.topology.n() as usize;
        assert!(
            self.verifying.len() <= VERIFY_PENDING_MAX,
            "verify queue bounded"
        );
        assert!(
            self.verifying_from
                .values()
                .all(|&w| w <= VERIFY_PENDING_PER_PEER_MAX),
            "verify share bounded"
        );
        assert!(self.requests_from.len() <= n, "request budgets bounded");
        assert!(
            self.batches.values().all(|v| v.len() <= BATCH_VERSIONS_MAX),
            "batch versions bounded"
        );
        self.shards.iter().for_each(LocalShard::assert_bounded);
        self.global.assert_bounded();
        let my_domain = self.config.topology.domain_of(self.config.me) as usize;
        for (shard, decisions) in self.decisions.iter().enumerate() {
            let lane = my_domain * self.shards.len() + shard;
            decisions.assert_consistent(self.last_executed_cut[lane]);
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// (block digest, height) of the executed global blocks still held, in order: since
    /// the last truncation, or from an installed checkpoint.
    pub fn executed(&self) -> &[(Digest, u64)] {
        &self.executed
    }

    /// Height of the last executed (or installed) global block.
    pub fn executed_height(&self) -> u64 {
        self.executed_height
    }

    /// (lane index, sequence, digest) of every committed batch held, every version.
    pub fn batch_digests(&self) -> Vec<(usize, Seq, Digest)> {
        self.batches
            .iter()
            .flat_map(|(&(lane, seq), versions)| {
                versions.iter().map(move |(lc, _)| (lane, seq, lc.digest))
            })
            .collect()
    }

    /// One line per lane and the global round, for traces.
    pub fn describe(&self) -> String {
        let lanes: Vec<String> = self
            .shards
            .iter()
            .map(|s| format!("[{} | {}]", s.describe(), s.describe_first_slot()))
            .collect();
        format!(
            "{} executed {} lanes {}",
            self.global.describe(),
            self.executed.len(),
            lanes.join(" ")
        )
    }

    /// The state a restore must rebuild exactly: views per lane, the global tier's safety
    /// state, and what was committed and executed.
    pub fn durable_state(&self) -> DurableState {
        DurableState {
            views: self.shards.iter().map(LocalShard::view).collect(),
            last_voted_round: self.global.last_voted_round(),
            high_qc_round: self.global.high_qc_round(),
            committed_height: self.global.committed().height,
            executed_height: self.executed_height,
            state_root: self.ledger.state_root(),
        }
    }

    /// Whether this replica, restored, knows it sent `message`: a vote or proposal it
    /// forgot is one it may contradict. Only vote-like messages are asked about.
    pub fn remembers(&self, message: &Message) -> bool {
        match message {
            Message::Global(GlobalMessage::Vote { round, .. }) => {
                self.global.last_voted_round() >= *round
            }
            Message::Local(local) => {
                let lane = local.lane();
                lane.domain != self.config.topology.domain_of(self.config.me)
                    || self
                        .shards
                        .get(lane.shard as usize)
                        .is_none_or(|shard| shard.remembers(local))
            }
            _ => true,
        }
    }

    pub fn global_round(&self) -> u64 {
        self.global.round()
    }

    /// Each local lane of this replica's domain with its current view's primary.
    pub fn lane_primaries(&self) -> impl Iterator<Item = (Lane, ReplicaId)> + '_ {
        self.shards
            .iter()
            .map(|shard| (shard.lane(), shard.primary_of(shard.view())))
    }

    /// The leader of the current global round, as this replica sees it.
    pub fn global_leader(&self) -> ReplicaId {
        self.global.schedule().leader(self.global.round())
    }

    pub fn vote_pattern(&self) -> VotePattern {
        self.global.vote_pattern()
    }

    /// The lane a transaction belongs to in this replica's domain.
    pub fn shard_of(&self, tx: &Transaction) -> usize {
        client::shard_of(tx.routing_key(), self.shards.len() as u32) as usize
    }

    /// Index of a lane of this cluster; callers check the lane exists ([`CertRules::lane_index`]
    /// for lanes from the network).
    fn lane_index(&self, lane: Lane) -> usize {
        self.rules.lane_index(lane).expect("a lane of this cluster")
    }

    pub fn step(&mut self, input: Input, signer: &dyn Signer) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Tick => self.on_tick(signer, &mut actions),
            Input::Client(tx) => self.on_client(tx, &mut actions),
            Input::Message { from, message } => {
                self.on_message(from, message, signer, &mut actions)
            }
            Input::Verified { token, failed } => {
                self.on_verified(token, &failed, signer, &mut actions)
            }
            Input::Durable { upto } => self.on_durable(upto),
        }
        self.number_records(&mut actions);
        actions
    }

    /// Number the records in order, and make every send wait for all records before it: a
    /// message leaves only once the state it reflects is durable.
    fn number_records(&mut self, actions: &mut [Action]) {
        for action in actions {
            match action {
                Action::Persist { seq, .. } => {
                    self.last_record += 1;
                    *seq = self.last_record;
                }
                Action::Send { after, .. } => *after = self.last_record,
                _ => {}
            }
        }
    }

    fn on_durable(&mut self, upto: RecordSeq) {
        assert!(upto <= self.last_record, "durable only what was persisted");
        self.durable_upto = self.durable_upto.max(upto);
    }

    /// How far the host reported our records durable.
    pub fn durable_upto(&self) -> RecordSeq {
        self.durable_upto
    }

    fn on_tick(&mut self, signer: &dyn Signer, actions: &mut Vec<Action>) {
        self.now += 1;
        if !self.to_execute.is_empty() && self.now.is_multiple_of(BATCH_REQUEST_RETRY_TICKS) {
            self.execute_ready(signer, actions); // re-asks for the batches it waits for
        }
        self.transfer_tick(actions);
        self.rejoin_tick(actions);
        for shard in 0..self.shards.len() {
            let mut out = Vec::new();
            let ledger = &self.ledger;
            let credit_floor = |tx: &SignedTransfer| ledger.credited(tx.transfer.from);
            self.shards[shard].on_tick(signer, &credit_floor, &mut out);
            self.apply_local(shard, out, signer, actions);
        }
        let mut out = Vec::new();
        self.global.on_tick(signer, &mut out);
        self.apply_global(out, signer, actions);
    }

    /// A client's transaction is checked before it enters a lane: the owner of the debited
    /// account must have signed it, and only the account's home domain takes it.
    fn on_client(&mut self, tx: Transaction, actions: &mut Vec<Action>) {
        if tx.kind() != self.config.topology.transactions {
            return reject(tx, TxRejection::WrongKind, actions);
        }
        if let Transaction::Transfer(transfer) = &tx {
            let home = self.rules.home_lane(transfer.transfer.from);
            if home.domain != self.config.topology.domain_of(self.config.me) {
                let reason = TxRejection::NotHome {
                    domain: home.domain,
                };
                return reject(tx, reason, actions);
            }
        }
        let check = match self.config.clients.check(&tx) {
            Ok(check) => check,
            Err(reason) => return reject(tx, reason, actions),
        };
        if self.verifying_clients.len() >= CLIENT_VERIFY_PENDING_MAX || self.ledger.keys_full() {
            actions.push(Action::Receipt {
                key: tx.key(),
                status: ReceiptStatus::Overloaded,
            });
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.verifying_clients.insert(token, tx);
        actions.push(Action::Verify {
            token,
            checks: vec![check],
        });
    }

    /// A verified client transaction enters its lane.
    fn admit_client(&mut self, tx: Transaction, signer: &dyn Signer, actions: &mut Vec<Action>) {
        let shard = self.shard_of(&tx);
        let key = tx.key();
        let mut out = Vec::new();
        let accepted = self.shards[shard].on_client(tx, &mut out);
        if !accepted {
            actions.push(Action::Receipt {
                key,
                status: ReceiptStatus::Overloaded,
            });
        }
        self.apply_local(shard, out, signer, actions);
    }

    fn on_message(
        &mut self,
        from: ReplicaId,
        message: Message,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        if self.config.topology.replica(from).is_none() {
            return;
        }
        let mut checks = message.checks();
        if let Err(reason) = self.transaction_checks(&message, &mut checks) {
            // Honest members forward and pre-prepare only transactions they checked.
            tracing::debug!(from, reason = reason.reason(), "unauthorized transaction");
            self.evidence(Evidence::InvalidCertificate { offender: from }, actions);
            return;
        }
        if checks.is_empty() {
            self.dispatch(from, message, signer, actions);
            return;
        }
        let waiting = self.verifying_from.get(&from).copied().unwrap_or(0);
        if self.verifying.len() >= VERIFY_PENDING_MAX || waiting >= VERIFY_PENDING_PER_PEER_MAX {
            return; // bounded, per peer too: shed load rather than grow
        }
        let token = self.next_token;
        self.next_token += 1;
        self.verifying_from.insert(from, waiting + 1);
        self.verifying.insert(token, (from, message));
        actions.push(Action::Verify { token, checks });
    }

    /// The client signatures a message's transactions carry: a forwarded transaction and
    /// every transaction of a pre-prepare are checked again here, so a Byzantine member can
    /// neither inject nor alter a transfer.
    fn transaction_checks(
        &self,
        message: &Message,
        checks: &mut Vec<Check>,
    ) -> Result<(), TxRejection> {
        let clients = &self.config.clients;
        let kind = self.config.topology.transactions;
        match message {
            Message::Local(LocalMessage::Forward { tx, .. }) if tx.kind() != kind => {
                Err(TxRejection::WrongKind)
            }
            Message::Local(LocalMessage::Forward { tx, .. }) => {
                checks.push(clients.check(tx)?);
                Ok(())
            }
            Message::Local(LocalMessage::PrePrepare { payload, .. }) if !payload.fits(kind) => {
                Err(TxRejection::WrongKind)
            }
            Message::Local(LocalMessage::PrePrepare { .. }) if self.bugs.skip_client_recheck => {
                Ok(())
            }
            Message::Local(LocalMessage::PrePrepare { payload, .. }) => {
                clients.checks(payload, checks)
            }
            _ => Ok(()),
        }
    }

    fn on_verified(
        &mut self,
        token: u64,
        failed: &[u32],
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        if let Some(tx) = self.verifying_clients.remove(&token) {
            return match failed.is_empty() {
                true => self.admit_client(tx, signer, actions),
                false => reject(tx, TxRejection::BadSignature, actions),
            };
        }
        let Some((from, message)) = self.verifying.remove(&token) else {
            return;
        };
        match self.verifying_from.get_mut(&from) {
            Some(waiting) if *waiting > 1 => *waiting -= 1,
            _ => {
                self.verifying_from.remove(&from);
            }
        }
        if failed.is_empty() {
            self.dispatch(from, message, signer, actions);
        } else {
            self.check_failed(from, &message, failed, actions);
        }
    }

    /// Blame for a failed check goes to the authenticated sender, whichever check failed:
    /// an honest replica verifies every signature and certificate before it relays one, and
    /// every transaction before it forwards or pre-prepares it. The health event names the
    /// first failed check (its kind, and the signer it claims).
    fn check_failed(
        &mut self,
        from: ReplicaId,
        message: &Message,
        failed: &[u32],
        actions: &mut Vec<Action>,
    ) {
        // Rebuilt in the order they were sent (they passed authorization then, and the
        // registry does not change, so the positions match).
        let mut checks = message.checks();
        let _ = self.transaction_checks(message, &mut checks);
        if let Some(check) = failed.first().and_then(|&i| checks.get(i as usize)) {
            actions.push(Action::Health(HealthEvent::CheckFailed {
                from,
                check: check.kind(),
                signer: check.signer(),
            }));
        }
        self.evidence(Evidence::InvalidCertificate { offender: from }, actions);
    }

    /// Evidence is reported, and proofs go to the global tier to be committed: the leader
    /// schedule changes only from committed state, so every honest replica computes the
    /// same leaders.
    fn evidence(&mut self, evidence: Evidence, actions: &mut Vec<Action>) {
        self.global.accuse(evidence.clone());
        actions.push(Action::Health(HealthEvent::Evidence {
            kind: evidence.kind(),
            offender: evidence.offender(),
        }));
        actions.push(Action::Evidence(evidence));
    }

    fn dispatch(
        &mut self,
        from: ReplicaId,
        message: Message,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        if message.is_request() && !self.request_allowed(from, &message) {
            return; // a request that names another sender, or over the peer's share
        }
        match message {
            Message::Local(local) => self.on_local(from, local, signer, actions),
            Message::Batch { lc, payload } => {
                self.on_batch_from(from, lc, payload, signer, actions)
            }
            Message::BatchRequest {
                lane, seq, upto, ..
            } => self.on_batch_request(lane, seq, upto, from, actions),
            Message::Checkpoint(vote) => {
                if vote.from == from {
                    self.on_checkpoint_vote(vote, signer, actions);
                }
            }
            Message::StableCheckpoint(cert) => self.on_stable_checkpoint(cert, signer, actions),
            Message::SnapshotRequest { height, chunk, .. } => {
                self.on_snapshot_request(height, chunk, from, actions)
            }
            Message::SnapshotChunk(chunk) => self.on_snapshot_chunk(from, *chunk, signer, actions),
            Message::RecoveryRequest { nonce, .. } => {
                self.on_recovery_request(nonce, from, actions)
            }
            Message::RecoveryReply(reply) => self.on_recovery_reply(from, *reply, signer, actions),
            Message::Global(global) => {
                if let GlobalMessage::BlockRequest { block, .. } = &global {
                    if !self.global.has_block(block) {
                        self.announce_checkpoint(from, actions);
                    }
                }
                let mut out = Vec::new();
                self.global.on_message(global, signer, &mut out);
                self.apply_global(out, signer, actions);
            }
        }
    }

    /// Requests are unsigned: answer only the peer that sent one (a request naming a third
    /// replica would aim our responses at it), and at most a share per peer and window.
    fn request_allowed(&mut self, from: ReplicaId, message: &Message) -> bool {
        if message.requester() != Some(from) {
            return false;
        }
        let window = self.now / REQUEST_WINDOW_TICKS;
        let (at, used) = self.requests_from.entry(from).or_insert((window, 0));
        if *at != window {
            (*at, *used) = (window, 0);
        }
        *used += 1;
        *used <= REQUESTS_PER_PEER_PER_WINDOW_MAX
    }

    /// A committed batch from a peer; one past a gap means we missed some: ask the sender,
    /// who holds them.
    fn on_batch_from(
        &mut self,
        from: ReplicaId,
        lc: LocalCert,
        payload: Payload,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let Some(lane) = self.rules.lane_index(lc.lane) else {
            return;
        };
        let seq = lc.seq;
        self.on_batch(lc, payload, signer, actions);
        let next = self.contiguous[lane].saturating_add(1);
        if seq > next {
            self.request_batches(lane, next, seq - 1, from, actions);
        }
    }

    fn on_local(
        &mut self,
        from: ReplicaId,
        local: LocalMessage,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let lane = local.lane();
        let my_domain = self.config.topology.domain_of(self.config.me);
        if lane.domain != my_domain || lane.shard as usize >= self.shards.len() {
            return;
        }
        if self.config.topology.domain_of(from) != my_domain {
            return; // only members speak in a lane
        }
        let shard = lane.shard as usize;
        let mut out = Vec::new();
        match local {
            LocalMessage::Forward { tx, .. } => self.shards[shard].on_forward(tx, from, &mut out),
            local => self.shards[shard].on_message(local, signer, &mut out),
        }
        self.apply_local(shard, out, signer, actions);
    }

    fn apply_local(
        &mut self,
        shard: usize,
        outputs: Vec<LocalOutput>,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        for output in outputs {
            match output {
                LocalOutput::Send { to, message } => {
                    actions.push(Action::send(to, Message::Local(message)))
                }
                LocalOutput::Committed { lc, payload } => {
                    self.on_local_commit(lc, payload, signer, actions)
                }
                LocalOutput::NeedBatches { upto, from } => {
                    let lane = self.lane_index(self.shards[shard].lane());
                    let next = self.contiguous[lane].saturating_add(1);
                    self.request_batches(lane, next, upto, from, actions);
                }
                LocalOutput::PeerBehind { peer, from_seq } => {
                    let lane = self.shards[shard].lane();
                    // A member that missed what we truncated catches up by state transfer:
                    // it may never ask for batches itself (it knows of none).
                    if self.truncated_batch(self.lane_index(lane), from_seq) {
                        self.announce_checkpoint(peer, actions);
                    }
                    self.serve_batches(lane, from_seq, Seq::MAX, peer, actions);
                }
                LocalOutput::Persist(record) => {
                    let lane = self.shards[shard].lane();
                    actions.push(Action::persist(Record::Local { lane, record }));
                }
                LocalOutput::Evidence(evidence) => self.evidence(evidence, actions),
                LocalOutput::ViewChanged { view } => {
                    let lane = self.shards[shard].lane();
                    actions.push(Action::Health(HealthEvent::LocalViewChange { lane, view }));
                }
            }
        }
    }

    /// Our lane committed a batch: stream it to the other domains, store it (which decides
    /// its clients' locally final receipts).
    fn on_local_commit(
        &mut self,
        lc: LocalCert,
        payload: Payload,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let targets = self.dissemination_targets();
        if !targets.is_empty() {
            actions.push(Action::send(
                targets,
                Message::Batch {
                    lc: lc.clone(),
                    payload: payload.clone(),
                },
            ));
        }
        self.store_batch(lc, payload, signer, actions);
    }

    /// Each member streams a committed batch to its share of the other domains' replicas,
    /// so every batch crosses the WAN about once; a replica missing one fetches it.
    fn dissemination_targets(&self) -> Vec<ReplicaId> {
        let topology = &self.config.topology;
        let my_domain = topology.domain_of(self.config.me);
        let members = topology.domain_members(my_domain);
        let my_index = members
            .iter()
            .position(|&m| m == self.config.me)
            .expect("member") as u32;
        topology
            .replicas
            .iter()
            .filter(|r| r.domain != my_domain && r.id % members.len() as u32 == my_index)
            .map(|r| r.id)
            .collect()
    }

    fn on_batch(
        &mut self,
        lc: LocalCert,
        payload: Payload,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        if self.rules.lc(&lc).is_err() || payload.digest() != lc.digest {
            return;
        }
        let my_domain = self.config.topology.domain_of(self.config.me);
        if lc.lane.domain == my_domain {
            let shard = lc.lane.shard as usize;
            let mut out = Vec::new();
            self.shards[shard].adopt_committed(lc.clone(), payload.clone(), &mut out);
            self.apply_local(shard, out, signer, actions);
        }
        self.store_batch(lc, payload, signer, actions);
    }

    fn store_batch(
        &mut self,
        lc: LocalCert,
        payload: Payload,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let lane = self.lane_index(lc.lane);
        if lc.seq <= self.last_executed_cut[lane]
            || lc.seq > self.contiguous[lane].saturating_add(crate::pbft::SLOTS_AHEAD_MAX)
        {
            return; // executed already, or far ahead: fetched again when needed (bounded)
        }
        let versions = self.batches.entry((lane, lc.seq)).or_default();
        if versions.iter().any(|(held, _)| held.digest == lc.digest)
            || versions.len() >= BATCH_VERSIONS_MAX
        {
            return;
        }
        actions.push(Action::persist(Record::Batch {
            lc: lc.clone(),
            payload: payload.clone(),
        }));
        let (seq, digest, domain) = (lc.seq, lc.digest, lc.lane.domain);
        let own_shard = lc.lane.shard as usize;
        versions.push((lc, payload));
        while self
            .batches
            .contains_key(&(lane, self.contiguous[lane] + 1))
        {
            self.contiguous[lane] += 1;
        }
        if domain == self.config.topology.domain_of(self.config.me) {
            self.decide_ready(own_shard, actions);
        }
        let mut out = Vec::new();
        self.global
            .on_batch_held(lane, seq, digest, signer, &mut out);
        self.apply_global(out, signer, actions);
        self.execute_ready(signer, actions);
    }

    /// Ask for the batches of `lane` from `first` (or the first we lack, if lower) to `upto`.
    fn request_batches(
        &mut self,
        lane: usize,
        first: Seq,
        upto: Seq,
        from: ReplicaId,
        actions: &mut Vec<Action>,
    ) {
        let first = first.min(self.contiguous[lane].saturating_add(1));
        if upto < first {
            return;
        }
        // Ask the suggested holder first; if that is us (we proposed before a crash), or on
        // a retry, walk through the other replicas so one silent peer cannot stall us.
        let n = self.config.topology.n() as u64;
        let attempt = self.now / BATCH_REQUEST_RETRY_TICKS;
        let from = if from == self.config.me || self.batch_requests.contains_key(&lane) {
            let pick = ((u64::from(from) + 1 + attempt) % n) as ReplicaId;
            if pick == self.config.me {
                (pick + 1) % n as ReplicaId
            } else {
                pick
            }
        } else {
            from
        };
        let last = self.batch_requests.get(&lane).copied();
        if last.is_some_and(|t| self.now < t + BATCH_REQUEST_RETRY_TICKS) {
            return;
        }
        self.batch_requests.insert(lane, self.now);
        let message = Message::BatchRequest {
            lane: self.lanes[lane],
            seq: first,
            upto,
            from: self.config.me,
        };
        actions.push(Action::send(vec![from], message));
    }

    /// A peer asks for batches: what we truncated it gets by state transfer (we announce our
    /// checkpoint), the rest we serve.
    fn on_batch_request(
        &mut self,
        lane: Lane,
        seq: Seq,
        upto: Seq,
        from: ReplicaId,
        actions: &mut Vec<Action>,
    ) {
        let Some(index) = self.rules.lane_index(lane) else {
            return;
        };
        if self.truncated_batch(index, seq) {
            self.announce_checkpoint(from, actions);
        }
        self.serve_batches(lane, seq, upto, from, actions)
    }

    fn serve_batches(
        &mut self,
        lane: Lane,
        seq: Seq,
        upto: Seq,
        to: ReplicaId,
        actions: &mut Vec<Action>,
    ) {
        if lane.domain as usize >= self.config.topology.domains.len()
            || lane.shard >= self.config.topology.shards
        {
            return;
        }
        let index = self.lane_index(lane);
        let last = upto.min(seq.saturating_add(BATCHES_PER_REQUEST_MAX - 1));
        for s in seq..=last {
            let Some(versions) = self.batches.get(&(index, s)) else {
                break;
            };
            for (lc, payload) in versions {
                let message = Message::Batch {
                    lc: lc.clone(),
                    payload: payload.clone(),
                };
                actions.push(Action::send(vec![to], message));
            }
        }
    }

    fn apply_global(
        &mut self,
        outputs: Vec<GlobalOutput>,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        for output in outputs {
            match output {
                GlobalOutput::Send { to, message } => {
                    actions.push(Action::send(to, Message::Global(message)))
                }
                GlobalOutput::Persist {
                    last_voted_round,
                    proposed_round,
                    high_qc,
                    high_tc,
                } => actions.push(Action::persist(Record::GlobalSafety {
                    last_voted_round,
                    proposed_round,
                    high_qc,
                    high_tc,
                })),
                GlobalOutput::Commit(block) => {
                    actions.push(Action::persist(Record::GlobalCommitted(block.clone())));
                    self.to_execute.push_back(block);
                    self.execute_ready(signer, actions);
                }
                GlobalOutput::NeedBatches {
                    lane,
                    first,
                    upto,
                    from,
                } => self.request_batches(lane, first, upto, from, actions),
                GlobalOutput::Evidence(evidence) => self.evidence(evidence, actions),
                GlobalOutput::Event(event) => self.global_event(event, actions),
            }
        }
    }

    fn global_event(&mut self, event: GlobalEvent, actions: &mut Vec<Action>) {
        match event {
            GlobalEvent::RoundTimeout { round, leader } => {
                actions.push(Action::Health(HealthEvent::GlobalTimeout { round, leader }))
            }
            GlobalEvent::VotePatternSwitched {
                round,
                from,
                to,
                reason,
            } => actions.push(Action::Health(HealthEvent::VotePatternSwitched {
                round,
                from,
                to,
                reason,
            })),
            GlobalEvent::NewRound { .. } => {}
        }
    }

    /// Execute committed blocks in order, each once all its batches are here:
    /// block, then lane (domain, shard), then sequence.
    fn execute_ready(&mut self, signer: &dyn Signer, actions: &mut Vec<Action>) {
        if self.ckpt.diverged {
            return; // our state is not the certified one: execute nothing more
        }
        while let Some(block) = self.to_execute.front().cloned() {
            assert_eq!(
                block.height,
                self.executed_height + 1,
                "execute in height order"
            );
            let ordered = block.ordered(&self.last_executed_cut);
            let payloads: Option<Vec<Payload>> = ordered
                .iter()
                .map(|&(lane, seq, digest)| self.payload(lane, seq, &digest))
                .collect();
            let Some(payloads) = payloads else {
                // Fetch every lane we lack, up to the newest committed cut we know of.
                let newest = self.to_execute.back().expect("non-empty").cut.clone();
                let missing = block.first_missing(&self.last_executed_cut, |lane, seq, digest| {
                    self.payload(lane, seq, digest).is_some()
                });
                for (lane, first) in missing {
                    self.request_batches(lane, first, newest[lane], block.proposer, actions);
                }
                return;
            };
            self.to_execute.pop_front();
            for &(lane, seq, digest) in &ordered {
                self.executed_lcs[lane] = self.local_cert(lane, seq, &digest);
                assert!(
                    self.executed_lcs[lane].is_some(),
                    "executed batches are held"
                );
            }
            let transactions = self.execute_payloads(block.height, &ordered, &payloads, actions);
            for (lane, &cut) in block.cut.iter().enumerate() {
                self.last_executed_cut[lane] = self.last_executed_cut[lane].max(cut);
                self.contiguous[lane] = self.contiguous[lane].max(cut);
            }
            // Keep a tail of executed batches to serve replicas that lag behind us.
            let floor = self.last_executed_cut.clone();
            self.batches
                .retain(|(lane, seq), _| *seq + BATCH_RETENTION_SEQS > floor[*lane]);
            self.ledger.end_block(block.height);
            self.after_execution(actions);
            let digest = block.digest();
            self.executed.push((digest, block.height));
            self.executed_height = block.height;
            actions.push(Action::Executed {
                height: block.height,
                block: digest,
                parent: block.parent,
                state_root: self.ledger.state_root(),
                transactions,
            });
            self.take_checkpoint(&block, signer, actions);
            if self.ckpt.diverged {
                return;
            }
        }
    }

    /// Runs one block's batches in order: transfers through the ledger as their home lane
    /// admitted them, opaque transactions to the application (each key once). A batch of the
    /// other kind, or a debit outside its home lane (possible only from a domain beyond its
    /// fault bound), runs nothing, the same way on every replica.
    fn execute_payloads(
        &mut self,
        height: u64,
        ordered: &[(usize, Seq, Digest)],
        payloads: &[Payload],
        actions: &mut Vec<Action>,
    ) -> u64 {
        let kind = self.config.topology.transactions;
        let mut delivered = Vec::new();
        let mut transactions = 0;
        for (&(lane, seq, _), payload) in ordered.iter().zip(payloads) {
            if payload.kind() != kind {
                continue;
            }
            let lane = self.lanes[lane];
            for (tx, floor) in payload.entries() {
                transactions += 1;
                let key = tx.key();
                let status = match tx {
                    Transaction::Transfer(tx) => ReceiptStatus::GloballyFinal {
                        height,
                        lane,
                        seq,
                        outcome: self.execute_transfer(lane, &tx.transfer, floor),
                        transfer: tx.transfer,
                    },
                    Transaction::Opaque(tx) => {
                        let outcome = self.ledger.deliver(tx.ledger_key());
                        if outcome == Outcome::Applied {
                            delivered.push(tx);
                        }
                        ReceiptStatus::Delivered { height, outcome }
                    }
                };
                actions.push(Action::Receipt { key, status });
            }
        }
        if kind == PayloadKind::Opaque {
            actions.push(Action::Deliver {
                height,
                transactions: delivered,
            });
        }
        transactions
    }

    /// A transfer of `lane`, stamped with `floor`: only its home lane may debit its account.
    fn execute_transfer(&mut self, lane: Lane, tx: &Transfer, floor: u128) -> Outcome {
        if self.rules.home_lane(tx.from) != lane {
            return Outcome::Rejected(crate::ledger::Reject::NotHome);
        }
        self.ledger.apply_admitted(tx, floor)
    }

    fn local_cert(&self, lane: usize, seq: Seq, digest: &Digest) -> Option<LocalCert> {
        let versions = self.batches.get(&(lane, seq))?;
        versions
            .iter()
            .find(|(lc, _)| lc.digest == *digest)
            .map(|(lc, _)| lc.clone())
    }

    fn payload(&self, lane: usize, seq: Seq, digest: &Digest) -> Option<Payload> {
        let versions = self.batches.get(&(lane, seq))?;
        versions
            .iter()
            .find(|(lc, _)| lc.digest == *digest)
            .map(|(_, payload)| payload.clone())
    }
}

fn schedule(config: &ReplicaConfig) -> LeaderSchedule {
    LeaderSchedule::new(&config.topology, config.rotation_rounds)
}

fn policy(config: &ReplicaConfig) -> VotePatternPolicy {
    VotePatternPolicy::new(config.vote_pattern, PolicyConfig::default())
}

fn reject(tx: Transaction, reason: TxRejection, actions: &mut Vec<Action>) {
    actions.push(Action::Receipt {
        key: tx.key(),
        status: ReceiptStatus::Rejected { reason },
    });
}
