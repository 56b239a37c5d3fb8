//! The replica's side of checkpoints: vote after every checkpoint height, turn q matching
//! votes into a stable checkpoint, truncate below it, and state transfer for a replica
//! that fell behind what its peers still hold.
//!
//! Truncation keeps one checkpoint interval of history: when checkpoint h becomes stable,
//! blocks and batches below the previous stable checkpoint p are dropped. A peer that has
//! executed at least p can still fetch what it needs; one further behind (h > its height +
//! interval) installs the snapshot of h instead.
//!
//! State transfer: ask one peer at a time for chunk i of the snapshot of h; each chunk comes
//! with the certificate, the certified block and a Merkle proof against the certified
//! snapshot root, so a corrupt chunk is rejected on arrival and another peer asked. The
//! rebuilt ledger's state root must equal the certified root before it is installed.

use super::{Action, HealthEvent, Replica};
use crate::checkpoint::{
    replica_snapshot, split_replica_snapshot, CheckpointCert, CheckpointId, CheckpointVote,
    CheckpointVotes, ChunkedSnapshot, SnapshotChunk, VoteOutcome,
};
use crate::crypto::Signer;
use crate::durable::{CheckpointState, Record};
use crate::evidence::Evidence;
use crate::ledger::Ledger;
use crate::messages::{Block, GlobalMessage, LocalCert, Message, QuorumCert, Seq};
use crate::topology::ReplicaId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Own checkpoints kept while they wait to become stable (oldest dropped first).
pub const CHECKPOINTS_UNSTABLE_MAX: usize = 4;
/// Ticks without progress before a state transfer asks another peer.
pub const SNAPSHOT_RETRY_TICKS: u64 = 100;
/// Snapshot chunks served to one peer per tick; more requests are dropped.
pub const SNAPSHOT_CHUNKS_PER_PEER_PER_TICK_MAX: u32 = 4;
/// Ticks before we tell the same peer about our stable checkpoint again.
pub const ANNOUNCE_RETRY_TICKS: u64 = 20;

/// Our own checkpoint at one height, with what serving its snapshot needs.
#[derive(Debug, Clone)]
pub struct OwnCheckpoint {
    pub id: CheckpointId,
    pub block: Arc<Block>,
    pub snapshot: ChunkedSnapshot,
    /// The LC of every lane's cut (lanes with a cut above 0), in lane order.
    pub lane_certs: Vec<LocalCert>,
}

/// A state transfer in progress.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub cert: CheckpointCert,
    /// Index into the candidate peers (signers of the certificate first).
    pub attempt: u64,
    pub peer: ReplicaId,
    pub next_chunk: u64,
    pub chunks: u64,
    pub bytes: Vec<u8>,
    pub block: Option<(Arc<Block>, Vec<LocalCert>)>,
    pub progress_tick: u64,
    /// The highest QC a chunk came with, to sync from after the install.
    pub high_qc: Option<QuorumCert>,
}

#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub interval: u64,
    // Durable.
    /// Our checkpoints not yet stable, by height.
    pub own: BTreeMap<u64, OwnCheckpoint>,
    /// The latest stable checkpoint, with our own state for it when we have it (to serve).
    pub stable: Option<(CheckpointCert, Option<OwnCheckpoint>)>,
    /// A stable certificate above our executed height, compared when we get there.
    pub ahead: Option<CheckpointCert>,
    /// Batches at or below this cut and blocks below `floor_height` are truncated.
    pub floor_cut: Vec<Seq>,
    pub floor_height: u64,
    /// q replicas certified a state different from ours: we stopped executing.
    pub diverged: bool,
    // Volatile.
    pub votes: CheckpointVotes,
    pub transfer: Option<Transfer>,
    pub served: BTreeMap<ReplicaId, (u64, u32)>,
    pub announced: BTreeMap<ReplicaId, u64>,
    pub chunks_rejected: u64,
}

