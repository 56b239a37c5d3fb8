//! Distributed key generation without a trusted dealer: Pedersen's joint-Feldman DKG over
//! the BLS12-381 scalar field, with complaints and disqualification.
//!
//! Each of the `n` parties is also a dealer. Dealer `i` picks a random polynomial `f_i` of
//! degree `t - 1`, broadcasts the Feldman commitment `C_i = (g1 * a_i0, ..., g1 * a_i(t-1))`
//! and sends party `j` the share `f_i(j)` privately. Party `j` checks
//! `g1 * f_i(j) == sum_k C_ik * j^k` ([`verify_share`]) and broadcasts a [`Complaint`]
//! against a dealer whose share fails. An accused dealer answers with a [`Justification`]
//! (the disputed share, revealed). Every party then runs the same deterministic
//! [`qualify`] over the broadcast data: a dealer with a malformed commitment, an unanswered
//! complaint, an answer that fails verification or two different answers to one complaint
//! is disqualified. The qualified set `Q` must hold at least `t` dealers. Party `j`'s key
//! share is `sum_{i in Q} f_i(j)`, the group key `sum_{i in Q} C_i0`, and every share's
//! public key follows from the commitments.
//!
//! # Agreement
//!
//! Broadcast messages come as [`Broadcast`] values carrying the sender the channel
//! authenticated. [`qualify`] ignores a complaint whose sender is not its accuser or whose
//! indices are out of range, and a justification whose sender is not its dealer or that
//! answers no complaint; it takes the one justification of the dealer for each complaint
//! (identical replays collapse, conflicting answers disqualify the dealer) and
//! [`Party::finish`] uses exactly that justification. So every honest party that sees the
//! same broadcast ends with the same qualified set and group key, or fails with the same
//! [`CryptoError::TooFewQualifiedDealers`] naming the same disqualified dealers: no single
//! participant can split the honest parties, stall them with an unanswerable complaint or
//! pick the qualified set.
//!
//! Note (Gennaro, Jarecki, Krawczyk, Rabin 1999/2007): an adversary can bias the group key
//! of joint-Feldman somewhat; threshold BLS stays secure with such a key, which is why the
//! simpler protocol is used here rather than the Pedersen-commitment variant.
//!
//! The broadcast channel and the private channels are the caller's: the `ccbft dkg`
//! ceremony (files, signed broadcast, shares encrypted to each recipient with HPKE, see
//! [`crate::ceremony`]) or the replicas' links. [`run_local`] runs every party in one
//! process, which makes that process a trusted dealer: tests, the simulator and the CLI's
//! `--trusted-dealer-demo` only.
//!
//! Secret scalars (polynomial coefficients, shares, the summed key share) are overwritten
//! when dropped.

use crate::error::CryptoError;
use crate::threshold::{
    g1_to_public_key, scalar_to_secret_key, KeyShare, ThresholdParams, ThresholdPublicKey,
};
use blstrs::{G1Affine, G1Projective, Scalar};
use ff::Field;
use group::prime::PrimeCurveAffine;
use group::{Curve, Group};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

const POINT_BYTES: usize = 48;
const SCALAR_BYTES: usize = 32;

/// A dealer's Feldman commitment to its polynomial: `threshold` points of G1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DealerCommitment {
    /// 1-based index of the dealer.
    pub dealer: u32,
    points: Vec<G1Affine>,
}

impl DealerCommitment {
    /// The committed points `g1 * a_k`, constant term first.
    pub fn points(&self) -> &[G1Affine] {
        &self.points
    }

    /// Evaluates the committed polynomial in the exponent at `x`: `sum_k C_k * x^k`.
    fn evaluate(&self, x: u32) -> G1Projective {
        let x = Scalar::from(u64::from(x));
        let mut acc = G1Projective::identity();
        for c in self.points.iter().rev() {
            acc = acc * x + G1Projective::from(c);
        }
        acc
    }

