//! What a cluster orders: ledger transfers, or an application's opaque byte transactions,
//! chosen in the cluster file ([`PayloadKind`]); and the batch of them a lane certifies
//! ([`Payload`]), held as its encoded bytes.
//!
//! A payload is the transactions' wire encoding in one [`Bytes`]: a batch decoded from a
//! socket or a log record keeps slices of the frame it came in, and is hashed, stored and sent
//! on as those bytes, never decoded into per-transaction allocations and encoded again. The
//! layout is checked once, when the payload is built or decoded; reading a transaction back is
//! then infallible.
//!
//! Layout of a payload's bytes, by kind (integers little-endian):
//! - transfers: `count` fixed-size entries of [`TRANSFER_ENTRY_BYTES`]: the
//!   [`SignedTransfer`], then its credit floor `u128` (the debited account's credit count the
//!   primary had executed when it cut the batch; see `ledger::admission`);
//! - opaque: `count` of `client: u32 | key: u128 | len: u32 | data | signature: 64 bytes`.

use crate::client::{
    ClientId, ClientSignature, SignedTransfer, CLIENT_SIGNATURE_BYTES, SIGNED_TRANSFER_BYTES,
};
use crate::crypto::{digest, Digest};
use crate::ledger::IdempotencyKey;
use crate::pbft::BATCH_TXS_MAX;
use crate::wire::{put_u32, put_u8, Encoder, Reader, Wire, WireError};
use bytes::Bytes;

/// Most bytes of one opaque transaction's data.
pub const OPAQUE_DATA_BYTES_MAX: usize = 64 * 1024;
/// Most bytes of one batch's transactions, whatever their kind: a batch is one frame.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bytes of a transfer in a batch: the signed transfer and its credit floor.
pub const TRANSFER_ENTRY_BYTES: usize = SIGNED_TRANSFER_BYTES + 16;
/// Bytes of an opaque transaction around its data.
const OPAQUE_FIXED_BYTES: usize = 4 + 16 + 4 + CLIENT_SIGNATURE_BYTES;
/// Domain separation: a client's signature over opaque data verifies as nothing else.
const SIGNED_OPAQUE_CONTEXT: &[u8; 15] = b"ccbft/opaque/v1";
const _: () = assert!(BATCH_TXS_MAX * TRANSFER_ENTRY_BYTES <= BATCH_BYTES_MAX);

/// What a cluster orders, from its cluster file (`transactions = "transfers" | "opaque"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// Signed ledger transfers, executed by the payments ledger.
    #[default]
    Transfers,
    /// Signed opaque byte strings: ordered, persisted and delivered in order to the
    /// application, not executed by the replica.
    Opaque,
}

impl PayloadKind {
    pub fn name(self) -> &'static str {
        match self {
            PayloadKind::Transfers => "transfers",
            PayloadKind::Opaque => "opaque",
        }
    }

    pub fn from_name(name: &str) -> Option<PayloadKind> {
        match name {
            "transfers" => Some(PayloadKind::Transfers),
            "opaque" => Some(PayloadKind::Opaque),
            _ => None,
        }
    }

    fn tag(self) -> u8 {
        match self {
            PayloadKind::Transfers => 0,
            PayloadKind::Opaque => 1,
        }
    }

    fn decode_tag(reader: &mut Reader<'_>, what: &'static str) -> Result<PayloadKind, WireError> {
        match reader.u8(what)? {
            0 => Ok(PayloadKind::Transfers),
            1 => Ok(PayloadKind::Opaque),
            tag => Err(WireError::UnknownTag { what, tag }),
        }
    }
}

const OPAQUE_KEY_CONTEXT: &[u8] = b"ccbft/opaque-key/v1";

/// An application's transaction in an opaque cluster: bytes the replica orders but does not
/// interpret, signed by a registered client. `key` names it in receipts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpaqueTx {
    pub client: ClientId,
    pub key: IdempotencyKey,
    pub data: Bytes,
    pub signature: ClientSignature,
}

impl OpaqueTx {
    /// The client's key scoped to the client ([`crate::ledger::scoped_key`]): what the
    /// ledger, the lanes and the receipts know the transaction by.
    pub fn ledger_key(&self) -> IdempotencyKey {
        crate::ledger::scoped_key(OPAQUE_KEY_CONTEXT, u64::from(self.client), self.key)
    }

