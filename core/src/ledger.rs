//! Deterministic double-entry payments ledger: the default state machine that executes
//! batches in global order (DESIGN.md, "Data path", item 7).
//!
//! Every replica runs this code on the same sequence of transfers and must reach the same
//! state root, so nothing here depends on hash-map iteration order, clocks, randomness or
//! floats: accounts and idempotency keys live in `BTreeMap`/`BTreeSet`, and all arithmetic
//! is on explicitly sized integers.
//!
//! Money is never created or destroyed after genesis: the sum of balances equals the
//! genesis total after every [`Ledger::apply`], asserted (in release too, STYLE.md point 10).
//!
//! # Idempotency
//!
//! A transfer carries a client-chosen [`IdempotencyKey`]; a retried request carries the same
//! key. The ledger knows it by that key scoped to the debited account
//! ([`Transfer::ledger_key`]), so clients choose keys independently of each other. The first
//! time a key reaches [`Ledger::apply`] its outcome is final (applied or
//! rejected) and the key is remembered, so a replay returns [`Outcome::Duplicate`] and changes
//! nothing. Rejected keys are remembered too: otherwise a replay of a rejected request could
//! execute later (after a credit arrives) and reverse the "rejected" receipt the client holds.
//!
//! Memory for keys is bounded twice:
//! - by time: a key executed in block `h` is remembered until the end of block
//!   `h + idempotency_window_blocks` ([`Ledger::end_block`] prunes). **Clients must not retry a
//!   key after that window**: the receipt names the block, and a retry of an older key would
//!   execute again.
//! - by count: at most `idempotency_keys_max` keys for [`Ledger::apply`] and
//!   [`Ledger::deliver`]; past it a new key is rejected with [`Reject::Overloaded`] (and not
//!   remembered, so the client may retry it later) rather than letting memory grow without
//!   bound. A transfer its home lane ordered ([`Ledger::apply_admitted`]) is never refused
//!   for key memory, because its locally final receipt already promised its outcome: there
//!   the bound is kept before ordering, by replicas refusing new transactions at ingress
//!   while [`Ledger::keys_full`], so memory exceeds it at most by what was in flight.
//!
//! # Credits and admission
//!
//! Each account also counts the credits it received since genesis ([`Ledger::credited`]). A
//! home lane's primary stamps every debit it orders with that count as it had executed it
//! (the batch's credit floor), and the debit may spend only what those credits and the
//! account's own debits leave ([`Ledger::spendable`]). That makes its outcome a function of
//! the lane's order and the floor alone, which the lane's members predict before the global
//! order exists (module `admission`).

mod admission;
mod snapshot;
#[cfg(test)]
mod tests;

pub use admission::DebitAdmission;
pub use snapshot::SNAPSHOT_VERSION;

use ccbft_storage::merkle::{Hash, MerkleTree};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Account identifier.
pub type AccountId = u64;

/// Chosen by the client, unique per request; a retried request carries the same key.
pub type IdempotencyKey = u128;

/// The key a ledger remembers for a request: the client's key scoped to its owner, the
/// debited account of a transfer or the signing client of opaque data. Unscoped, one client
/// could take another's key first and have the other's payment answered as a duplicate of
/// its own. A cryptographic hash, so no owner can choose a key that lands on another's.
pub fn scoped_key(context: &[u8], owner: u64, key: IdempotencyKey) -> IdempotencyKey {
    let digest = crate::crypto::digest(&[context, &owner.to_le_bytes(), &key.to_le_bytes()]);
    u128::from_le_bytes(digest[..16].try_into().expect("a digest holds 16 bytes"))
}

const TRANSFER_KEY_CONTEXT: &[u8] = b"ccbft/transfer-key/v1";

/// Blocks for which an executed key is remembered after the block that executed it.
pub const IDEMPOTENCY_WINDOW_BLOCKS: u64 = 100_000;

/// Most idempotency keys remembered at once. About 50 bytes each in memory, so 4 Mi keys cost
/// about 200 MiB. With the default window this binds once blocks average more than ~42
/// transfers; size the two together for the expected load.
pub const IDEMPOTENCY_KEYS_MAX: u64 = 1 << 22;

