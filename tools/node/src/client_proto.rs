//! The client protocol on the client listener: one request frame per transaction, one
//! response frame per request.
//!
//! - Request body: a [`Wait`] byte, then the transaction ([`encode_transaction`]).
//! - Response body: `0` then a receipt ([`encode_receipt`]), or `1` then a UTF-8 reason when
//!   the request could not be read at all.

use bytes::{BufMut, Bytes, BytesMut};
use ccbft_core::replica::{Receipt, ReceiptStatus};
use ccbft_core::transaction::Transaction;
use ccbft_core::wire::{
    decode_receipt, decode_transaction_shared, encode_receipt, encode_transaction,
};

/// Which receipt the client waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Locally final (the home lane committed it, with its admission outcome).
    Local = 0,
    /// Globally final (executed in the global order).
    Global = 1,
}

impl Wait {
    /// Whether `status` is the answer this client waits for (a refusal always is).
    pub fn satisfied_by(self, status: &ReceiptStatus) -> bool {
        match status {
            ReceiptStatus::LocallyFinal { .. } | ReceiptStatus::LocallyOrdered { .. } => {
                self == Wait::Local
            }
            _ => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Receipt(Receipt),
    Malformed(String),
}

pub fn encode_request(wait: Wait, tx: &Transaction) -> Bytes {
    let encoded = encode_transaction(tx);
    let mut out = BytesMut::with_capacity(1 + encoded.len());
    out.put_u8(wait as u8);
    out.extend_from_slice(&encoded);
    out.freeze()
}

pub fn decode_request(body: &Bytes) -> Result<(Wait, Transaction), String> {
    let wait = match body.first() {
        Some(0) => Wait::Local,
        Some(1) => Wait::Global,
        Some(other) => return Err(format!("unknown wait byte {other}")),
        None => return Err("empty request".into()),
    };
    let tx = decode_transaction_shared(&body.slice(1..)).map_err(|e| e.to_string())?;
    Ok((wait, tx))
}

pub fn encode_response(response: &Response) -> Bytes {
    let mut out = BytesMut::new();
    match response {
        Response::Receipt(receipt) => {
            out.put_u8(0);
            out.extend_from_slice(&encode_receipt(receipt));
        }
        Response::Malformed(reason) => {
            out.put_u8(1);
            out.extend_from_slice(reason.as_bytes());
        }
    }
    out.freeze()
}

pub fn decode_response(body: &[u8]) -> Result<Response, String> {
    match body.split_first() {
        Some((0, rest)) => decode_receipt(rest)
            .map(Response::Receipt)
            .map_err(|e| e.to_string()),
        Some((1, rest)) => Ok(Response::Malformed(
            String::from_utf8_lossy(rest).into_owned(),
        )),
        Some((tag, _)) => Err(format!("unknown response tag {tag}")),
        None => Err("empty response".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbft_core::client::{ClientSignature, SignedTransfer};
    use ccbft_core::ledger::{Outcome, Transfer};

    fn tx() -> Transaction {
        Transaction::Transfer(SignedTransfer {
            transfer: Transfer {
                key: 9,
                from: 1,
                to: 2,
                amount: 3,
            },
            client: 1,
            signature: ClientSignature([5; 64]),
        })
    }

    #[test]
    fn requests_and_responses_round_trip() {
        for wait in [Wait::Local, Wait::Global] {
            let body = encode_request(wait, &tx());
            assert_eq!(decode_request(&body), Ok((wait, tx())));
        }
        let receipt = Response::Receipt(Receipt {
            key: 9,
            status: ReceiptStatus::Delivered {
                height: 3,
                outcome: Outcome::Applied,
            },
        });
        assert_eq!(decode_response(&encode_response(&receipt)), Ok(receipt));
        let bad = Response::Malformed("why".into());
        assert_eq!(decode_response(&encode_response(&bad)), Ok(bad));
    }

    #[test]
    fn bad_requests_are_refused() {
        assert!(decode_request(&Bytes::new()).is_err());
        let mut body = encode_request(Wait::Local, &tx()).to_vec();
        body[0] = 2;
        assert!(decode_request(&Bytes::from(body.clone())).is_err());
        body[0] = 0;
        body.pop();
        assert!(decode_request(&Bytes::from(body)).is_err());
    }

    #[test]
    fn a_local_wait_ends_at_local_finality_a_global_one_does_not() {
        let lane = ccbft_core::messages::Lane {
            domain: 0,
            shard: 0,
        };
        let local = ReceiptStatus::LocallyFinal {
            lane,
            seq: 1,
            outcome: Outcome::Applied,
        };
        assert!(Wait::Local.satisfied_by(&local));
        assert!(!Wait::Global.satisfied_by(&local));
        assert!(Wait::Global.satisfied_by(&ReceiptStatus::Overloaded));
    }
}
