//! Committees, signer bitmaps and aggregate certificates (local certificates, quorum
//! certificates, timeout certificates, checkpoint certificates).
//!
//! A certificate is the committee epoch, a bitmap of signers and one aggregate signature.
//! All signers sign the same message, so verification costs one aggregation of public keys
//! (cheap G1 additions) and one pairing check, whatever the number of signers. This is safe
//! against rogue keys because every committee key was registered with a proof of possession,
//! and a committee refuses a key that is the negation of another (two such members would
//! cancel in every aggregate and could be added to any certificate without signing).
//!
//! The epoch is signed: a vote is a signature over [`vote_message`]`(epoch, msg)` (made with
//! [`sign_vote`]), so a certificate relabelled with another epoch never verifies against
//! that epoch's committee, even when both committees hold the same keys.

use crate::bls::{
    ProofOfPossession, PublicKey, SecretKey, Signature, Tag, PUBLIC_KEY_BYTES, SIGNATURE_BYTES,
};
use crate::error::CryptoError;
use std::collections::HashMap;

/// Prefix of every certificate vote message, before the epoch. It starts with `C` (0x43), so
/// it never collides with the core's own one-byte tag prefixes (1 to 9).
pub const VOTE_EPOCH_DOMAIN: &[u8] = b"CCBFT-V1-CERT-EPOCH";

/// The bytes a certificate vote signs: [`VOTE_EPOCH_DOMAIN`], the epoch (u64 LE), then the
/// message. Fixed-length prefix, so the encoding is injective.
pub fn vote_message(epoch: u64, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VOTE_EPOCH_DOMAIN.len() + EPOCH_BYTES + msg.len());
    out.extend_from_slice(VOTE_EPOCH_DOMAIN);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(msg);
    out
}

/// A vote of a committee member of `epoch` on `msg` of kind `tag`, for a
/// [`CertificateBuilder`]: a signature over [`vote_message`]`(epoch, msg)`.
pub fn sign_vote(secret: &SecretKey, epoch: u64, tag: Tag, msg: &[u8]) -> Signature {
    secret.sign(tag, &vote_message(epoch, msg))
}

/// The compressed encoding of `-pk` (G1 negation, which keeps the point canonical).
fn negated_key_bytes(pk: &PublicKey) -> [u8; PUBLIC_KEY_BYTES] {
    let point = crate::threshold::public_key_to_g1(pk);
    (-point).to_compressed()
}

/// Largest committee (and signer bitmap), in members. Bitmap lengths travel as `u16`.
pub const COMMITTEE_SIZE_MAX: usize = 1024;
const _: () = assert!(COMMITTEE_SIZE_MAX <= u16::MAX as usize);

/// Bytes of the bitmap length prefix.
const BITMAP_LEN_BYTES: usize = 2;
/// Bytes of an epoch on the wire.
const EPOCH_BYTES: usize = 8;

/// A set of signer indices `0..len`, as a little-endian bitmap (bit `i` is bit `i % 8` of
/// byte `i / 8`). Encoded as a `u16` LE bit length followed by `ceil(len / 8)` bytes whose
/// padding bits must be zero.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignerBitmap {
    len: usize,
    bytes: Vec<u8>,
}

impl SignerBitmap {
    /// An empty bitmap for a committee of `len` members.
    pub fn new(len: usize) -> Result<SignerBitmap, CryptoError> {
        if len > COMMITTEE_SIZE_MAX {
            return Err(CryptoError::TooMany {
                kind: "signer bitmap bits",
                got: len,
                max: COMMITTEE_SIZE_MAX,
            });
        }
        Ok(SignerBitmap {
            len,
            bytes: vec![0; len.div_ceil(8)],
        })
    }

    /// A bitmap holding exactly `indices`; rejects duplicates and indices `>= len`.
    pub fn from_indices(len: usize, indices: &[usize]) -> Result<SignerBitmap, CryptoError> {
        let mut bitmap = SignerBitmap::new(len)?;
        for &index in indices {
            bitmap.insert(index)?;
        }
        Ok(bitmap)
    }

