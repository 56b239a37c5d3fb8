//! The DKG ceremony run by separate operators, with no trusted dealer: each party runs its
//! own steps on its own machine with only its own secret, and the parties exchange only
//! signed broadcast messages (files on a shared board, or the replica transport).
//!
//! # Keys and session
//!
//! Each party has a [`CeremonyKey`], one 32-byte random seed from which two keys are derived
//! under distinct labels: an Ed25519 key that signs its broadcast messages, and an X25519 key
//! (HPKE DeriveKeyPair) to which the other dealers encrypt its shares. The parties' public
//! halves ([`CeremonyPublic`], compared out of band by fingerprint) form the [`Roster`]; its
//! digest is the session id, bound into every signature and every encryption, so nothing
//! from another ceremony (or another roster) is accepted.
//!
//! # Steps (joint-Feldman, [`crate::dkg`])
//!
//! 1. [`deal`]: the dealer's Feldman commitment and, for each party `j`, the share `f_i(j)`
//!    sealed to `j` with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//!    ChaCha20-Poly1305; `info` binds the session, dealer and recipient, the commitment is
//!    the associated data). The polynomial is derived from the dealer's seed and the session,
//!    so the dealer keeps no state between steps and can reveal a share later.
//! 2. [`complain`]: every party opens its shares, checks them against the commitments and
//!    broadcasts the dealers it accuses (possibly none), echoing the digest of the dealings it
//!    saw.
//! 3. [`justify`]: every dealer reveals the shares it was accused about, echoing the digest
//!    of the complaints it saw.
//! 4. [`finish`]: every party checks the echoes (a party that saw other dealings or
//!    complaints aborts the ceremony, naming the sender whose echo differs), runs the
//!    deterministic qualification over the broadcast and derives its key share, the group key
//!    and a transcript digest that the operators compare before using the key.
//!
//! A complaint's accuser and a justification's dealer are the message's signer: the body
//! has no field for them, so no party can complain or answer in another's name. A sender
//! with two different messages in one phase is refused as equivocating. The broadcast itself
//! (every party reading the same set of messages) is the board's: a shared directory or
//! repository all operators read; the echoes and the transcript digest detect a board that
//! showed different parties different things.

use crate::dkg::{
    Broadcast, Complaint, DealerCommitment, Dealing, DkgOutput, Justification, Party, SecretShare,
    SECRET_SHARE_BYTES,
};
use crate::error::CryptoError;
use crate::threshold::ThresholdParams;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as KemTrait, OpModeR, OpModeS, Serializable};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type Kem = X25519HkdfSha256;
type Aead = ChaCha20Poly1305;
type Kdf = HkdfSha256;

const LABEL_SESSION: &[u8] = b"CCBFT-V1-DKG-SESSION";
const LABEL_SIGN_KEY: &[u8] = b"CCBFT-V1-DKG-SIGN-KEY";
const LABEL_HPKE_KEY: &[u8] = b"CCBFT-V1-DKG-HPKE-KEY";
const LABEL_POLYNOMIAL: &[u8] = b"CCBFT-V1-DKG-POLYNOMIAL";
const LABEL_MESSAGE: &[u8] = b"CCBFT-V1-DKG-MESSAGE";
const LABEL_SHARE: &[u8] = b"CCBFT-V1-DKG-SHARE";
const LABEL_PHASE: &[u8] = b"CCBFT-V1-DKG-PHASE";
const LABEL_TRANSCRIPT: &[u8] = b"CCBFT-V1-DKG-TRANSCRIPT";

/// Bytes of an encoded [`CeremonyKey`]: parameters (8), index (4), seed (32).
pub const CEREMONY_KEY_BYTES: usize = 8 + 4 + 32;
/// Bytes of an encoded [`CeremonyPublic`]: parameters, index, Ed25519 key, X25519 key.
pub const CEREMONY_PUBLIC_BYTES: usize = 8 + 4 + 32 + 32;
/// Bytes of an HPKE encapsulated key (X25519).
const ENC_BYTES: usize = 32;
/// Bytes of a sealed share: the share and the AEAD tag.
const SEALED_SHARE_BYTES: usize = SECRET_SHARE_BYTES + 16;
/// Largest message body (a dealing for 256 parties is about 35 KiB).
pub const MESSAGE_BODY_BYTES_MAX: usize = 64 * 1024;
const DIGEST_BYTES: usize = 32;
const SIGNATURE_BYTES: usize = 64;
const MESSAGE_HEAD_BYTES: usize = 1 + 4 + 4;

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn bad(sender: u32, reason: &'static str) -> CryptoError {
    CryptoError::CeremonyMessage { sender, reason }
}

