//! Frames: a fixed 20-byte header and a bounded body.
//!
//! ```text
//! offset size field
//!      0    4 magic      b"CCBF"
//!      4    1 version    FRAME_VERSION
//!      5    1 kind       FrameKind
//!      6    2 flags      u16 LE, only FLAGS_KNOWN bits may be set
//!      8    4 body_len   u32 LE, at most the decoder's body maximum
//!     12    8 checksum   xxh3-64 of the body, u64 LE
//!     20    - body
//! ```
//!
//! There is no sender field: on a replica link the authenticated TLS key says who sent a frame.
//!
//! [`FrameDecoder`] works on a `BytesMut` read buffer: it waits for partial reads, checks
//! the header before the body arrives (so an oversized length is refused before any memory is
//! reserved for it), and hands out the body as a `Bytes` slice of the read buffer, never
//! copied. Every malformed input is an error value; nothing here panics on bytes from a peer.

use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;
use xxhash_rust::xxh3::xxh3_64;

/// `b"CCBF"` as the first four bytes of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"CCBF";
/// The one wire version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// Bytes of the fixed header.
pub const FRAME_HEADER_BYTES: usize = 20;
/// The largest body a replica link accepts (a full batch or a state-transfer chunk).
pub const FRAME_BODY_BYTES_MAX: u32 = 8 * 1024 * 1024;
/// The largest body the client listener accepts (one signed transaction or a small batch).
pub const CLIENT_FRAME_BODY_BYTES_MAX: u32 = 64 * 1024;
/// Flag bits defined so far: none. A frame with any other bit set is refused, so a later
/// version can give them a meaning without an old peer misreading it.
pub const FLAGS_KNOWN: u16 = 0;
/// Bodies up to this size are copied into the coalescing write buffer; larger ones are
/// written from their own buffer without a copy.
pub const COALESCE_BODY_BYTES_MAX: usize = 16 * 1024;
/// Bytes read from a socket per read call when no larger frame is pending.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

const _: () = assert!(CLIENT_FRAME_BODY_BYTES_MAX <= FRAME_BODY_BYTES_MAX);
const _: () = assert!(COALESCE_BODY_BYTES_MAX < FRAME_BODY_BYTES_MAX as usize);
const _: () = assert!(FRAME_HEADER_BYTES == 4 + 1 + 1 + 2 + 4 + 8);

/// What a frame carries. The kind also picks the send class (see [`FrameKind::class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A consensus message (votes, proposals, timeouts): the priority class.
    Consensus = 1,
    /// A batch payload or a state-transfer chunk: the bulk class.
    Bulk = 2,
    /// RTT probe; the body (an opaque nonce) comes back in a `Pong`.
    Ping = 3,
    /// Answer to a `Ping`, echoing its body.
    Pong = 4,
    /// A client request (a signed transaction) on the client listener.
    ClientRequest = 5,
    /// A replica's answer to a client request.
    ClientResponse = 6,
}

impl FrameKind {
    /// The kind for a wire byte.
    pub fn from_u8(byte: u8) -> Option<FrameKind> {
        Some(match byte {
            1 => FrameKind::Consensus,
            2 => FrameKind::Bulk,
            3 => FrameKind::Ping,
            4 => FrameKind::Pong,
            5 => FrameKind::ClientRequest,
            6 => FrameKind::ClientResponse,
            _ => return None,
        })
    }

    /// The send-queue class: everything but bulk payloads goes ahead.
    pub fn class(self) -> SendClass {
        match self {
            FrameKind::Bulk => SendClass::Bulk,
            _ => SendClass::Consensus,
        }
    }
}

/// The two classes of a per-peer send queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendClass {
    /// Consensus messages, pings and pongs: always sent before bulk.
    Consensus = 0,
    /// Batch payloads and state transfer.
    Bulk = 1,
}

/// A decoded (or to-be-sent) frame. The body is a slice of the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub flags: u16,
    pub body: Bytes,
}

impl Frame {
    pub fn new(kind: FrameKind, body: Bytes) -> Frame {
        Frame {
            kind,
            flags: 0,
            body,
        }
    }

    /// Bytes on the wire, header included.
    pub fn wire_len(&self) -> usize {
        FRAME_HEADER_BYTES + self.body.len()
    }

