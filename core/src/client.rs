//! Client transactions: a transfer signed by the client that owns the debited account.
//!
//! A client (a payment switch) holds an Ed25519 key (crypto's `client` module). The cluster's
//! genesis binds every account to its owner client and every client to its public key
//! ([`ClientRegistry`]). A replica takes a transfer only when its signer owns the debited
//! account and the signature verifies over [`SignedTransfer::signed_bytes`]: the ownership
//! rule is checked here, the signature is a [`Check::Client`] the host verifies (batched, like
//! every other check). The replica a client submits to checks at ingress, the shard primary
//! checks a forwarded transaction again, and every domain member re-checks every transaction
//! of a pre-prepare before it prepares it, so a Byzantine primary or member can neither invent
//! a transfer nor alter one (the validity of a local certificate needs an honest preparer,
//! which holds while the domain has at most f_d Byzantine members).

use crate::crypto::Check;
use crate::ledger::{AccountId, IdempotencyKey, Transfer, TRANSFER_SIZE_BYTES};
use crate::messages::Lane;
use crate::transaction::{OpaqueTx, Payload, Transaction};
use crate::wire::{Encoder, Reader, Wire, WireError};
use std::collections::BTreeMap;

/// A client of the cluster, as named in the genesis / cluster file.
pub type ClientId = u32;

/// Most clients a registry holds (it is built from the cluster file, not from the network).
pub const CLIENTS_MAX: usize = 1 << 20;
/// Bytes of a client public key (Ed25519).
pub const CLIENT_KEY_BYTES: usize = ccbft_crypto::client::CLIENT_PUBLIC_KEY_BYTES;
/// Bytes of a client signature (Ed25519 `R || s`).
pub const CLIENT_SIGNATURE_BYTES: usize = ccbft_crypto::client::CLIENT_SIGNATURE_BYTES;
/// Domain separation: a client's signature over a transfer verifies as nothing else.
const SIGNED_TRANSFER_CONTEXT: &[u8; 17] = b"ccbft/transfer/v1";
/// Bytes a client signs: context, client, transfer.
pub const SIGNED_BYTES: usize = SIGNED_TRANSFER_CONTEXT.len() + 4 + TRANSFER_SIZE_BYTES;
/// Size of a [`SignedTransfer`] on the wire.
pub const SIGNED_TRANSFER_BYTES: usize = TRANSFER_SIZE_BYTES + 4 + CLIENT_SIGNATURE_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(pub [u8; CLIENT_KEY_BYTES]);

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientSignature(pub [u8; CLIENT_SIGNATURE_BYTES]);

impl std::fmt::Debug for ClientSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientSignature({:02x?}..)", &self.0[..4])
    }
}

/// A transfer as a client submits it: named client, its signature over the transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignedTransfer {
    pub transfer: Transfer,
    pub client: ClientId,
    pub signature: ClientSignature,
}

impl SignedTransfer {
    /// What the client signs.
    pub fn signed_bytes(transfer: &Transfer, client: ClientId) -> [u8; SIGNED_BYTES] {
        let mut bytes = [0u8; SIGNED_BYTES];
        let (context, rest) = bytes.split_at_mut(SIGNED_TRANSFER_CONTEXT.len());
        context.copy_from_slice(SIGNED_TRANSFER_CONTEXT);
        rest[..4].copy_from_slice(&client.to_le_bytes());
        rest[4..].copy_from_slice(&transfer.to_bytes());
        bytes
    }

    /// The key scoped to the debited account ([`Transfer::ledger_key`]).
    pub fn key(&self) -> IdempotencyKey {
        self.transfer.ledger_key()
    }

    /// Transactions route by their debited account, so its home shard sees every debit.
    pub fn routing_key(&self) -> u64 {
        self.transfer.routing_key()
    }

    /// The fixed little-endian layout also hashed into batch digests.
    pub fn to_bytes(&self) -> [u8; SIGNED_TRANSFER_BYTES] {
        let mut bytes = [0u8; SIGNED_TRANSFER_BYTES];
        bytes[..TRANSFER_SIZE_BYTES].copy_from_slice(&self.transfer.to_bytes());
        bytes[TRANSFER_SIZE_BYTES..TRANSFER_SIZE_BYTES + 4]
            .copy_from_slice(&self.client.to_le_bytes());
        bytes[TRANSFER_SIZE_BYTES + 4..].copy_from_slice(&self.signature.0);
        bytes
    }
}

/// The shard of its domain a transaction belongs to: that of its debited account, so one
/// shard sees every debit of an account.
pub fn shard_of(routing_key: u64, shards: u32) -> u32 {
    assert!(shards > 0, "a domain has at least one shard");
    (xxhash_rust::xxh3::xxh3_64(&routing_key.to_le_bytes()) % u64::from(shards)) as u32
}