    /// Encoding: dealer (u32 LE), point count (u16 LE), compressed points.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + POINT_BYTES * self.points.len());
        out.extend_from_slice(&self.dealer.to_le_bytes());
        let count = u16::try_from(self.points.len()).expect("bounded by PARTIES_MAX");
        out.extend_from_slice(&count.to_le_bytes());
        for p in &self.points {
            out.extend_from_slice(&p.to_compressed());
        }
        out
    }

    /// Decodes: canonical compressed points in the subgroup (count checked by [`qualify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<DealerCommitment, CryptoError> {
        const KIND: &str = "dealer commitment";
        if bytes.len() < 6 {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: 6,
                got: bytes.len(),
            });
        }
        let dealer = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let count = usize::from(u16::from_le_bytes([bytes[4], bytes[5]]));
        if count > crate::threshold::PARTIES_MAX as usize {
            return Err(CryptoError::TooMany {
                kind: "commitment points",
                got: count,
                max: crate::threshold::PARTIES_MAX as usize,
            });
        }
        if bytes.len() != 6 + count * POINT_BYTES {
            return Err(CryptoError::WrongLength {
                kind: KIND,
                expected: 6 + count * POINT_BYTES,
                got: bytes.len(),
            });
        }
        let points = bytes[6..]
            .chunks_exact(POINT_BYTES)
            .map(|c| {
                let arr: &[u8; POINT_BYTES] = c.try_into().expect("48 bytes");
                let p = Option::<G1Affine>::from(G1Affine::from_compressed(arr))
                    .ok_or(CryptoError::NonCanonical { kind: KIND })?;
                if &p.to_compressed() != arr {
                    return Err(CryptoError::NonCanonical { kind: KIND });
                }
                Ok(p)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DealerCommitment { dealer, points })
    }
}

/// Overwrites a secret scalar. blstrs scalars are `Copy` and not `Zeroize`; the write goes
/// through `black_box` so the compiler cannot drop it as dead.
pub(crate) fn wipe_scalar(s: &mut Scalar) {
    *s = Scalar::ZERO;
    std::hint::black_box(s);
}

/// A share `f_dealer(recipient)` sent privately by a dealer (or revealed in a justification).
/// The value is overwritten on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretShare {
    /// 1-based index of the dealer.
    pub dealer: u32,
    /// 1-based index of the recipient.
    pub recipient: u32,
    value: Scalar,
}

impl std::fmt::Debug for SecretShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretShare({} -> {}, <redacted>)",
            self.dealer, self.recipient
        )
    }
}

impl Drop for SecretShare {
    fn drop(&mut self) {
        wipe_scalar(&mut self.value);
    }
}

/// Encoded size of a [`SecretShare`].
pub const SECRET_SHARE_BYTES: usize = 8 + SCALAR_BYTES;

impl SecretShare {
    /// Encoding: dealer, recipient (u32 LE each), value (32 bytes big-endian). Key material.
    /// The caller wipes the returned bytes (`zeroize`) when done.
    pub fn to_bytes(&self) -> [u8; SECRET_SHARE_BYTES] {
        let mut out = [0u8; SECRET_SHARE_BYTES];
        out[..4].copy_from_slice(&self.dealer.to_le_bytes());
        out[4..8].copy_from_slice(&self.recipient.to_le_bytes());
        let mut value = self.value.to_bytes_be();
        out[8..].copy_from_slice(&value);
        zeroize::Zeroize::zeroize(&mut value);
        out
    }

    /// Decodes; the value must be a canonical (reduced) scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretShare, CryptoError> {
        if bytes.len() != SECRET_SHARE_BYTES {
            return Err(CryptoError::WrongLength {
                kind: "secret share",
                expected: SECRET_SHARE_BYTES,
                got: bytes.len(),
            });
        }
        let dealer = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let recipient = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let value = Option::<Scalar>::from(Scalar::from_bytes_be(
            bytes[8..].try_into().expect("32 bytes"),
        ))
        .ok_or(CryptoError::NonCanonical {
            kind: "secret share",
        })?;
        Ok(SecretShare {
            dealer,
            recipient,
            value,
        })
    }

    /// A copy with a different value (to build cheating dealers in tests and simulations).
    pub fn tampered(&self) -> SecretShare {
        SecretShare {
            dealer: self.dealer,
            recipient: self.recipient,
            value: self.value + Scalar::ONE,
        }
    }
}