/// A party's ceremony secret. `Debug` never prints it; the seed is wiped on drop.
#[derive(Clone)]
pub struct CeremonyKey {
    params: ThresholdParams,
    index: u32,
    seed: Zeroizing<[u8; 32]>,
    signing: SigningKey,
    hpke: <Kem as KemTrait>::PrivateKey,
}

impl std::fmt::Debug for CeremonyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CeremonyKey(party {}, <redacted>)", self.index)
    }
}

impl CeremonyKey {
    /// A fresh key for party `index` from operating-system randomness.
    pub fn generate(params: ThresholdParams, index: u32) -> Result<CeremonyKey, CryptoError> {
        let seed = Zeroizing::new(crate::random_seed());
        CeremonyKey::from_seed(params, index, &seed)
    }

    /// The key with this seed (deterministic: tests; production keys come from
    /// [`Self::generate`]).
    pub fn from_seed(
        params: ThresholdParams,
        index: u32,
        seed: &[u8; 32],
    ) -> Result<CeremonyKey, CryptoError> {
        params.check_index(index)?;
        let sign_seed = Zeroizing::new(sha256(&[LABEL_SIGN_KEY, seed]));
        let hpke_ikm = Zeroizing::new(sha256(&[LABEL_HPKE_KEY, seed]));
        let (hpke, _) = Kem::derive_keypair(&hpke_ikm[..]);
        Ok(CeremonyKey {
            params,
            index,
            seed: Zeroizing::new(*seed),
            signing: SigningKey::from_bytes(&sign_seed),
            hpke,
        })
    }

    /// This party's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The ceremony's threshold parameters.
    pub fn params(&self) -> ThresholdParams {
        self.params
    }

    /// The public half, for the roster.
    pub fn public(&self) -> CeremonyPublic {
        CeremonyPublic {
            params: self.params,
            index: self.index,
            signing: self.signing.verifying_key(),
            hpke: Kem::sk_to_pk(&self.hpke),
        }
    }

    /// Encoding: threshold, parties, index (u32 LE each), seed. Key material.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(CEREMONY_KEY_BYTES));
        out.extend_from_slice(&self.params.threshold().to_le_bytes());
        out.extend_from_slice(&self.params.parties().to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.seed[..]);
        out
    }

    /// Decodes and re-derives the keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<CeremonyKey, CryptoError> {
        crate::error::check_len("ceremony key", bytes, CEREMONY_KEY_BYTES)?;
        let (params, index) = decode_params_index(bytes)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[12..]);
        CeremonyKey::from_seed(params, index, &seed)
    }

    fn sign(&self, roster: &Roster, phase: Phase, body: Vec<u8>) -> SignedMessage {
        let signed = signed_bytes(&roster.session, phase, self.index, &body);
        let signature = self.signing.sign(&signed).to_bytes();
        SignedMessage {
            phase,
            sender: self.index,
            body,
            signature,
        }
    }

    /// The dealer's polynomial for this session, derived from the seed.
    fn dealing(&self, roster: &Roster) -> Result<Dealing, CryptoError> {
        let rng_seed = Zeroizing::new(sha256(&[LABEL_POLYNOMIAL, &self.seed[..], &roster.session]));
        let mut rng = ChaCha20Rng::from_seed(*rng_seed);
        Dealing::generate(self.params, self.index, &mut rng)
    }
}

fn decode_params_index(bytes: &[u8]) -> Result<(ThresholdParams, u32), CryptoError> {
    let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let params = ThresholdParams::new(word(0), word(4))?;
    let index = word(8);
    params.check_index(index)?;
    Ok((params, index))
}

