//! What a replica answers a client, on the wire: a [`Receipt`] names the transaction by its
//! key and carries its [`ReceiptStatus`]. The client side decodes bytes from a replica it
//! does not trust, so decoding is bounded and refuses every tag it does not know.

use super::ReceiptStatus;
use crate::client::TxRejection;
use crate::ledger::{Outcome, Reject, Transfer};
use crate::messages::Lane;
use crate::wire::{put_u128, put_u32, put_u64, put_u8, Encoder, Reader, Wire, WireError};

/// A replica's answer about transaction `key` (the key the client signed, unscoped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub key: u128,
    pub status: ReceiptStatus,
}

impl Wire for Receipt {
    const ENCODED_BYTES_MIN: usize = 17;

    fn encode(&self, out: &mut Encoder) {
        put_u128(out, self.key);
        self.status.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Receipt {
            key: reader.u128("receipt key")?,
            status: ReceiptStatus::decode(reader)?,
        })
    }
}

impl Wire for ReceiptStatus {
    fn encode(&self, out: &mut Encoder) {
        match *self {
            ReceiptStatus::LocallyFinal { lane, seq, outcome } => {
                put_u8(out, 0);
                lane.encode(out);
                put_u64(out, seq);
                outcome.encode(out);
            }
            ReceiptStatus::LocallyOrdered { lane, seq } => {
                put_u8(out, 1);
                lane.encode(out);
                put_u64(out, seq);
            }
            ReceiptStatus::GloballyFinal {
                height,
                lane,
                seq,
                outcome,
                transfer,
            } => {
                put_u8(out, 2);
                put_u64(out, height);
                lane.encode(out);
                put_u64(out, seq);
                outcome.encode(out);
                transfer.encode(out);
            }
            ReceiptStatus::Delivered { height, outcome } => {
                put_u8(out, 3);
                put_u64(out, height);
                outcome.encode(out);
            }
            ReceiptStatus::Overloaded => put_u8(out, 4),
            ReceiptStatus::Rejected { reason } => {
                put_u8(out, 5);
                reason.encode(out);
            }
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match reader.u8("receipt status")? {
            0 => ReceiptStatus::LocallyFinal {
                lane: Lane::decode(reader)?,
                seq: reader.u64("receipt seq")?,
                outcome: Outcome::decode(reader)?,
            },
            1 => ReceiptStatus::LocallyOrdered {
                lane: Lane::decode(reader)?,
                seq: reader.u64("receipt seq")?,
            },
            2 => ReceiptStatus::GloballyFinal {
                height: reader.u64("receipt height")?,
                lane: Lane::decode(reader)?,
                seq: reader.u64("receipt seq")?,
                outcome: Outcome::decode(reader)?,
                transfer: Transfer::decode(reader)?,
            },
            3 => ReceiptStatus::Delivered {
                height: reader.u64("receipt height")?,
                outcome: Outcome::decode(reader)?,
            },
            4 => ReceiptStatus::Overloaded,
            5 => ReceiptStatus::Rejected {
                reason: TxRejection::decode(reader)?,
            },
            tag => {
                return Err(WireError::UnknownTag {
                    what: "receipt status",
                    tag,
                })
            }
        })
    }
}

/// Reasons in a fixed order: the tag of a reject is its place here.
const REJECTS: [Reject; 9] = [
    Reject::UnknownAccount,
    Reject::SameAccount,
    Reject::ZeroAmount,
    Reject::InsufficientFunds,
    Reject::Overflow,
    Reject::Overloaded,
    Reject::KeyConflict,
    Reject::CreditsNotFinal,
    Reject::NotHome,
];