/// What one dealer sends: the commitment (broadcast) and one share per party (private).
#[derive(Clone, Debug)]
pub struct Dealing {
    /// Broadcast to all.
    pub commitment: DealerCommitment,
    /// `shares[j - 1]` goes privately to party `j`.
    pub shares: Vec<SecretShare>,
}

impl Dealing {
    /// Deals a fresh random polynomial of degree `threshold - 1`.
    pub fn generate<R: RngCore + CryptoRng>(
        params: ThresholdParams,
        dealer: u32,
        rng: &mut R,
    ) -> Result<Dealing, CryptoError> {
        params.check_index(dealer)?;
        let mut coefficients: Vec<Scalar> = (0..params.threshold())
            .map(|_| Scalar::random(&mut *rng))
            .collect();
        let projective: Vec<G1Projective> = coefficients
            .iter()
            .map(|a| G1Projective::generator() * a)
            .collect();
        let mut points = vec![G1Affine::identity(); projective.len()];
        G1Projective::batch_normalize(&projective, &mut points);
        let shares = (1..=params.parties())
            .map(|j| {
                let x = Scalar::from(u64::from(j));
                let value = coefficients
                    .iter()
                    .rev()
                    .fold(Scalar::ZERO, |acc, a| acc * x + a);
                SecretShare {
                    dealer,
                    recipient: j,
                    value,
                }
            })
            .collect();
        coefficients.iter_mut().for_each(wipe_scalar);
        Ok(Dealing {
            commitment: DealerCommitment { dealer, points },
            shares,
        })
    }
}

/// Checks a share against its dealer's commitment: `g1 * share == sum_k C_k * recipient^k`.
pub fn verify_share(
    params: ThresholdParams,
    commitment: &DealerCommitment,
    share: &SecretShare,
) -> Result<(), CryptoError> {
    params.check_index(share.recipient)?;
    params.check_index(commitment.dealer)?;
    let invalid = CryptoError::InvalidShare {
        dealer: share.dealer,
        recipient: share.recipient,
    };
    if share.dealer != commitment.dealer || commitment.points.len() != params.threshold() as usize {
        return Err(invalid);
    }
    let lhs = G1Projective::generator() * share.value;
    if lhs != commitment.evaluate(share.recipient) {
        return Err(invalid);
    }
    Ok(())
}

/// A broadcast accusation: `accuser` got no valid share from `dealer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Complaint {
    /// 1-based index of the complaining party (must be the broadcast's sender).
    pub accuser: u32,
    /// 1-based index of the accused dealer.
    pub dealer: u32,
}

/// Encoded size of a [`Complaint`].
pub const COMPLAINT_BYTES: usize = 8;

impl Complaint {
    /// Encoding: accuser, dealer (u32 LE each).
    pub fn to_bytes(&self) -> [u8; COMPLAINT_BYTES] {
        let mut out = [0u8; COMPLAINT_BYTES];
        out[..4].copy_from_slice(&self.accuser.to_le_bytes());
        out[4..].copy_from_slice(&self.dealer.to_le_bytes());
        out
    }

    /// Decodes (indices are range-checked against the parameters by [`qualify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Complaint, CryptoError> {
        if bytes.len() != COMPLAINT_BYTES {
            return Err(CryptoError::WrongLength {
                kind: "complaint",
                expected: COMPLAINT_BYTES,
                got: bytes.len(),
            });
        }
        Ok(Complaint {
            accuser: u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")),
            dealer: u32::from_le_bytes(bytes[4..].try_into().expect("4 bytes")),
        })
    }
}

/// A dealer's broadcast answer to a complaint: the disputed share, revealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Justification {
    /// The share for the accuser (its `recipient`), from its `dealer` (who must be the
    /// broadcast's sender).
    pub share: SecretShare,
}