    /// The encoded header for this frame.
    ///
    /// # Panics
    /// If the body exceeds [`FRAME_BODY_BYTES_MAX`]: that is a bug of the local sender, which
    /// must check [`check_body_len`] first, not input from a peer.
    pub fn header(&self) -> [u8; FRAME_HEADER_BYTES] {
        assert!(self.body.len() <= FRAME_BODY_BYTES_MAX as usize);
        encode_header(self.kind, self.flags, &self.body)
    }
}

/// Checks a body the local side wants to send against the link's maximum.
pub fn check_body_len(len: usize, max: u32) -> Result<(), FrameError> {
    if len > max as usize {
        return Err(FrameError::Oversized {
            len: u64::try_from(len).unwrap_or(u64::MAX),
            max,
        });
    }
    Ok(())
}

/// Encodes the header of a frame with this body.
pub fn encode_header(kind: FrameKind, flags: u16, body: &[u8]) -> [u8; FRAME_HEADER_BYTES] {
    let len = u32::try_from(body.len()).expect("body length checked against the maximum");
    let mut h = [0u8; FRAME_HEADER_BYTES];
    h[0..4].copy_from_slice(&FRAME_MAGIC);
    h[4] = FRAME_VERSION;
    h[5] = kind as u8;
    h[6..8].copy_from_slice(&flags.to_le_bytes());
    h[8..12].copy_from_slice(&len.to_le_bytes());
    h[12..20].copy_from_slice(&xxh3_64(body).to_le_bytes());
    h
}

/// Appends a whole frame (header and body) to `out`; for tests, fuzzing and small frames.
pub fn encode_into(frame: &Frame, out: &mut BytesMut) {
    out.extend_from_slice(&frame.header());
    out.extend_from_slice(&frame.body);
}

/// Why a byte stream is not a valid frame. Each one closes the link that sent it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    #[error("unsupported frame version {0}")]
    BadVersion(u8),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("reserved flag bits set: {0:#06x}")]
    ReservedFlags(u16),
    #[error("frame body of {len} bytes exceeds the maximum of {max}")]
    Oversized { len: u64, max: u32 },
    #[error("body checksum mismatch")]
    Checksum,
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
    #[error("frame kind {0:?} not allowed on this link")]
    UnexpectedKind(FrameKind),
}

impl FrameError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::BadMagic(_) => "bad_magic",
            FrameError::BadVersion(_) => "bad_version",
            FrameError::UnknownKind(_) => "unknown_kind",
            FrameError::ReservedFlags(_) => "reserved_flags",
            FrameError::Oversized { .. } => "oversized",
            FrameError::Checksum => "checksum",
            FrameError::Truncated { .. } => "truncated",
            FrameError::UnexpectedKind(_) => "unexpected_kind",
        }
    }
}

/// A validated header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    kind: FrameKind,
    flags: u16,
    body_len: u32,
    checksum: u64,
}

fn parse_header(h: &[u8], body_max: u32) -> Result<Header, FrameError> {
    assert!(h.len() >= FRAME_HEADER_BYTES);
    let magic: [u8; 4] = [h[0], h[1], h[2], h[3]];
    if magic != FRAME_MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    if h[4] != FRAME_VERSION {
        return Err(FrameError::BadVersion(h[4]));
    }
    let kind = FrameKind::from_u8(h[5]).ok_or(FrameError::UnknownKind(h[5]))?;
    let flags = u16::from_le_bytes([h[6], h[7]]);
    if flags & !FLAGS_KNOWN != 0 {
        return Err(FrameError::ReservedFlags(flags));
    }
    let body_len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if body_len > body_max {
        return Err(FrameError::Oversized {
            len: u64::from(body_len),
            max: body_max,
        });
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&h[12..20]);
    Ok(Header {
        kind,
        flags,
        body_len,
        checksum: u64::from_le_bytes(c),
    })
}

/// Stream decoder over a read buffer. Feed bytes with [`FrameDecoder::read_buf`] (or
/// [`FrameDecoder::extend`]) and take frames with [`FrameDecoder::decode`].
#[derive(Debug)]
pub struct FrameDecoder {
    /// `buf[..filled]` holds received bytes; `buf[filled..]` is zeroed spare for the next
    /// read, kept across reads so each byte is zeroed once, not once per read.
    buf: BytesMut,
    filled: usize,
    body_max: u32,
    /// The header of the frame whose body is being read, once checked.
    pending: Option<Header>,
}

