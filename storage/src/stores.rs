//! Stores over the write-ahead log: the consensus safety state, batches and blocks, stable
//! checkpoints. Everything is a WAL record; the in-memory indexes are rebuilt by replay.
//!
//! Persist, then send: `persist_safety` completes only once the entry is durable, and hands
//! back a [`Durable`] token; the replica releases a vote only with the token of the state it
//! depends on. The core defines what the safety bytes mean; here they are opaque, keyed by
//! a [`SafetyKind`] and a slot (for example the sequence a prepared certificate is for).
//!
//! Safety records carry an *origin*: the sequence of the `persist_safety` that made the
//! value. A checkpoint copies live entries forward (so the log below can go) under their
//! original origin, and an entry is only ever replaced by one of a higher origin, live and on
//! replay alike: a copy racing a newer `persist_safety`, or appends woken out of order, can
//! never roll an entry back. Forget marks carry an origin the same way, and a value older
//! than a forget mark below its slot never comes back.

use crate::format::{RECORD_HEADER_SIZE_BYTES, RECORD_PAYLOAD_MAX_BYTES};
use crate::merkle::Hash;
use crate::scan::{Location, RecordView};
use crate::wal::{Recovery, Wal, WalConfig, WalError};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const KIND_SAFETY: u16 = 1;
pub const KIND_SAFETY_FORGET: u16 = 2;
pub const KIND_BATCH: u16 = 3;
pub const KIND_BLOCK: u16 = 4;
pub const KIND_CHECKPOINT: u16 = 5;
/// Record kinds from here up are the replica's own (see `Storage::append_user`).
pub const KIND_USER_MIN: u16 = 0x100;

/// Largest safety value (a prepared certificate with its aggregate signature fits easily).
pub const SAFETY_VALUE_MAX_BYTES: u64 = 64 << 10;
/// Most live safety entries; the replica forgets old slots after each checkpoint.
pub const SAFETY_ENTRIES_MAX: u64 = 1 << 16;
const SAFETY_PREFIX_BYTES: u64 = 17;
const OBJECT_PREFIX_BYTES: u64 = 40;
/// Largest batch or block.
pub const OBJECT_MAX_BYTES: u64 = RECORD_PAYLOAD_MAX_BYTES - OBJECT_PREFIX_BYTES;

const _: () = assert!(SAFETY_PREFIX_BYTES + SAFETY_VALUE_MAX_BYTES <= RECORD_PAYLOAD_MAX_BYTES);
const _: () = assert!(OBJECT_MAX_BYTES > RECORD_HEADER_SIZE_BYTES);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum SafetyKind {
    View = 1,
    HighestVotedRound = 2,
    Lock = 3,
    PreparedCertificate = 4,
}

impl SafetyKind {
    fn from_byte(byte: u8) -> Option<SafetyKind> {
        match byte {
            1 => Some(SafetyKind::View),
            2 => Some(SafetyKind::HighestVotedRound),
            3 => Some(SafetyKind::Lock),
            4 => Some(SafetyKind::PreparedCertificate),
            _ => None,
        }
    }
}

/// Proof that a write is on disk: the WAL sequence it was made durable at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[must_use = "a vote may leave only once the state it depends on is durable"]
pub struct Durable {
    pub sequence: u64,
}

/// Batches (local PBFT) or blocks (global HotStuff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Batch,
    Block,
}

impl ObjectKind {
    fn record_kind(self) -> u16 {
        match self {
            ObjectKind::Batch => KIND_BATCH,
            ObjectKind::Block => KIND_BLOCK,
        }
    }
}

/// The checkpoint below which history may go: `number` is the consensus sequence it
/// covers, `root` the signed Merkle root of the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StableCheckpoint {
    pub number: u64,
    pub root: Hash,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("{what} of {len} bytes is above the {max} byte limit")]
    TooLarge {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("more than {SAFETY_ENTRIES_MAX} live safety entries; forget old slots")]
    TooManySafetyEntries,
    #[error("record {sequence} (kind {kind}) is malformed: {why}")]
    Malformed {
        sequence: u64,
        kind: u16,
        why: &'static str,
    },
    #[error("record kind {0} is below the replica's range ({KIND_USER_MIN}..)")]
    ReservedKind(u16),
    #[error("{kind:?} {digest} is stored as number {stored}, not {given}", digest = hex(digest))]
    DigestConflict {
        kind: ObjectKind,
        digest: Hash,
        stored: u64,
        given: u64,
    },
    #[error("{kind:?} number {number} is stored with digest {stored}, not {given}", stored = hex(stored), given = hex(given))]
    NumberConflict {
        kind: ObjectKind,
        number: u64,
        stored: Hash,
        given: Hash,
    },
}

