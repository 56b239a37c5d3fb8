//! The versioned binary encoding of every network [`Message`] and every durable [`Record`].
//!
//! The transport sends [`encode_message`] frames and the WAL stores [`encode_record`] frames;
//! both decode with a bound on everything a peer or a torn disk can make up.
//!
//! # Frame
//!
//! ```text
//! version: u8 | kind: u8 | body
//! ```
//!
//! - `version` is [`WIRE_VERSION`]. Any incompatible change to any body below takes a new
//!   version number; a decoder refuses versions it does not know rather than guess.
//! - `kind` names the leaf variant (a prepare, a vote, a batch record): message kinds are
//!   below 0x80 and record kinds at or above it, so a record never decodes as a message.
//!   The transport can route or prioritise on this byte alone.
//! - `body` is the variant's fields in declaration order, with nothing between them:
//!   integers are fixed-size little-endian (`u32`, `u64`, `u128`), digests are 32 raw bytes,
//!   `bool` and `Option` presence are one byte (0 or 1, anything else is refused), and every
//!   variable-size field (a list, a byte string, a string) is a `u32` LE count followed by
//!   its elements. Nested enums (evidence, a message inside evidence) carry their own tag.
//!   A batch's payload is its kind (one byte), its transaction count, then its transactions'
//!   bytes as one length-prefixed string laid out as [`crate::transaction`] describes.
//!
//! # Bounds
//!
//! Every count is checked against a named bound of the core (`BATCH_TXS_MAX`,
//! `SYNC_BLOCKS_MAX`, [`crate::messages::LANES_MAX`], ...) and against the bytes left in the
//! input before anything is allocated, so a frame of n bytes never makes the decoder
//! allocate much more than n bytes, whatever its counts claim. Evidence carries whole
//! messages, which carry blocks, which carry evidence: that nesting is bounded by
//! [`crate::evidence::EVIDENCE_NESTING_MAX`]. Values a type assumes are checked too (replica
//! ids below `REPLICAS_MAX`, shards below `SHARDS_MAX`, UTF-8 reasons). Encoding asserts the
//! same bounds: a replica must never write a record or send a frame it would itself refuse.
//!
//! Each type's [`Wire`] implementation sits at the end of the file that defines it.

use crate::durable::Record;
use crate::messages::Message;
use crate::topology::{ReplicaId, REPLICAS_MAX};
use bytes::Bytes;
use std::sync::Arc;

/// The format version this build writes and the only one it reads.
pub const WIRE_VERSION: u8 = 5;

/// Why a frame was refused. `what` names the field or type being decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated: {what} needs {needed} bytes, {remaining} left")]
    Truncated {
        what: &'static str,
        needed: u64,
        remaining: u64,
    },
    #[error("unknown wire format version {0} (this build reads version {WIRE_VERSION})")]
    UnknownVersion(u8),
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{0} trailing bytes after the frame")]
    TrailingBytes(u64),
    #[error("{what}: {len} elements claimed, at most {max} allowed")]
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("{what}: {value} is out of range (must be below {bound})")]
    OutOfRange {
        what: &'static str,
        value: u64,
        bound: u64,
    },
    #[error("{what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
    #[error("evidence nested more than {max} deep")]
    TooDeep { max: u32 },
}

/// Shared byte strings at least this long go into an encoded frame by reference, not copied.
pub const SHARED_PART_BYTES_MIN: usize = 4_096;

/// Where values are encoded: a growing buffer (it derefs to its `Vec<u8>`), plus the large
/// shared byte strings (batch payloads) placed by reference between its pieces. The frame is
/// the concatenation of [`Encoder::into_parts`], which a transport writes with one vectored
/// write, so a payload received as [`Bytes`] leaves again without being copied.
#[derive(Debug, Default)]
pub struct Encoder {
    head: Vec<u8>,
    parts: Vec<Bytes>,
}

impl std::ops::Deref for Encoder {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.head
    }
}

impl std::ops::DerefMut for Encoder {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.head
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Appends `bytes`: by reference when large, else copied into the buffer.
    pub fn put_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARED_PART_BYTES_MIN {
            self.head.extend_from_slice(bytes);
            return;
        }
        if !self.head.is_empty() {
            self.parts.push(Bytes::from(std::mem::take(&mut self.head)));
        }
        self.parts.push(bytes.clone());
    }

    /// Bytes encoded so far.
    pub fn encoded_len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum::<usize>() + self.head.len()
    }

    /// The frame's pieces, in order.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        if !self.head.is_empty() {
            self.parts.push(Bytes::from(self.head));
        }
        self.parts
    }

    /// The frame in one buffer (copies the shared pieces).
    pub fn into_vec(self) -> Vec<u8> {
        if self.parts.is_empty() {
            return self.head;
        }
        let mut out = Vec::with_capacity(self.encoded_len());
        self.into_parts()
            .iter()
            .for_each(|part| out.extend_from_slice(part));
        out
    }
}

