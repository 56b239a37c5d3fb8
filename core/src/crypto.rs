//! The crypto boundary of the core.
//!
//! The protocol signs its own messages through [`Signer`] (one replica, one key) and never
//! verifies anything itself: every signature a message carries becomes a [`Check`] that the
//! host carries out (the runtime batches them over a rayon pool; the simulator runs them at
//! once) before the message reaches a protocol handler. Certificates are a signer bitmap
//! plus one aggregate, the shape of a BLS multi-signature.

#[cfg(any(test, feature = "simulator"))]
use crate::client::{ClientId, CLIENT_SIGNATURE_BYTES};
use crate::client::{ClientKey, ClientSignature};
use crate::topology::{ReplicaId, REPLICAS_MAX};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Domain-separation tags: a signature of one kind never verifies as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tag {
    /// PBFT pre-prepare and prepare (the primary's pre-prepare counts as its prepare).
    LocalPrepare,
    /// PBFT commit; q_d of them aggregate into a local certificate (LC).
    LocalCommit,
    LocalViewChange,
    LocalNewView,
    LocalCheckpoint,
    /// HotStuff proposal by the round leader.
    Proposal,
    /// HotStuff vote; q of them aggregate into a quorum certificate (QC).
    GlobalVote,
    /// HotStuff timeout vote; q of them form a timeout certificate (TC).
    Timeout,
    /// Global state checkpoint vote over (height, block, state root, snapshot root); q of
    /// them aggregate into a stable checkpoint certificate.
    Checkpoint,
}

/// 32-byte SHA-256 digest of a batch, block or state.
pub type Digest = [u8; 32];

pub fn digest(parts: &[&[u8]]) -> Digest {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Opaque signature bytes (96 for BLS, 16 for the simulator's MAC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(pub Vec<u8>);

/// Set of replica ids, at most [`REPLICAS_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Bitmap(pub [u64; 4]);

const _: () = assert!(REPLICAS_MAX <= 256, "Bitmap holds 256 replicas");

impl Bitmap {
    pub fn insert(&mut self, id: ReplicaId) -> bool {
        assert!((id as usize) < REPLICAS_MAX);
        let (word, bit) = ((id / 64) as usize, id % 64);
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }

    pub fn contains(&self, id: ReplicaId) -> bool {
        (id as usize) < REPLICAS_MAX && self.0[(id / 64) as usize] & (1 << (id % 64)) != 0
    }

    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub fn union(&self, other: &Bitmap) -> Bitmap {
        Bitmap(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }

    pub fn intersects(&self, other: &Bitmap) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    pub fn is_subset(&self, other: &Bitmap) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }

    pub fn ids(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        (0..REPLICAS_MAX as ReplicaId).filter(|&id| self.contains(id))
    }
}

/// A bitmap of signers and one aggregate signature over the same message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Certificate {
    pub signers: Bitmap,
    pub aggregate: Signature,
}

/// One verification the host must carry out before a message is processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Single {
        signer: ReplicaId,
        tag: Tag,
        message: Vec<u8>,
        signature: Signature,
    },
    Aggregate {
        tag: Tag,
        message: Vec<u8>,
        certificate: Certificate,
    },
    /// A client's signature over one of its transactions ([`crate::client`]); the core has
    /// already checked that `key` belongs to the owner of the debited account.
    Client {
        key: ClientKey,
        message: Vec<u8>,
        signature: ClientSignature,
    },
}

/// Signs with this replica's own key, and combines verified signatures into aggregates.
pub trait Signer {
    fn id(&self) -> ReplicaId;
    fn sign(&self, tag: Tag, message: &[u8]) -> Signature;
    /// Combine individual (already verified) signatures over one message into an aggregate.
    fn aggregate(&self, signatures: &[Signature]) -> Signature;
}

/// Verifies signatures and aggregates; the host's side of the boundary.
pub trait Verifier {
    fn verify(&self, check: &Check) -> bool;

    /// The positions of the checks that fail, one by one (what [`crate::replica::Input::Verified`]
    /// reports). The runtime gets the same answer from one batched check of everything and a
    /// bisection only when the batch fails.
    fn failed(&self, checks: &[Check]) -> Vec<u32> {
        (0..checks.len() as u32)
            .filter(|&i| !self.verify(&checks[i as usize]))
            .collect()
    }
}

impl Check {
    /// What kind of check it is, for health events and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Single { .. } => "signature",
            Check::Aggregate { .. } => "certificate",
            Check::Client { .. } => "client signature",
        }
    }

    /// The replica whose own signature this is, if it is one.
    pub fn signer(&self) -> Option<ReplicaId> {
        match self {
            Check::Single { signer, .. } => Some(*signer),
            Check::Aggregate { .. } | Check::Client { .. } => None,
        }
    }
}