impl Justification {
    /// Encoding: the revealed share's encoding.
    pub fn to_bytes(&self) -> [u8; SECRET_SHARE_BYTES] {
        self.share.to_bytes()
    }

    /// Decodes the revealed share.
    pub fn from_bytes(bytes: &[u8]) -> Result<Justification, CryptoError> {
        SecretShare::from_bytes(bytes).map(|share| Justification { share })
    }
}

/// A message as the broadcast channel delivered it, with the sender the channel
/// authenticated (a signature, the link's key), never a field the sender chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broadcast<T> {
    /// 1-based index of the authenticated sender.
    pub sender: u32,
    /// The message.
    pub message: T,
}

impl<T> Broadcast<T> {
    /// `message` as sent by `sender`.
    pub fn new(sender: u32, message: T) -> Broadcast<T> {
        Broadcast { sender, message }
    }
}

/// Why [`qualify`] disqualified a dealer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disqualified {
    /// No commitment was broadcast.
    NoCommitment,
    /// The commitment names another dealer or has the wrong number of points.
    MalformedCommitment,
    /// A complaint of `accuser` got no justification from the dealer.
    Unanswered { accuser: u32 },
    /// The dealer's justification for `accuser` does not match its commitment.
    BadJustification { accuser: u32 },
    /// The dealer broadcast two different justifications for `accuser`.
    ConflictingJustifications { accuser: u32 },
}

/// A broadcast input that [`qualify`] ignored, and why (the sender is the culprit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// Sender outside `1..=parties`.
    SenderOutOfRange,
    /// A complaint whose accuser or dealer is outside `1..=parties`.
    ComplaintIndexOutOfRange,
    /// A complaint whose accuser is not its sender.
    ComplaintNotFromAccuser,
    /// A repeat of a complaint already heard.
    DuplicateComplaint,
    /// A justification whose dealer is not its sender.
    JustificationNotFromDealer,
    /// A justification whose indices are out of range.
    JustificationIndexOutOfRange,
    /// A justification answering no complaint.
    JustificationWithoutComplaint,
    /// A byte-identical repeat of a justification already heard.
    DuplicateJustification,
}

/// The outcome of [`qualify`]: identical at every party that saw the same broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qualification {
    /// Qualified dealers, increasing.
    pub qualified: Vec<u32>,
    /// Disqualified dealers, increasing, with the first reason found.
    pub disqualified: Vec<(u32, Disqualified)>,
    /// Ignored broadcast inputs, by sender, in input order.
    pub ignored: Vec<(u32, Ignored)>,
    /// The verified justification of each answered complaint of a qualified dealer.
    revealed: Vec<SecretShare>,
}

impl Qualification {
    /// The share a qualified `dealer` revealed for `recipient`, if it was accused.
    pub fn revealed(&self, dealer: u32, recipient: u32) -> Option<&SecretShare> {
        self.revealed
            .iter()
            .find(|s| s.dealer == dealer && s.recipient == recipient)
    }

    /// The disqualified dealers' indices.
    pub fn disqualified_dealers(&self) -> Vec<u32> {
        self.disqualified.iter().map(|(d, _)| *d).collect()
    }
}

/// The valid complaints, `(accuser, dealer)` deduplicated in input order; ignored ones
/// are appended to `ignored`.
fn valid_complaints(
    params: ThresholdParams,
    complaints: &[Broadcast<Complaint>],
    ignored: &mut Vec<(u32, Ignored)>,
) -> Vec<Complaint> {
    let mut valid: Vec<Complaint> = Vec::new();
    for b in complaints {
        let c = b.message;
        let reason = if params.check_index(b.sender).is_err() {
            Some(Ignored::SenderOutOfRange)
        } else if params.check_index(c.accuser).is_err() || params.check_index(c.dealer).is_err() {
            Some(Ignored::ComplaintIndexOutOfRange)
        } else if c.accuser != b.sender {
            Some(Ignored::ComplaintNotFromAccuser)
        } else if valid.contains(&c) {
            Some(Ignored::DuplicateComplaint)
        } else {
            None
        };
        match reason {
            Some(r) => ignored.push((b.sender, r)),
            None => valid.push(c),
        }
    }
    valid
}