impl FrameDecoder {
    pub fn new(body_max: u32) -> FrameDecoder {
        assert!(body_max <= FRAME_BODY_BYTES_MAX);
        FrameDecoder {
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            filled: 0,
            body_max,
            pending: None,
        }
    }

    /// Bytes buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.filled
    }

    /// Copies `bytes` into the read buffer (tests and fuzzing; sockets use `read_buf`).
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.truncate(self.filled);
        self.buf.extend_from_slice(bytes);
        self.filled = self.buf.len();
    }

    /// The writable tail of the read buffer for the next socket read, sized so a pending
    /// large frame arrives in one buffer. Call [`FrameDecoder::commit_read`] with the count
    /// read. The tail is zeroed (no unsafe code); spare zeroed bytes are kept for later reads.
    pub fn read_buf(&mut self) -> &mut [u8] {
        let want = match self.pending {
            Some(h) => (FRAME_HEADER_BYTES + h.body_len as usize).saturating_sub(self.filled),
            None => 0,
        }
        .max(READ_CHUNK_BYTES);
        if self.buf.len() < self.filled + want {
            self.buf.resize(self.filled + want, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// Marks `n` bytes of the tail handed out by the last `read_buf` as received.
    pub fn commit_read(&mut self, n: usize) {
        assert!(self.filled + n <= self.buf.len());
        self.filled += n;
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the reason the
    /// stream is invalid (after which the link must be closed: the decoder makes no attempt
    /// to resynchronise).
    pub fn decode(&mut self) -> Result<Option<Frame>, FrameError> {
        let header = match self.pending {
            Some(h) => h,
            None => {
                if self.filled < FRAME_HEADER_BYTES {
                    // Reject a wrong magic as soon as its bytes are in, so garbage is
                    // refused without waiting for a full header.
                    let n = self.filled.min(4);
                    if self.buf[..n] != FRAME_MAGIC[..n] {
                        let mut m = [0u8; 4];
                        m[..n].copy_from_slice(&self.buf[..n]);
                        return Err(FrameError::BadMagic(m));
                    }
                    return Ok(None);
                }
                let h = parse_header(&self.buf[..FRAME_HEADER_BYTES], self.body_max)?;
                self.pending = Some(h);
                h
            }
        };
        let total = FRAME_HEADER_BYTES + header.body_len as usize;
        if self.filled < total {
            return Ok(None);
        }
        self.pending = None;
        let mut whole = self.buf.split_to(total);
        self.filled -= total;
        whole.advance(FRAME_HEADER_BYTES);
        let body = whole.freeze();
        if xxh3_64(&body) != header.checksum {
            return Err(FrameError::Checksum);
        }
        Ok(Some(Frame {
            kind: header.kind,
            flags: header.flags,
            body,
        }))
    }

    /// Called at end of stream: an error if a frame was cut off.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.filled == 0 {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: self.filled,
            })
        }
    }
}

/// Gathers frames for one write: headers and small bodies are copied into one coalescing
/// buffer; a large body becomes its own slice, written from its buffer without a copy.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Finished segments, in order: coalesced runs and large bodies.
    segments: Vec<Bytes>,
    current: BytesMut,
    frames: u64,
    bytes: u64,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    pub fn push(&mut self, frame: &Frame) {
        self.current.extend_from_slice(&frame.header());
        if frame.body.len() <= COALESCE_BODY_BYTES_MAX {
            self.current.extend_from_slice(&frame.body);
        } else {
            if !self.current.is_empty() {
                self.segments.push(self.current.split().freeze());
            }
            self.segments.push(frame.body.clone());
        }
        self.frames += 1;
        self.bytes += frame.wire_len() as u64;
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Wire bytes pushed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The segments to write, in order; resets the batch for reuse.
    pub fn take_segments(&mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            self.segments.push(self.current.split().freeze());
        }
        self.frames = 0;
        self.bytes = 0;
        std::mem::take(&mut self.segments)
    }
}

