//! Threshold BLS: `t`-of-`n` key shares (from the DKG in [`crate::dkg`]), partial signatures
//! and their combination by Lagrange interpolation at zero into one ordinary BLS signature.
//!
//! The group public key is an ordinary [`PublicKey`] and a combined signature an ordinary
//! [`Signature`]: a third party checks checkpoint certificates and receipts with
//! [`PublicKey::verify`], the same code as every other BLS signature.
//!
//! Scalar and group arithmetic (Lagrange coefficients in the BLS12-381 scalar field, scalar
//! multiplication in G2) uses `blstrs`, which is built on blst and shares its point types.

use crate::bls::{
    map_blst, PublicKey, SecretKey, Signature, Tag, PUBLIC_KEY_BYTES, SECRET_KEY_BYTES,
    SIGNATURE_BYTES,
};
use crate::error::CryptoError;
use blst::min_pk as raw;
use blst::{blst_p1_affine, blst_p2_affine};
use blstrs::{G1Affine, G2Affine, G2Projective, Scalar};
use ff::Field;
use group::prime::PrimeCurveAffine;
use group::Group;

/// Most parties of a threshold key (and of a DKG).
pub const PARTIES_MAX: u32 = 256;
const _: () = assert!(PARTIES_MAX as usize <= crate::certificate::COMMITTEE_SIZE_MAX);

/// Validated threshold parameters: `1 <= threshold <= parties <= PARTIES_MAX`.
/// Party (share) indices run from 1 to `parties`; 0 is the secret's own point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThresholdParams {
    threshold: u32,
    parties: u32,
}

impl ThresholdParams {
    /// Checks the parameters.
    pub fn new(threshold: u32, parties: u32) -> Result<ThresholdParams, CryptoError> {
        if threshold == 0 || threshold > parties || parties > PARTIES_MAX {
            return Err(CryptoError::InvalidThreshold { threshold, parties });
        }
        Ok(ThresholdParams { threshold, parties })
    }

    /// Shares needed to sign.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Shares in total.
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// Checks a 1-based party index.
    pub fn check_index(&self, index: u32) -> Result<(), CryptoError> {
        if index == 0 || index > self.parties {
            return Err(CryptoError::InvalidIndex {
                index,
                parties: self.parties,
            });
        }
        Ok(())
    }

    fn to_bytes(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&self.threshold.to_le_bytes());
        out[4..].copy_from_slice(&self.parties.to_le_bytes());
        out
    }

    fn from_bytes(bytes: &[u8; 8]) -> Result<ThresholdParams, CryptoError> {
        let t = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let n = u32::from_le_bytes(bytes[4..].try_into().expect("4 bytes"));
        ThresholdParams::new(t, n)
    }
}

pub(crate) fn scalar_to_secret_key(s: &Scalar) -> Result<SecretKey, CryptoError> {
    let mut bytes = s.to_bytes_be();
    let key = raw::SecretKey::from_bytes(&bytes)
        .map(SecretKey::from_raw)
        .map_err(|e| map_blst("key share", e));
    zeroize::Zeroize::zeroize(&mut bytes);
    key
}

pub(crate) fn g1_to_public_key(p: &G1Affine) -> Result<PublicKey, CryptoError> {
    let aff: blst_p1_affine = *p.as_ref();
    PublicKey::from_raw_validated(raw::PublicKey::from(aff))
}

pub(crate) fn public_key_to_g1(pk: &PublicKey) -> G1Affine {
    let mut aff = G1Affine::identity();
    *aff.as_mut() = blst_p1_affine::from(*pk.raw());
    aff
}

fn signature_to_g2(sig: &Signature) -> G2Projective {
    let mut aff = G2Affine::identity();
    *aff.as_mut() = blst_p2_affine::from(*sig.raw());
    G2Projective::from(aff)
}