impl Checkpoints {
    pub fn new(quorum: usize, interval: u64, lanes: usize) -> Checkpoints {
        assert!(interval >= 1, "checkpoint interval of at least one block");
        Checkpoints {
            interval,
            own: BTreeMap::new(),
            stable: None,
            ahead: None,
            floor_cut: vec![0; lanes],
            floor_height: 0,
            diverged: false,
            votes: CheckpointVotes::new(quorum, interval),
            transfer: None,
            served: BTreeMap::new(),
            announced: BTreeMap::new(),
            chunks_rejected: 0,
        }
    }

    pub fn stable_height(&self) -> u64 {
        self.stable.as_ref().map_or(0, |(c, _)| c.id.height)
    }
}

impl Replica {
    pub fn stable_checkpoint(&self) -> Option<&CheckpointCert> {
        self.ckpt.stable.as_ref().map(|(c, _)| c)
    }

    /// Snapshot chunks rejected by this replica's state transfers (since its last restart).
    pub fn snapshot_chunks_rejected(&self) -> u64 {
        self.ckpt.chunks_rejected
    }

    pub fn diverged(&self) -> bool {
        self.ckpt.diverged
    }

    /// Batches, blocks and executed-log entries held (to check that memory stays bounded).
    pub fn retained(&self) -> (usize, usize, usize) {
        (
            self.batches.len(),
            self.global.blocks_held(),
            self.executed.len(),
        )
    }

    /// After executing block `block` at a checkpoint height: sign and send our checkpoint.
    pub(super) fn take_checkpoint(
        &mut self,
        block: &Arc<Block>,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let height = block.height;
        if !height.is_multiple_of(self.ckpt.interval) || self.ckpt.diverged {
            return;
        }
        // Execution trails commits; the reputation state as of this height is kept for us.
        let Some(reputation) = self.global.reputation_at(height) else {
            return;
        };
        let snapshot =
            ChunkedSnapshot::new(replica_snapshot(&self.ledger.snapshot_bytes(), &reputation));
        let id = CheckpointId {
            height,
            block: block.digest(),
            state_root: self.ledger.state_root(),
            snapshot_root: snapshot.root(),
        };
        let lane_certs = self.executed_lcs.iter().flatten().cloned().collect();
        self.ckpt.own.insert(
            height,
            OwnCheckpoint {
                id,
                block: block.clone(),
                snapshot,
                lane_certs,
            },
        );
        while self.ckpt.own.len() > CHECKPOINTS_UNSTABLE_MAX {
            self.ckpt.own.pop_first();
        }
        let vote = CheckpointVote::new(id, signer);
        actions.push(Action::send(
            self.others(),
            Message::Checkpoint(vote.clone()),
        ));
        if let Some(ahead) = self.ckpt.ahead.take() {
            if ahead.id.height == height {
                self.on_stable_checkpoint(ahead, signer, actions);
            } else if ahead.id.height > height {
                self.ckpt.ahead = Some(ahead);
            }
        }
        self.on_checkpoint_vote(vote, signer, actions);
    }

    fn others(&self) -> Vec<ReplicaId> {
        self.config
            .topology
            .replicas
            .iter()
            .map(|r| r.id)
            .filter(|&id| id != self.config.me)
            .collect()
    }

    pub(super) fn on_checkpoint_vote(
        &mut self,
        vote: CheckpointVote,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        match self.ckpt.votes.add(vote, signer) {
            VoteOutcome::Pending | VoteOutcome::Ignored => {}
            VoteOutcome::Equivocation { first, second } => self.evidence(
                Evidence::Equivocation {
                    offender: first.from,
                    first: Box::new(Message::Checkpoint(first)),
                    second: Box::new(Message::Checkpoint(second)),
                },
                actions,
            ),
            VoteOutcome::Stable(cert) => self.on_stable_checkpoint(cert, signer, actions),
        }
    }