/// Writes every segment with vectored writes, resuming after partial writes.
pub async fn write_segments<W>(w: &mut W, segments: &[Bytes]) -> std::io::Result<()>
where
    W: futures_lite::AsyncWrite + Unpin,
{
    use futures_lite::AsyncWriteExt;
    const SLICES_MAX: usize = 64;
    let mut first = 0usize;
    let mut offset = 0usize;
    while first < segments.len() {
        let end = (first + SLICES_MAX).min(segments.len());
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(end - first);
        slices.push(IoSlice::new(&segments[first][offset..]));
        for s in &segments[first + 1..end] {
            slices.push(IoSlice::new(s));
        }
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        // Advance over what was written.
        while n > 0 {
            let left = segments[first].len() - offset;
            if n >= left {
                n -= left;
                first += 1;
                offset = 0;
            } else {
                offset += n;
                n = 0;
            }
        }
        while first < segments.len() && segments[first].len() == offset {
            first += 1;
            offset = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: FrameKind, body: &[u8]) -> Frame {
        Frame::new(kind, Bytes::copy_from_slice(body))
    }

    #[test]
    fn decodes_byte_by_byte() {
        let frames = [
            frame(FrameKind::Consensus, b"hello"),
            frame(FrameKind::Bulk, &[7u8; 3000]),
            frame(FrameKind::Ping, b""),
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            encode_into(f, &mut wire);
        }
        let mut d = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        let mut out = Vec::new();
        for b in wire.iter() {
            d.extend(&[*b]);
            while let Some(f) = d.decode().unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, frames);
        d.finish().unwrap();
    }

    #[test]
    fn body_is_a_slice_of_the_read_buffer() {
        let mut d = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        let f = frame(FrameKind::Bulk, &[1u8; 100]);
        let mut wire = BytesMut::new();
        encode_into(&f, &mut wire);
        encode_into(&f, &mut wire);
        d.extend(&wire);
        let a = d.decode().unwrap().unwrap();
        let b = d.decode().unwrap().unwrap();
        // Both bodies point into the one buffer, 120 bytes apart: no copy was made.
        let gap = b.body.as_ptr() as usize - a.body.as_ptr() as usize;
        assert_eq!(gap, FRAME_HEADER_BYTES + 100);
    }

    #[test]
    fn refuses_each_malformed_header() {
        let good = {
            let mut w = BytesMut::new();
            encode_into(&frame(FrameKind::Consensus, b"abc"), &mut w);
            w.to_vec()
        };
        let cases: [(usize, u8, &str); 5] = [
            (0, b'X', "bad_magic"),
            (4, 9, "bad_version"),
            (5, 77, "unknown_kind"),
            (6, 1, "reserved_flags"),
            (20, b'z', "checksum"),
        ];
        for (at, byte, reason) in cases {
            let mut w = good.clone();
            w[at] = byte;
            let mut d = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
            d.extend(&w);
            assert_eq!(d.decode().unwrap_err().reason(), reason, "byte {at}");
        }
        // Oversized is refused from the header alone, before the body arrives.
        let mut w = good.clone();
        w[8..12].copy_from_slice(&(CLIENT_FRAME_BODY_BYTES_MAX + 1).to_le_bytes());
        let mut d = FrameDecoder::new(CLIENT_FRAME_BODY_BYTES_MAX);
        d.extend(&w[..FRAME_HEADER_BYTES]);
        assert_eq!(d.decode().unwrap_err().reason(), "oversized");
        // Truncated: a partial frame at end of stream.
        let mut d = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        d.extend(&good[..good.len() - 1]);
        assert_eq!(d.decode().unwrap(), None);
        assert_eq!(d.finish().unwrap_err().reason(), "truncated");
    }

    #[test]
    fn write_batch_keeps_large_bodies_uncopied() {
        let big = Bytes::from(vec![3u8; COALESCE_BODY_BYTES_MAX + 1]);
        let mut b = WriteBatch::new();
        b.push(&frame(FrameKind::Consensus, b"a"));
        b.push(&Frame::new(FrameKind::Bulk, big.clone()));
        b.push(&frame(FrameKind::Consensus, b"b"));
        let segs = b.take_segments();
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[1].as_ptr(), big.as_ptr());
        let mut d = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        for s in &segs {
            d.extend(s);
        }
        assert_eq!(d.decode().unwrap().unwrap().body, Bytes::from_static(b"a"));
        assert_eq!(d.decode().unwrap().unwrap().body, big);
        assert_eq!(d.decode().unwrap().unwrap().body, Bytes::from_static(b"b"));
    }
}