    /// What the client signs: context, client, key, data.
    pub fn signed_bytes(client: ClientId, key: IdempotencyKey, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNED_OPAQUE_CONTEXT.len() + 4 + 16 + data.len());
        out.extend_from_slice(SIGNED_OPAQUE_CONTEXT);
        out.extend_from_slice(&client.to_le_bytes());
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        assert!(
            self.data.len() <= OPAQUE_DATA_BYTES_MAX,
            "opaque data bounded"
        );
        out.extend_from_slice(&self.client.to_le_bytes());
        out.extend_from_slice(&self.key.to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.signature.0);
    }

    /// Decodes one opaque transaction; its data is a slice of `source` (no copy) when the
    /// reader has one.
    fn decode_from(reader: &mut Reader<'_>) -> Result<OpaqueTx, WireError> {
        let client = reader.u32("opaque client")?;
        let key = reader.u128("opaque key")?;
        let len = reader.count("opaque data", OPAQUE_DATA_BYTES_MAX, 1)?;
        let data = reader.shared("opaque data", len)?;
        let signature = ClientSignature(reader.array("opaque signature")?);
        Ok(OpaqueTx {
            client,
            key,
            data,
            signature,
        })
    }
}

/// One client transaction of either kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transaction {
    Transfer(SignedTransfer),
    Opaque(OpaqueTx),
}

impl From<SignedTransfer> for Transaction {
    fn from(tx: SignedTransfer) -> Transaction {
        Transaction::Transfer(tx)
    }
}

impl From<OpaqueTx> for Transaction {
    fn from(tx: OpaqueTx) -> Transaction {
        Transaction::Opaque(tx)
    }
}

impl Transaction {
    pub fn kind(&self) -> PayloadKind {
        match self {
            Transaction::Transfer(_) => PayloadKind::Transfers,
            Transaction::Opaque(_) => PayloadKind::Opaque,
        }
    }

    /// The key its receipts carry; a lane orders one transaction per key at a time.
    pub fn key(&self) -> IdempotencyKey {
        match self {
            Transaction::Transfer(tx) => tx.key(),
            Transaction::Opaque(tx) => tx.ledger_key(),
        }
    }

    /// What picks its shard: the debited account of a transfer (so one shard sees every
    /// debit of an account), the key of an opaque transaction (which spreads them).
    pub fn routing_key(&self) -> u64 {
        match self {
            Transaction::Transfer(tx) => tx.routing_key(),
            Transaction::Opaque(tx) => tx.key as u64 ^ (tx.key >> 64) as u64,
        }
    }

    pub fn client(&self) -> ClientId {
        match self {
            Transaction::Transfer(tx) => tx.client,
            Transaction::Opaque(tx) => tx.client,
        }
    }

    pub fn as_transfer(&self) -> Option<&SignedTransfer> {
        match self {
            Transaction::Transfer(tx) => Some(tx),
            Transaction::Opaque(_) => None,
        }
    }
}

/// The transactions of one batch, all of one kind, as their encoded bytes. Cloning shares
/// the bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Payload {
    kind: PayloadKind,
    count: u32,
    bytes: Bytes,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Payload({} {}, {} bytes)",
            self.count,
            self.kind.name(),
            self.bytes.len()
        )
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::empty()
    }
}

impl From<Vec<SignedTransfer>> for Payload {
    fn from(txs: Vec<SignedTransfer>) -> Payload {
        Payload::from_transfers(&txs)
    }
}

impl Payload {
    /// The batch with no transactions (a new view's filler). It is of every kind.
    pub fn empty() -> Payload {
        Payload {
            kind: PayloadKind::Transfers,
            count: 0,
            bytes: Bytes::new(),
        }
    }

    /// Transfers with no credits counted (floor 0): admission may spend only the genesis
    /// balance less earlier debits.
    pub fn from_transfers(txs: &[SignedTransfer]) -> Payload {
        let stamped: Vec<(SignedTransfer, u128)> = txs.iter().map(|&tx| (tx, 0)).collect();
        Payload::from_stamped(&stamped)
    }

    /// Transfers, each with its credit floor.
    pub fn from_stamped(txs: &[(SignedTransfer, u128)]) -> Payload {
        assert!(txs.len() <= BATCH_TXS_MAX, "batch bounded");
        let mut bytes = Vec::with_capacity(txs.len() * TRANSFER_ENTRY_BYTES);
        for (tx, floor) in txs {
            bytes.extend_from_slice(&tx.to_bytes());
            bytes.extend_from_slice(&floor.to_le_bytes());
        }
        Payload {
            kind: PayloadKind::Transfers,
            count: txs.len() as u32,
            bytes: bytes.into(),
        }
    }

    /// A batch of `txs`, which must all be of one kind (a lane's queue holds only its
    /// cluster's kind); transfers get no credit floor.
    pub fn of(txs: &[Transaction]) -> Payload {
        Payload::of_stamped(txs, |_| 0)
    }