/// A dealer's answer to one complaint.
#[derive(Clone, Copy)]
enum Answer<'a> {
    /// Exactly one justification (identical replays collapsed).
    One(&'a SecretShare),
    /// Two different justifications.
    Conflicting,
}

/// Answers by `(dealer, recipient)`.
type Answers<'a> = Vec<((u32, u32), Answer<'a>)>;

/// The justifications by `(dealer, recipient)`. Ignored ones are appended to `ignored`.
fn collect_justifications<'a>(
    params: ThresholdParams,
    complaints: &[Complaint],
    justifications: &'a [Broadcast<Justification>],
    ignored: &mut Vec<(u32, Ignored)>,
) -> Answers<'a> {
    let mut answers: Answers<'a> = Vec::new();
    for b in justifications {
        let share = &b.message.share;
        let key = (share.dealer, share.recipient);
        let reason = if params.check_index(b.sender).is_err() {
            Some(Ignored::SenderOutOfRange)
        } else if params.check_index(share.dealer).is_err()
            || params.check_index(share.recipient).is_err()
        {
            Some(Ignored::JustificationIndexOutOfRange)
        } else if share.dealer != b.sender {
            Some(Ignored::JustificationNotFromDealer)
        } else if !complaints.contains(&Complaint {
            accuser: share.recipient,
            dealer: share.dealer,
        }) {
            Some(Ignored::JustificationWithoutComplaint)
        } else {
            None
        };
        if let Some(r) = reason {
            ignored.push((b.sender, r));
            continue;
        }
        match answers.iter_mut().find(|(k, _)| *k == key) {
            None => answers.push((key, Answer::One(share))),
            Some((_, Answer::One(first))) if *first == share => {
                ignored.push((b.sender, Ignored::DuplicateJustification));
            }
            Some((_, answer)) => *answer = Answer::Conflicting,
        }
    }
    answers
}

/// The deterministic qualification rule every party applies to the same broadcast data.
/// `commitments[i - 1]` is dealer `i`'s commitment if it broadcast one. Complaints count
/// only from their accuser and justifications only from their dealer (the broadcast's
/// authenticated sender); every index is range-checked.
pub fn qualify(
    params: ThresholdParams,
    commitments: &[Option<DealerCommitment>],
    complaints: &[Broadcast<Complaint>],
    justifications: &[Broadcast<Justification>],
) -> Qualification {
    let mut ignored = Vec::new();
    let complaints = valid_complaints(params, complaints, &mut ignored);
    let answers = collect_justifications(params, &complaints, justifications, &mut ignored);
    let mut qualified = Vec::new();
    let mut disqualified = Vec::new();
    let mut revealed = Vec::new();
    for dealer in 1..=params.parties() {
        match judge_dealer(params, dealer, commitments, &complaints, &answers) {
            Ok(shares) => {
                qualified.push(dealer);
                revealed.extend(shares.into_iter().cloned());
            }
            Err(reason) => disqualified.push((dealer, reason)),
        }
    }
    Qualification {
        qualified,
        disqualified,
        ignored,
        revealed,
    }
}

/// The revealed shares of a qualified dealer, or why it is disqualified.
fn judge_dealer<'a>(
    params: ThresholdParams,
    dealer: u32,
    commitments: &[Option<DealerCommitment>],
    complaints: &[Complaint],
    answers: &[((u32, u32), Answer<'a>)],
) -> Result<Vec<&'a SecretShare>, Disqualified> {
    let Some(Some(c)) = commitments.get(dealer as usize - 1) else {
        return Err(Disqualified::NoCommitment);
    };
    if c.dealer != dealer || c.points.len() != params.threshold() as usize {
        return Err(Disqualified::MalformedCommitment);
    }
    let mut shares = Vec::new();
    for k in complaints.iter().filter(|k| k.dealer == dealer) {
        let accuser = k.accuser;
        match answers.iter().find(|(key, _)| *key == (dealer, accuser)) {
            None => return Err(Disqualified::Unanswered { accuser }),
            Some((_, Answer::Conflicting)) => {
                return Err(Disqualified::ConflictingJustifications { accuser })
            }
            Some((_, Answer::One(share))) => {
                if verify_share(params, c, share).is_err() {
                    return Err(Disqualified::BadJustification { accuser });
                }
                shares.push(*share);
            }
        }
    }
    Ok(shares)
}