/// A party's public ceremony keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CeremonyPublic {
    params: ThresholdParams,
    index: u32,
    signing: VerifyingKey,
    hpke: <Kem as KemTrait>::PublicKey,
}

impl CeremonyPublic {
    /// The party's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The threshold parameters the party registered for.
    pub fn params(&self) -> ThresholdParams {
        self.params
    }

    /// Encoding: threshold, parties, index (u32 LE each), Ed25519 key, X25519 key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CEREMONY_PUBLIC_BYTES);
        out.extend_from_slice(&self.params.threshold().to_le_bytes());
        out.extend_from_slice(&self.params.parties().to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(self.signing.as_bytes());
        out.extend_from_slice(&self.hpke.to_bytes());
        out
    }

    /// Decodes: valid parameters and index, a canonical Ed25519 key that is not weak, an
    /// X25519 key.
    pub fn from_bytes(bytes: &[u8]) -> Result<CeremonyPublic, CryptoError> {
        const KIND: &str = "ceremony public key";
        crate::error::check_len(KIND, bytes, CEREMONY_PUBLIC_BYTES)?;
        let (params, index) = decode_params_index(bytes)?;
        let ed: [u8; 32] = bytes[12..44].try_into().expect("32 bytes");
        let signing =
            VerifyingKey::from_bytes(&ed).map_err(|_| CryptoError::NonCanonical { kind: KIND })?;
        if signing.is_weak() || signing.as_bytes() != &ed {
            return Err(CryptoError::WeakPoint { kind: KIND });
        }
        let hpke = <Kem as KemTrait>::PublicKey::from_bytes(&bytes[44..])
            .map_err(|_| CryptoError::NonCanonical { kind: KIND })?;
        Ok(CeremonyPublic {
            params,
            index,
            signing,
            hpke,
        })
    }

    /// SHA-256 of the encoding, for operators to compare out of band.
    pub fn fingerprint(&self) -> [u8; 32] {
        sha256(&[&self.to_bytes()])
    }
}

/// The ceremony's participants, in index order, and the session id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    params: ThresholdParams,
    members: Vec<CeremonyPublic>,
    session: [u8; 32],
}

impl Roster {
    /// `members[i]` must be party `i + 1`, registered for `params`, with keys distinct from
    /// every other member's.
    pub fn new(
        params: ThresholdParams,
        members: Vec<CeremonyPublic>,
    ) -> Result<Roster, CryptoError> {
        if members.len() != params.parties() as usize {
            return Err(CryptoError::WrongLength {
                kind: "ceremony roster",
                expected: params.parties() as usize,
                got: members.len(),
            });
        }
        for (i, m) in members.iter().enumerate() {
            let index = i as u32 + 1;
            if m.index != index || m.params != params {
                return Err(bad(
                    m.index,
                    "roster entry with another index or parameters",
                ));
            }
            if members[..i]
                .iter()
                .any(|o| o.signing == m.signing || o.hpke == m.hpke)
            {
                return Err(bad(index, "roster entry repeats another party's key"));
            }
        }
        let mut h = Sha256::new();
        h.update(LABEL_SESSION);
        for m in &members {
            h.update(m.to_bytes());
        }
        Ok(Roster {
            params,
            members,
            session: h.finalize().into(),
        })
    }

    /// The threshold parameters.
    pub fn params(&self) -> ThresholdParams {
        self.params
    }

    /// The session id (digest of the roster).
    pub fn session_id(&self) -> [u8; 32] {
        self.session
    }

    fn member(&self, index: u32) -> Result<&CeremonyPublic, CryptoError> {
        self.params.check_index(index)?;
        Ok(&self.members[index as usize - 1])
    }

    fn check_key(&self, key: &CeremonyKey) -> Result<(), CryptoError> {
        if self.member(key.index)? != &key.public() {
            return Err(bad(
                key.index,
                "this key is not the roster's entry for its party",
            ));
        }
        Ok(())
    }
}

/// The phase a broadcast message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Phase {
    /// Commitment and sealed shares.
    Deal = 1,
    /// Accused dealers.
    Complaints = 2,
    /// Revealed shares.
    Justifications = 3,
}