    /// Adds a signer; rejects an index outside the bitmap and a signer already present.
    pub fn insert(&mut self, index: usize) -> Result<(), CryptoError> {
        if index >= self.len {
            return Err(CryptoError::UnknownSigner {
                index,
                committee: self.len,
            });
        }
        if self.contains(index) {
            return Err(CryptoError::DuplicateSigner { index });
        }
        self.bytes[index / 8] |= 1 << (index % 8);
        Ok(())
    }

    /// Whether `index` is in the set.
    pub fn contains(&self, index: usize) -> bool {
        index < self.len && self.bytes[index / 8] & (1 << (index % 8)) != 0
    }

    /// Number of bits (the committee size it was made for).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitmap has zero bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of signers in the set.
    pub fn count(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Signer indices in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.contains(i))
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        BITMAP_LEN_BYTES + self.bytes.len()
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = u16::try_from(self.len).expect("bitmap length bounded by COMMITTEE_SIZE_MAX");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.bytes);
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one bitmap.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignerBitmap, CryptoError> {
        let (bitmap, used) = Self::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(CryptoError::WrongLength {
                kind: "signer bitmap",
                expected: used,
                got: bytes.len(),
            });
        }
        Ok(bitmap)
    }

    /// Decodes a bitmap at the start of `bytes`; returns it and the bytes consumed.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(SignerBitmap, usize), CryptoError> {
        const KIND: &str = "signer bitmap";
        let Some(prefix) = bytes.get(..BITMAP_LEN_BYTES) else {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: BITMAP_LEN_BYTES,
                got: bytes.len(),
            });
        };
        let len = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
        let mut bitmap = SignerBitmap::new(len)?;
        let used = BITMAP_LEN_BYTES + bitmap.bytes.len();
        let Some(body) = bytes.get(BITMAP_LEN_BYTES..used) else {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: used,
                got: bytes.len(),
            });
        };
        bitmap.bytes.copy_from_slice(body);
        if !len.is_multiple_of(8) {
            let padding = bitmap.bytes[len / 8] >> (len % 8);
            if padding != 0 {
                return Err(CryptoError::NonCanonical { kind: KIND });
            }
        }
        Ok((bitmap, used))
    }

    /// Raw bitmap bytes without the length prefix (for tests and tools).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The signing committee of one epoch: an ordered list of public keys, each registered with
/// a valid proof of possession. A member's index is its bit in certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committee {
    epoch: u64,
    keys: Vec<PublicKey>,
    proofs: Vec<ProofOfPossession>,
}

impl Committee {
    /// Registers the members in order. Every proof of possession must verify, keys must be
    /// distinct, no key may be the negation of another (pairwise; a pair summing to the
    /// identity is [`CryptoError::CancellingKeys`]), and there must be between 1 and
    /// [`COMMITTEE_SIZE_MAX`] members.
    pub fn new(
        epoch: u64,
        members: Vec<(PublicKey, ProofOfPossession)>,
    ) -> Result<Committee, CryptoError> {
        if members.is_empty() {
            return Err(CryptoError::EmptyCommittee);
        }
        if members.len() > COMMITTEE_SIZE_MAX {
            return Err(CryptoError::TooMany {
                kind: "committee members",
                got: members.len(),
                max: COMMITTEE_SIZE_MAX,
            });
        }
        let mut seen: HashMap<[u8; PUBLIC_KEY_BYTES], usize> = HashMap::new();
        for (index, (pk, pop)) in members.iter().enumerate() {
            if let Some(&first) = seen.get(&pk.to_bytes()) {
                return Err(CryptoError::DuplicateKey { index, first });
            }
            if let Some(&other) = seen.get(&negated_key_bytes(pk)) {
                return Err(CryptoError::CancellingKeys { index, other });
            }
            seen.insert(pk.to_bytes(), index);
            pop.verify(pk)
                .map_err(|_| CryptoError::InvalidProofOfPossession { index })?;
        }
        let (keys, proofs) = members.into_iter().unzip();
        Ok(Committee {
            epoch,
            keys,
            proofs,
        })
    }