const _: () = assert!(IDEMPOTENCY_WINDOW_BLOCKS > 0);
const _: () = assert!(IDEMPOTENCY_KEYS_MAX > 0);

/// Size of [`Transfer::to_bytes`].
pub const TRANSFER_SIZE_BYTES: usize = 40;

/// A payment of `amount` from `from` to `to`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Transfer {
    pub key: IdempotencyKey,
    pub from: AccountId,
    pub to: AccountId,
    pub amount: u64,
}

impl Transfer {
    /// The client's key scoped to the debited account ([`scoped_key`]): what the ledger,
    /// the lanes and the receipts know the transfer by.
    pub fn ledger_key(&self) -> IdempotencyKey {
        scoped_key(TRANSFER_KEY_CONTEXT, self.from, self.key)
    }

    /// Fixed little-endian layout: key (16), from (8), to (8), amount (8).
    pub fn to_bytes(&self) -> [u8; TRANSFER_SIZE_BYTES] {
        let mut bytes = [0u8; TRANSFER_SIZE_BYTES];
        bytes[0..16].copy_from_slice(&self.key.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.from.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.to.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.amount.to_le_bytes());
        bytes
    }

    /// Inverse of [`Transfer::to_bytes`]; bytes come off the wire, so a wrong length is an
    /// error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Transfer, LedgerError> {
        let bytes: &[u8; TRANSFER_SIZE_BYTES] =
            bytes.try_into().map_err(|_| LedgerError::TransferLength {
                expected: TRANSFER_SIZE_BYTES,
                actual: bytes.len(),
            })?;
        let (key, rest) = bytes.split_at(16);
        let (from, rest) = rest.split_at(8);
        let (to, amount) = rest.split_at(8);
        Ok(Transfer {
            key: u128::from_le_bytes(key.try_into().expect("16 bytes")),
            from: u64::from_le_bytes(from.try_into().expect("8 bytes")),
            to: u64::from_le_bytes(to.try_into().expect("8 bytes")),
            amount: u64::from_le_bytes(amount.try_into().expect("8 bytes")),
        })
    }

    /// Transactions route by their debited account, so its home shard sees every debit.
    pub fn routing_key(&self) -> u64 {
        self.from
    }
}

/// Result of executing one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Balances moved.
    Applied,
    /// The key was already executed (with whatever outcome); nothing changed.
    Duplicate,
    /// Nothing moved; the key is remembered (except for `Overloaded`).
    Rejected(Reject),
}

/// Why a transfer was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reject {
    UnknownAccount,
    SameAccount,
    ZeroAmount,
    InsufficientFunds,
    /// The credited balance would exceed `u64::MAX`.
    Overflow,
    /// A bound was reached (idempotency keys, or pending debits at admission). The request
    /// left no trace and may be retried with the same key.
    Overloaded,
    /// Admission only: the key is already pending with a different transfer.
    KeyConflict,
    /// The batch counted credits to the debited account that this ledger has not executed:
    /// only a primary that claims more than it executed makes such a batch.
    CreditsNotFinal,
    /// The debited account is homed in another lane, which alone may debit it: only a
    /// domain beyond its fault bound orders such a transfer.
    NotHome,
}

/// Errors building or decoding a ledger. Each names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("account {0} appears twice in genesis")]
    DuplicateAccount(AccountId),
    #[error("a transfer is {expected} bytes, got {actual}")]
    TransferLength { expected: usize, actual: usize },
    #[error("ledger limits must be at least 1: window {window_blocks} blocks, {keys_max} keys")]
    InvalidLimits { window_blocks: u64, keys_max: u64 },
    #[error("snapshot checksum does not match")]
    SnapshotChecksum,
    #[error("snapshot version {found} is not supported (expected {expected})")]
    SnapshotVersion { found: u32, expected: u32 },
    #[error("snapshot is corrupt: {0}")]
    SnapshotCorrupt(&'static str),
}