/// The domain whose lanes alone order debits of `account` (DESIGN.md, "Execution"): a hash
/// of the account, seeded apart from [`shard_of`]'s so the two spread independently.
pub fn home_domain(account: AccountId, domains: u32) -> u32 {
    assert!(domains > 0, "a cluster has at least one domain");
    (xxhash_rust::xxh3::xxh3_64_with_seed(&account.to_le_bytes(), HOME_DOMAIN_SEED)
        % u64::from(domains)) as u32
}

const HOME_DOMAIN_SEED: u64 = 0x686f_6d65; // "home"

/// The one lane that orders debits of `account`, so it alone decides whether they are
/// covered (`ledger::admission`).
pub fn home_lane(account: AccountId, domains: u32, shards: u32) -> Lane {
    Lane {
        domain: home_domain(account, domains),
        shard: shard_of(account, shards),
    }
}

/// Why a replica refused a client's transaction (the `Rejected` receipt says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxRejection {
    /// The debited account has no owner in the genesis.
    UnknownAccount,
    /// The named client is not in the genesis.
    UnknownClient,
    /// The named client does not own the debited account.
    NotOwner,
    /// The signature does not verify under the client's key.
    BadSignature,
    /// The cluster orders the other kind of transaction (transfers or opaque data).
    WrongKind,
    /// The debited account's home is another domain: submit there (only its home lane may
    /// order its debits).
    NotHome { domain: u32 },
}

impl TxRejection {
    pub fn reason(&self) -> &'static str {
        match self {
            TxRejection::UnknownAccount => "the debited account has no owner",
            TxRejection::UnknownClient => "unknown client",
            TxRejection::NotOwner => "the client does not own the debited account",
            TxRejection::BadSignature => "the client signature does not verify",
            TxRejection::WrongKind => "the cluster orders the other kind of transaction",
            TxRejection::NotHome { .. } => "the debited account is homed in another domain",
        }
    }
}

/// Errors building a registry from the cluster file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("client {0} is listed twice")]
    DuplicateClient(ClientId),
    #[error("more than {CLIENTS_MAX} clients")]
    TooManyClients,
    #[error("account {account} is owned by client {client}, which is not listed")]
    UnknownOwner {
        account: AccountId,
        client: ClientId,
    },
}

/// Who may debit what: client keys, and the owner of every account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRegistry {
    keys: BTreeMap<ClientId, ClientKey>,
    owners: BTreeMap<AccountId, ClientId>,
}

impl ClientRegistry {
    pub fn new(
        clients: impl IntoIterator<Item = (ClientId, ClientKey)>,
        owners: impl IntoIterator<Item = (AccountId, ClientId)>,
    ) -> Result<ClientRegistry, RegistryError> {
        let mut keys = BTreeMap::new();
        for (id, key) in clients {
            if keys.insert(id, key).is_some() {
                return Err(RegistryError::DuplicateClient(id));
            }
            if keys.len() > CLIENTS_MAX {
                return Err(RegistryError::TooManyClients);
            }
        }
        let mut registry = ClientRegistry {
            keys,
            owners: BTreeMap::new(),
        };
        for (account, client) in owners {
            if !registry.keys.contains_key(&client) {
                return Err(RegistryError::UnknownOwner { account, client });
            }
            registry.owners.insert(account, client);
        }
        Ok(registry)
    }

    /// The accounts `client` may debit, in order.
    pub fn accounts_of(&self, client: ClientId) -> impl Iterator<Item = AccountId> + '_ {
        self.owners
            .iter()
            .filter(move |(_, owner)| **owner == client)
            .map(|(account, _)| *account)
    }

    /// The key that must have signed `tx`, if its client may debit the account at all.
    pub fn authorize(&self, tx: &SignedTransfer) -> Result<ClientKey, TxRejection> {
        let owner = self
            .owners
            .get(&tx.transfer.from)
            .ok_or(TxRejection::UnknownAccount)?;
        let key = self
            .keys
            .get(&tx.client)
            .ok_or(TxRejection::UnknownClient)?;
        if *owner != tx.client {
            return Err(TxRejection::NotOwner);
        }
        Ok(*key)
    }

    /// The signature check of an authorized transaction: a transfer must be signed by the
    /// owner of the debited account, opaque data by any registered client.
    pub fn check(&self, tx: &Transaction) -> Result<Check, TxRejection> {
        match tx {
            Transaction::Transfer(tx) => Ok(Check::Client {
                key: self.authorize(tx)?,
                message: SignedTransfer::signed_bytes(&tx.transfer, tx.client).to_vec(),
                signature: tx.signature,
            }),
            Transaction::Opaque(tx) => Ok(Check::Client {
                key: *self
                    .keys
                    .get(&tx.client)
                    .ok_or(TxRejection::UnknownClient)?,
                message: OpaqueTx::signed_bytes(tx.client, tx.key, &tx.data),
                signature: tx.signature,
            }),
        }
    }

    /// The checks of every transaction of a batch; the first unauthorized one refuses all.
    pub fn checks(&self, payload: &Payload, out: &mut Vec<Check>) -> Result<(), TxRejection> {
        out.reserve(payload.len());
        for tx in payload.iter() {
            out.push(self.check(&tx)?);
        }
        Ok(())
    }
}