impl Phase {
    fn from_u8(byte: u8) -> Result<Phase, CryptoError> {
        [Phase::Deal, Phase::Complaints, Phase::Justifications]
            .into_iter()
            .find(|p| *p as u8 == byte)
            .ok_or(CryptoError::NonCanonical {
                kind: "ceremony phase",
            })
    }
}

fn signed_bytes(session: &[u8; 32], phase: Phase, sender: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LABEL_MESSAGE.len() + 32 + MESSAGE_HEAD_BYTES + body.len());
    out.extend_from_slice(LABEL_MESSAGE);
    out.extend_from_slice(session);
    out.push(phase as u8);
    out.extend_from_slice(&sender.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A broadcast message signed by its sender's ceremony key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMessage {
    phase: Phase,
    sender: u32,
    body: Vec<u8>,
    signature: [u8; SIGNATURE_BYTES],
}

impl SignedMessage {
    /// The claimed sender (authenticated only once checked against a roster).
    pub fn sender(&self) -> u32 {
        self.sender
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Encoding: phase (u8), sender (u32 LE), body length (u32 LE), body, Ed25519 signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MESSAGE_HEAD_BYTES + self.body.len() + SIGNATURE_BYTES);
        out.push(self.phase as u8);
        out.extend_from_slice(&self.sender.to_le_bytes());
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes (the signature is checked against a roster by the steps).
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedMessage, CryptoError> {
        const KIND: &str = "ceremony message";
        if bytes.len() < MESSAGE_HEAD_BYTES + SIGNATURE_BYTES {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: MESSAGE_HEAD_BYTES + SIGNATURE_BYTES,
                got: bytes.len(),
            });
        }
        let phase = Phase::from_u8(bytes[0])?;
        let sender = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes")) as usize;
        if len > MESSAGE_BODY_BYTES_MAX {
            return Err(CryptoError::TooMany {
                kind: "ceremony message body bytes",
                got: len,
                max: MESSAGE_BODY_BYTES_MAX,
            });
        }
        let expected = MESSAGE_HEAD_BYTES + len + SIGNATURE_BYTES;
        if bytes.len() != expected {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected,
                got: bytes.len(),
            });
        }
        Ok(SignedMessage {
            phase,
            sender,
            body: bytes[MESSAGE_HEAD_BYTES..MESSAGE_HEAD_BYTES + len].to_vec(),
            signature: bytes[expected - SIGNATURE_BYTES..]
                .try_into()
                .expect("64 bytes"),
        })
    }
}

/// The verified messages of one phase, by sender, and their digest.
struct View<'m> {
    bodies: Vec<Option<&'m [u8]>>,
    digest: [u8; 32],
}

/// Verifies every message of `phase` (right phase, sender in the roster, valid signature)
/// and refuses a sender with two different messages; identical copies collapse.
fn collect<'m>(
    roster: &Roster,
    phase: Phase,
    messages: &'m [SignedMessage],
) -> Result<View<'m>, CryptoError> {
    let n = roster.params.parties() as usize;
    let mut chosen: Vec<Option<&SignedMessage>> = vec![None; n];
    for m in messages {
        if m.phase != phase {
            return Err(bad(m.sender, "message of another phase"));
        }
        let member = roster
            .member(m.sender)
            .map_err(|_| bad(m.sender, "sender not in the roster"))?;
        let signed = signed_bytes(&roster.session, phase, m.sender, &m.body);
        let sig = ed25519_dalek::Signature::from_bytes(&m.signature);
        member
            .signing
            .verify_strict(&signed, &sig)
            .map_err(|_| bad(m.sender, "signature does not verify"))?;
        let slot = &mut chosen[m.sender as usize - 1];
        match slot {
            Some(first) if *first != m => {
                return Err(CryptoError::CeremonyEquivocation { sender: m.sender })
            }
            Some(_) => {}
            None => *slot = Some(m),
        }
    }
    let mut h = Sha256::new();
    h.update(LABEL_PHASE);
    h.update(roster.session);
    h.update([phase as u8]);
    for m in &chosen {
        match m {
            None => h.update([0u8]),
            Some(m) => {
                h.update([1u8]);
                h.update(sha256(&[&m.to_bytes()]));
            }
        }
    }
    Ok(View {
        bodies: chosen
            .iter()
            .map(|m| m.map(|m| m.body.as_slice()))
            .collect(),
        digest: h.finalize().into(),
    })
}

