//! Canonical encoding of the ledger: the snapshot for checkpoints and state transfer, and
//! the non-balance part of the state root. One encoder serves both, so whatever a snapshot
//! carries is committed in the root, and a snapshot verified against a checkpoint root cannot
//! smuggle in state the root does not cover.
//!
//! Layout (all integers little endian):
//!
//! ```text
//! magic "CCBFTLGR" | version u32
//! accounts: count u64, then (id u64, balance u64) in strictly increasing id order
//! meta:     window_blocks u64 | keys_max u64 | has_last_block u8 | last_block u64
//!           | executed_count u64 | rejected_count u64
//!           | credited: count u64, then (id u64, credited u128) in increasing id order
//!           | blocks: count u64, then (height u64, count u64, keys u128...) by height
//!           | open keys: count u64, keys u128...
//! checksum: xxh3_64 of everything before, u64
//! ```
//!
//! Keys are in increasing order everywhere. Decoding accepts only this canonical form, so
//! equal states have equal bytes, and it never panics on corrupt input.

use super::{AccountId, IdempotencyKey, Ledger, LedgerError, LedgerLimits};
use ccbft_storage::merkle::Hash;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 8] = b"CCBFTLGR";
/// Bumped on any layout change; old versions are refused, never guessed at.
pub const SNAPSHOT_VERSION: u32 = 2;
const HEADER_SIZE_BYTES: usize = MAGIC.len() + 4;
const CHECKSUM_SIZE_BYTES: usize = 8;
const ACCOUNT_SIZE_BYTES: usize = 16;
const KEY_SIZE_BYTES: usize = 16;
/// Domain separation of the meta leaf digest from every other SHA-256 in the system.
const META_TAG: &[u8] = b"ccbft/ledger/meta/v1";

/// Where canonical bytes go: a snapshot buffer or a running digest.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Ledger {
    /// Canonical, versioned, checksummed bytes of the whole state.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_SIZE_BYTES
                + 8
                + self.accounts.len() * ACCOUNT_SIZE_BYTES
                + self.keys.len() * KEY_SIZE_BYTES
                + 64,
        );
        out.put(MAGIC);
        out.put(&SNAPSHOT_VERSION.to_le_bytes());
        out.put(&(self.accounts.len() as u64).to_le_bytes());
        for (id, balance) in &self.accounts {
            out.put(&id.to_le_bytes());
            out.put(&balance.to_le_bytes());
        }
        self.write_meta(&mut out);
        let checksum = xxh3_64(&out);
        out.put(&checksum.to_le_bytes());
        out
    }

    /// Inverse of [`Ledger::snapshot_bytes`]. The state root of the result equals the root
    /// of the ledger that wrote the bytes; the planted bug is never restored.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Ledger, LedgerError> {
        let body = check_envelope(bytes)?;
        let mut reader = Reader { bytes: body };
        let accounts = read_accounts(&mut reader)?;
        let limits = LedgerLimits {
            idempotency_window_blocks: reader.u64()?,
            idempotency_keys_max: reader.u64()?,
        }
        .validate()
        .map_err(|_| LedgerError::SnapshotCorrupt("limits must be at least 1"))?;
        let last_block = read_last_block(&mut reader)?;
        let executed_count = reader.u64()?;
        let rejected_count = reader.u64()?;
        let mut ledger = Ledger::from_parts(limits, accounts, executed_count);
        ledger.rejected_count = rejected_count;
        ledger.last_block = last_block;
        ledger.credited = read_credited(&mut reader, &ledger.accounts)?;
        read_keys_by_block(&mut reader, &mut ledger)?;
        ledger.open_keys = read_key_set(&mut reader, &mut ledger.keys)?;
        if !reader.bytes.is_empty() {
            return Err(LedgerError::SnapshotCorrupt("trailing bytes"));
        }
        ledger.check_invariants();
        Ok(ledger)
    }

    /// Everything but balances, in canonical order.
    fn write_meta(&self, out: &mut impl Sink) {
        out.put(&self.limits.idempotency_window_blocks.to_le_bytes());
        out.put(&self.limits.idempotency_keys_max.to_le_bytes());
        out.put(&[u8::from(self.last_block.is_some())]);
        out.put(&self.last_block.unwrap_or(0).to_le_bytes());
        out.put(&self.executed_count.to_le_bytes());
        out.put(&self.rejected_count.to_le_bytes());
        out.put(&(self.credited.len() as u64).to_le_bytes());
        for (id, credited) in &self.credited {
            out.put(&id.to_le_bytes());
            out.put(&credited.to_le_bytes());
        }
        out.put(&(self.keys_by_block.len() as u64).to_le_bytes());
        for (height, keys) in &self.keys_by_block {
            out.put(&height.to_le_bytes());
            write_key_set(keys, out);
        }
        write_key_set(&self.open_keys, out);
    }

    /// The last leaf of the state root: a digest of [`Ledger::write_meta`]. 32 bytes, so it
    /// can never be mistaken for a 16-byte account leaf.
    pub(super) fn meta_leaf(&self) -> Hash {
        let mut hasher = Sha256::new();
        hasher.put(META_TAG);
        self.write_meta(&mut hasher);
        hasher.finalize().into()
    }
}

fn write_key_set(keys: &BTreeSet<IdempotencyKey>, out: &mut impl Sink) {
    out.put(&(keys.len() as u64).to_le_bytes());
    for key in keys {
        out.put(&key.to_le_bytes());
    }
}