/// What a party holds at the end of the DKG.
#[derive(Clone, Debug)]
pub struct DkgOutput {
    /// This party's key share.
    pub share: KeyShare,
    /// The group key and every share's public key (identical at every honest party).
    pub public: ThresholdPublicKey,
    /// The qualified dealers.
    pub qualified: Vec<u32>,
    /// The disqualified dealers and why.
    pub disqualified: Vec<(u32, Disqualified)>,
}

/// One party's side of the DKG.
#[derive(Debug)]
pub struct Party {
    params: ThresholdParams,
    index: u32,
    commitments: Vec<Option<DealerCommitment>>,
    shares: Vec<Option<SecretShare>>,
}

impl Party {
    /// Party `index` (1-based).
    pub fn new(params: ThresholdParams, index: u32) -> Result<Party, CryptoError> {
        params.check_index(index)?;
        let n = params.parties() as usize;
        Ok(Party {
            params,
            index,
            commitments: vec![None; n],
            shares: vec![None; n],
        })
    }

    /// This party's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Records a dealer's broadcast commitment and the share it sent this party. Returns the
    /// complaint to broadcast if the share is missing, misaddressed or does not verify.
    /// A second dealing from the same dealer is an error (equivocation is the caller's
    /// broadcast channel's to prevent).
    pub fn receive(
        &mut self,
        commitment: DealerCommitment,
        share: Option<SecretShare>,
    ) -> Result<Option<Complaint>, CryptoError> {
        let dealer = commitment.dealer;
        self.params.check_index(dealer)?;
        let slot = dealer as usize - 1;
        if self.commitments[slot].is_some() {
            return Err(CryptoError::DealerMisbehaved {
                dealer,
                reason: "second dealing",
            });
        }
        let valid = share.filter(|s| {
            s.recipient == self.index && verify_share(self.params, &commitment, s).is_ok()
        });
        self.commitments[slot] = Some(commitment);
        let complaint = valid.is_none().then_some(Complaint {
            accuser: self.index,
            dealer,
        });
        self.shares[slot] = valid;
        Ok(complaint)
    }

    /// The commitments heard so far, by dealer (for [`qualify`]).
    pub fn commitments(&self) -> &[Option<DealerCommitment>] {
        &self.commitments
    }

    /// Finishes with the broadcast complaints and justifications: qualifies the dealers,
    /// takes this party's share from each qualified dealer (the justification [`qualify`]
    /// verified replaces a share this party complained about) and derives the key share and
    /// the public key. Fewer than `threshold` qualified dealers is
    /// [`CryptoError::TooFewQualifiedDealers`], naming the disqualified ones.
    pub fn finish(
        &self,
        complaints: &[Broadcast<Complaint>],
        justifications: &[Broadcast<Justification>],
    ) -> Result<DkgOutput, CryptoError> {
        let q = qualify(self.params, &self.commitments, complaints, justifications);
        let need = self.params.threshold() as usize;
        if q.qualified.len() < need {
            return Err(CryptoError::TooFewQualifiedDealers {
                qualified: q.qualified.len(),
                need,
                disqualified: q.disqualified_dealers(),
            });
        }
        let mut secret = Scalar::ZERO;
        let result = self.sum_shares(&q, &mut secret);
        let share = result.and_then(|public| {
            let key = scalar_to_secret_key(&secret)?;
            Ok((KeyShare::new(self.params, self.index, key)?, public))
        });
        wipe_scalar(&mut secret);
        let (share, public) = share?;
        assert_eq!(
            public.share_key(self.index)?,
            &share.public_key(),
            "own share matches the public share key derived from the commitments"
        );
        Ok(DkgOutput {
            share,
            public,
            qualified: q.qualified,
            disqualified: q.disqualified,
        })
    }