    /// The epoch certificates of this committee carry.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a committee has at least one member.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of member `index`.
    pub fn public_key(&self, index: usize) -> Option<&PublicKey> {
        self.keys.get(index)
    }

    /// All member keys in index order.
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Index of a member key.
    pub fn index_of(&self, pk: &PublicKey) -> Option<usize> {
        self.keys.iter().position(|k| k == pk)
    }

    /// Checks that `signers` is a bitmap of this committee: no bit beyond the committee
    /// (unknown signer) and exactly one bit per member.
    pub fn check_bitmap(&self, signers: &SignerBitmap) -> Result<(), CryptoError> {
        if let Some(index) = (self.len()..signers.len()).find(|&i| signers.contains(i)) {
            return Err(CryptoError::UnknownSigner {
                index,
                committee: self.len(),
            });
        }
        if signers.len() != self.len() {
            return Err(CryptoError::BitmapLength {
                expected: self.len(),
                got: signers.len(),
            });
        }
        Ok(())
    }

    /// Sum of the public keys of the signers in `signers`.
    pub fn aggregate_public_key(&self, signers: &SignerBitmap) -> Result<PublicKey, CryptoError> {
        self.check_bitmap(signers)?;
        let keys: Vec<&PublicKey> = signers.iter().map(|i| &self.keys[i]).collect();
        PublicKey::aggregate(&keys)
    }

    /// Verifies a single vote of member `index` (a signature made with [`sign_vote`] for this
    /// committee's epoch).
    pub fn verify_vote(
        &self,
        index: usize,
        tag: Tag,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), CryptoError> {
        let pk = self.public_key(index).ok_or(CryptoError::UnknownSigner {
            index,
            committee: self.len(),
        })?;
        pk.verify(tag, &vote_message(self.epoch, msg), sig)
    }

    /// Verifies a certificate over `msg` of kind `tag` with at least `min_signers` signers
    /// (at least one in any case): right epoch, a bitmap of this committee, enough signers,
    /// then one pairing check of the aggregate against the aggregated signer keys over
    /// [`vote_message`]`(epoch, msg)`, so the epoch label is covered by the signatures.
    pub fn verify_certificate(
        &self,
        tag: Tag,
        msg: &[u8],
        cert: &Certificate,
        min_signers: usize,
    ) -> Result<(), CryptoError> {
        if cert.epoch != self.epoch {
            return Err(CryptoError::WrongEpoch {
                expected: self.epoch,
                got: cert.epoch,
            });
        }
        self.check_bitmap(&cert.signers)?;
        let need = min_signers.max(1);
        let got = cert.signers.count();
        if got < need {
            return Err(CryptoError::TooFewSigners { got, need });
        }
        let agg_pk = self.aggregate_public_key(&cert.signers)?;
        agg_pk.verify(tag, &vote_message(self.epoch, msg), &cert.aggregate)
    }