fn share_info(roster: &Roster, dealer: u32, recipient: u32) -> Vec<u8> {
    let mut info = Vec::with_capacity(LABEL_SHARE.len() + 32 + 8);
    info.extend_from_slice(LABEL_SHARE);
    info.extend_from_slice(&roster.session);
    info.extend_from_slice(&dealer.to_le_bytes());
    info.extend_from_slice(&recipient.to_le_bytes());
    info
}

/// Step 1: the dealer's signed dealing (commitment and one HPKE-sealed share per party).
pub fn deal(key: &CeremonyKey, roster: &Roster) -> Result<SignedMessage, CryptoError> {
    roster.check_key(key)?;
    let dealing = key.dealing(roster)?;
    let commitment = dealing.commitment.to_bytes();
    let n = roster.params.parties() as usize;
    let mut body = Vec::with_capacity(4 + commitment.len() + n * (ENC_BYTES + SEALED_SHARE_BYTES));
    body.extend_from_slice(&(commitment.len() as u32).to_le_bytes());
    body.extend_from_slice(&commitment);
    for share in &dealing.shares {
        let recipient = roster.member(share.recipient)?;
        let plaintext = Zeroizing::new(share.to_bytes());
        let (enc, sealed) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
            &OpModeS::Base,
            &recipient.hpke,
            &share_info(roster, key.index, share.recipient),
            &plaintext[..],
            &commitment,
        )
        .map_err(|_| bad(key.index, "HPKE seal failed"))?;
        body.extend_from_slice(&enc.to_bytes());
        body.extend_from_slice(&sealed);
    }
    Ok(key.sign(roster, Phase::Deal, body))
}

/// A decoded dealing body: the commitment and `(enc, sealed share)` per recipient.
struct DealBody<'b> {
    commitment_bytes: &'b [u8],
    commitment: DealerCommitment,
    sealed: Vec<(&'b [u8], &'b [u8])>,
}

fn parse_deal<'b>(
    roster: &Roster,
    dealer: u32,
    body: &'b [u8],
) -> Result<DealBody<'b>, CryptoError> {
    let malformed = || bad(dealer, "malformed dealing");
    let len =
        u32::from_le_bytes(body.get(..4).ok_or_else(malformed)?.try_into().expect("4")) as usize;
    let commitment_bytes = body.get(4..4 + len).ok_or_else(malformed)?;
    let commitment = DealerCommitment::from_bytes(commitment_bytes)?;
    let rest = &body[4 + len..];
    let n = roster.params.parties() as usize;
    if commitment.dealer != dealer || rest.len() != n * (ENC_BYTES + SEALED_SHARE_BYTES) {
        return Err(malformed());
    }
    let sealed = rest
        .chunks_exact(ENC_BYTES + SEALED_SHARE_BYTES)
        .map(|c| c.split_at(ENC_BYTES))
        .collect();
    Ok(DealBody {
        commitment_bytes,
        commitment,
        sealed,
    })
}

/// Opens this party's share of a dealing; `None` if it does not open or decode.
fn open_share(
    key: &CeremonyKey,
    roster: &Roster,
    dealer: u32,
    deal: &DealBody<'_>,
) -> Option<SecretShare> {
    let (enc, sealed) = deal.sealed[key.index as usize - 1];
    let enc = <Kem as KemTrait>::EncappedKey::from_bytes(enc).ok()?;
    let plaintext = hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        &key.hpke,
        &enc,
        &share_info(roster, dealer, key.index),
        sealed,
        deal.commitment_bytes,
    )
    .ok()
    .map(Zeroizing::new)?;
    SecretShare::from_bytes(&plaintext).ok()
}