    /// A batch of `txs`, each transfer stamped with `floor(transfer)`.
    pub fn of_stamped(txs: &[Transaction], floor: impl Fn(&SignedTransfer) -> u128) -> Payload {
        assert!(txs.len() <= BATCH_TXS_MAX, "batch bounded");
        let Some(first) = txs.first() else {
            return Payload::empty();
        };
        let kind = first.kind();
        let mut bytes = Vec::new();
        for tx in txs {
            match tx {
                Transaction::Transfer(tx) if kind == PayloadKind::Transfers => {
                    bytes.extend_from_slice(&tx.to_bytes());
                    bytes.extend_from_slice(&floor(tx).to_le_bytes());
                }
                Transaction::Opaque(tx) if kind == PayloadKind::Opaque => {
                    tx.encode_into(&mut bytes)
                }
                _ => panic!("a batch holds transactions of one kind"),
            }
        }
        assert!(bytes.len() <= BATCH_BYTES_MAX, "batch bytes bounded");
        Payload {
            kind,
            count: txs.len() as u32,
            bytes: bytes.into(),
        }
    }

    pub fn kind(&self) -> PayloadKind {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether a cluster ordering `kind` may hold this batch (an empty one fits any).
    pub fn fits(&self, kind: PayloadKind) -> bool {
        self.is_empty() || self.kind == kind
    }

    /// The encoded transactions, as hashed and sent.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// What a batch's local certificate signs, with its kind, so a batch of one kind never
    /// passes as the other.
    pub fn digest(&self) -> Digest {
        digest(&[b"batch", &[self.kind.tag()], &self.bytes])
    }

    /// The batch's transactions, decoded one at a time (opaque data stays shared).
    pub fn iter(&self) -> impl Iterator<Item = Transaction> + '_ {
        self.entries().map(|(tx, _)| tx)
    }

    /// The batch's transactions with their credit floors (0 for opaque ones).
    pub fn entries(&self) -> impl Iterator<Item = (Transaction, u128)> + '_ {
        let mut reader = Reader::shared_source(&self.bytes);
        (0..self.count).map(move |_| {
            decode_entry(self.kind, &mut reader).expect("a payload's layout is checked")
        })
    }

    /// The batch's transfers with their credit floors; none for an opaque batch.
    pub fn stamped_transfers(&self) -> impl Iterator<Item = (SignedTransfer, u128)> + '_ {
        self.entries().filter_map(|(tx, floor)| match tx {
            Transaction::Transfer(tx) => Some((tx, floor)),
            Transaction::Opaque(_) => None,
        })
    }

    /// The batch's transfers; none for an opaque batch.
    pub fn transfers(&self) -> impl Iterator<Item = SignedTransfer> + '_ {
        self.stamped_transfers().map(|(tx, _)| tx)
    }
}

fn decode_transaction(
    kind: PayloadKind,
    reader: &mut Reader<'_>,
) -> Result<Transaction, WireError> {
    Ok(match kind {
        PayloadKind::Transfers => Transaction::Transfer(SignedTransfer::decode(reader)?),
        PayloadKind::Opaque => Transaction::Opaque(OpaqueTx::decode_from(reader)?),
    })
}

/// One transaction of a payload, with its credit floor (transfers carry one).
fn decode_entry(
    kind: PayloadKind,
    reader: &mut Reader<'_>,
) -> Result<(Transaction, u128), WireError> {
    let tx = decode_transaction(kind, reader)?;
    let floor = match kind {
        PayloadKind::Transfers => reader.u128("credit floor")?,
        PayloadKind::Opaque => 0,
    };
    Ok((tx, floor))
}

// ---- Wire encoding (crate::wire) ----

impl Wire for Payload {
    const ENCODED_BYTES_MIN: usize = 9;

    /// Kind, count, byte length, then the bytes (by reference when large).
    fn encode(&self, out: &mut Encoder) {
        put_u8(out, self.kind.tag());
        put_u32(out, self.count);
        put_u32(out, self.bytes.len() as u32);
        out.put_shared(&self.bytes);
    }

    /// Decodes a payload: kind, count, byte length, then the bytes, whose layout must hold
    /// exactly `count` well-formed transactions of the kind.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let kind = PayloadKind::decode_tag(reader, "payload kind")?;
        let count = reader.count("payload transactions", BATCH_TXS_MAX, 1)?;
        let len = reader.count("payload bytes", BATCH_BYTES_MAX, 1)?;
        let bytes = reader.shared("payload bytes", len)?;
        let mut inner = Reader::shared_source(&bytes);
        for _ in 0..count {
            decode_entry(kind, &mut inner)?;
        }
        inner.finish()?;
        Ok(Payload {
            kind,
            count: count as u32,
            bytes,
        })
    }
}

impl Wire for Transaction {
    const ENCODED_BYTES_MIN: usize = 1 + OPAQUE_FIXED_BYTES;