/// What a truncation after a stable checkpoint must keep besides the stores' own records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retain {
    /// The lowest log sequence the replica still needs: nothing at or above it goes.
    pub low_water: u64,
    /// Record kinds (`KIND_USER_MIN..`) none of whose records may go.
    pub user_kinds: Vec<u16>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct ObjectIndex {
    by_digest: HashMap<Hash, (u64, Location, u64)>,
    by_number: BTreeMap<u64, Hash>,
}

/// A live safety entry: its value, the sequence that made it, the sequence of its newest
/// copy in the log.
struct SafetyEntry {
    value: Vec<u8>,
    origin: u64,
    copy: u64,
}

/// Entries of a kind with slots below `slot` and an origin below `origin` are forgotten.
#[derive(Clone, Copy)]
struct ForgetMark {
    slot: u64,
    origin: u64,
    copy: u64,
}

#[derive(Default)]
struct State {
    safety: BTreeMap<(SafetyKind, u64), SafetyEntry>,
    forgets: BTreeMap<SafetyKind, ForgetMark>,
    batches: ObjectIndex,
    blocks: ObjectIndex,
    checkpoint: Option<(StableCheckpoint, u64)>,
    /// Lowest sequence of each user record kind still in the log.
    user_first: BTreeMap<u16, u64>,
}

impl State {
    fn index(&mut self, kind: ObjectKind) -> &mut ObjectIndex {
        match kind {
            ObjectKind::Batch => &mut self.batches,
            ObjectKind::Block => &mut self.blocks,
        }
    }

    /// Applies one record; also used for live appends, so replay and the running replica
    /// build the same state.
    fn apply(&mut self, record: &RecordView<'_>) -> Result<(), StorageError> {
        let malformed = |why| StorageError::Malformed {
            sequence: record.sequence,
            kind: record.kind,
            why,
        };
        let p = record.payload;
        let u64_at = |at: usize| u64::from_le_bytes(p[at..at + 8].try_into().expect("8 bytes"));
        match record.kind {
            KIND_SAFETY | KIND_SAFETY_FORGET => {
                if (p.len() as u64) < SAFETY_PREFIX_BYTES {
                    return Err(malformed("short safety record"));
                }
                let kind = SafetyKind::from_byte(p[0]).ok_or(malformed("unknown safety kind"))?;
                let slot = u64_at(1);
                let origin = match u64_at(9) {
                    0 => record.sequence,
                    origin if origin < record.sequence => origin,
                    _ => return Err(malformed("safety origin after its record")),
                };
                if record.kind == KIND_SAFETY {
                    self.apply_safety(kind, slot, origin, record.sequence, &p[17..]);
                } else {
                    self.apply_forget(kind, slot, origin, record.sequence);
                }
            }
            KIND_BATCH | KIND_BLOCK => {
                if (p.len() as u64) < OBJECT_PREFIX_BYTES {
                    return Err(malformed("short object record"));
                }
                let digest: Hash = p[0..32].try_into().expect("32 bytes");
                let number = u64_at(32);
                let kind = if record.kind == KIND_BATCH {
                    ObjectKind::Batch
                } else {
                    ObjectKind::Block
                };
                let below = self.checkpoint.is_some_and(|(cp, _)| number <= cp.number);
                // A number holds one digest: the first stored wins (live puts refuse others).
                let taken = self
                    .index(kind)
                    .by_number
                    .get(&number)
                    .is_some_and(|d| *d != digest);
                if !below && !taken {
                    let index = self.index(kind);
                    index
                        .by_digest
                        .insert(digest, (number, record.location, record.sequence));
                    index.by_number.insert(number, digest);
                }
            }
            KIND_CHECKPOINT => {
                if p.len() != 40 {
                    return Err(malformed("checkpoint record is not 40 bytes"));
                }
                let checkpoint = StableCheckpoint {
                    number: u64_at(0),
                    root: p[8..40].try_into().expect("32 bytes"),
                };
                if self
                    .checkpoint
                    .is_none_or(|(cp, _)| cp.number < checkpoint.number)
                {
                    self.checkpoint = Some((checkpoint, record.sequence));
                    for kind in [ObjectKind::Batch, ObjectKind::Block] {
                        let index = self.index(kind);
                        let keep = index.by_number.split_off(&(checkpoint.number + 1));
                        for digest in std::mem::replace(&mut index.by_number, keep).into_values() {
                            index.by_digest.remove(&digest);
                        }
                    }
                }
            }
            kind if kind >= KIND_USER_MIN => {
                self.user_first.entry(kind).or_insert(record.sequence);
            }
            _ => {}
        }
        Ok(())
    }