/// Receives every dealing: the party state, its complaints and the dealings' digest. A
/// dealing that does not parse counts as no dealing (its dealer is disqualified everywhere).
fn receive_deals(
    key: &CeremonyKey,
    roster: &Roster,
    deals: &[SignedMessage],
) -> Result<(Party, Vec<u32>, [u8; 32]), CryptoError> {
    roster.check_key(key)?;
    let view = collect(roster, Phase::Deal, deals)?;
    let mut party = Party::new(roster.params, key.index)?;
    let mut accused = Vec::new();
    for (i, body) in view.bodies.iter().enumerate() {
        let dealer = i as u32 + 1;
        let Some(deal) = body.and_then(|b| parse_deal(roster, dealer, b).ok()) else {
            continue;
        };
        let share = open_share(key, roster, dealer, &deal);
        if party.receive(deal.commitment.clone(), share)?.is_some() {
            accused.push(dealer);
        }
    }
    Ok((party, accused, view.digest))
}

/// Step 2: this party's signed complaints (the dealers whose share did not open or verify,
/// possibly none), echoing the digest of the dealings seen.
pub fn complain(
    key: &CeremonyKey,
    roster: &Roster,
    deals: &[SignedMessage],
) -> Result<SignedMessage, CryptoError> {
    let (_, accused, digest) = receive_deals(key, roster, deals)?;
    let mut body = Vec::with_capacity(DIGEST_BYTES + 2 + 4 * accused.len());
    body.extend_from_slice(&digest);
    body.extend_from_slice(&(accused.len() as u16).to_le_bytes());
    for d in &accused {
        body.extend_from_slice(&d.to_le_bytes());
    }
    Ok(key.sign(roster, Phase::Complaints, body))
}

/// The dealings digest a complaint echoes and the dealers it accuses.
fn parse_complaints(
    roster: &Roster,
    sender: u32,
    body: &[u8],
) -> Result<([u8; 32], Vec<u32>), CryptoError> {
    let malformed = || bad(sender, "malformed complaints");
    if body.len() < DIGEST_BYTES + 2 {
        return Err(malformed());
    }
    let echo: [u8; 32] = body[..DIGEST_BYTES].try_into().expect("32 bytes");
    let count = usize::from(u16::from_le_bytes([body[32], body[33]]));
    let rest = &body[DIGEST_BYTES + 2..];
    if count > roster.params.parties() as usize || rest.len() != 4 * count {
        return Err(malformed());
    }
    let dealers = rest
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok((echo, dealers))
}

/// Step 3: this dealer's signed justifications (the shares it was accused about, revealed),
/// echoing the digest of the complaints seen.
pub fn justify(
    key: &CeremonyKey,
    roster: &Roster,
    complaints: &[SignedMessage],
) -> Result<SignedMessage, CryptoError> {
    roster.check_key(key)?;
    let view = collect(roster, Phase::Complaints, complaints)?;
    let dealing = key.dealing(roster)?;
    let mut revealed: Vec<&SecretShare> = Vec::new();
    for (i, body) in view.bodies.iter().enumerate() {
        let accuser = i as u32 + 1;
        let Some(body) = body else { continue };
        let (_, dealers) = parse_complaints(roster, accuser, body)?;
        if dealers.contains(&key.index) {
            revealed.push(&dealing.shares[accuser as usize - 1]);
        }
    }
    let mut body = Zeroizing::new(Vec::with_capacity(
        DIGEST_BYTES + 2 + SECRET_SHARE_BYTES * revealed.len(),
    ));
    body.extend_from_slice(&view.digest);
    body.extend_from_slice(&(revealed.len() as u16).to_le_bytes());
    for s in revealed {
        body.extend_from_slice(&Zeroizing::new(s.to_bytes())[..]);
    }
    Ok(key.sign(roster, Phase::Justifications, body.to_vec()))
}

/// What [`finish`] returns.
#[derive(Clone, Debug)]
pub struct CeremonyOutput {
    /// The key share, the public key and the qualified dealers.
    pub dkg: DkgOutput,
    /// Digest of the session and of every phase's messages: equal at every party that saw the
    /// same broadcast; operators compare it (with the group key) before using the key.
    pub transcript: [u8; 32],
}