fn g2_to_signature(p: &G2Projective) -> Result<Signature, CryptoError> {
    let aff = G2Affine::from(p);
    Signature::from_raw_validated(raw::Signature::from(*aff.as_ref()))
}

/// One party's share of a threshold key.
#[derive(Clone)]
pub struct KeyShare {
    params: ThresholdParams,
    index: u32,
    secret: SecretKey,
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyShare(index={}, {:?}, <redacted>)",
            self.index, self.params
        )
    }
}

/// Encoded size of a [`KeyShare`]: parameters (8), index (4), secret scalar (32).
pub const KEY_SHARE_BYTES: usize = 8 + 4 + SECRET_KEY_BYTES;

impl KeyShare {
    /// Builds a share from its parts; the index must be in range.
    pub fn new(
        params: ThresholdParams,
        index: u32,
        secret: SecretKey,
    ) -> Result<KeyShare, CryptoError> {
        params.check_index(index)?;
        Ok(KeyShare {
            params,
            index,
            secret,
        })
    }

    /// The 1-based index of this share.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The threshold parameters.
    pub fn params(&self) -> ThresholdParams {
        self.params
    }

    /// The public key of this share (`g1 * share`).
    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// Signs `msg` of kind `tag` with this share.
    pub fn sign(&self, tag: Tag, msg: &[u8]) -> PartialSignature {
        PartialSignature {
            index: self.index,
            signature: self.secret.sign(tag, msg),
        }
    }

    /// Encoding: threshold (u32 LE), parties (u32 LE), index (u32 LE), secret (32 bytes BE).
    /// Key material.
    pub fn to_bytes(&self) -> [u8; KEY_SHARE_BYTES] {
        let mut out = [0u8; KEY_SHARE_BYTES];
        out[..8].copy_from_slice(&self.params.to_bytes());
        out[8..12].copy_from_slice(&self.index.to_le_bytes());
        out[12..].copy_from_slice(&self.secret.to_bytes());
        out
    }

    /// Decodes and validates a share.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyShare, CryptoError> {
        if bytes.len() != KEY_SHARE_BYTES {
            return Err(CryptoError::WrongLength {
                kind: "key share",
                expected: KEY_SHARE_BYTES,
                got: bytes.len(),
            });
        }
        let params = ThresholdParams::from_bytes(bytes[..8].try_into().expect("8 bytes"))?;
        let index = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let secret = SecretKey::from_bytes(&bytes[12..])?;
        KeyShare::new(params, index, secret)
    }
}

/// A signature by one share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialSignature {
    /// 1-based index of the share that signed.
    pub index: u32,
    /// The share's BLS signature.
    pub signature: Signature,
}

/// Encoded size of a [`PartialSignature`].
pub const PARTIAL_SIGNATURE_BYTES: usize = 4 + SIGNATURE_BYTES;

impl PartialSignature {
    /// Encoding: index (u32 LE), signature (96 bytes).
    pub fn to_bytes(&self) -> [u8; PARTIAL_SIGNATURE_BYTES] {
        let mut out = [0u8; PARTIAL_SIGNATURE_BYTES];
        out[..4].copy_from_slice(&self.index.to_le_bytes());
        out[4..].copy_from_slice(&self.signature.to_bytes());
        out
    }

    /// Decodes (the index is range-checked against a key when combining).
    pub fn from_bytes(bytes: &[u8]) -> Result<PartialSignature, CryptoError> {
        if bytes.len() != PARTIAL_SIGNATURE_BYTES {
            return Err(CryptoError::WrongLength {
                kind: "partial signature",
                expected: PARTIAL_SIGNATURE_BYTES,
                got: bytes.len(),
            });
        }
        let index = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        if index == 0 || index > PARTIES_MAX {
            return Err(CryptoError::InvalidIndex {
                index,
                parties: PARTIES_MAX,
            });
        }
        Ok(PartialSignature {
            index,
            signature: Signature::from_bytes(&bytes[4..])?,
        })
    }
}