/// A type with a wire encoding. `decode` reads exactly what `encode` wrote.
pub trait Wire: Sized {
    /// Fewest bytes any value of the type encodes to: a count of them is refused at once
    /// when the rest of the input cannot hold that many.
    const ENCODED_BYTES_MIN: usize = 1;

    fn encode(&self, out: &mut Encoder);
    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError>;
}

/// A cursor over untrusted bytes: every read is bounds-checked and none panics.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    /// The frame `bytes` lies in, when it is shared: byte strings read with
    /// [`Reader::shared`] are then slices of it, not copies.
    source: Option<&'a Bytes>,
    /// Evidence levels entered so far (see [`Reader::nested`]).
    depth: u32,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            source: None,
            depth: 0,
        }
    }

    /// A reader over a shared frame: payloads decoded from it keep slices of `frame`.
    pub fn shared_source(frame: &'a Bytes) -> Reader<'a> {
        Reader {
            bytes: frame,
            source: Some(frame),
            depth: 0,
        }
    }

    /// `n` bytes as a [`Bytes`]: a slice of the shared frame, or a copy without one.
    pub fn shared(&mut self, what: &'static str, n: usize) -> Result<Bytes, WireError> {
        let source = self.source;
        let head = self.take(what, n)?;
        Ok(match source {
            Some(frame) if !head.is_empty() => frame.slice_ref(head),
            _ => Bytes::copy_from_slice(head),
        })
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.bytes.len() {
            return Err(WireError::Truncated {
                what,
                needed: n as u64,
                remaining: self.bytes.len() as u64,
            });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(what, N)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub fn u128(&mut self, what: &'static str) -> Result<u128, WireError> {
        Ok(u128::from_le_bytes(self.array(what)?))
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(WireError::UnknownTag { what, tag }),
        }
    }

    /// A `u32` that must be below `bound` (an index into something of that size).
    pub fn index(&mut self, what: &'static str, bound: usize) -> Result<u32, WireError> {
        let value = self.u32(what)?;
        if value as usize >= bound {
            return Err(WireError::OutOfRange {
                what,
                value: value.into(),
                bound: bound as u64,
            });
        }
        Ok(value)
    }

    pub fn replica(&mut self, what: &'static str) -> Result<ReplicaId, WireError> {
        self.index(what, REPLICAS_MAX)
    }

    /// A count of elements of at least `element_bytes_min` bytes each, checked against
    /// `max` and against what is left, before the caller allocates anything for it.
    pub fn count(
        &mut self,
        what: &'static str,
        max: usize,
        element_bytes_min: usize,
    ) -> Result<usize, WireError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(WireError::TooLong {
                what,
                len: len as u64,
                max: max as u64,
            });
        }
        let needed = (len as u64).saturating_mul(element_bytes_min as u64);
        if needed > self.bytes.len() as u64 {
            return Err(WireError::Truncated {
                what,
                needed,
                remaining: self.bytes.len() as u64,
            });
        }
        Ok(len)
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let len = self.count(what, max, 1)?;
        self.take(what, len)
    }

    /// A length-prefixed list of at most `max` elements.
    pub fn vec<T: Wire>(&mut self, what: &'static str, max: usize) -> Result<Vec<T>, WireError> {
        let len = self.count(what, max, T::ENCODED_BYTES_MIN.max(1))?;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(T::decode(self)?);
        }
        Ok(items)
    }

    /// Decodes one level deeper into recursive data, refused beyond `max` levels.
    pub fn nested<T>(
        &mut self,
        max: u32,
        decode: impl FnOnce(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<T, WireError> {
        if self.depth >= max {
            return Err(WireError::TooDeep { max });
        }
        self.depth += 1;
        let result = decode(self);
        self.depth -= 1;
        result
    }

    /// The frame must end here.
    pub fn finish(self) -> Result<(), WireError> {
        match self.bytes.len() {
            0 => Ok(()),
            left => Err(WireError::TrailingBytes(left as u64)),
        }
    }
}

pub fn put_u8(out: &mut Encoder, value: u8) {
    out.push(value);
}

pub fn put_u32(out: &mut Encoder, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub fn put_u64(out: &mut Encoder, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub fn put_u128(out: &mut Encoder, value: u128) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub fn put_bool(out: &mut Encoder, value: bool) {
    out.push(value.into());
}

/// A count the decoder will accept: writing one it refuses is a bug on our side (a WAL
/// record nobody can read back), so it stops here rather than on restart.
pub fn put_count(out: &mut Encoder, what: &'static str, len: usize, max: usize) {
    assert!(len <= max, "{what}: {len} elements, the wire allows {max}");
    put_u32(out, u32::try_from(len).expect("bounds fit in u32"));
}

pub fn put_bytes(out: &mut Encoder, what: &'static str, bytes: &[u8], max: usize) {
    put_count(out, what, bytes.len(), max);
    out.extend_from_slice(bytes);
}

pub fn put_vec<T: Wire>(out: &mut Encoder, what: &'static str, items: &[T], max: usize) {
    put_count(out, what, items.len(), max);
    items.iter().for_each(|item| item.encode(out));
}

/// Sequence numbers in a list (a block's cut).
impl Wire for u64 {
    const ENCODED_BYTES_MIN: usize = 8;

    fn encode(&self, out: &mut Encoder) {
        put_u64(out, *self);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        reader.u64("u64")
    }
}

impl<T: Wire> Wire for Option<T> {
    fn encode(&self, out: &mut Encoder) {
        put_bool(out, self.is_some());
        if let Some(value) = self {
            value.encode(out);
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        match reader.bool("option presence")? {
            false => Ok(None),
            true => T::decode(reader).map(Some),
        }
    }
}

impl<T: Wire> Wire for Box<T> {
    const ENCODED_BYTES_MIN: usize = T::ENCODED_BYTES_MIN;

    fn encode(&self, out: &mut Encoder) {
        (**self).encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        T::decode(reader).map(Box::new)
    }
}

/// Shared values go on the wire by content; decoding rebuilds the `Arc`.
impl<T: Wire> Wire for Arc<T> {
    const ENCODED_BYTES_MIN: usize = T::ENCODED_BYTES_MIN;

    fn encode(&self, out: &mut Encoder) {
        (**self).encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        T::decode(reader).map(Arc::new)
    }
}

fn encode_frame<T: Wire>(value: &T) -> Encoder {
    let mut out = Encoder::new();
    out.push(WIRE_VERSION);
    value.encode(&mut out);
    out
}

fn decode_frame<T: Wire>(mut reader: Reader<'_>) -> Result<T, WireError> {
    let version = reader.u8("format version")?;
    if version != WIRE_VERSION {
        return Err(WireError::UnknownVersion(version));
    }
    let value = T::decode(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

/// One network frame: what the transport sends.
pub fn encode_message(message: &Message) -> Vec<u8> {
    encode_frame(message).into_vec()
}

/// [`encode_message`] as pieces for a vectored write: the batch payloads it carries are the
/// very [`Bytes`] the replica holds (no copy when they are large).
pub fn encode_message_parts(message: &Message) -> Vec<Bytes> {
    encode_frame(message).into_parts()
}

/// Refuses anything [`encode_message`] would not have written.
pub fn decode_message(bytes: &[u8]) -> Result<Message, WireError> {
    decode_frame(Reader::new(bytes))
}

/// [`decode_message`] of a frame the transport holds as [`Bytes`]: the batches in it keep
/// slices of `frame` (no copy), so a batch goes from the socket to the log and to peers as
/// the bytes it arrived in.
pub fn decode_message_shared(frame: &Bytes) -> Result<Message, WireError> {
    decode_frame(Reader::shared_source(frame))
}

/// One durable record: what the WAL stores (it adds its own length and checksum).
pub fn encode_record(record: &Record) -> Vec<u8> {
    encode_frame(record).into_vec()
}

/// Refuses anything [`encode_record`] would not have written.
pub fn decode_record(bytes: &[u8]) -> Result<Record, WireError> {
    decode_frame(Reader::new(bytes))
}

/// [`decode_record`] keeping slices of `frame` (a record read from the log).
pub fn decode_record_shared(frame: &Bytes) -> Result<Record, WireError> {
    decode_frame(Reader::shared_source(frame))
}

/// A replica's answer to a client: what the client listener sends back.
pub fn encode_receipt(receipt: &crate::replica::Receipt) -> Vec<u8> {
    encode_frame(receipt).into_vec()
}

/// Refuses anything [`encode_receipt`] would not have written.
pub fn decode_receipt(bytes: &[u8]) -> Result<crate::replica::Receipt, WireError> {
    decode_frame(Reader::new(bytes))
}

/// A client's request: one signed transaction.
pub fn encode_transaction(tx: &crate::transaction::Transaction) -> Vec<u8> {
    encode_frame(tx).into_vec()
}

/// [`encode_transaction`]'s frame, decoded keeping slices of `frame` (opaque data is not
/// copied).
pub fn decode_transaction_shared(
    frame: &Bytes,
) -> Result<crate::transaction::Transaction, WireError> {
    decode_frame(Reader::shared_source(frame))
}

#[cfg(test)]
mod tests;