    /// Adds this party's share of every qualified dealer into `secret`; returns the public
    /// key derived from the qualified commitments.
    fn sum_shares(
        &self,
        q: &Qualification,
        secret: &mut Scalar,
    ) -> Result<ThresholdPublicKey, CryptoError> {
        let mut group = G1Projective::identity();
        let mut share_points = vec![G1Projective::identity(); self.params.parties() as usize];
        for &dealer in &q.qualified {
            let slot = dealer as usize - 1;
            let commitment = self.commitments[slot]
                .as_ref()
                .expect("qualified dealers have commitments");
            let own = q
                .revealed(dealer, self.index)
                .or(self.shares[slot].as_ref())
                .ok_or(CryptoError::InvalidShare {
                    dealer,
                    recipient: self.index,
                })?;
            verify_share(self.params, commitment, own)?;
            *secret += own.value;
            group += G1Projective::from(commitment.points[0]);
            for (j, p) in share_points.iter_mut().enumerate() {
                *p += commitment.evaluate(j as u32 + 1);
            }
        }
        let group_key = g1_to_public_key(&group.to_affine())?;
        let share_keys = share_points
            .iter()
            .map(|p| g1_to_public_key(&p.to_affine()))
            .collect::<Result<Vec<_>, _>>()?;
        ThresholdPublicKey::new(self.params, group_key, share_keys)
    }
}

/// Misbehaviour of a participant in [`run_local`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cheat {
    /// Sends `victim` a wrong share and answers the complaint with the same wrong share.
    WrongShare { victim: u32 },
    /// Sends `victim` a wrong share and ignores the complaint.
    WrongShareSilent { victim: u32 },
    /// Broadcasts a commitment with one point too few.
    ShortCommitment,
    /// Complains falsely about honest dealer `dealer` (who then justifies and stays).
    FalseComplaint { dealer: u32 },
    /// Sends `victim` a wrong share, then answers the complaint with a wrong share followed
    /// by the right one.
    BadThenGoodJustification { victim: u32 },
    /// Broadcasts a complaint naming `accuser` (out of range, or another party) against
    /// `dealer`.
    ComplaintAs { accuser: u32, dealer: u32 },
    /// Broadcasts, in its own name and ahead of the dealer's answer, a wrong
    /// "justification" of `dealer`'s share for `victim` (it matters once `victim` complained
    /// about `dealer`).
    ForgedJustification { dealer: u32, victim: u32 },
}

/// Result of [`run_local`].
#[derive(Clone, Debug)]
pub struct LocalDkgReport {
    /// Output of every party that finished, by index (cheaters included).
    pub outputs: Vec<DkgOutput>,
    /// All complaints broadcast, with their senders.
    pub complaints: Vec<Broadcast<Complaint>>,
    /// Dealers disqualified.
    pub disqualified: Vec<u32>,
}