    fn apply_safety(
        &mut self,
        kind: SafetyKind,
        slot: u64,
        origin: u64,
        sequence: u64,
        value: &[u8],
    ) {
        if self
            .forgets
            .get(&kind)
            .is_some_and(|f| slot < f.slot && origin < f.origin)
        {
            return; // forgotten before this copy landed
        }
        match self.safety.get_mut(&(kind, slot)) {
            Some(entry) if entry.origin > origin => {}
            Some(entry) if entry.origin == origin => entry.copy = entry.copy.max(sequence),
            _ => {
                let entry = SafetyEntry {
                    value: value.to_vec(),
                    origin,
                    copy: sequence,
                };
                self.safety.insert((kind, slot), entry);
            }
        }
    }

    fn apply_forget(&mut self, kind: SafetyKind, slot: u64, origin: u64, sequence: u64) {
        match self.forgets.get_mut(&kind) {
            Some(mark) if mark.origin > origin => return,
            Some(mark) if mark.origin == origin => {
                mark.copy = mark.copy.max(sequence);
                return;
            }
            _ => {}
        }
        self.forgets.insert(
            kind,
            ForgetMark {
                slot,
                origin,
                copy: sequence,
            },
        );
        self.safety
            .retain(|(k, s), e| *k != kind || *s >= slot || e.origin > origin);
    }

    /// Lowest sequence the stores' own state still needs in the log; `with_safety: false`
    /// leaves out the safety entries and forget marks (those can be copied forward).
    fn oldest_needed(&self, sequence_max: u64, with_safety: bool) -> u64 {
        let objects = self
            .batches
            .by_digest
            .values()
            .chain(self.blocks.by_digest.values())
            .map(|(_, _, seq)| *seq);
        let safety = self.safety.values().map(|e| e.copy).filter(|_| with_safety);
        let forgets = self
            .forgets
            .values()
            .map(|f| f.copy)
            .filter(|_| with_safety);
        let checkpoint = self.checkpoint.map(|(_, seq)| seq);
        objects
            .chain(safety)
            .chain(forgets)
            .chain(checkpoint)
            .fold(sequence_max, u64::min)
    }
}

/// The replica's durable state: a WAL plus indexes.
pub struct Storage {
    wal: Wal,
    state: RefCell<State>,
}