    fn encode(&self, out: &mut Encoder) {
        put_u8(out, self.kind().tag());
        match self {
            Transaction::Transfer(tx) => tx.encode(out),
            Transaction::Opaque(tx) => tx.encode_into(out),
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let kind = PayloadKind::decode_tag(reader, "transaction kind")?;
        decode_transaction(kind, reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Transfer;
    use crate::wire::SHARED_PART_BYTES_MIN;

    fn transfer(key: u128) -> SignedTransfer {
        SignedTransfer {
            transfer: Transfer {
                key,
                from: 1,
                to: 2,
                amount: 3,
            },
            client: 4,
            signature: ClientSignature([5; CLIENT_SIGNATURE_BYTES]),
        }
    }

    fn opaque(key: u128, data: &[u8]) -> OpaqueTx {
        OpaqueTx {
            client: 9,
            key,
            data: Bytes::copy_from_slice(data),
            signature: ClientSignature([7; CLIENT_SIGNATURE_BYTES]),
        }
    }

    fn encoded(payload: &Payload) -> Vec<u8> {
        let mut out = Encoder::new();
        payload.encode(&mut out);
        out.into_vec()
    }

    fn round_trip(payload: &Payload) -> Payload {
        let frame = Bytes::from(encoded(payload));
        let mut reader = Reader::shared_source(&frame);
        let decoded = Payload::decode(&mut reader).unwrap();
        reader.finish().unwrap();
        decoded
    }

    #[test]
    fn a_payload_reads_back_the_transactions_it_was_built_from() {
        let transfers = vec![transfer(1), transfer(2)];
        let payload = Payload::from_transfers(&transfers);
        assert_eq!(payload.transfers().collect::<Vec<_>>(), transfers);
        assert_eq!(round_trip(&payload), payload);

        let txs: Vec<Transaction> = vec![opaque(1, b"a").into(), opaque(2, b"").into()];
        let payload = Payload::of(&txs);
        assert_eq!(payload.kind(), PayloadKind::Opaque);
        assert_eq!(payload.iter().collect::<Vec<_>>(), txs);
        assert_eq!(payload.transfers().count(), 0);
        assert_eq!(round_trip(&payload), payload);
    }

    #[test]
    fn decoded_opaque_data_shares_the_frame_it_came_in() {
        let payload = Payload::of(&[opaque(1, &[42; 1000]).into()]);
        let frame = Bytes::from(encoded(&payload));
        let decoded = Payload::decode(&mut Reader::shared_source(&frame)).unwrap();
        let range = frame.as_ptr_range();
        assert!(
            range.contains(&decoded.bytes().as_ptr()),
            "payload bytes are a slice"
        );
        let Some(Transaction::Opaque(tx)) = decoded.iter().next() else {
            panic!("one opaque transaction");
        };
        assert!(range.contains(&tx.data.as_ptr()), "opaque data is a slice");
    }

    #[test]
    fn a_large_payload_is_encoded_by_reference() {
        let payload = Payload::of(&[opaque(1, &[7; 2 * SHARED_PART_BYTES_MIN]).into()]);
        let mut out = Encoder::new();
        out.push(0xEE);
        payload.encode(&mut out);
        out.push(0xFF);
        let parts = out.into_parts();
        assert_eq!(parts.len(), 3, "head, the payload itself, tail");
        assert_eq!(parts[1].as_ptr(), payload.bytes().as_ptr(), "not copied");
        let mut whole = Encoder::new();
        whole.push(0xEE);
        payload.encode(&mut whole);
        whole.push(0xFF);
        assert_eq!(parts.concat(), whole.into_vec());
        let small = Payload::from_transfers(&[transfer(1)]);
        let mut out = Encoder::new();
        small.encode(&mut out);
        assert_eq!(
            out.into_parts().len(),
            1,
            "a small payload is copied into the head"
        );
    }

    #[test]
    fn the_digest_tells_the_kinds_and_contents_apart() {
        let a = Payload::from_transfers(&[transfer(1)]);
        assert_ne!(a.digest(), Payload::from_transfers(&[transfer(2)]).digest());
        assert_ne!(
            Payload::of(&[opaque(1, b"x").into()]).digest(),
            Payload::of(&[opaque(1, b"y").into()]).digest()
        );
        assert_eq!(Payload::of(&[]), Payload::empty());
        assert!(Payload::empty().fits(PayloadKind::Opaque));
        assert!(!a.fits(PayloadKind::Opaque));
    }

    #[test]
    fn a_payload_whose_layout_disagrees_with_its_count_is_refused() {
        let payload = Payload::from_transfers(&[transfer(1), transfer(2)]);
        let mut out = encoded(&payload);
        out[1] = 3; // count 3, bytes for 2
        let frame = Bytes::from(out.clone());
        assert!(Payload::decode(&mut Reader::shared_source(&frame)).is_err());
        out[1] = 1; // count 1, bytes for 2
        let frame = Bytes::from(out);
        assert!(Payload::decode(&mut Reader::shared_source(&frame)).is_err());
    }
}