#[cfg(any(test, feature = "simulator"))]
/// The simulator's scheme: a keyed MAC per replica. Only the holder of replica i's secret
/// can produce i's signature, so a Byzantine simulated replica cannot forge an honest one;
/// aggregates are the XOR of the members' MACs (a bitmap plus 16 bytes, like BLS). Clients
/// get a MAC key each too, held only by the simulator's client workload: a simulated
/// client's key is its id and a tag ([`SimKeys::client_key`]), its signature a MAC in the
/// first 16 of 64 bytes.
#[derive(Debug, Clone)]
pub struct SimKeys {
    secrets: Vec<u128>,
    seed: u64,
}

#[cfg(any(test, feature = "simulator"))]
impl SimKeys {
    pub fn new(replicas: u32, seed: u64) -> SimKeys {
        let secrets = (0..replicas)
            .map(|i| xxhash_rust::xxh3::xxh3_128_with_seed(&i.to_le_bytes(), seed ^ 0x5EED_CAFE))
            .collect();
        SimKeys { secrets, seed }
    }

    fn client_secret(&self, client: ClientId) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(&client.to_le_bytes(), self.seed ^ 0xC11E_D00D)
    }

    /// The public key of simulated client `client`: its id, then a tag of this key set.
    pub fn client_key(&self, client: ClientId) -> ClientKey {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&client.to_le_bytes());
        let tag = xxhash_rust::xxh3::xxh3_128_with_seed(&client.to_le_bytes(), self.seed);
        key[4..20].copy_from_slice(&tag.to_le_bytes());
        ClientKey(key)
    }

    fn client_mac(&self, client: ClientId, message: &[u8]) -> [u8; CLIENT_SIGNATURE_BYTES] {
        let mut keyed = Vec::with_capacity(message.len() + 16);
        keyed.extend_from_slice(&self.client_secret(client).to_le_bytes());
        keyed.extend_from_slice(message);
        let mut signature = [0u8; CLIENT_SIGNATURE_BYTES];
        signature[..16].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(&keyed).to_le_bytes());
        signature
    }

    /// Signs as simulated client `client`: only the simulator's client workload calls this.
    pub fn sign_client(&self, client: ClientId, message: &[u8]) -> ClientSignature {
        ClientSignature(self.client_mac(client, message))
    }

    fn verify_client(&self, key: &ClientKey, message: &[u8], signature: &ClientSignature) -> bool {
        let client = ClientId::from_le_bytes(key.0[..4].try_into().expect("4 bytes"));
        self.client_key(client) == *key && self.client_mac(client, message) == signature.0
    }

    fn mac(&self, signer: ReplicaId, tag: Tag, message: &[u8]) -> u128 {
        let Some(secret) = self.secrets.get(signer as usize) else {
            return 0;
        };
        let mut keyed = Vec::with_capacity(message.len() + 17);
        keyed.extend_from_slice(&secret.to_le_bytes());
        keyed.push(tag as u8);
        keyed.extend_from_slice(message);
        xxhash_rust::xxh3::xxh3_128(&keyed)
    }

    /// The signer for one replica: it can sign only as that replica.
    pub fn signer(&self, id: ReplicaId) -> SimSigner {
        SimSigner {
            keys: self.clone(),
            id,
        }
    }
}

#[cfg(any(test, feature = "simulator"))]
fn mac_of(signature: &Signature) -> Option<u128> {
    Some(u128::from_le_bytes(signature.0.as_slice().try_into().ok()?))
}

#[cfg(any(test, feature = "simulator"))]
impl Verifier for SimKeys {
    fn verify(&self, check: &Check) -> bool {
        match check {
            Check::Single {
                signer,
                tag,
                message,
                signature,
            } => {
                (*signer as usize) < self.secrets.len()
                    && mac_of(signature) == Some(self.mac(*signer, *tag, message))
            }
            Check::Aggregate {
                tag,
                message,
                certificate,
            } => {
                let ids: Vec<ReplicaId> = certificate.signers.ids().collect();
                !ids.is_empty()
                    && ids.iter().all(|&id| (id as usize) < self.secrets.len())
                    && mac_of(&certificate.aggregate)
                        == Some(
                            ids.iter()
                                .fold(0, |acc, &id| acc ^ self.mac(id, *tag, message)),
                        )
            }
            Check::Client {
                key,
                message,
                signature,
            } => self.verify_client(key, message, signature),
        }
    }
}

#[cfg(any(test, feature = "simulator"))]
#[derive(Clone)]
pub struct SimSigner {
    keys: SimKeys,
    id: ReplicaId,
}