    /// A builder that collects votes on `msg` of kind `tag` into a certificate. Votes are
    /// made with [`sign_vote`] for this committee's epoch.
    pub fn certificate_builder(&self, tag: Tag, msg: &[u8]) -> CertificateBuilder<'_> {
        CertificateBuilder {
            committee: self,
            tag,
            msg: vote_message(self.epoch, msg),
            votes: vec![None; self.len()],
            count: 0,
        }
    }

    /// Encoding: epoch (u64 LE), member count (u16 LE), then per member the 48-byte key and
    /// the 96-byte proof of possession.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + self.len() * (PUBLIC_KEY_BYTES + SIGNATURE_BYTES));
        out.extend_from_slice(&self.epoch.to_le_bytes());
        let count = u16::try_from(self.len()).expect("committee size bounded");
        out.extend_from_slice(&count.to_le_bytes());
        for (pk, pop) in self.keys.iter().zip(&self.proofs) {
            out.extend_from_slice(&pk.to_bytes());
            out.extend_from_slice(&pop.to_bytes());
        }
        out
    }

    /// Decodes and re-registers a committee (every proof of possession is checked again).
    pub fn from_bytes(bytes: &[u8]) -> Result<Committee, CryptoError> {
        const KIND: &str = "committee";
        const MEMBER: usize = PUBLIC_KEY_BYTES + SIGNATURE_BYTES;
        if bytes.len() < EPOCH_BYTES + 2 {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: EPOCH_BYTES + 2,
                got: bytes.len(),
            });
        }
        let (head, body) = bytes.split_at(EPOCH_BYTES + 2);
        let epoch = u64::from_le_bytes(head[..EPOCH_BYTES].try_into().expect("8 bytes"));
        let count = usize::from(u16::from_le_bytes([head[8], head[9]]));
        if count > COMMITTEE_SIZE_MAX {
            return Err(CryptoError::TooMany {
                kind: "committee members",
                got: count,
                max: COMMITTEE_SIZE_MAX,
            });
        }
        if body.len() != count * MEMBER {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: EPOCH_BYTES + 2 + count * MEMBER,
                got: bytes.len(),
            });
        }
        let members = body
            .chunks_exact(MEMBER)
            .map(|m| {
                let pk = PublicKey::from_bytes(&m[..PUBLIC_KEY_BYTES])?;
                let pop = ProofOfPossession::from_bytes(&m[PUBLIC_KEY_BYTES..])?;
                Ok((pk, pop))
            })
            .collect::<Result<Vec<_>, CryptoError>>()?;
        Committee::new(epoch, members)
    }
}

/// An aggregate certificate: committee epoch, signer bitmap and one aggregate signature.
///
/// Encoding: epoch (u64 LE) | bitmap (u16 LE bit length, bytes) | 96-byte aggregate.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Certificate {
    /// Epoch of the committee whose members signed.
    pub epoch: u64,
    /// Who signed.
    pub signers: SignerBitmap,
    /// Sum of the signers' signatures.
    pub aggregate: Signature,
}

impl Certificate {
    /// Encoded size in bytes: 8 + 2 + ceil(n / 8) + 96.
    pub fn encoded_len(&self) -> usize {
        EPOCH_BYTES + self.signers.encoded_len() + SIGNATURE_BYTES
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        self.signers.encode_into(&mut out);
        out.extend_from_slice(&self.aggregate.to_bytes());
        out
    }

    /// Decodes exactly one certificate (canonical bitmap, valid aggregate point).
    pub fn from_bytes(bytes: &[u8]) -> Result<Certificate, CryptoError> {
        const KIND: &str = "certificate";
        let Some(epoch) = bytes.get(..EPOCH_BYTES) else {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: EPOCH_BYTES + BITMAP_LEN_BYTES + SIGNATURE_BYTES,
                got: bytes.len(),
            });
        };
        let epoch = u64::from_le_bytes(epoch.try_into().expect("8 bytes"));
        let (signers, used) = SignerBitmap::decode_prefix(&bytes[EPOCH_BYTES..])?;
        let expected = EPOCH_BYTES + used + SIGNATURE_BYTES;
        if bytes.len() != expected {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected,
                got: bytes.len(),
            });
        }
        let aggregate = Signature::from_bytes(&bytes[EPOCH_BYTES + used..])?;
        Ok(Certificate {
            epoch,
            signers,
            aggregate,
        })
    }
}

