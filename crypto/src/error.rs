//! The one error type of the crate.
//!
//! Every decoder and verifier returns a [`CryptoError`]; nothing in this crate panics on bytes
//! that come from the network or a client.

use thiserror::Error;

/// Everything that can go wrong when decoding, aggregating or verifying.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// An encoding has the wrong number of bytes.
    #[error("{kind}: wrong length, expected {expected} bytes, got {got}")]
    WrongLength {
        kind: &'static str,
        expected: usize,
        got: usize,
    },
    /// The bytes are not the canonical encoding of a value of this kind (bad flag bits, a
    /// field element out of range, a scalar not reduced, padding bits set, ...).
    #[error("{kind}: non-canonical or malformed encoding")]
    NonCanonical { kind: &'static str },
    /// A curve point is the point at infinity where that is never valid.
    #[error("{kind}: point at infinity")]
    Infinity { kind: &'static str },
    /// A curve point is on the curve but outside the prime-order subgroup.
    #[error("{kind}: point not in the prime-order subgroup")]
    NotInSubgroup { kind: &'static str },
    /// A weak (small-order) key or signature component.
    #[error("{kind}: weak (small-order) point")]
    WeakPoint { kind: &'static str },
    /// A signature does not verify.
    #[error("signature does not verify")]
    InvalidSignature,
    /// A proof of possession does not verify for the key it accompanies.
    #[error("proof of possession of committee member {index} does not verify")]
    InvalidProofOfPossession { index: usize },
    /// The same public key appears twice in a committee.
    #[error("committee member {index} repeats the public key of member {first}")]
    DuplicateKey { index: usize, first: usize },
    /// Two committee keys that sum to the identity (one is the negation of the other).
    #[error("committee member {index} is the negation of member {other} (keys cancel)")]
    CancellingKeys { index: usize, other: usize },
    /// A committee with no member.
    #[error("empty committee")]
    EmptyCommittee,
    /// More members, signers, parties or items than the named bound allows.
    #[error("{kind}: {got} exceeds the maximum of {max}")]
    TooMany {
        kind: &'static str,
        got: usize,
        max: usize,
    },
    /// A certificate made for another committee epoch.
    #[error("certificate epoch {got} does not match committee epoch {expected}")]
    WrongEpoch { expected: u64, got: u64 },
    /// A signer bitmap whose length is not the committee size.
    #[error("signer bitmap has {got} bits, committee has {expected} members")]
    BitmapLength { expected: usize, got: usize },
    /// A signer index outside the committee.
    #[error("unknown signer {index} (committee has {committee} members)")]
    UnknownSigner { index: usize, committee: usize },
    /// A signer that appears twice.
    #[error("duplicate signer {index}")]
    DuplicateSigner { index: usize },
    /// Fewer signers than the caller requires.
    #[error("too few signers: {got}, need {need}")]
    TooFewSigners { got: usize, need: usize },
    /// Votes collected by a certificate builder that failed verification; they were removed.
    #[error("invalid votes from signers {signers:?} (removed from the builder)")]
    InvalidVotes { signers: Vec<usize> },
    /// Threshold parameters out of range (need 1 <= threshold <= parties <= max).
    #[error("invalid threshold parameters: threshold {threshold}, parties {parties}")]
    InvalidThreshold { threshold: u32, parties: u32 },
    /// A share or party index outside 1..=parties.
    #[error("index {index} outside 1..={parties}")]
    InvalidIndex { index: u32, parties: u32 },
    /// A DKG share that does not match its dealer's commitment.
    #[error("share from dealer {dealer} to party {recipient} does not match the commitment")]
    InvalidShare { dealer: u32, recipient: u32 },
    /// Too few dealers survived the complaint phase of a DKG; names the disqualified ones.
    #[error(
        "only {qualified} qualified dealers, need at least {need}; disqualified: {disqualified:?}"
    )]
    TooFewQualifiedDealers {
        qualified: usize,
        need: usize,
        disqualified: Vec<u32>,
    },
    /// A DKG input from a dealer already disqualified or already heard.
    #[error("dealer {dealer}: {reason}")]
    DealerMisbehaved { dealer: u32, reason: &'static str },
    /// A DKG ceremony message that is malformed, unsigned or not from a roster member.
    #[error("ceremony message from party {sender}: {reason}")]
    CeremonyMessage { sender: u32, reason: &'static str },
    /// Two different messages of one phase from one party.
    #[error("party {sender} broadcast two different messages in one phase (equivocation)")]
    CeremonyEquivocation { sender: u32 },
    /// A party's echo says it saw other messages of an earlier phase than this party did.
    #[error("party {sender} saw other {phase} than this party: the board is not consistent; abort the ceremony")]
    CeremonyViewMismatch { sender: u32, phase: &'static str },
    /// The post-quantum half of a hybrid signature does not verify.
    #[error("ML-DSA-65 half of the hybrid signature does not verify")]
    InvalidPostQuantumSignature,
    /// The operating system's random number generator failed.
    #[error("operating system randomness unavailable")]
    Randomness,
    /// A thread pool could not be built.
    #[error("verification thread pool: {0}")]
    ThreadPool(String),
}

/// Decoders accept exactly `expected` bytes; anything else is a typed error naming `kind`.
pub(crate) fn check_len(
    kind: &'static str,
    bytes: &[u8],
    expected: usize,
) -> Result<(), CryptoError> {
    if bytes.len() != expected {
        return Err(CryptoError::WrongLength {
            kind,
            expected,
            got: bytes.len(),
        });
    }
    Ok(())
}