/// Runs the whole DKG for all parties in one process, deterministically from `seed`, with
/// the given participants misbehaving. `progress` receives one line per phase. The process
/// sees every share: a trusted dealer, for tests, simulation and demonstrations only.
pub fn run_local(
    params: ThresholdParams,
    seed: [u8; 32],
    cheats: &[(u32, Cheat)],
    progress: &mut dyn FnMut(&str),
) -> Result<LocalDkgReport, CryptoError> {
    let n = params.parties();
    for (who, _) in cheats {
        params.check_index(*who)?;
    }
    let cheat_of = |i: u32| cheats.iter().find(|(d, _)| *d == i).map(|(_, c)| *c);
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut parties = (1..=n)
        .map(|i| Party::new(params, i))
        .collect::<Result<Vec<_>, _>>()?;

    progress(&format!(
        "phase 1/3: {n} dealers deal polynomials of degree {}",
        params.threshold() - 1
    ));
    let mut dealings = Vec::with_capacity(n as usize);
    for dealer in 1..=n {
        let mut d = Dealing::generate(params, dealer, &mut rng)?;
        match cheat_of(dealer) {
            Some(
                Cheat::WrongShare { victim }
                | Cheat::WrongShareSilent { victim }
                | Cheat::BadThenGoodJustification { victim },
            ) => {
                params.check_index(victim)?;
                let s = &mut d.shares[victim as usize - 1];
                *s = s.tampered();
            }
            Some(Cheat::ShortCommitment) => {
                d.commitment.points.pop();
            }
            _ => {}
        }
        dealings.push(d);
    }
    let mut complaints = Vec::new();
    for party in &mut parties {
        for d in &dealings {
            let share = d.shares[party.index as usize - 1].clone();
            if let Some(c) = party.receive(d.commitment.clone(), Some(share))? {
                complaints.push(Broadcast::new(party.index, c));
            }
        }
        match cheat_of(party.index) {
            Some(Cheat::FalseComplaint { dealer }) => {
                params.check_index(dealer)?;
                complaints.push(Broadcast::new(
                    party.index,
                    Complaint {
                        accuser: party.index,
                        dealer,
                    },
                ));
            }
            Some(Cheat::ComplaintAs { accuser, dealer }) => {
                complaints.push(Broadcast::new(party.index, Complaint { accuser, dealer }));
            }
            _ => {}
        }
    }
    progress(&format!(
        "phase 2/3: {} complaint(s) broadcast",
        complaints.len()
    ));
    let justifications = local_justifications(params, &dealings, &complaints, &cheat_of)?;
    let q = qualify(
        params,
        parties[0].commitments(),
        &complaints,
        &justifications,
    );
    let disqualified = q.disqualified_dealers();
    progress(&format!(
        "phase 3/3: {} justification(s); qualified dealers {:?}, disqualified {:?}",
        justifications.len(),
        q.qualified,
        disqualified
    ));
    let outputs = parties
        .iter()
        .map(|p| p.finish(&complaints, &justifications))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LocalDkgReport {
        outputs,
        complaints,
        disqualified,
    })
}

/// The justifications of [`run_local`]: every dealer answers every complaint against it
/// (in range) with the share it dealt, except as its cheat says.
fn local_justifications(
    params: ThresholdParams,
    dealings: &[Dealing],
    complaints: &[Broadcast<Complaint>],
    cheat_of: &dyn Fn(u32) -> Option<Cheat>,
) -> Result<Vec<Broadcast<Justification>>, CryptoError> {
    let mut justifications = Vec::new();
    for c in complaints.iter().map(|b| b.message) {
        if params.check_index(c.dealer).is_err() || params.check_index(c.accuser).is_err() {
            continue; // unanswerable, and ignored by qualify
        }
        let dealer = c.dealer;
        let dealt = &dealings[dealer as usize - 1].shares[c.accuser as usize - 1];
        match cheat_of(dealer) {
            Some(Cheat::WrongShareSilent { .. }) => continue,
            Some(Cheat::BadThenGoodJustification { victim }) if victim == c.accuser => {
                // `dealt` is the wrong share the victim got; the right one is one less.
                let right = SecretShare {
                    dealer,
                    recipient: victim,
                    value: dealt.value - Scalar::ONE,
                };
                justifications.push(Broadcast::new(
                    dealer,
                    Justification {
                        share: dealt.clone(),
                    },
                ));
                justifications.push(Broadcast::new(dealer, Justification { share: right }));
                continue;
            }
            _ => {}
        }
        justifications.push(Broadcast::new(
            dealer,
            Justification {
                share: dealt.clone(),
            },
        ));
    }
    for (who, cheat) in (1..=params.parties()).filter_map(|i| cheat_of(i).map(|c| (i, c))) {
        if let Cheat::ForgedJustification { dealer, victim } = cheat {
            params.check_index(dealer)?;
            params.check_index(victim)?;
            let forged = dealings[dealer as usize - 1].shares[victim as usize - 1].tampered();
            // Placed first, so a rule that took the first justification would pick it.
            justifications.insert(0, Broadcast::new(who, Justification { share: forged }));
        }
    }
    Ok(justifications)
}