/// Bounds of the idempotency memory. Part of the replicated state (committed in the state
/// root, carried in snapshots): replicas configured differently diverge at once, visibly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLimits {
    pub idempotency_window_blocks: u64,
    pub idempotency_keys_max: u64,
}

impl Default for LedgerLimits {
    fn default() -> Self {
        LedgerLimits {
            idempotency_window_blocks: IDEMPOTENCY_WINDOW_BLOCKS,
            idempotency_keys_max: IDEMPOTENCY_KEYS_MAX,
        }
    }
}

impl LedgerLimits {
    fn validate(self) -> Result<LedgerLimits, LedgerError> {
        if self.idempotency_window_blocks == 0 || self.idempotency_keys_max == 0 {
            return Err(LedgerError::InvalidLimits {
                window_blocks: self.idempotency_window_blocks,
                keys_max: self.idempotency_keys_max,
            });
        }
        Ok(self)
    }
}

/// The replicated payments state.
#[derive(Debug, Clone)]
pub struct Ledger {
    limits: LedgerLimits,
    accounts: BTreeMap<AccountId, u64>,
    /// Fixed at genesis; equal to the sum of balances forever after.
    genesis_total: u128,
    /// Sum of balances, kept up to date from the balances each transfer reads back, so
    /// conservation is asserted after every `apply` in O(1); `check_invariants` recounts.
    total: u128,
    /// Transfers applied (balances moved), since genesis.
    executed_count: u64,
    /// Transfers refused for good (a remembered rejection), since genesis.
    rejected_count: u64,
    /// Per account, the sum of credits it received since genesis (no zero entries): what a
    /// batch's credit floor is measured against (module `admission`).
    credited: BTreeMap<AccountId, u128>,
    /// Every remembered key: those of ended blocks plus `open_keys`.
    keys: BTreeSet<IdempotencyKey>,
    /// Keys per ended block, for pruning by age. Only non-empty blocks appear.
    keys_by_block: BTreeMap<u64, BTreeSet<IdempotencyKey>>,
    /// Keys executed since the last `end_block`; their height is known only at `end_block`.
    open_keys: BTreeSet<IdempotencyKey>,
    /// Height passed to the last `end_block`, if any.
    last_block: Option<u64>,
    /// Simulator-only planted bug: ignore idempotency keys. Not state: never in snapshots.
    double_execute_planted: bool,
}

impl Ledger {
    /// A ledger with these opening balances and the default limits.
    pub fn genesis(
        accounts: impl IntoIterator<Item = (AccountId, u64)>,
    ) -> Result<Ledger, LedgerError> {
        Ledger::genesis_with_limits(accounts, LedgerLimits::default())
    }

    pub fn genesis_with_limits(
        accounts: impl IntoIterator<Item = (AccountId, u64)>,
        limits: LedgerLimits,
    ) -> Result<Ledger, LedgerError> {
        let limits = limits.validate()?;
        let mut map = BTreeMap::new();
        for (id, balance) in accounts {
            if map.insert(id, balance).is_some() {
                return Err(LedgerError::DuplicateAccount(id));
            }
        }
        let ledger = Ledger::from_parts(limits, map, 0);
        ledger.check_invariants();
        Ok(ledger)
    }

    /// A ledger with no keys remembered; the genesis total is the current sum of balances.
    fn from_parts(
        limits: LedgerLimits,
        accounts: BTreeMap<AccountId, u64>,
        executed_count: u64,
    ) -> Ledger {
        let genesis_total = sum_balances(&accounts);
        Ledger {
            limits,
            accounts,
            genesis_total,
            total: genesis_total,
            executed_count,
            rejected_count: 0,
            credited: BTreeMap::new(),
            keys: BTreeSet::new(),
            keys_by_block: BTreeMap::new(),
            open_keys: BTreeSet::new(),
            last_block: None,
            double_execute_planted: false,
        }
    }