impl Storage {
    /// Opens (or creates) the store in `dir`, replaying the log. Records of the replica's
    /// own kinds (`KIND_USER_MIN..`) go to `replay_user` in order.
    pub async fn open(
        dir: &Path,
        config: WalConfig,
        mut replay_user: impl FnMut(RecordView<'_>),
    ) -> Result<(Storage, Recovery), StorageError> {
        let mut state = State::default();
        let mut first_error = None;
        let (wal, recovery) = Wal::open(dir, config, |record| {
            if record.kind >= KIND_USER_MIN {
                replay_user(record);
            }
            if let Err(err) = state.apply(&record) {
                first_error.get_or_insert(err);
            }
        })
        .await?;
        if let Some(err) = first_error {
            return Err(err);
        }
        Ok((
            Storage {
                wal,
                state: RefCell::new(state),
            },
            recovery,
        ))
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    async fn append_and_apply(&self, kind: u16, payload: &[u8]) -> Result<Durable, StorageError> {
        let appended = self.wal.append(kind, payload).await?;
        let view = RecordView {
            sequence: appended.sequence,
            kind,
            payload,
            location: appended.location,
        };
        self.state.borrow_mut().apply(&view)?;
        Ok(Durable {
            sequence: appended.sequence,
        })
    }

    /// Makes a safety entry durable; completes only once it is on disk.
    pub async fn persist_safety(
        &self,
        kind: SafetyKind,
        slot: u64,
        value: &[u8],
    ) -> Result<Durable, StorageError> {
        if value.len() as u64 > SAFETY_VALUE_MAX_BYTES {
            return Err(StorageError::TooLarge {
                what: "safety value",
                len: value.len() as u64,
                max: SAFETY_VALUE_MAX_BYTES,
            });
        }
        {
            let state = self.state.borrow();
            if !state.safety.contains_key(&(kind, slot))
                && state.safety.len() as u64 >= SAFETY_ENTRIES_MAX
            {
                return Err(StorageError::TooManySafetyEntries);
            }
        }
        let payload = safety_payload(kind, slot, 0, value);
        let durable = self.append_and_apply(KIND_SAFETY, &payload).await?;
        // Our value, or a newer one that landed meanwhile; never an older one.
        assert!(self
            .state
            .borrow()
            .safety
            .get(&(kind, slot))
            .is_some_and(|e| e.origin >= durable.sequence));
        Ok(durable)
    }

    /// The latest durable value of a safety entry.
    pub fn safety(&self, kind: SafetyKind, slot: u64) -> Option<Vec<u8>> {
        self.state
            .borrow()
            .safety
            .get(&(kind, slot))
            .map(|e| e.value.clone())
    }

    /// All live safety entries, in (kind, slot) order.
    pub fn safety_entries(&self) -> Vec<(SafetyKind, u64, Vec<u8>)> {
        let state = self.state.borrow();
        state
            .safety
            .iter()
            .map(|((k, s), e)| (*k, *s, e.value.clone()))
            .collect()
    }

    /// Forgets the entries of `kind` with slots below `slot` (after a checkpoint).
    pub async fn forget_safety_below(
        &self,
        kind: SafetyKind,
        slot: u64,
    ) -> Result<Durable, StorageError> {
        let mut payload = vec![kind as u8];
        payload.extend_from_slice(&slot.to_le_bytes());
        payload.extend_from_slice(&0u64.to_le_bytes());
        self.append_and_apply(KIND_SAFETY_FORGET, &payload).await
    }

    /// Stores a batch or block under its digest (computed by the caller) and its consensus
    /// number. Idempotent: storing the same digest again returns without writing.
    pub async fn put(
        &self,
        kind: ObjectKind,
        digest: Hash,
        number: u64,
        bytes: &[u8],
    ) -> Result<Option<Durable>, StorageError> {
        if bytes.len() as u64 > OBJECT_MAX_BYTES {
            return Err(StorageError::TooLarge {
                what: "batch or block",
                len: bytes.len() as u64,
                max: OBJECT_MAX_BYTES,
            });
        }
        if let Some((stored, _, _)) = self.state.borrow_mut().index(kind).by_digest.get(&digest) {
            if *stored != number {
                return Err(StorageError::DigestConflict {
                    kind,
                    digest,
                    stored: *stored,
                    given: number,
                });
            }
            return Ok(None);
        }
        if let Some(stored) = self.state.borrow_mut().index(kind).by_number.get(&number) {
            if *stored != digest {
                return Err(StorageError::NumberConflict {
                    kind,
                    number,
                    stored: *stored,
                    given: digest,
                });
            }
        }
        let mut payload = Vec::with_capacity(bytes.len() + OBJECT_PREFIX_BYTES as usize);
        payload.extend_from_slice(&digest);
        payload.extend_from_slice(&number.to_le_bytes());
        payload.extend_from_slice(bytes);
        self.append_and_apply(kind.record_kind(), &payload)
            .await
            .map(Some)
    }

    /// A stored batch or block by digest: its number and bytes.
    pub async fn get_by_digest(
        &self,
        kind: ObjectKind,
        digest: &Hash,
    ) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let found = self
            .state
            .borrow_mut()
            .index(kind)
            .by_digest
            .get(digest)
            .copied();
        let Some((number, location, _)) = found else {
            return Ok(None);
        };
        let record = self.wal.read(location).await?;
        let body = check_object(&record, kind, digest, number)?;
        Ok(Some((number, body)))
    }

    /// A stored batch or block by consensus number: its digest and bytes.
    pub async fn get_by_number(
        &self,
        kind: ObjectKind,
        number: u64,
    ) -> Result<Option<(Hash, Vec<u8>)>, StorageError> {
        let digest = self
            .state
            .borrow_mut()
            .index(kind)
            .by_number
            .get(&number)
            .copied();
        let Some(digest) = digest else {
            return Ok(None);
        };
        Ok(self
            .get_by_digest(kind, &digest)
            .await?
            .map(|(_, bytes)| (digest, bytes)))
    }

    /// Highest stored consensus number of `kind`.
    pub fn highest_number(&self, kind: ObjectKind) -> Option<u64> {
        self.state
            .borrow_mut()
            .index(kind)
            .by_number
            .keys()
            .next_back()
            .copied()
    }

    pub fn stable_checkpoint(&self) -> Option<StableCheckpoint> {
        self.state.borrow().checkpoint.map(|(cp, _)| cp)
    }

    /// Records a stable checkpoint, drops batches and blocks at or below its number, and
    /// truncates the log below what is still needed: the stores' own live records, every
    /// record of the kinds in `retain.user_kinds`, and everything from `retain.low_water`
    /// up. Live safety entries and forget marks in the part about to go are copied forward
    /// first (under their origin, so a copy never replaces a newer value).
    pub async fn stable_checkpoint_reached(
        &self,
        checkpoint: StableCheckpoint,
        retain: &Retain,
    ) -> Result<Durable, StorageError> {
        let mut payload = checkpoint.number.to_le_bytes().to_vec();
        payload.extend_from_slice(&checkpoint.root);
        let durable = self.append_and_apply(KIND_CHECKPOINT, &payload).await?;
        let cut = self.cut(durable.sequence, retain, false);
        self.copy_forward_below(cut).await?;
        // Entries copied, or replaced meanwhile by newer ones: all at or above the cut.
        let cut = self.cut(cut, retain, true);
        self.wal.truncate_below(cut).await?;
        Ok(durable)
    }

    /// Where the log may be cut: below every record still needed.
    fn cut(&self, sequence_max: u64, retain: &Retain, with_safety: bool) -> u64 {
        let state = self.state.borrow();
        let user = retain
            .user_kinds
            .iter()
            .filter_map(|kind| state.user_first.get(kind).copied());
        user.fold(
            state
                .oldest_needed(sequence_max, with_safety)
                .min(retain.low_water.max(1)),
            u64::min,
        )
    }

    /// Copies the safety entries and forget marks whose newest copy is below `cut` to the
    /// log's end. Each is checked again just before its copy is appended: one replaced or
    /// forgotten meanwhile is not copied, and apply's origin rule covers a race after that.
    async fn copy_forward_below(&self, cut: u64) -> Result<(), StorageError> {
        let (entries, forgets): (Vec<_>, Vec<_>) = {
            let state = self.state.borrow();
            let entries = state
                .safety
                .iter()
                .filter(|(_, e)| e.copy < cut)
                .map(|(key, e)| (*key, e.origin))
                .collect();
            let forgets = state
                .forgets
                .iter()
                .filter(|(_, f)| f.copy < cut)
                .map(|(kind, f)| (*kind, f.slot, f.origin))
                .collect();
            (entries, forgets)
        };
        // Sequence order: the oldest origin first, as the log first had them.
        let mut entries = entries;
        entries.sort_by_key(|(_, origin)| *origin);
        for ((kind, slot), origin) in entries {
            let payload = {
                let state = self.state.borrow();
                match state.safety.get(&(kind, slot)) {
                    Some(e) if e.origin == origin && e.copy < cut => {
                        safety_payload(kind, slot, origin, &e.value)
                    }
                    _ => continue,
                }
            };
            let _ = self.append_and_apply(KIND_SAFETY, &payload).await?;
        }
        for (kind, slot, origin) in forgets {
            let current = self.state.borrow().forgets.get(&kind).copied();
            if current.is_some_and(|f| f.origin == origin && f.copy < cut) {
                let mut payload = vec![kind as u8];
                payload.extend_from_slice(&slot.to_le_bytes());
                payload.extend_from_slice(&origin.to_le_bytes());
                let _ = self.append_and_apply(KIND_SAFETY_FORGET, &payload).await?;
            }
        }
        Ok(())
    }

    /// Appends a record of the replica's own kind (`KIND_USER_MIN..`), durable on return.
    pub async fn append_user(&self, kind: u16, payload: &[u8]) -> Result<Durable, StorageError> {
        if kind < KIND_USER_MIN {
            return Err(StorageError::ReservedKind(kind));
        }
        self.append_and_apply(kind, payload).await
    }
}

fn safety_payload(kind: SafetyKind, slot: u64, origin: u64, value: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(value.len() + SAFETY_PREFIX_BYTES as usize);
    payload.push(kind as u8);
    payload.extend_from_slice(&slot.to_le_bytes());
    payload.extend_from_slice(&origin.to_le_bytes());
    payload.extend_from_slice(value);
    payload
}

fn check_object(
    record: &crate::wal::Record,
    kind: ObjectKind,
    digest: &Hash,
    number: u64,
) -> Result<Vec<u8>, StorageError> {
    let p = &record.payload;
    let ok = record.kind == kind.record_kind()
        && p.len() as u64 >= OBJECT_PREFIX_BYTES
        && p[0..32] == digest[..]
        && p[32..40] == number.to_le_bytes();
    if !ok {
        return Err(StorageError::Malformed {
            sequence: record.sequence,
            kind: record.kind,
            why: "indexed record does not match its index entry",
        });
    }
    Ok(p[40..].to_vec())
}