/// Checks magic, version and checksum; returns the body between header and checksum.
fn check_envelope(bytes: &[u8]) -> Result<&[u8], LedgerError> {
    if bytes.len() < HEADER_SIZE_BYTES + CHECKSUM_SIZE_BYTES {
        return Err(LedgerError::SnapshotCorrupt(
            "shorter than header and checksum",
        ));
    }
    let (covered, checksum) = bytes.split_at(bytes.len() - CHECKSUM_SIZE_BYTES);
    let (magic, rest) = covered.split_at(MAGIC.len());
    let (version, body) = rest.split_at(4);
    if magic != MAGIC {
        return Err(LedgerError::SnapshotCorrupt(
            "not a ledger snapshot (magic)",
        ));
    }
    let version = u32::from_le_bytes(version.try_into().expect("4 bytes"));
    if version != SNAPSHOT_VERSION {
        return Err(LedgerError::SnapshotVersion {
            found: version,
            expected: SNAPSHOT_VERSION,
        });
    }
    if xxh3_64(covered).to_le_bytes() != checksum {
        return Err(LedgerError::SnapshotChecksum);
    }
    Ok(body)
}

fn read_accounts(reader: &mut Reader) -> Result<BTreeMap<AccountId, u64>, LedgerError> {
    let count = reader.count(ACCOUNT_SIZE_BYTES)?;
    let mut accounts = BTreeMap::new();
    let mut previous: Option<AccountId> = None;
    for _ in 0..count {
        let id = reader.u64()?;
        let balance = reader.u64()?;
        if previous.is_some_and(|p| p >= id) {
            return Err(LedgerError::SnapshotCorrupt(
                "accounts not in increasing id order",
            ));
        }
        previous = Some(id);
        accounts.insert(id, balance);
    }
    Ok(accounts)
}

/// Credit counts: of known accounts, non-zero, in increasing id order.
fn read_credited(
    reader: &mut Reader,
    accounts: &BTreeMap<AccountId, u64>,
) -> Result<BTreeMap<AccountId, u128>, LedgerError> {
    const CREDITED_SIZE_BYTES: usize = 8 + 16;
    let count = reader.count(CREDITED_SIZE_BYTES)?;
    let mut credited = BTreeMap::new();
    let mut previous: Option<AccountId> = None;
    for _ in 0..count {
        let id = reader.u64()?;
        let total = reader.u128()?;
        if previous.is_some_and(|p| p >= id) || !accounts.contains_key(&id) || total == 0 {
            return Err(LedgerError::SnapshotCorrupt(
                "credit counts out of order, zero or of unknown accounts",
            ));
        }
        previous = Some(id);
        credited.insert(id, total);
    }
    Ok(credited)
}

fn read_last_block(reader: &mut Reader) -> Result<Option<u64>, LedgerError> {
    let flag = reader.take(1)?[0];
    let height = reader.u64()?;
    match (flag, height) {
        (0, 0) => Ok(None),
        (1, height) => Ok(Some(height)),
        _ => Err(LedgerError::SnapshotCorrupt("bad last block")),
    }
}

/// Reads the per-block key sets, refusing anything `end_block` could not have produced:
/// heights out of order or beyond the last block, empty sets, sets outside the window.
fn read_keys_by_block(reader: &mut Reader, ledger: &mut Ledger) -> Result<(), LedgerError> {
    const BLOCK_SIZE_BYTES_MIN: usize = 16 + KEY_SIZE_BYTES;
    let count = reader.count(BLOCK_SIZE_BYTES_MIN)?;
    let window = ledger.limits.idempotency_window_blocks;
    let mut previous: Option<u64> = None;
    for _ in 0..count {
        let height = reader.u64()?;
        let Some(last) = ledger.last_block else {
            return Err(LedgerError::SnapshotCorrupt("block keys before any block"));
        };
        if previous.is_some_and(|p| p >= height) || height > last || last - height >= window {
            return Err(LedgerError::SnapshotCorrupt(
                "block height out of order or window",
            ));
        }
        previous = Some(height);
        let keys = read_key_set(reader, &mut ledger.keys)?;
        if keys.is_empty() {
            return Err(LedgerError::SnapshotCorrupt("empty block key set"));
        }
        ledger.keys_by_block.insert(height, keys);
    }
    Ok(())
}

/// Reads a strictly increasing key list, adding each key to `all` (which must not hold it).
fn read_key_set(
    reader: &mut Reader,
    all: &mut BTreeSet<IdempotencyKey>,
) -> Result<BTreeSet<IdempotencyKey>, LedgerError> {
    let count = reader.count(KEY_SIZE_BYTES)?;
    let mut keys = BTreeSet::new();
    let mut previous: Option<IdempotencyKey> = None;
    for _ in 0..count {
        let key = reader.u128()?;
        if previous.is_some_and(|p| p >= key) {
            return Err(LedgerError::SnapshotCorrupt("keys not in increasing order"));
        }
        previous = Some(key);
        if !all.insert(key) {
            return Err(LedgerError::SnapshotCorrupt("key remembered twice"));
        }
        keys.insert(key);
    }
    Ok(keys)
}

/// Bounds-checked cursor: every read can fail, none can panic.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LedgerError> {
        if self.bytes.len() < n {
            return Err(LedgerError::SnapshotCorrupt("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, LedgerError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn u128(&mut self) -> Result<u128, LedgerError> {
        Ok(u128::from_le_bytes(
            self.take(16)?.try_into().expect("16 bytes"),
        ))
    }

    /// A count of items of at least `item_size_bytes` each, refused if the remaining bytes
    /// cannot hold them: a corrupt count must not trigger a huge allocation or loop.
    fn count(&mut self, item_size_bytes: usize) -> Result<usize, LedgerError> {
        let count = self.u64()?;
        let fits = (self.bytes.len() / item_size_bytes) as u64;
        if count > fits {
            return Err(LedgerError::SnapshotCorrupt(
                "count exceeds remaining bytes",
            ));
        }
        Ok(count as usize)
    }
}