    /// Executes one transfer. Checks run in this order: key already executed (`Duplicate`),
    /// key memory full (`Overloaded`, before the rest because every other outcome is
    /// remembered), same account, zero amount, unknown accounts, funds, overflow.
    pub fn apply(&mut self, tx: &Transfer) -> Outcome {
        let key = tx.ledger_key();
        let replay = self.keys.contains(&key);
        if replay && !self.double_execute_planted {
            return Outcome::Duplicate;
        }
        if !replay && self.keys_full() {
            return Outcome::Rejected(Reject::Overloaded);
        }
        let checked = self.validate(tx);
        self.settle(tx, key, replay, checked)
    }

    /// Carries out a checked transfer: moves the funds if it passed, remembers a new key
    /// whatever the outcome, and asserts conservation.
    fn settle(
        &mut self,
        tx: &Transfer,
        key: IdempotencyKey,
        replay: bool,
        checked: Result<(), Reject>,
    ) -> Outcome {
        let outcome = match checked {
            Ok(()) => {
                self.move_funds(tx);
                Outcome::Applied
            }
            Err(reject) => Outcome::Rejected(reject),
        };
        if !replay {
            self.remember(key);
            self.rejected_count += u64::from(matches!(outcome, Outcome::Rejected(_)));
        }
        assert_eq!(
            self.total, self.genesis_total,
            "money created or destroyed by {tx:?}"
        );
        outcome
    }

    /// Opaque cluster: the transaction with `key` is ordered. `Applied` (remembered, to be
    /// delivered) unless the key was delivered before (`Duplicate`) or key memory is full
    /// (`Rejected(Overloaded)`, nothing remembered). No balances move.
    pub fn deliver(&mut self, key: IdempotencyKey) -> Outcome {
        if self.keys.contains(&key) && !self.double_execute_planted {
            return Outcome::Duplicate;
        }
        if self.keys_full() {
            return Outcome::Rejected(Reject::Overloaded);
        }
        if !self.keys.contains(&key) {
            self.remember(key);
        }
        self.executed_count += 1;
        Outcome::Applied
    }

    /// Executes a transfer its home lane ordered with `credit_floor`: it may spend only the
    /// credits its lane's primary had executed when it cut the batch
    /// ([`Ledger::spendable`]), so its outcome is the one the home lane predicted in its
    /// locally final receipt ([`DebitAdmission::decide`]). Checks run as in
    /// [`Ledger::apply`], except that key memory never refuses an ordered transfer (the
    /// count bound is enforced before ordering, at ingress: [`Ledger::keys_full`]), and a
    /// floor above the credits executed here is `CreditsNotFinal`.
    pub fn apply_admitted(&mut self, tx: &Transfer, credit_floor: u128) -> Outcome {
        let key = tx.ledger_key();
        let replay = self.keys.contains(&key);
        if replay && !self.double_execute_planted {
            return Outcome::Duplicate;
        }
        let checked = self.validate_admitted(tx, credit_floor);
        self.settle(tx, key, replay, checked)
    }

    /// What `account` may spend when a batch counts its credits up to `credit_floor`: the
    /// balance less the credits executed beyond the floor; `None` while this ledger has
    /// executed fewer credits than the floor (or the account is unknown).
    pub fn spendable(&self, account: AccountId, credit_floor: u128) -> Option<u64> {
        let balance = *self.accounts.get(&account)?;
        let beyond = self.credited(account).checked_sub(credit_floor)?;
        Some(u64::try_from(u128::from(balance).saturating_sub(beyond)).expect("below a balance"))
    }

    /// Credits `account` received since genesis.
    pub fn credited(&self, account: AccountId) -> u128 {
        self.credited.get(&account).copied().unwrap_or(0)
    }

    /// Whether key memory is full: a replica then refuses new transactions at ingress.
    pub fn keys_full(&self) -> bool {
        self.keys.len() as u64 >= self.limits.idempotency_keys_max
    }