/// Step 4: checks the echoes, qualifies the dealers over the broadcast and derives this
/// party's key share and the group key.
pub fn finish(
    key: &CeremonyKey,
    roster: &Roster,
    deals: &[SignedMessage],
    complaints: &[SignedMessage],
    justifications: &[SignedMessage],
) -> Result<CeremonyOutput, CryptoError> {
    let (party, _, deals_digest) = receive_deals(key, roster, deals)?;
    let complaint_view = collect(roster, Phase::Complaints, complaints)?;
    let mut broadcast_complaints = Vec::new();
    for (i, body) in complaint_view.bodies.iter().enumerate() {
        let sender = i as u32 + 1;
        let Some(body) = body else { continue };
        let (echo, dealers) = parse_complaints(roster, sender, body)?;
        if echo != deals_digest {
            return Err(CryptoError::CeremonyViewMismatch {
                sender,
                phase: "dealings",
            });
        }
        broadcast_complaints.extend(dealers.into_iter().map(|dealer| {
            Broadcast::new(
                sender,
                Complaint {
                    accuser: sender,
                    dealer,
                },
            )
        }));
    }
    let justification_view = collect(roster, Phase::Justifications, justifications)?;
    let mut broadcast_justifications = Vec::new();
    for (i, body) in justification_view.bodies.iter().enumerate() {
        let sender = i as u32 + 1;
        let Some(body) = body else { continue };
        let malformed = || bad(sender, "malformed justifications");
        if body.len() < DIGEST_BYTES + 2 {
            return Err(malformed());
        }
        if body[..DIGEST_BYTES] != complaint_view.digest {
            return Err(CryptoError::CeremonyViewMismatch {
                sender,
                phase: "complaints",
            });
        }
        let count = usize::from(u16::from_le_bytes([body[32], body[33]]));
        let rest = &body[DIGEST_BYTES + 2..];
        if count > roster.params.parties() as usize || rest.len() != SECRET_SHARE_BYTES * count {
            return Err(malformed());
        }
        for chunk in rest.chunks_exact(SECRET_SHARE_BYTES) {
            let share = SecretShare::from_bytes(chunk).map_err(|_| malformed())?;
            broadcast_justifications.push(Broadcast::new(sender, Justification { share }));
        }
    }
    let dkg = party.finish(&broadcast_complaints, &broadcast_justifications)?;
    let transcript = sha256(&[
        LABEL_TRANSCRIPT,
        &roster.session,
        &deals_digest,
        &complaint_view.digest,
        &justification_view.digest,
    ]);
    Ok(CeremonyOutput { dkg, transcript })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bls::Tag;

    fn setup(t: u32, n: u32) -> (Vec<CeremonyKey>, Roster) {
        let params = ThresholdParams::new(t, n).unwrap();
        let keys: Vec<CeremonyKey> = (1..=n)
            .map(|i| CeremonyKey::from_seed(params, i, &[i as u8; 32]).unwrap())
            .collect();
        let roster = Roster::new(params, keys.iter().map(|k| k.public()).collect()).unwrap();
        (keys, roster)
    }

    #[test]
    fn ceremony_yields_one_group_key_and_any_t_shares_sign() {
        let (keys, roster) = setup(3, 5);
        let deals: Vec<SignedMessage> = keys.iter().map(|k| deal(k, &roster).unwrap()).collect();
        // Round trips through bytes, as through files.
        let deals: Vec<SignedMessage> = deals
            .iter()
            .map(|m| SignedMessage::from_bytes(&m.to_bytes()).unwrap())
            .collect();
        let complaints: Vec<SignedMessage> = keys
            .iter()
            .map(|k| complain(k, &roster, &deals).unwrap())
            .collect();
        let justifications: Vec<SignedMessage> = keys
            .iter()
            .map(|k| justify(k, &roster, &complaints).unwrap())
            .collect();
        let outs: Vec<CeremonyOutput> = keys
            .iter()
            .map(|k| finish(k, &roster, &deals, &complaints, &justifications).unwrap())
            .collect();
        for o in &outs {
            assert_eq!(o.dkg.public, outs[0].dkg.public);
            assert_eq!(o.transcript, outs[0].transcript);
            assert_eq!(o.dkg.qualified, vec![1, 2, 3, 4, 5]);
        }
        let msg = b"ceremony";
        let partials: Vec<_> = outs[2..]
            .iter()
            .map(|o| o.dkg.share.sign(Tag::Checkpoint, msg))
            .collect();
        let sig = outs[0]
            .dkg
            .public
            .combine(Tag::Checkpoint, msg, &partials)
            .unwrap();
        outs[0]
            .dkg
            .public
            .verify(Tag::Checkpoint, msg, &sig)
            .unwrap();
    }

    #[test]
    fn a_corrupted_sealed_share_is_complained_about_and_justified() {
        let (keys, roster) = setup(2, 3);
        let mut deals: Vec<SignedMessage> =
            keys.iter().map(|k| deal(k, &roster).unwrap()).collect();
        // Flip a ciphertext byte of dealer 1's share for party 3 and re-sign as dealer 1 (a
        // dealer sending garbage to one party).
        let mut body = deals[0].body.clone();
        let last = body.len() - 1;
        body[last] ^= 1;
        deals[0] = keys[0].sign(&roster, Phase::Deal, body);
        let complaints: Vec<SignedMessage> = keys
            .iter()
            .map(|k| complain(k, &roster, &deals).unwrap())
            .collect();
        assert_eq!(
            parse_complaints(&roster, 3, &complaints[2].body).unwrap().1,
            vec![1]
        );
        let justifications: Vec<SignedMessage> = keys
            .iter()
            .map(|k| justify(k, &roster, &complaints).unwrap())
            .collect();
        let outs: Vec<CeremonyOutput> = keys
            .iter()
            .map(|k| finish(k, &roster, &deals, &complaints, &justifications).unwrap())
            .collect();
        for o in &outs {
            assert_eq!(o.dkg.qualified, vec![1, 2, 3]);
            assert_eq!(o.dkg.public, outs[0].dkg.public);
        }
    }

    #[test]
    fn forged_equivocating_and_mismatched_messages_are_refused() {
        let (keys, roster) = setup(2, 3);
        let deals: Vec<SignedMessage> = keys.iter().map(|k| deal(k, &roster).unwrap()).collect();
        // A message claiming another sender does not verify.
        let mut forged = deals[1].clone();
        forged.sender = 1;
        assert_eq!(
            complain(&keys[2], &roster, &[forged]).unwrap_err(),
            bad(1, "signature does not verify")
        );
        // Two different dealings from one dealer: equivocation.
        let again = deal(&keys[0], &roster).unwrap();
        assert_ne!(again, deals[0], "fresh HPKE randomness");
        let mut two = deals.clone();
        two.push(again);
        assert_eq!(
            complain(&keys[2], &roster, &two).unwrap_err(),
            CryptoError::CeremonyEquivocation { sender: 1 }
        );
        // A party that saw only two dealings echoes another digest: finish aborts naming it.
        let mut complaints: Vec<SignedMessage> = keys
            .iter()
            .map(|k| complain(k, &roster, &deals).unwrap())
            .collect();
        complaints[1] = complain(&keys[1], &roster, &deals[..2]).unwrap();
        let justifications: Vec<SignedMessage> = keys
            .iter()
            .map(|k| justify(k, &roster, &complaints).unwrap())
            .collect();
        for k in &keys {
            assert_eq!(
                finish(k, &roster, &deals, &complaints, &justifications).unwrap_err(),
                CryptoError::CeremonyViewMismatch {
                    sender: 2,
                    phase: "dealings"
                }
            );
        }
        // A key that is not the roster's entry is refused.
        let stranger = CeremonyKey::from_seed(roster.params(), 1, &[99; 32]).unwrap();
        assert!(deal(&stranger, &roster).is_err());
        // Encodings round trip.
        let k = CeremonyKey::from_bytes(&keys[0].to_bytes()).unwrap();
        assert_eq!(k.public(), keys[0].public());
        assert_eq!(
            CeremonyPublic::from_bytes(&keys[0].public().to_bytes()).unwrap(),
            keys[0].public()
        );
    }
}