#[cfg(any(test, feature = "simulator"))]
impl Signer for SimSigner {
    fn id(&self) -> ReplicaId {
        self.id
    }

    fn sign(&self, tag: Tag, message: &[u8]) -> Signature {
        Signature(self.keys.mac(self.id, tag, message).to_le_bytes().to_vec())
    }

    fn aggregate(&self, signatures: &[Signature]) -> Signature {
        let xor = signatures
            .iter()
            .filter_map(mac_of)
            .fold(0u128, |acc, m| acc ^ m);
        Signature(xor.to_le_bytes().to_vec())
    }
}

// ---- Wire encoding (crate::wire) ----

use crate::wire::{put_bytes, put_u64, Encoder, Reader, Wire, WireError};

/// Largest signature any scheme puts on the wire: a BLS12-381 signature (G2, compressed) is
/// 96 bytes, the simulator's MAC 16; an aggregate is one signature of the same size.
pub const SIGNATURE_BYTES_MAX: usize = 96;

const _: () = assert!(ccbft_crypto::bls::SIGNATURE_BYTES <= SIGNATURE_BYTES_MAX);

/// A bitmap is four u64 LE words.
const BITMAP_BYTES: usize = 32;

impl Wire for Digest {
    const ENCODED_BYTES_MIN: usize = 32;

    fn encode(&self, out: &mut Encoder) {
        out.extend_from_slice(self);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        reader.array("digest")
    }
}

impl Wire for Signature {
    const ENCODED_BYTES_MIN: usize = 4;

    fn encode(&self, out: &mut Encoder) {
        put_bytes(out, "signature", &self.0, SIGNATURE_BYTES_MAX);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let bytes = reader.bytes("signature", SIGNATURE_BYTES_MAX)?;
        Ok(Signature(bytes.to_vec()))
    }
}

impl Wire for Bitmap {
    const ENCODED_BYTES_MIN: usize = BITMAP_BYTES;

    fn encode(&self, out: &mut Encoder) {
        self.0.iter().for_each(|&word| put_u64(out, word));
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut words = [0u64; 4];
        for word in &mut words {
            *word = reader.u64("bitmap word")?;
        }
        // Bits at or above REPLICAS_MAX name no replica (`Bitmap::insert` asserts it).
        let outside =
            (REPLICAS_MAX..64 * words.len()).any(|id| words[id / 64] >> (id % 64) & 1 == 1);
        if outside {
            return Err(WireError::Invalid {
                what: "bitmap",
                reason: "a bit at or above REPLICAS_MAX is set",
            });
        }
        Ok(Bitmap(words))
    }
}

impl Wire for Certificate {
    const ENCODED_BYTES_MIN: usize = BITMAP_BYTES + Signature::ENCODED_BYTES_MIN;

    fn encode(&self, out: &mut Encoder) {
        self.signers.encode(out);
        self.aggregate.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Certificate {
            signers: Bitmap::decode(reader)?,
            aggregate: Signature::decode(reader)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_signatures_are_bound_to_signer_tag_and_message() {
        let keys = SimKeys::new(4, 7);
        let signature = keys.signer(1).sign(Tag::GlobalVote, b"m");
        let check = |signer, tag, message: &[u8]| Check::Single {
            signer,
            tag,
            message: message.to_vec(),
            signature: signature.clone(),
        };
        assert!(keys.verify(&check(1, Tag::GlobalVote, b"m")));
        assert!(!keys.verify(&check(2, Tag::GlobalVote, b"m")));
        assert!(!keys.verify(&check(1, Tag::Timeout, b"m")));
        assert!(!keys.verify(&check(1, Tag::GlobalVote, b"n")));
        assert!(!keys.verify(&check(9, Tag::GlobalVote, b"m")));
    }

    #[test]
    fn sim_aggregate_needs_every_member() {
        let keys = SimKeys::new(4, 7);
        let signatures: Vec<Signature> = (0..3)
            .map(|i| keys.signer(i).sign(Tag::LocalCommit, b"x"))
            .collect();
        let mut signers = Bitmap::default();
        (0..3).for_each(|i| assert!(signers.insert(i)));
        assert!(!signers.insert(2));
        let certificate = Certificate {
            signers,
            aggregate: keys.signer(0).aggregate(&signatures),
        };
        let check = Check::Aggregate {
            tag: Tag::LocalCommit,
            message: b"x".to_vec(),
            certificate,
        };
        assert!(keys.verify(&check));
        let Check::Aggregate {
            tag,
            message,
            mut certificate,
        } = check
        else {
            unreachable!()
        };
        certificate.signers.insert(3);
        assert!(!keys.verify(&Check::Aggregate {
            tag,
            message,
            certificate
        }));
    }
}