/// Collects individual votes into a [`Certificate`] (the vote keeper's aggregator). Each vote
/// is a [`sign_vote`] signature for the committee's epoch.
///
/// Votes are not checked one by one on arrival: [`CertificateBuilder::build`] verifies the
/// aggregate once and, only if that fails, finds the bad votes by bisection over subsets
/// (optimistic aggregation), removes them and names their signers.
#[derive(Debug)]
pub struct CertificateBuilder<'c> {
    committee: &'c Committee,
    tag: Tag,
    /// [`vote_message`] of the committee's epoch and the message.
    msg: Vec<u8>,
    votes: Vec<Option<Signature>>,
    count: usize,
}

impl CertificateBuilder<'_> {
    /// Adds the vote of member `signer`; returns the number of votes held. Rejects a signer
    /// outside the committee and a second vote of the same signer.
    pub fn add_vote(&mut self, signer: usize, sig: Signature) -> Result<usize, CryptoError> {
        let Some(slot) = self.votes.get_mut(signer) else {
            return Err(CryptoError::UnknownSigner {
                index: signer,
                committee: self.committee.len(),
            });
        };
        if slot.is_some() {
            return Err(CryptoError::DuplicateSigner { index: signer });
        }
        *slot = Some(sig);
        self.count += 1;
        Ok(self.count)
    }

    /// Number of votes held.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether member `signer` has voted.
    pub fn has_vote(&self, signer: usize) -> bool {
        matches!(self.votes.get(signer), Some(Some(_)))
    }

    fn subset_ok(&self, signers: &[usize]) -> bool {
        let sigs: Vec<&Signature> = signers
            .iter()
            .filter_map(|&i| self.votes[i].as_ref())
            .collect();
        let keys: Vec<&PublicKey> = signers.iter().map(|&i| &self.committee.keys[i]).collect();
        match (
            Signature::aggregate_refs(&sigs),
            PublicKey::aggregate(&keys),
        ) {
            (Ok(sig), Ok(pk)) => pk.verify(self.tag, &self.msg, &sig).is_ok(),
            _ => false,
        }
    }

    /// Appends to `bad` the bad signers of `signers`, a set known to fail.
    fn bisect(&self, signers: &[usize], bad: &mut Vec<usize>) {
        if signers.len() == 1 {
            bad.push(signers[0]);
            return;
        }
        let (left, right) = signers.split_at(signers.len() / 2);
        if self.subset_ok(left) {
            // The whole failed and the left half is good: the right half holds a bad vote.
            self.bisect(right, bad);
        } else {
            self.bisect(left, bad);
            if !self.subset_ok(right) {
                self.bisect(right, bad);
            }
        }
    }

    /// Builds and verifies the certificate. Needs at least `min_signers` votes (and one in
    /// any case). If the aggregate fails, the bad votes are removed and reported in
    /// [`CryptoError::InvalidVotes`]; the builder keeps the good ones and can collect more.
    pub fn build(&mut self, min_signers: usize) -> Result<Certificate, CryptoError> {
        let need = min_signers.max(1);
        if self.count < need {
            return Err(CryptoError::TooFewSigners {
                got: self.count,
                need,
            });
        }
        let signers: Vec<usize> = (0..self.votes.len())
            .filter(|&i| self.votes[i].is_some())
            .collect();
        if !self.subset_ok(&signers) {
            let mut bad = Vec::new();
            self.bisect(&signers, &mut bad);
            assert!(!bad.is_empty(), "a failing set holds at least one bad vote");
            for &i in &bad {
                self.votes[i] = None;
                self.count -= 1;
            }
            return Err(CryptoError::InvalidVotes { signers: bad });
        }
        let sigs: Vec<&Signature> = self.votes.iter().flatten().collect();
        let aggregate = Signature::aggregate_refs(&sigs)?;
        let bitmap = SignerBitmap::from_indices(self.committee.len(), &signers)?;
        Ok(Certificate {
            epoch: self.committee.epoch,
            signers: bitmap,
            aggregate,
        })
    }
}
