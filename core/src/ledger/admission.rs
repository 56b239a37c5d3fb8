//! Home-shard debit admission (DESIGN.md, "Data path", item 7).
//!
//! Every account has a home shard and its debits are accepted only there, so the home shard
//! alone decides whether a debit is covered: against the account's globally final balance
//! minus the debits it has already accepted that are not yet globally final. Credits count
//! only once final (they are already in the final balance; pending ones are ignored). The
//! locally final receipt can then carry the execution result, and global execution never
//! turns an accepted debit into `InsufficientFunds`.
//!
//! Host contract:
//! - route each transfer by [`Transfer::routing_key`] through a [`HomeMap`], and feed a shard's
//!   `DebitAdmission` only the transfers whose debited account it homes;
//! - put only accepted transfers in batches (a rejected one must not be ordered: it could
//!   execute later, once credits arrive, and reverse the rejection);
//! - call [`DebitAdmission::on_final`] for every executed transfer, whatever its outcome,
//!   after the final ledger has applied it (calling it before would briefly count the debit
//!   neither as reserved nor in the final balance).
//!
//! Limits of the guarantee: `Overflow` on the credited side cannot be foreseen by the debit's
//! home (it can only occur when the genesis total exceeds `u64::MAX`), and the global key cap
//! (`Overloaded` at execution) is shared by all shards, so admission checks it only as a best
//! effort.

use super::{AccountId, IdempotencyKey, Ledger, LedgerError, Reject, Transfer};
use std::collections::BTreeMap;
use xxhash_rust::xxh3::xxh3_64;

/// Most debits one home shard holds accepted but not yet globally final. A Byzantine client
/// can only fill it with debits it can pay for, and it empties as blocks commit.
pub const ADMISSION_PENDING_DEBITS_MAX: usize = 65_536;

/// Default home of an account: a hash, so accounts spread evenly over `homes` shards.
pub fn home_of(account: AccountId, homes: usize) -> usize {
    assert!(homes > 0, "an account needs at least one home");
    (xxh3_64(&account.to_le_bytes()) % homes as u64) as usize
}

/// Account homes: explicit overrides (a payment switch's accounts in its own cloud), the hash
/// default for everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeMap {
    homes: usize,
    overrides: BTreeMap<AccountId, usize>,
}

impl HomeMap {
    pub fn new(homes: usize) -> Result<HomeMap, LedgerError> {
        if homes == 0 {
            return Err(LedgerError::NoHomes);
        }
        Ok(HomeMap {
            homes,
            overrides: BTreeMap::new(),
        })
    }

    /// Pins `account` to `home`, replacing any earlier override.
    pub fn set_home(&mut self, account: AccountId, home: usize) -> Result<(), LedgerError> {
        if home >= self.homes {
            return Err(LedgerError::HomeOutOfRange {
                home,
                homes: self.homes,
            });
        }
        self.overrides.insert(account, home);
        Ok(())
    }

    pub fn home(&self, account: AccountId) -> usize {
        let home = match self.overrides.get(&account) {
            Some(&home) => home,
            None => home_of(account, self.homes),
        };
        assert!(home < self.homes);
        home
    }

    pub fn homes(&self) -> usize {
        self.homes
    }
}

/// The debits one home shard has accepted that are not yet globally final. Replicated by the
/// shard's PBFT order, so deterministic like the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitAdmission {
    pending: BTreeMap<IdempotencyKey, Transfer>,
    /// Sum of pending debits per account; no zero entries.
    reserved: BTreeMap<AccountId, u64>,
    pending_max: usize,
}

impl Default for DebitAdmission {
    fn default() -> Self {
        DebitAdmission::new()
    }
}

impl DebitAdmission {
    pub fn new() -> DebitAdmission {
        DebitAdmission::with_pending_max(ADMISSION_PENDING_DEBITS_MAX)
    }