/// Lagrange coefficients at zero for the distinct nonzero points `xs`.
fn lagrange_at_zero(xs: &[u32]) -> Result<Vec<Scalar>, CryptoError> {
    let mut out = Vec::with_capacity(xs.len());
    for (i, &xi) in xs.iter().enumerate() {
        let xi_s = Scalar::from(u64::from(xi));
        let mut num = Scalar::ONE;
        let mut den = Scalar::ONE;
        for (j, &xj) in xs.iter().enumerate() {
            if i == j {
                continue;
            }
            let xj_s = Scalar::from(u64::from(xj));
            num *= xj_s;
            den *= xj_s - xi_s;
        }
        let inv = Option::<Scalar>::from(den.invert())
            .ok_or(CryptoError::DuplicateSigner { index: xi as usize })?;
        out.push(num * inv);
    }
    Ok(out)
}

/// Most partial signatures one combination looks at (replays included): each costs a
/// pairing check in [`ThresholdPublicKey::combine`].
pub const COMBINE_INPUTS_MAX: usize = 4 * PARTIES_MAX as usize;

/// Combines partial signatures by Lagrange interpolation at zero, without verifying them.
/// Duplicates are removed before counting: a byte-identical replay of a partial is skipped,
/// two different partials claiming the same index are [`CryptoError::DuplicateSigner`]
/// (without verification there is no telling which is right). Uses the first `threshold`
/// distinct in-range indices; fewer is [`CryptoError::TooFewSigners`]. The result is only
/// correct if those partials are valid: see [`ThresholdPublicKey::combine`] for the checked
/// version.
pub fn combine_unchecked(
    params: ThresholdParams,
    partials: &[PartialSignature],
) -> Result<Signature, CryptoError> {
    let need = params.threshold as usize;
    if partials.len() > COMBINE_INPUTS_MAX {
        return Err(CryptoError::TooMany {
            kind: "partial signatures",
            got: partials.len(),
            max: COMBINE_INPUTS_MAX,
        });
    }
    let mut seen: Vec<Option<&PartialSignature>> = vec![None; params.parties as usize + 1];
    let mut distinct: Vec<PartialSignature> = Vec::with_capacity(need);
    for p in partials {
        params.check_index(p.index)?;
        match seen[p.index as usize] {
            Some(first) if first == p => continue,
            Some(_) => {
                return Err(CryptoError::DuplicateSigner {
                    index: p.index as usize,
                })
            }
            None => {
                seen[p.index as usize] = Some(p);
                distinct.push(*p);
            }
        }
    }
    if distinct.len() < need {
        return Err(CryptoError::TooFewSigners {
            got: distinct.len(),
            need,
        });
    }
    interpolate(&distinct[..need])
}

/// Lagrange interpolation at zero of partials with distinct indices.
fn interpolate(chosen: &[PartialSignature]) -> Result<Signature, CryptoError> {
    let xs: Vec<u32> = chosen.iter().map(|p| p.index).collect();
    let lambdas = lagrange_at_zero(&xs)?;
    let mut acc = G2Projective::identity();
    for (p, l) in chosen.iter().zip(&lambdas) {
        acc += signature_to_g2(&p.signature) * l;
    }
    g2_to_signature(&acc)
}

/// The public side of a threshold key: the group key and every share's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThresholdPublicKey {
    params: ThresholdParams,
    group_key: PublicKey,
    share_keys: Vec<PublicKey>,
}

impl ThresholdPublicKey {
    /// Builds the public key; `share_keys[i]` belongs to party `i + 1`.
    pub fn new(
        params: ThresholdParams,
        group_key: PublicKey,
        share_keys: Vec<PublicKey>,
    ) -> Result<ThresholdPublicKey, CryptoError> {
        if share_keys.len() != params.parties as usize {
            return Err(CryptoError::WrongLength {
                kind: "share public keys",
                expected: params.parties as usize,
                got: share_keys.len(),
            });
        }
        Ok(ThresholdPublicKey {
            params,
            group_key,
            share_keys,
        })
    }