    fn validate_admitted(&self, tx: &Transfer, credit_floor: u128) -> Result<(), Reject> {
        validate_static(tx)?;
        let to = self.known_accounts(tx)?.1;
        let spendable = self
            .spendable(tx.from, credit_floor)
            .ok_or(Reject::CreditsNotFinal)?;
        if spendable < tx.amount {
            return Err(Reject::InsufficientFunds);
        }
        check_credit(to, tx.amount)
    }

    /// The stateless checks, then the balance checks, in the documented order.
    fn validate(&self, tx: &Transfer) -> Result<(), Reject> {
        validate_static(tx)?;
        let (from, to) = self.known_accounts(tx)?;
        if from < tx.amount {
            return Err(Reject::InsufficientFunds);
        }
        check_credit(to, tx.amount)
    }

    /// Balances of both accounts, or `UnknownAccount`.
    pub(crate) fn known_accounts(&self, tx: &Transfer) -> Result<(u64, u64), Reject> {
        match (self.accounts.get(&tx.from), self.accounts.get(&tx.to)) {
            (Some(&from), Some(&to)) => Ok((from, to)),
            _ => Err(Reject::UnknownAccount),
        }
    }

    /// Moves a validated amount and updates the running total from the balances read back
    /// after the writes: a mistake in the update (aliasing, wrong sign) breaks conservation
    /// at this transfer, not at the next checkpoint.
    fn move_funds(&mut self, tx: &Transfer) {
        let from_before = self.accounts[&tx.from];
        let to_before = self.accounts[&tx.to];
        self.accounts.insert(tx.from, from_before - tx.amount);
        self.accounts.insert(tx.to, to_before + tx.amount);
        let from_after = self.accounts[&tx.from];
        let to_after = self.accounts[&tx.to];
        assert_eq!(from_after, from_before - tx.amount);
        *self.credited.entry(tx.to).or_insert(0) += u128::from(tx.amount);
        self.total -= u128::from(from_before) + u128::from(to_before);
        self.total += u128::from(from_after) + u128::from(to_after);
        self.executed_count += 1;
    }

    fn remember(&mut self, key: IdempotencyKey) {
        assert!(self.keys.insert(key), "key {key:#x} remembered twice");
        assert!(self.open_keys.insert(key));
    }

    /// Called by the executor after each block, with strictly increasing heights. Assigns the
    /// keys executed since the last call to `height` and forgets keys of blocks at least
    /// `idempotency_window_blocks` older than `height`.
    pub fn end_block(&mut self, height: u64) {
        if let Some(last) = self.last_block {
            assert!(height > last, "end_block({height}) after end_block({last})");
        }
        self.last_block = Some(height);
        if !self.open_keys.is_empty() {
            let keys = std::mem::take(&mut self.open_keys);
            assert!(self.keys_by_block.insert(height, keys).is_none());
        }
        self.prune(height);
    }

    fn prune(&mut self, height: u64) {
        let window = self.limits.idempotency_window_blocks;
        while let Some(entry) = self.keys_by_block.first_entry() {
            if height - *entry.key() < window {
                break;
            }
            for key in entry.remove() {
                assert!(self.keys.remove(&key));
            }
        }
    }

    pub fn balance(&self, id: AccountId) -> Option<u64> {
        self.accounts.get(&id).copied()
    }

    /// Sum of all balances, recounted (O(accounts)).
    pub fn total_balance(&self) -> u128 {
        sum_balances(&self.accounts)
    }

    pub fn genesis_total(&self) -> u128 {
        self.genesis_total
    }

    /// Transfers refused for good since genesis (a remembered rejection: not `Overloaded`).
    pub fn rejected_count(&self) -> u64 {
        self.rejected_count
    }

    /// Transfers applied since genesis (duplicates and rejections do not count).
    pub fn executed_count(&self) -> u64 {
        self.executed_count
    }

    pub fn account_count(&self) -> u64 {
        self.accounts.len() as u64
    }

    pub fn limits(&self) -> LedgerLimits {
        self.limits
    }

    /// Height of the last ended block, `None` before the first `end_block`.
    pub fn last_block(&self) -> Option<u64> {
        self.last_block
    }