    /// A verified stable certificate, formed here or received.
    pub(super) fn on_stable_checkpoint(
        &mut self,
        cert: CheckpointCert,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let height = cert.id.height;
        if self.rules.checkpoint(&cert).is_err()
            || height == 0
            || !height.is_multiple_of(self.ckpt.interval)
            || height <= self.ckpt.stable_height()
        {
            return;
        }
        self.ckpt.votes.mark_stable(height);
        if let Some(own) = self.ckpt.own.get(&height) {
            if own.id != cert.id {
                self.diverge(height, actions);
                return;
            }
            let own = own.clone();
            self.stabilise(cert, own, actions);
            return;
        }
        if height <= self.executed_height {
            return; // executed, but our own record is gone (bounded): nothing to compare
        }
        if height > self.executed_height + self.ckpt.interval {
            self.start_transfer(cert, actions);
        } else if self
            .ckpt
            .ahead
            .as_ref()
            .is_none_or(|a| a.id.height < height)
        {
            self.ckpt.ahead = Some(cert);
        }
        let _ = signer;
    }

    /// q replicas certified a state other than ours at `height`: stop executing.
    fn diverge(&mut self, height: u64, actions: &mut Vec<Action>) {
        if !self.ckpt.diverged {
            self.ckpt.diverged = true;
            actions.push(Action::Health(HealthEvent::Diverged { height }));
        }
    }

    /// Persist the certificate with our state at it (a compacted log starts there), then
    /// truncate below the previous stable checkpoint.
    fn stabilise(&mut self, cert: CheckpointCert, own: OwnCheckpoint, actions: &mut Vec<Action>) {
        let height = cert.id.height;
        assert!(
            height <= self.executed_height,
            "stable only what we executed"
        );
        assert_eq!(own.id, cert.id, "the certificate is of our own state");
        actions.push(Action::persist(Record::StableCheckpoint(CheckpointState {
            cert: cert.clone(),
            snapshot: own.snapshot.bytes.clone(),
            block: own.block.clone(),
            lane_certs: own.lane_certs.clone(),
        })));
        let previous = self.ckpt.stable.replace((cert, Some(own)));
        self.ckpt.own.retain(|&h, _| h > height);
        if let Some((_, Some(previous))) = previous {
            self.truncate(previous.id.height, &previous.block.cut);
        }
    }

    /// Drop batches at or below `cut` and blocks below `height`: all executed.
    fn truncate(&mut self, height: u64, cut: &[Seq]) {
        assert!(
            height <= self.executed_height,
            "truncate only executed history"
        );
        assert_eq!(cut.len(), self.last_executed_cut.len());
        for (lane, &seq) in cut.iter().enumerate() {
            assert!(
                seq <= self.last_executed_cut[lane],
                "truncate only executed batches"
            );
            self.ckpt.floor_cut[lane] = self.ckpt.floor_cut[lane].max(seq);
        }
        self.ckpt.floor_height = self.ckpt.floor_height.max(height);
        let floor = &self.ckpt.floor_cut;
        self.batches.retain(|&(lane, seq), _| seq > floor[lane]);
        self.global.truncate_below(height);
        self.executed.retain(|&(_, h)| h >= height);
    }

    /// A peer asked for something we truncated: tell it where our stable checkpoint is
    /// (rate limited per peer).
    pub(super) fn announce_checkpoint(&mut self, to: ReplicaId, actions: &mut Vec<Action>) {
        let Some((cert, _)) = &self.ckpt.stable else {
            return;
        };
        if to == self.config.me
            || self
                .ckpt
                .announced
                .get(&to)
                .is_some_and(|&t| self.now < t + ANNOUNCE_RETRY_TICKS)
        {
            return;
        }
        let message = Message::StableCheckpoint(cert.clone());
        self.ckpt.announced.insert(to, self.now);
        actions.push(Action::send(vec![to], message));
    }