    /// The parameters.
    pub fn params(&self) -> ThresholdParams {
        self.params
    }

    /// The group public key (an ordinary BLS public key).
    pub fn group_key(&self) -> &PublicKey {
        &self.group_key
    }

    /// The public key of share `index` (1-based).
    pub fn share_key(&self, index: u32) -> Result<&PublicKey, CryptoError> {
        self.params.check_index(index)?;
        Ok(&self.share_keys[index as usize - 1])
    }

    /// Verifies one partial signature against its share key.
    pub fn verify_partial(
        &self,
        tag: Tag,
        msg: &[u8],
        partial: &PartialSignature,
    ) -> Result<(), CryptoError> {
        self.share_key(partial.index)?
            .verify(tag, msg, &partial.signature)
    }

    /// Verifies each partial, combines the first `threshold` valid ones with distinct
    /// indices and checks the result under the group key. Invalid partials are skipped, and
    /// so is any partial whose index already has a valid one (a replay never blocks the
    /// combination and costs no pairing); fewer than `threshold` distinct valid ones is
    /// [`CryptoError::TooFewSigners`].
    pub fn combine(
        &self,
        tag: Tag,
        msg: &[u8],
        partials: &[PartialSignature],
    ) -> Result<Signature, CryptoError> {
        if partials.len() > COMBINE_INPUTS_MAX {
            return Err(CryptoError::TooMany {
                kind: "partial signatures",
                got: partials.len(),
                max: COMBINE_INPUTS_MAX,
            });
        }
        let need = self.params.threshold as usize;
        let mut have = vec![false; self.params.parties as usize + 1];
        let mut valid: Vec<PartialSignature> = Vec::with_capacity(need);
        for p in partials {
            if valid.len() == need {
                break;
            }
            let Some(slot) = have.get_mut(p.index as usize).filter(|_| p.index != 0) else {
                continue;
            };
            if *slot || self.verify_partial(tag, msg, p).is_err() {
                continue;
            }
            *slot = true;
            valid.push(*p);
        }
        if valid.len() < need {
            return Err(CryptoError::TooFewSigners {
                got: valid.len(),
                need,
            });
        }
        let sig = interpolate(&valid)?;
        self.verify(tag, msg, &sig)?;
        Ok(sig)
    }

    /// Verifies a combined signature: plain [`PublicKey::verify`] under the group key.
    pub fn verify(&self, tag: Tag, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        self.group_key.verify(tag, msg, sig)
    }

    /// Encoding: threshold and parties (u32 LE each), group key, then each share key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + PUBLIC_KEY_BYTES * (1 + self.share_keys.len()));
        out.extend_from_slice(&self.params.to_bytes());
        out.extend_from_slice(&self.group_key.to_bytes());
        for k in &self.share_keys {
            out.extend_from_slice(&k.to_bytes());
        }
        out
    }

    /// Decodes and validates every key.
    pub fn from_bytes(bytes: &[u8]) -> Result<ThresholdPublicKey, CryptoError> {
        const KIND: &str = "threshold public key";
        let Some(head) = bytes.get(..8) else {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: 8 + 2 * PUBLIC_KEY_BYTES,
                got: bytes.len(),
            });
        };
        let params = ThresholdParams::from_bytes(head.try_into().expect("8 bytes"))?;
        let expected = 8 + PUBLIC_KEY_BYTES * (1 + params.parties as usize);
        if bytes.len() != expected {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected,
                got: bytes.len(),
            });
        }
        let mut keys = bytes[8..]
            .chunks_exact(PUBLIC_KEY_BYTES)
            .map(PublicKey::from_bytes)
            .collect::<Result<Vec<_>, _>>()?;
        let group_key = keys.remove(0);
        ThresholdPublicKey::new(params, group_key, keys)
    }
}
