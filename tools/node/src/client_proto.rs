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

/// Which receipts the client waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Locally final (the home lane committed it, with its admission outcome).
    Local = 0,
    /// Globally final (executed in the global order).
    Global = 1,
    /// Both: the locally final receipt as it comes, then the globally final one.
    Both = 2,
}

impl Wait {
    /// Whether the client is sent `status` (a refusal it always is).
    pub fn answers(self, status: &ReceiptStatus) -> bool {
        !is_local(status) || self != Wait::Global
    }

    /// Whether `status` is the last answer this client waits for.
    pub fn ends_with(self, status: &ReceiptStatus) -> bool {
        !is_local(status) || self == Wait::Local
    }
}

fn is_local(status: &ReceiptStatus) -> bool {
    matches!(
        status,
        ReceiptStatus::LocallyFinal { .. } | ReceiptStatus::LocallyOrdered { .. }
    )
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
        Some(2) => Wait::Both,
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
        for wait in [Wait::Local, Wait::Global, Wait::Both] {
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
        body[0] = 3;
        assert!(decode_request(&Bytes::from(body.clone())).is_err());
        body[0] = 0;
        body.pop();
        assert!(decode_request(&Bytes::from(body)).is_err());
    }

    #[test]
    fn each_wait_is_answered_and_ended_by_its_receipts() {
        let lane = ccbft_core::messages::Lane {
            domain: 0,
            shard: 0,
        };
        let local = ReceiptStatus::LocallyFinal {
            lane,
            seq: 1,
            outcome: Outcome::Applied,
        };
        let global = ReceiptStatus::GloballyFinal {
            height: 4,
            lane,
            seq: 1,
            outcome: Outcome::Applied,
            transfer: Transfer {
                key: 9,
                from: 1,
                to: 2,
                amount: 3,
            },
        };
        // (wait, receipt) -> (answered, ended)
        let table = [
            (Wait::Local, &local, (true, true)),
            (Wait::Global, &local, (false, false)),
            (Wait::Both, &local, (true, false)),
            (Wait::Local, &global, (true, true)),
            (Wait::Global, &global, (true, true)),
            (Wait::Both, &global, (true, true)),
            (Wait::Global, &ReceiptStatus::Overloaded, (true, true)),
            (Wait::Both, &ReceiptStatus::Overloaded, (true, true)),
        ];
        for (wait, status, expected) in table {
            let got = (wait.answers(status), wait.ends_with(status));
            assert_eq!(got, expected, "{wait:?} on {status:?}");
        }
    }
}
