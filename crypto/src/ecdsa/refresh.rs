//! Key refresh for a threshold key: new shares of the same key, so a share that may have been
//! exposed becomes useless.
//!
//! cggmp21 0.6 refreshes only n-of-n keys, so this is the proactive refresh of Herzberg,
//! Jarecki, Krawczyk and Yung (CRYPTO '95) on top of its share types: every party i deals a
//! random polynomial f_i of degree t-1 with f_i(0) = 0, broadcasts Feldman commitments
//! C_ik = a_ik G to its coefficients (k = 1..t-1; the constant term is zero by construction,
//! so nothing is committed for it) and sends f_i(I_j) privately to each party j. Party j checks
//! each value against the commitments (a failure names the dealer) and adds them all to its
//! share; every public share moves by the committed sum. The secret, f(0), and so the group key
//! and address, are unchanged, while any set mixing old and new shares interpolates to a
//! different value and cannot sign. The Paillier keys are replaced by running
//! [`super::protocol::aux_info`] again with fresh primes when they may be exposed too.
//!
//! Needs the same channel as the other protocols: a reliable broadcast for the commitments and
//! private, authenticated links for the values. This module is ours, not the audited crate's.

use super::{EcdsaError, KeyShare, Secp256k1};
use cggmp21::generic_ec::{NonZero, Point, Scalar, SecretScalar};
use cggmp21::key_share::AnyKeyShare as _;
use cggmp21::key_share::{DirtyKeyShare, Validate as _};
use rand_core::{CryptoRng, OsRng, RngCore};

/// One dealer's contribution.
pub struct RefreshDealing {
    /// The dealer's keygen index.
    pub dealer: u16,
    /// Commitments to the coefficients of x^1 .. x^(t-1) (broadcast).
    pub commitments: Vec<Point<Secp256k1>>,
    /// f(I_j) for each party j (each sent only to j).
    pub values: Vec<SecretScalar<Secp256k1>>,
}

impl RefreshDealing {
    /// Deals a zero-constant polynomial of degree t-1 at every party's evaluation point.
    pub fn generate<R: RngCore + CryptoRng>(share: &KeyShare, rng: &mut R) -> Self {
        let t = usize::from(share.min_signers());
        let mut coefficients: Vec<SecretScalar<Secp256k1>> =
            (1..t).map(|_| SecretScalar::random(rng)).collect();
        let commitments = coefficients
            .iter()
            .map(|a| Point::generator() * a)
            .collect();
        let values = (0..share.n())
            .map(|j| {
                let x = evaluation_point(share, j);
                let mut v = horner_secret(&coefficients, &x);
                SecretScalar::new(&mut v)
            })
            .collect();
        coefficients.clear();
        Self {
            dealer: share.i,
            commitments,
            values,
        }
    }

    /// The committed value of the dealer's polynomial at party j's point, times G.
    fn committed_at(&self, x: &Scalar<Secp256k1>) -> Point<Secp256k1> {
        // f(x) G = sum_k C_k x^k for k >= 1 (Horner on points).
        self.commitments
            .iter()
            .rev()
            .fold(Point::zero(), |acc, c| (acc + c) * x)
    }
}

/// I_j, the point at which party j's share is the polynomial's value.
fn evaluation_point(share: &KeyShare, j: u16) -> Scalar<Secp256k1> {
    *share
        .share_preimage(j)
        .expect("j below n, checked by the caller")
        .as_ref()
}

/// sum_k a_k x^k for k >= 1, where `a[0]` is the coefficient of x.
fn horner_secret(a: &[SecretScalar<Secp256k1>], x: &Scalar<Secp256k1>) -> Scalar<Secp256k1> {
    a.iter()
        .rev()
        .fold(Scalar::zero(), |acc, c| (acc + c.as_ref()) * x)
}

/// Refreshes all n shares of one key in this process (`shares[i]` is party i's).
pub fn refresh(shares: &[KeyShare]) -> Result<Vec<KeyShare>, EcdsaError> {
    refresh_tampered(shares, &mut |_| {})
}

/// [`refresh`] with a hook that may change each dealing before it is delivered (tests).
pub fn refresh_tampered(
    shares: &[KeyShare],
    tamper: &mut dyn FnMut(&mut RefreshDealing),
) -> Result<Vec<KeyShare>, EcdsaError> {
    check_all_parties(shares)?;
    let mut rng = OsRng;
    let dealings: Vec<RefreshDealing> = shares
        .iter()
        .map(|s| {
            let mut d = RefreshDealing::generate(s, &mut rng);
            tamper(&mut d);
            d
        })
        .collect();
    let blamed = bad_dealers(shares, &dealings);
    if !blamed.is_empty() {
        return Err(EcdsaError::Aborted {
            protocol: "refresh",
            blamed,
            detail: "a dealing does not match its commitments".into(),
        });
    }
    shares.iter().map(|s| apply(s, &dealings)).collect()
}

fn check_all_parties(shares: &[KeyShare]) -> Result<(), EcdsaError> {
    let first = shares
        .first()
        .ok_or_else(|| EcdsaError::InconsistentShares("no shares".into()))?;
    let ok = shares.len() == usize::from(first.n())
        && shares.iter().zip(0u16..).all(|(s, i)| {
            s.i == i && s.shared_public_key == first.shared_public_key && s.n() == first.n()
        });
    if ok {
        Ok(())
    } else {
        Err(EcdsaError::InconsistentShares(
            "refresh needs every party's share of one key, in index order".into(),
        ))
    }
}

/// Dealers whose dealing is malformed or whose value for some party does not match the
/// commitments (each party checks its own value; here all checks run in one place).
fn bad_dealers(shares: &[KeyShare], dealings: &[RefreshDealing]) -> Vec<u16> {
    let t = usize::from(shares[0].min_signers());
    let n = shares.len();
    let mut blamed = Vec::new();
    for (d, dealer) in dealings.iter().zip(0u16..) {
        let well_formed = d.dealer == dealer && d.commitments.len() == t - 1 && d.values.len() == n;
        let consistent = well_formed
            && shares.iter().zip(0u16..).all(|(s, j)| {
                let x = evaluation_point(s, j);
                Point::generator() * &d.values[usize::from(j)] == d.committed_at(&x)
            });
        if !consistent {
            blamed.push(dealer);
        }
    }
    blamed
}

/// Party `share.i`'s new share: old share plus every dealer's value; public shares moved by
/// the committed values.
fn apply(share: &KeyShare, dealings: &[RefreshDealing]) -> Result<KeyShare, EcdsaError> {
    let j = usize::from(share.i);
    let mut x: Scalar<Secp256k1> = *share.x.as_ref();
    for d in dealings {
        x += d.values[j].as_ref();
    }
    let x = NonZero::from_secret_scalar(SecretScalar::new(&mut x))
        .ok_or_else(|| EcdsaError::InconsistentShares("refreshed share is zero".into()))?;
    let mut dirty: DirtyKeyShare<Secp256k1> = share.clone().into_inner();
    for (m, public) in dirty.core.key_info.public_shares.iter_mut().enumerate() {
        let point = evaluation_point(share, m as u16);
        let moved = dealings
            .iter()
            .fold(**public, |acc, d| acc + d.committed_at(&point));
        *public = NonZero::from_point(moved).ok_or_else(|| {
            EcdsaError::InconsistentShares("refreshed public share is zero".into())
        })?;
    }
    dirty.core.x = x;
    dirty
        .is_valid()
        .map_err(|e| EcdsaError::InconsistentShares(e.to_string()))?;
    KeyShare::validate(dirty).map_err(|e| EcdsaError::InconsistentShares(e.to_string()))
}