    /// Whether a batch request reaches below what we truncated.
    pub(super) fn truncated_batch(&self, lane: usize, seq: Seq) -> bool {
        seq <= self.ckpt.floor_cut[lane]
    }

    pub(super) fn on_snapshot_request(
        &mut self,
        height: u64,
        chunk: u64,
        to: ReplicaId,
        actions: &mut Vec<Action>,
    ) {
        let served = self.ckpt.served.entry(to).or_insert((self.now, 0));
        if served.0 != self.now {
            *served = (self.now, 0);
        }
        if served.1 >= SNAPSHOT_CHUNKS_PER_PEER_PER_TICK_MAX {
            return;
        }
        served.1 += 1;
        let Some((cert, own)) = &self.ckpt.stable else {
            return;
        };
        if cert.id.height != height {
            self.ckpt.announced.remove(&to);
            self.announce_checkpoint(to, actions);
            return;
        }
        let Some(own) = own else { return };
        let Some((proof, bytes)) = own.snapshot.chunk(chunk) else {
            return;
        };
        let message = Message::SnapshotChunk(Box::new(SnapshotChunk {
            checkpoint: cert.clone(),
            block: own.block.clone(),
            lane_certs: own.lane_certs.clone(),
            proof,
            bytes,
            high_qc: self.global.high_qc().clone(),
        }));
        actions.push(Action::send(vec![to], message));
    }

    fn start_transfer(&mut self, cert: CheckpointCert, actions: &mut Vec<Action>) {
        if self
            .ckpt
            .transfer
            .as_ref()
            .is_some_and(|t| t.cert.id.height >= cert.id.height)
        {
            return;
        }
        let mut transfer = Transfer {
            cert,
            attempt: 0,
            peer: self.config.me,
            next_chunk: 0,
            chunks: 0,
            bytes: Vec::new(),
            block: None,
            progress_tick: self.now,
            high_qc: None,
        };
        transfer.peer = self.transfer_peer(&transfer);
        self.ckpt.transfer = Some(transfer);
        self.request_chunk(actions);
    }

    /// The signers of the certificate first (they hold the state), then everyone else.
    fn transfer_peer(&self, transfer: &Transfer) -> ReplicaId {
        let signers = &transfer.cert.cert.signers;
        let mut candidates: Vec<ReplicaId> = signers.ids().collect();
        candidates.extend(self.others().into_iter().filter(|&r| !signers.contains(r)));
        candidates.retain(|&r| r != self.config.me);
        assert!(!candidates.is_empty(), "a cluster of one needs no transfer");
        candidates[(transfer.attempt % candidates.len() as u64) as usize]
    }

    fn request_chunk(&mut self, actions: &mut Vec<Action>) {
        let Some(transfer) = &self.ckpt.transfer else {
            return;
        };
        actions.push(Action::send(
            vec![transfer.peer],
            Message::SnapshotRequest {
                height: transfer.cert.id.height,
                chunk: transfer.next_chunk,
                from: self.config.me,
            },
        ));
    }

    /// No progress for a while, or a bad chunk: start over with the next peer. Starting over
    /// (rather than resuming) matters: a first chunk can carry a proof that verifies under
    /// a false chunk count (an odd last node is promoted in the tree), and every honest chunk
    /// after it would then be refused.
    fn next_transfer_peer(&mut self, actions: &mut Vec<Action>) {
        let Some(mut transfer) = self.ckpt.transfer.take() else {
            return;
        };
        transfer.next_chunk = 0;
        transfer.chunks = 0;
        transfer.bytes.clear();
        transfer.block = None;
        transfer.attempt += 1;
        transfer.peer = self.transfer_peer(&transfer);
        transfer.progress_tick = self.now;
        self.ckpt.transfer = Some(transfer);
        self.request_chunk(actions);
    }

