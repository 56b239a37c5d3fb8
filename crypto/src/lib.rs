//! CC-BFT cryptography.
//!
//! - [`bls`]: BLS12-381 signatures with `blst` (min_pk: 48-byte keys, 96-byte signatures),
//!   proofs of possession and a domain separation tag per message kind ([`bls::Tag`]).
//! - [`certificate`]: committees, signer bitmaps, aggregate certificates verified with one
//!   pairing check, and the certificate builder (vote aggregator).
//! - [`batch`]: randomised batch verification of many BLS signatures over a sized rayon pool,
//!   with bisection to name exactly the bad items.
//! - [`client`]: Ed25519 client signatures (strict, batch-verifiable).
//! - [`threshold`] and [`dkg`]: t-of-n threshold BLS from a dealerless DKG.
//! - [`ceremony`]: the DKG run by separate operators: signed broadcast files and shares
//!   encrypted to each recipient with HPKE (RFC 9180).
//! - [`hybrid`]: BLS + ML-DSA-65 (FIPS 204) hybrid signatures for long-lived artefacts,
//!   composed so that neither half can be stripped or swapped.
//! - [`ecdsa`]: threshold ECDSA on secp256k1 (CGGMP21 via `cggmp21`): dealerless keygen,
//!   t-of-n signing with blame, key refresh, checkpoint attestations Ethereum tools verify.
//! - [`keyfile`]: the one loader of secret files (refuses group/other-readable files) and
//!   zeroizing buffers for them.
//!
//! Every `from_bytes` validates fully and returns a [`CryptoError`]; nothing here panics on
//! bytes from the network or a client.

#![forbid(unsafe_code)]

pub mod batch;
pub mod bls;
pub mod ceremony;
pub mod certificate;
pub mod client;
pub mod dkg;
pub mod ecdsa;
mod error;
pub mod hex;
pub mod hybrid;
pub mod keyfile;
pub mod threshold;

pub use error::CryptoError;

/// 32 bytes from the operating system's random number generator (for seeding a DKG run or
/// deriving keys in tools).
///
/// # Panics
/// If the operating system's random number generator fails (a local fault, not input).
pub fn random_seed() -> [u8; 32] {
    use rand_core::RngCore;
    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    seed
}