    /// Whether a request with this scoped key ([`Transfer::ledger_key`]) would now be a
    /// `Duplicate`.
    pub fn remembers(&self, key: IdempotencyKey) -> bool {
        self.keys.contains(&key)
    }

    /// Keys remembered now (counted against `idempotency_keys_max`).
    pub fn remembered_keys(&self) -> u64 {
        self.keys.len() as u64
    }

    /// Merkle root over one leaf per account in id order (id, balance; little endian), then
    /// one leaf committing to everything else (limits, heights, counters, remembered keys),
    /// so two replicas agree on the root only if they agree on all state that decides future
    /// outcomes. O(accounts + keys): meant for checkpoints, not per transfer.
    pub fn state_root(&self) -> Hash {
        let mut leaves: Vec<Vec<u8>> = Vec::with_capacity(self.accounts.len() + 1);
        for (id, balance) in &self.accounts {
            leaves.push(account_leaf(*id, *balance).to_vec());
        }
        leaves.push(self.meta_leaf().to_vec());
        MerkleTree::from_leaves(leaves.iter().map(Vec::as_slice)).root()
    }

    /// Full recount of the invariants (O(accounts + keys)); `apply` checks its own step
    /// cheaply, this is for genesis, snapshots, checkpoints and the simulator's checkers.
    pub fn check_invariants(&self) {
        assert_eq!(
            self.total_balance(),
            self.genesis_total,
            "money created or destroyed"
        );
        assert_eq!(self.total, self.genesis_total);
        let by_block: usize = self.keys_by_block.values().map(BTreeSet::len).sum();
        assert_eq!(self.keys.len(), by_block + self.open_keys.len());
        assert!(self.credited.values().all(|&c| c > 0));
        assert!(self.keys_by_block.values().all(|keys| !keys.is_empty()));
        if let Some((&oldest, _)) = self.keys_by_block.first_key_value() {
            let last = self.last_block.expect("keys of an ended block");
            assert!(last - oldest < self.limits.idempotency_window_blocks);
        }
    }

    /// Simulator only: from now on `apply` ignores idempotency keys, so a replayed key
    /// executes again. The simulator switches it on to prove its checkers catch double
    /// execution; it must never be reachable from outside the crate.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "called by the simulator in this crate")
    )]
    pub(crate) fn plant_double_execute(&mut self) {
        self.double_execute_planted = true;
    }
}

/// Checks that need no state, in the ledger's order.
pub(crate) fn validate_static(tx: &Transfer) -> Result<(), Reject> {
    if tx.from == tx.to {
        return Err(Reject::SameAccount);
    }
    if tx.amount == 0 {
        return Err(Reject::ZeroAmount);
    }
    Ok(())
}

fn check_credit(to: u64, amount: u64) -> Result<(), Reject> {
    match to.checked_add(amount) {
        Some(_) => Ok(()),
        None => Err(Reject::Overflow),
    }
}

fn sum_balances(accounts: &BTreeMap<AccountId, u64>) -> u128 {
    accounts.values().map(|&balance| u128::from(balance)).sum()
}

fn account_leaf(id: AccountId, balance: u64) -> [u8; 16] {
    let mut leaf = [0u8; 16];
    leaf[..8].copy_from_slice(&id.to_le_bytes());
    leaf[8..].copy_from_slice(&balance.to_le_bytes());
    leaf
}

// ---- Wire encoding (crate::wire) ----

use crate::wire::{Encoder, Reader, Wire, WireError};

/// A transfer goes on the wire in its canonical [`Transfer::to_bytes`] layout.
impl Wire for Transfer {
    const ENCODED_BYTES_MIN: usize = TRANSFER_SIZE_BYTES;

    fn encode(&self, out: &mut Encoder) {
        out.extend_from_slice(&self.to_bytes());
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let bytes: [u8; TRANSFER_SIZE_BYTES] = reader.array("transfer")?;
        Transfer::from_bytes(&bytes).map_err(|_| WireError::Invalid {
            what: "transfer",
            reason: "not a canonical transfer",
        })
    }
}