    pub(super) fn transfer_tick(&mut self, actions: &mut Vec<Action>) {
        let stalled = self
            .ckpt
            .transfer
            .as_ref()
            .is_some_and(|t| self.now >= t.progress_tick + SNAPSHOT_RETRY_TICKS);
        if stalled {
            self.next_transfer_peer(actions);
        }
    }

    pub(super) fn on_snapshot_chunk(
        &mut self,
        from: ReplicaId,
        chunk: SnapshotChunk,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let Some(transfer) = &self.ckpt.transfer else {
            return;
        };
        if chunk.checkpoint.id != transfer.cert.id || chunk.proof.leaf_index != transfer.next_chunk
        {
            return; // stale or duplicate: not evidence of anything
        }
        let first = transfer.next_chunk == 0;
        let valid = chunk.verify()
            && (first || chunk.proof.leaf_count == transfer.chunks)
            && self.lane_certs_match(&chunk.block, &chunk.lane_certs);
        if !valid {
            self.reject_chunk(from, actions);
            return;
        }
        let transfer = self.ckpt.transfer.as_mut().expect("checked above");
        if first {
            transfer.chunks = chunk.proof.leaf_count;
            transfer.block = Some((chunk.block.clone(), chunk.lane_certs.clone()));
        }
        transfer.bytes.extend_from_slice(&chunk.bytes);
        if transfer
            .high_qc
            .as_ref()
            .is_none_or(|qc| qc.round < chunk.high_qc.round)
        {
            transfer.high_qc = Some(chunk.high_qc.clone());
        }
        transfer.next_chunk += 1;
        transfer.progress_tick = self.now;
        if transfer.next_chunk < transfer.chunks {
            self.request_chunk(actions);
            return;
        }
        let transfer = self.ckpt.transfer.take().expect("checked above");
        match self.decode_snapshot(&transfer.bytes) {
            Some((ledger, reputation)) if ledger.state_root() == transfer.cert.id.state_root => {
                self.install(transfer, ledger, &reputation, signer, actions)
            }
            _ => {
                // Every chunk matched the certified snapshot root, so only a certificate
                // over bad state gets here; start over with another peer.
                self.ckpt.transfer = Some(transfer);
                self.reject_chunk(from, actions);
            }
        }
    }

    /// The ledger and reputation state a replica snapshot holds, if it decodes.
    fn decode_snapshot(&self, bytes: &[u8]) -> Option<(Ledger, Vec<u8>)> {
        let (ledger, reputation) = split_replica_snapshot(bytes)?;
        let mut schedule = self.global.schedule().clone();
        schedule.restore_reputation(reputation)?;
        let ledger = Ledger::from_snapshot(ledger).ok()?;
        Some((ledger, reputation.to_vec()))
    }

    /// Restore: a stable checkpoint of ours. In a whole log, execution has replayed up to it
    /// already; a compacted log starts with it, and its state is installed.
    pub(super) fn replay_stable_checkpoint(
        &mut self,
        state: CheckpointState,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        if state.block.height <= self.executed_height {
            self.on_stable_checkpoint(state.cert, signer, actions);
        } else {
            self.replay_snapshot_installed(state, signer, actions);
        }
    }

    /// Restore: install again the snapshot a state transfer installed before the restart.
    pub(super) fn replay_snapshot_installed(
        &mut self,
        state: CheckpointState,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let (ledger, reputation) = self
            .decode_snapshot(&state.snapshot)
            .expect("an installed snapshot was verified before it was persisted");
        let transfer = Transfer {
            cert: state.cert,
            attempt: 0,
            peer: self.config.me,
            next_chunk: 0,
            chunks: 0,
            bytes: state.snapshot.to_vec(),
            block: Some((state.block, state.lane_certs)),
            progress_tick: self.now,
            high_qc: None,
        };
        self.install(transfer, ledger, &reputation, signer, actions);
    }

