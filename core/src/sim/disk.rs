//! A replica's simulated disk: records become durable a seeded write latency after they are
//! appended (one flush in flight at a time, so later records ride the next flush: group
//! commit), sends wait for the records they name, and a crash loses every record not yet
//! durable (the one being written may be torn: the log's checksum drops it on restart).
//! Once a stable checkpoint record is durable, the durable records are compacted
//! (`durable::compact`), so every restart replays from the last checkpoint.

use super::rng::Rng;
use crate::durable::{Record, RecordSeq};
use crate::messages::Message;
use crate::topology::ReplicaId;

/// Fastest and slowest write-plus-fsync of one flush, simulated microseconds (NVMe to a
/// busy cloud volume).
pub const WRITE_LATENCY_MIN_US: u64 = 20;
pub const WRITE_LATENCY_MAX_US: u64 = 600;

#[derive(Debug)]
pub struct Held {
    pub after: RecordSeq,
    pub to: Vec<ReplicaId>,
    pub message: Message,
}

#[derive(Debug, Default)]
pub struct SimDisk {
    /// What compaction left of records `1..=base_upto` (durable, like a rewritten segment).
    base: Vec<Record>,
    base_upto: RecordSeq,
    /// Records appended after the base; record `s` is at `s - base_upto - 1`.
    tail: Vec<Record>,
    durable: RecordSeq,
    /// The newest stable checkpoint record appended: the log compacts once it is durable.
    checkpoint_at: Option<RecordSeq>,
    /// The flush in flight: the last record it covers.
    flushing: Option<RecordSeq>,
    /// Bumped by every crash, so a flush that was in flight at the crash is ignored.
    pub epoch: u64,
    held: Vec<Held>,
}

/// What a crash did to the disk.
pub struct CrashLoss {
    pub lost: u64,
    pub torn: bool,
}

impl SimDisk {
    /// What a restart reads: the base, then the records after it.
    pub fn log(&self) -> Vec<Record> {
        self.base.iter().chain(&self.tail).cloned().collect()
    }

    /// Records held (base and tail): bounded by compaction.
    pub fn held(&self) -> usize {
        self.base.len() + self.tail.len()
    }

    /// The number of the last record appended.
    pub fn last(&self) -> RecordSeq {
        self.base_upto + self.tail.len() as RecordSeq
    }

    /// Once the newest stable checkpoint record is durable, replace every durable record by
    /// their compaction (as a host rewrites its log at a checkpoint). True if it did.
    pub fn compact_if_due(&mut self, shards: u32) -> bool {
        if self.checkpoint_at.is_none_or(|at| at > self.durable) {
            return false;
        }
        self.checkpoint_at = None;
        let durable_in_tail = (self.durable - self.base_upto) as usize;
        let mut durable: Vec<Record> = std::mem::take(&mut self.base);
        durable.extend(self.tail.drain(..durable_in_tail));
        self.base = crate::durable::compact(&durable, shards);
        self.base_upto = self.durable;
        true
    }

    pub fn durable(&self) -> RecordSeq {
        self.durable
    }

    /// Append record `seq`; the flush to start, if none is in flight: (covers upto, latency).
    pub fn append(
        &mut self,
        seq: RecordSeq,
        record: Record,
        rng: &mut Rng,
    ) -> Option<(RecordSeq, u64)> {
        assert_eq!(seq, self.last() + 1, "records are numbered in order");
        if matches!(record, Record::StableCheckpoint(_)) {
            self.checkpoint_at = Some(seq);
        }
        self.tail.push(record);
        self.start_flush(rng)
    }

    fn start_flush(&mut self, rng: &mut Rng) -> Option<(RecordSeq, u64)> {
        let last = self.last();
        if self.flushing.is_some() || last == self.durable {
            return None;
        }
        self.flushing = Some(last);
        let latency = WRITE_LATENCY_MIN_US + rng.below(WRITE_LATENCY_MAX_US - WRITE_LATENCY_MIN_US);
        Some((last, latency))
    }

    /// The flush covering records up to `upto` completed: the sends now free to leave, and
    /// the next flush to start.
    pub fn flushed(
        &mut self,
        upto: RecordSeq,
        rng: &mut Rng,
    ) -> (Vec<Held>, Option<(RecordSeq, u64)>) {
        assert_eq!(self.flushing, Some(upto), "one flush in flight");
        self.flushing = None;
        self.durable = upto;
        let (free, waiting) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|held| held.after <= upto);
        self.held = waiting;
        (free, self.start_flush(rng))
    }

    /// Hold a send until the records it waits for are durable; gives it back if it may
    /// leave now.
    pub fn hold(&mut self, held: Held) -> Option<Held> {
        if held.after <= self.durable {
            return Some(held);
        }
        self.held.push(held);
        None
    }

    /// Power loss: what was not durable is gone, and the record being written may be torn.
    pub fn crash(&mut self, rng: &mut Rng) -> CrashLoss {
        let lost = self.last() - self.durable;
        let torn = self.flushing.is_some() && rng.chance(500);
        self.tail.truncate((self.durable - self.base_upto) as usize);
        if self.checkpoint_at.is_some_and(|at| at > self.durable) {
            self.checkpoint_at = None;
        }
        self.flushing = None;
        self.held.clear();
        self.epoch += 1;
        CrashLoss { lost, torn }
    }
}
