//! Home-lane debit admission (DESIGN.md, "Data path", item 7).
//!
//! Every account has a home lane, and only that lane orders its debits. A lane's primary
//! stamps each debit with the debited account's credit count as its own ledger had executed
//! it (the debit's *credit floor*), and global execution lets the debit spend only what the
//! genesis balance, the credits up to the floor and the account's earlier debits leave
//! ([`Ledger::apply_admitted`]). Since every debit of the account is ordered by this one
//! lane, "the account's earlier debits" are exactly the accepted debits earlier in the lane's
//! order, so the outcome is a function of the lane's order and the floors alone:
//!
//! `accepted  <=>  amount <= genesis + floor - (accepted debits earlier in the lane)`
//!
//! A member of the lane computes the same value before the global order exists, from its own
//! ledger at whatever height it has executed (any height at which that ledger has executed
//! at least `floor` credits and not yet the batch): there it is
//! `ledger.spendable(account, floor) - reserved(account)`, where `reserved` sums the debits
//! this lane accepted that the ledger has not executed yet ([`DebitAdmission::decide`]). So
//! the locally final receipt carries the outcome global execution will give, and no global
//! order can reverse it while the domain has at most f_d Byzantine members (beyond that it
//! can certify two versions of a batch, and the global order picks one).
//!
//! Host contract:
//! - decide each committed batch of the lane once, in sequence order, and every transfer of
//!   a batch in its order; a batch the host's ledger already executed is not decided;
//! - call [`DebitAdmission::release`] for each decided key once the host's ledger executed
//!   the batch that holds it (not for a key decided as a duplicate);
//! - the genesis total fits a `u64`, so no credit can overflow (the one outcome a member
//!   cannot foresee).
//!
//! Keys are global: a client that reuses another client's idempotency key can make that
//! client's debit a `Duplicate` (a limit of the ledger's key model, not of admission).

use super::{validate_static, AccountId, IdempotencyKey, Ledger, Outcome, Reject, Transfer};
use std::collections::BTreeMap;

/// The decisions one home lane has made that its host's ledger has not executed yet.
/// Replicated by the lane's order, so equal on every honest member that decided the same
/// batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebitAdmission {
    /// Decided keys not yet executed here: the accepted debit `(account, amount)`, or `None`
    /// for a rejection. A later occurrence of the key is a duplicate.
    pending: BTreeMap<IdempotencyKey, Option<(AccountId, u64)>>,
    /// Sum of pending accepted debits per account; no zero entries.
    reserved: BTreeMap<AccountId, u64>,
    /// Simulator-only planted bug: accepted debits reserve nothing.
    forget_reservations: bool,
}

impl DebitAdmission {
    pub fn new() -> DebitAdmission {
        DebitAdmission::default()
    }

    /// Simulator only: accept debits without reserving them (planted bug
    /// `admit-without-reservation`), so the lane over-accepts.
    pub(crate) fn plant_forget_reservations(&mut self) {
        self.forget_reservations = true;
    }

    /// The outcome `tx`, stamped with `credit_floor`, will have in global execution;
    /// `None` while `final_ledger` has executed fewer credits than the floor (decide it
    /// later). Checks run in [`Ledger::apply_admitted`]'s order.
    pub fn decide(
        &mut self,
        final_ledger: &Ledger,
        tx: &Transfer,
        credit_floor: u128,
    ) -> Option<Outcome> {
        let key = tx.ledger_key();
        if self.pending.contains_key(&key) || final_ledger.remembers(key) {
            return Some(Outcome::Duplicate);
        }
        let decided = match self.check(final_ledger, tx, credit_floor)? {
            Ok(()) => {
                self.reserve(tx, key);
                Outcome::Applied
            }
            Err(reject) => Outcome::Rejected(reject),
        };
        if decided != Outcome::Applied {
            assert!(self.pending.insert(key, None).is_none());
        }
        Some(decided)
    }

    fn check(
        &self,
        final_ledger: &Ledger,
        tx: &Transfer,
        credit_floor: u128,
    ) -> Option<Result<(), Reject>> {
        if let Err(reject) = validate_static(tx) {
            return Some(Err(reject));
        }
        if let Err(reject) = final_ledger.known_accounts(tx) {
            return Some(Err(reject));
        }
        let spendable = final_ledger.spendable(tx.from, credit_floor)?;
        let available = spendable.saturating_sub(self.reserved(tx.from));
        Some(if tx.amount <= available {
            Ok(())
        } else {
            Err(Reject::InsufficientFunds)
        })
    }

    fn reserve(&mut self, tx: &Transfer, key: IdempotencyKey) {
        if self.forget_reservations {
            assert!(self.pending.insert(key, None).is_none());
            return;
        }
        let reserved = self.reserved.entry(tx.from).or_insert(0);
        *reserved = reserved
            .checked_add(tx.amount)
            .expect("reservations are covered by a u64 balance");
        let debit = Some((tx.from, tx.amount));
        assert!(self.pending.insert(key, debit).is_none());
    }

    /// The host's ledger executed the batch holding `key`: its debit, if accepted, is in
    /// the balance now, so its reservation goes.
    pub fn release(&mut self, key: IdempotencyKey) {
        let Some(Some((account, amount))) = self.pending.remove(&key) else {
            return;
        };
        let reserved = self
            .reserved
            .get_mut(&account)
            .expect("a pending debit is reserved");
        *reserved = reserved
            .checked_sub(amount)
            .expect("reservation covers each pending debit");
        if *reserved == 0 {
            self.reserved.remove(&account);
        }
    }

    /// Sum of this lane's pending accepted debits of `account`.
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