    pub fn with_pending_max(pending_max: usize) -> DebitAdmission {
        assert!(pending_max > 0, "admission needs room for one debit");
        DebitAdmission {
            pending: BTreeMap::new(),
            reserved: BTreeMap::new(),
            pending_max,
        }
    }

    /// Accepts `tx` only if executing it after everything already final and pending cannot be
    /// rejected for funds. `Ok(())` also covers retries: the key already pending with the same
    /// transfer (nothing reserved twice) or already executed (it will execute as `Duplicate`,
    /// which is not a rejection, and needs no reservation).
    pub fn admit(&mut self, final_ledger: &Ledger, tx: &Transfer) -> Result<(), Reject> {
        if let Some(pending) = self.pending.get(&tx.key) {
            return if pending == tx {
                Ok(())
            } else {
                Err(Reject::KeyConflict)
            };
        }
        if final_ledger.remembers(tx.key) {
            return Ok(());
        }
        check_static(final_ledger, tx)?;
        self.check_room(final_ledger)?;
        if tx.amount > self.available(final_ledger, tx.from).unwrap_or(0) {
            return Err(Reject::InsufficientFunds);
        }
        self.reserve(tx);
        Ok(())
    }

    /// Rejects for bounds. Every admitted debit will need a key slot in the final ledger;
    /// other shards compete for the same slots, hence only best effort.
    fn check_room(&self, final_ledger: &Ledger) -> Result<(), Reject> {
        let keys_max = final_ledger.limits().idempotency_keys_max;
        let keys_soon = final_ledger.remembered_keys() + self.pending.len() as u64;
        if self.pending.len() >= self.pending_max || keys_soon >= keys_max {
            return Err(Reject::Overloaded);
        }
        Ok(())
    }

    fn reserve(&mut self, tx: &Transfer) {
        let reserved = self.reserved.entry(tx.from).or_insert(0);
        *reserved = reserved
            .checked_add(tx.amount)
            .expect("reservations are covered by a u64 balance");
        assert!(self.pending.insert(tx.key, *tx).is_none());
        assert!(self.pending.len() <= self.pending_max);
    }

    /// `tx` has executed in the global order (any outcome): its key is now final, so the
    /// debit pending under that key, if any, is either in the final balance or will never
    /// happen, and its reservation is released.
    pub fn on_final(&mut self, tx: &Transfer) {
        let Some(pending) = self.pending.remove(&tx.key) else {
            return;
        };
        let reserved = self
            .reserved
            .get_mut(&pending.from)
            .expect("a pending debit is reserved");
        *reserved = reserved
            .checked_sub(pending.amount)
            .expect("reservation covers each pending debit");
        if *reserved == 0 {
            self.reserved.remove(&pending.from);
        }
    }

    /// Final balance minus pending debits; `None` for an unknown account. Saturates at zero
    /// in case a debit reached the final ledger without admission (a host bug), so such a
    /// bug fails closed.
    pub fn available(&self, final_ledger: &Ledger, account: AccountId) -> Option<u64> {
        let balance = final_ledger.balance(account)?;
        Some(balance.saturating_sub(self.reserved(account)))
    }

    /// Sum of this shard's pending debits of `account`.
    pub fn reserved(&self, account: AccountId) -> u64 {
        self.reserved.get(&account).copied().unwrap_or(0)
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn is_pending(&self, key: IdempotencyKey) -> bool {
        self.pending.contains_key(&key)
    }
}

/// The checks that do not depend on balances, in the ledger's order.
fn check_static(final_ledger: &Ledger, tx: &Transfer) -> Result<(), Reject> {
    if tx.from == tx.to {
        return Err(Reject::SameAccount);
    }
    if tx.amount == 0 {
        return Err(Reject::ZeroAmount);
    }
    if final_ledger.balance(tx.from).is_none() || final_ledger.balance(tx.to).is_none() {
        return Err(Reject::UnknownAccount);
    }
    Ok(())
}