impl Wire for Outcome {
    fn encode(&self, out: &mut Encoder) {
        match self {
            Outcome::Applied => put_u8(out, 0),
            Outcome::Duplicate => put_u8(out, 1),
            Outcome::Rejected(reject) => {
                put_u8(out, 2);
                let tag = REJECTS.iter().position(|r| r == reject);
                put_u8(out, tag.expect("every reject is listed") as u8);
            }
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match reader.u8("outcome")? {
            0 => Outcome::Applied,
            1 => Outcome::Duplicate,
            2 => {
                let tag = reader.u8("reject reason")?;
                let reject = REJECTS.get(tag as usize).ok_or(WireError::UnknownTag {
                    what: "reject reason",
                    tag,
                })?;
                Outcome::Rejected(*reject)
            }
            tag => {
                return Err(WireError::UnknownTag {
                    what: "outcome",
                    tag,
                })
            }
        })
    }
}

impl Wire for TxRejection {
    fn encode(&self, out: &mut Encoder) {
        match *self {
            TxRejection::UnknownAccount => put_u8(out, 0),
            TxRejection::UnknownClient => put_u8(out, 1),
            TxRejection::NotOwner => put_u8(out, 2),
            TxRejection::BadSignature => put_u8(out, 3),
            TxRejection::WrongKind => put_u8(out, 4),
            TxRejection::NotHome { domain } => {
                put_u8(out, 5);
                put_u32(out, domain);
            }
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match reader.u8("rejection")? {
            0 => TxRejection::UnknownAccount,
            1 => TxRejection::UnknownClient,
            2 => TxRejection::NotOwner,
            3 => TxRejection::BadSignature,
            4 => TxRejection::WrongKind,
            5 => TxRejection::NotHome {
                domain: reader.u32("home domain")?,
            },
            tag => {
                return Err(WireError::UnknownTag {
                    what: "rejection",
                    tag,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_receipt, encode_receipt};

    fn every_status() -> Vec<ReceiptStatus> {
        let lane = Lane {
            domain: 2,
            shard: 1,
        };
        let transfer = Transfer {
            key: 7,
            from: 1,
            to: 2,
            amount: 3,
        };
        let mut all = vec![
            ReceiptStatus::LocallyOrdered { lane, seq: 9 },
            ReceiptStatus::Overloaded,
        ];
        let outcomes = [Outcome::Applied, Outcome::Duplicate]
            .into_iter()
            .chain(REJECTS.iter().map(|r| Outcome::Rejected(*r)));
        for outcome in outcomes {
            all.push(ReceiptStatus::LocallyFinal {
                lane,
                seq: 4,
                outcome,
            });
            all.push(ReceiptStatus::GloballyFinal {
                height: 11,
                lane,
                seq: 4,
                outcome,
                transfer,
            });
            all.push(ReceiptStatus::Delivered {
                height: 12,
                outcome,
            });
        }
        for reason in [
            TxRejection::UnknownAccount,
            TxRejection::UnknownClient,
            TxRejection::NotOwner,
            TxRejection::BadSignature,
            TxRejection::WrongKind,
            TxRejection::NotHome { domain: 3 },
        ] {
            all.push(ReceiptStatus::Rejected { reason });
        }
        all
    }

    #[test]
    fn every_receipt_round_trips_and_every_prefix_is_refused() {
        for (i, status) in every_status().into_iter().enumerate() {
            let receipt = Receipt {
                key: u128::MAX - i as u128,
                status,
            };
            let bytes = encode_receipt(&receipt);
            assert_eq!(decode_receipt(&bytes), Ok(receipt));
            for cut in 0..bytes.len() {
                assert!(
                    decode_receipt(&bytes[..cut]).is_err(),
                    "{status:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn unknown_tags_are_refused() {
        let mut bytes = encode_receipt(&Receipt {
            key: 1,
            status: ReceiptStatus::Overloaded,
        });
        *bytes.last_mut().unwrap() = 6;
        assert_eq!(
            decode_receipt(&bytes),
            Err(WireError::UnknownTag {
                what: "receipt status",
                tag: 6
            })
        );
        let mut bytes = encode_receipt(&Receipt {
            key: 1,
            status: ReceiptStatus::Delivered {
                height: 1,
                outcome: Outcome::Rejected(Reject::NotHome),
            },
        });
        *bytes.last_mut().unwrap() = REJECTS.len() as u8;
        assert!(decode_receipt(&bytes).is_err());
    }
}