// ---- Wire encoding (crate::wire) ----

impl Wire for SignedTransfer {
    const ENCODED_BYTES_MIN: usize = SIGNED_TRANSFER_BYTES;

    fn encode(&self, out: &mut Encoder) {
        out.extend_from_slice(&self.to_bytes());
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(SignedTransfer {
            transfer: Transfer::decode(reader)?,
            client: reader.u32("client")?,
            signature: ClientSignature(reader.array("client signature")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(from: AccountId) -> Transfer {
        Transfer {
            key: 7,
            from,
            to: 9,
            amount: 5,
        }
    }

    fn signed(from: AccountId, client: ClientId) -> SignedTransfer {
        SignedTransfer {
            transfer: transfer(from),
            client,
            signature: ClientSignature([3; CLIENT_SIGNATURE_BYTES]),
        }
    }

    fn registry() -> ClientRegistry {
        ClientRegistry::new(
            [(1, ClientKey([1; 32])), (2, ClientKey([2; 32]))],
            [(10, 1), (20, 2)],
        )
        .unwrap()
    }

    #[test]
    fn a_client_is_listed_its_own_accounts_in_order() {
        let registry = ClientRegistry::new(
            [(1, ClientKey([1; 32])), (2, ClientKey([2; 32]))],
            [(30, 1), (10, 1), (20, 2)],
        )
        .unwrap();
        assert_eq!(registry.accounts_of(1).collect::<Vec<_>>(), [10, 30]);
        assert_eq!(registry.accounts_of(2).collect::<Vec<_>>(), [20]);
        assert_eq!(registry.accounts_of(3).count(), 0);
    }

    #[test]
    fn only_the_owner_of_the_debited_account_is_authorized() {
        let registry = registry();
        assert_eq!(registry.authorize(&signed(10, 1)), Ok(ClientKey([1; 32])));
        assert_eq!(registry.authorize(&signed(20, 2)), Ok(ClientKey([2; 32])));
        assert_eq!(
            registry.authorize(&signed(10, 2)),
            Err(TxRejection::NotOwner)
        );
        assert_eq!(
            registry.authorize(&signed(30, 1)),
            Err(TxRejection::UnknownAccount)
        );
        assert_eq!(
            registry.authorize(&signed(10, 3)),
            Err(TxRejection::UnknownClient)
        );
    }

    #[test]
    fn the_check_covers_client_and_transfer_under_the_owners_key() {
        let registry = registry();
        let tx = signed(10, 1);
        let Ok(Check::Client {
            key,
            message,
            signature,
        }) = registry.check(&tx.into())
        else {
            panic!("an authorized transfer has a client check");
        };
        assert_eq!(key, ClientKey([1; 32]));
        assert_eq!(signature, tx.signature);
        assert_eq!(&message[..17], b"ccbft/transfer/v1");
        assert_eq!(&message[17..21], &1u32.to_le_bytes());
        assert_eq!(&message[21..], &tx.transfer.to_bytes());
        let mut other = tx.transfer;
        other.amount += 1;
        assert_ne!(
            SignedTransfer::signed_bytes(&other, 1),
            SignedTransfer::signed_bytes(&tx.transfer, 1)
        );
        let mut out = Vec::new();
        assert_eq!(
            registry.checks(&Payload::from_transfers(&[tx, signed(10, 2)]), &mut out),
            Err(TxRejection::NotOwner)
        );
    }

    #[test]
    fn a_registry_refuses_duplicates_and_owners_without_keys() {
        assert_eq!(
            ClientRegistry::new([(1, ClientKey([1; 32])), (1, ClientKey([2; 32]))], []),
            Err(RegistryError::DuplicateClient(1))
        );
        assert_eq!(
            ClientRegistry::new([(1, ClientKey([1; 32]))], [(5, 2)]),
            Err(RegistryError::UnknownOwner {
                account: 5,
                client: 2
            })
        );
    }
}