    fn reject_chunk(&mut self, from: ReplicaId, actions: &mut Vec<Action>) {
        self.ckpt.chunks_rejected += 1;
        let height = self.ckpt.transfer.as_ref().map_or(0, |t| t.cert.id.height);
        actions.push(Action::Health(HealthEvent::SnapshotChunkRejected {
            peer: from,
            height,
        }));
        self.next_transfer_peer(actions);
    }

    /// One LC per lane with a cut above 0, at exactly the cut, certified by its domain.
    fn lane_certs_match(&self, block: &Block, lane_certs: &[LocalCert]) -> bool {
        if block.cut.len() != self.lanes.len() {
            return false;
        }
        let expected: Vec<(usize, Seq)> = block
            .cut
            .iter()
            .enumerate()
            .filter(|(_, &seq)| seq > 0)
            .map(|(lane, &seq)| (lane, seq))
            .collect();
        expected.len() == lane_certs.len()
            && expected.iter().zip(lane_certs).all(|(&(lane, seq), lc)| {
                lc.lane == self.lanes[lane] && lc.seq == seq && self.rules.lc(lc).is_ok()
            })
    }

    /// Install a verified snapshot: the ledger, the global tier's committed block, the lanes'
    /// executed positions; then continue from height h + 1.
    fn install(
        &mut self,
        transfer: Transfer,
        ledger: Ledger,
        reputation: &[u8],
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let cert = transfer.cert;
        let height = cert.id.height;
        let (block, lane_certs) = transfer.block.expect("first chunk seen");
        assert_eq!(block.digest(), cert.id.block);
        assert_eq!(ledger.state_root(), cert.id.state_root);
        if height <= self.executed_height {
            return; // we got there by executing meanwhile
        }
        let snapshot = ChunkedSnapshot::new(transfer.bytes);
        assert_eq!(snapshot.root(), cert.id.snapshot_root);
        actions.push(Action::persist(Record::SnapshotInstalled(
            CheckpointState {
                cert: cert.clone(),
                snapshot: snapshot.bytes.clone(),
                block: block.clone(),
                lane_certs: lane_certs.clone(),
            },
        )));
        self.ledger = ledger;
        self.global.install_checkpoint(block.clone(), reputation);
        let cut = block.cut.clone();
        self.last_executed_cut = cut.clone();
        for (lane, &seq) in cut.iter().enumerate() {
            self.contiguous[lane] = self.contiguous[lane].max(seq);
            self.ckpt.floor_cut[lane] = self.ckpt.floor_cut[lane].max(seq);
        }
        self.ckpt.floor_height = height;
        self.batches.retain(|&(lane, seq), _| seq > cut[lane]);
        self.to_execute.retain(|b| b.height > height);
        assert!(self
            .to_execute
            .front()
            .is_none_or(|b| b.height == height + 1));
        let my_domain = self.config.topology.domain_of(self.config.me);
        self.executed_lcs = vec![None; self.lanes.len()];
        for lc in &lane_certs {
            let lane = self.lane_index(lc.lane);
            self.executed_lcs[lane] = Some(lc.clone());
            if lc.lane.domain == my_domain {
                self.shards[lc.lane.shard as usize].skip_to(lc.clone());
            }
        }
        self.executed_height = height;
        self.executed.clear();
        self.executed.push((cert.id.block, height));
        self.after_execution(actions);
        let own = OwnCheckpoint {
            id: cert.id,
            block,
            snapshot,
            lane_certs,
        };
        self.ckpt.own.retain(|&h, _| h > height);
        self.ckpt.votes.mark_stable(height);
        self.ckpt.stable = Some((cert.clone(), Some(own)));
        if self
            .ckpt
            .ahead
            .as_ref()
            .is_some_and(|a| a.id.height <= height)
        {
            self.ckpt.ahead = None;
        }
        actions.push(Action::SnapshotInstalled {
            height,
            block: cert.id.block,
            state_root: cert.id.state_root,
        });
        self.execute_ready(signer, actions);
        if let Some(high_qc) = transfer.high_qc {
            // Fetch and commit the blocks above the checkpoint that the peer certified.
            let mut out = Vec::new();
            let sync = GlobalMessage::Sync {
                high_qc,
                high_tc: None,
            };
            self.global.on_message(sync, signer, &mut out);
            self.apply_global(out, signer, actions);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SimKeys;
    use crate::hotstuff::genesis_block;
    use crate::replica::{Input, ReplicaConfig};
    use crate::topology::Topology;
    use crate::vote_pattern::VotePattern;

    const K: u64 = 8;

    fn replica(keys: &SimKeys) -> Replica {
        let config = ReplicaConfig {
            topology: Arc::new(Topology::synthetic(4, 1, 1).unwrap()),
            me: 0,
            genesis_accounts: (0..4).map(|a| (a, 100)).collect(),
            clients: Default::default(),
            request_timeout_ticks: 150,
            global_timeout_min_ticks: 400,
            global_timeout_max_ticks: 3_000,
            ticks_per_ms: 1,
            rotation_rounds: 3,
            vote_pattern: VotePattern::AllToAll,
            checkpoint_interval_blocks: K,
        };
        Replica::new(config, &keys.signer(0))
    }

    /// Pretend replica 0 executed up to height K and took its checkpoint there.
    fn with_own_checkpoint(replica: &mut Replica) -> CheckpointId {
        let reputation = replica.global.schedule().reputation_bytes();
        let snapshot = ChunkedSnapshot::new(replica_snapshot(
            &replica.ledger.snapshot_bytes(),
            &reputation,
        ));
        let id = CheckpointId {
            height: K,
            block: [8; 32],
            state_root: replica.ledger.state_root(),
            snapshot_root: snapshot.root(),
        };
        replica.executed_height = K;
        replica.ckpt.own.insert(
            K,
            OwnCheckpoint {
                id,
                block: Arc::new(genesis_block(1)),
                snapshot,
                lane_certs: Vec::new(),
            },
        );
        id
    }

    fn certify(keys: &SimKeys, id: CheckpointId, signers: &[ReplicaId]) -> CheckpointCert {
        let mut keeper = CheckpointVotes::new(signers.len(), K);
        let mut last = VoteOutcome::Pending;
        for &from in signers {
            last = keeper.add(CheckpointVote::new(id, &keys.signer(from)), &keys.signer(0));
        }
        match last {
            VoteOutcome::Stable(cert) => cert,
            other => panic!("no certificate: {other:?}"),
        }
    }

    /// Deliver a message and answer its verification as the host would.
    fn deliver(
        replica: &mut Replica,
        keys: &SimKeys,
        from: ReplicaId,
        message: Message,
    ) -> Vec<Action> {
        let signer = keys.signer(0);
        let mut out = Vec::new();
        let mut inputs = vec![Input::Message { from, message }];
        while let Some(input) = inputs.pop() {
            for action in replica.step(input, &signer) {
                if let Action::Verify { token, checks } = &action {
                    use crate::crypto::Verifier;
                    let failed = keys.failed(checks);
                    inputs.push(Input::Verified {
                        token: *token,
                        failed,
                    });
                }
                out.push(action);
            }
        }
        out
    }

    #[test]
    fn matching_certificate_is_persisted_and_becomes_stable() {
        let keys = SimKeys::new(4, 1);
        let mut replica = replica(&keys);
        let id = with_own_checkpoint(&mut replica);
        let cert = certify(&keys, id, &[1, 2, 3]);
        let actions = deliver(
            &mut replica,
            &keys,
            1,
            Message::StableCheckpoint(cert.clone()),
        );
        assert!(actions.iter().any(|a| matches!(a, Action::Persist {
                record: Record::StableCheckpoint(state), ..
            } if state.cert == cert && state.cert.id == id)));
        assert_eq!(replica.stable_checkpoint(), Some(&cert));
        assert!(!replica.diverged());
    }

    #[test]
    fn q_signatures_for_another_root_mean_divergence_and_execution_stops() {
        let keys = SimKeys::new(4, 1);
        let mut replica = replica(&keys);
        let mut id = with_own_checkpoint(&mut replica);
        id.state_root[0] ^= 1;
        let cert = certify(&keys, id, &[1, 2, 3]);
        let actions = deliver(&mut replica, &keys, 1, Message::StableCheckpoint(cert));
        assert!(actions.contains(&Action::Health(HealthEvent::Diverged { height: K })));
        assert!(replica.diverged());
        assert_eq!(replica.stable_checkpoint(), None);
        // A forged certificate (too few signers) is not even considered.
        let mut replica = super::tests::replica(&keys);
        with_own_checkpoint(&mut replica);
        let short = certify(&keys, id, &[1, 2]);
        let actions = deliver(&mut replica, &keys, 1, Message::StableCheckpoint(short));
        assert!(actions.is_empty() || !replica.diverged());
        assert!(!replica.diverged());
    }

    #[test]
    fn two_checkpoints_for_one_height_from_one_peer_is_evidence() {
        let keys = SimKeys::new(4, 1);
        let mut replica = replica(&keys);
        let id = with_own_checkpoint(&mut replica);
        let mut other = id;
        other.state_root[0] ^= 1;
        let first = CheckpointVote::new(id, &keys.signer(2));
        let second = CheckpointVote::new(other, &keys.signer(2));
        assert!(deliver(&mut replica, &keys, 2, Message::Checkpoint(first))
            .iter()
            .all(|a| !matches!(a, Action::Evidence(_))));
        let actions = deliver(&mut replica, &keys, 2, Message::Checkpoint(second));
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Evidence(Evidence::Equivocation { offender: 2, .. })
        )));
        // A vote relayed by someone other than its signer is dropped.
        let relayed = CheckpointVote::new(id, &keys.signer(3));
        assert!(deliver(&mut replica, &keys, 1, Message::Checkpoint(relayed)).len() <= 1);
    }

    #[test]
    fn a_certificate_far_ahead_starts_a_transfer_from_a_signer() {
        let keys = SimKeys::new(4, 1);
        let mut replica = replica(&keys);
        let id = CheckpointId {
            height: 3 * K,
            block: [3; 32],
            state_root: [4; 32],
            snapshot_root: [5; 32],
        };
        let cert = certify(&keys, id, &[1, 2, 3]);
        let actions = deliver(&mut replica, &keys, 2, Message::StableCheckpoint(cert));
        assert!(actions.contains(&Action::Send {
            after: replica.last_record,
            to: vec![1],
            message: Message::SnapshotRequest {
                height: 3 * K,
                chunk: 0,
                from: 0
            }
        }));
        // A chunk that does not verify is rejected and the next peer asked.
        let chunk = SnapshotChunk {
            checkpoint: replica.ckpt.transfer.as_ref().unwrap().cert.clone(),
            block: Arc::new(genesis_block(1)),
            lane_certs: Vec::new(),
            proof: ccbft_storage::merkle::MerkleProof {
                leaf_index: 0,
                leaf_count: 1,
                siblings: Vec::new(),
            },
            bytes: vec![1, 2, 3],
            high_qc: replica.global.high_qc().clone(),
        };
        let actions = deliver(
            &mut replica,
            &keys,
            1,
            Message::SnapshotChunk(Box::new(chunk)),
        );
        assert!(
            actions.contains(&Action::Health(HealthEvent::SnapshotChunkRejected {
                peer: 1,
                height: 3 * K
            }))
        );
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Send { to, message: Message::SnapshotRequest { chunk: 0, .. }, .. } if to == &vec![2]
        )));
        assert_eq!(replica.snapshot_chunks_rejected(), 1);
    }
}
