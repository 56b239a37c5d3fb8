//! On-disk format of the write-ahead log: segment headers, record headers, file names.
//!
//! A log directory holds `wal.head` (which segment the log starts at) and segment files
//! `wal-<index>.seg`. A segment starts with one block holding its header; records follow,
//! each 8-byte aligned. Every group commit writes whole blocks: the group's records, then
//! zero padding up to the next block boundary. A group never spans two segments, and a
//! group is written only after the previous group is durable, so a record whose header
//! names a later group than a damaged record proves the damaged record had been
//! acknowledged (corruption, not a torn tail).
//!
//! Record layout (little endian):
//! `[0..8)` xxh3-64 of bytes `[8..40+len)`, `[8..12)` magic, `[12..16)` payload length,
//! `[16..24)` sequence, `[24..32)` first sequence of the record's group, `[32..34)` kind,
//! `[34..40)` zero, then the payload.

use xxhash_rust::xxh3::xxh3_64;

/// Unit of every write: groups are padded to it and written at aligned offsets.
pub const BLOCK_SIZE_BYTES: u64 = 4096;
/// Records start at multiples of this.
pub const RECORD_ALIGN_BYTES: u64 = 8;
pub const RECORD_HEADER_SIZE_BYTES: u64 = 40;
/// Largest payload of one record.
pub const RECORD_PAYLOAD_MAX_BYTES: u64 = 1 << 20;
/// The segment header takes the first block of each segment.
pub const SEGMENT_HEADER_SIZE_BYTES: u64 = BLOCK_SIZE_BYTES;
pub const SEGMENT_SIZE_MIN_BYTES: u64 = 4 << 20;
pub const SEGMENT_SIZE_MAX_BYTES: u64 = 1 << 30;
pub const HEAD_FILE_SIZE_BYTES: u64 = BLOCK_SIZE_BYTES;

const _: () = assert!(BLOCK_SIZE_BYTES.is_power_of_two());
const _: () = assert!(BLOCK_SIZE_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(RECORD_HEADER_SIZE_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(RECORD_PAYLOAD_MAX_BYTES <= u32::MAX as u64);
const _: () = assert!(
    SEGMENT_HEADER_SIZE_BYTES + RECORD_HEADER_SIZE_BYTES + RECORD_PAYLOAD_MAX_BYTES
        <= SEGMENT_SIZE_MIN_BYTES
);
const _: () = assert!(SEGMENT_SIZE_MIN_BYTES <= SEGMENT_SIZE_MAX_BYTES);
const _: () = assert!(SEGMENT_SIZE_MIN_BYTES.is_multiple_of(BLOCK_SIZE_BYTES));
const _: () = assert!(SEGMENT_SIZE_MAX_BYTES.is_multiple_of(BLOCK_SIZE_BYTES));

pub const RECORD_MAGIC: u32 = 0x4C41_5743; // "CWAL"
pub const SEGMENT_MAGIC: [u8; 8] = *b"CCBFTSEG";
pub const HEAD_MAGIC: [u8; 8] = *b"CCBFTHED";
pub const FORMAT_VERSION: u32 = 1;

pub const HEAD_FILE_NAME: &str = "wal.head";
pub const TMP_SUFFIX: &str = ".tmp";

pub fn align_up(value: u64, align: u64) -> u64 {
    assert!(align.is_power_of_two());
    value.div_ceil(align) * align
}

pub fn align_down(value: u64, align: u64) -> u64 {
    assert!(align.is_power_of_two());
    value / align * align
}

/// Bytes a record with this payload takes in a segment, padding included.
pub fn record_size_bytes(payload_len: u64) -> u64 {
    align_up(RECORD_HEADER_SIZE_BYTES + payload_len, RECORD_ALIGN_BYTES)
}

pub fn segment_file_name(index: u64) -> String {
    format!("wal-{index:020}.seg")
}

/// The index of a segment file name, `None` when the name is not one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A record header as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub payload_len: u32,
    pub sequence: u64,
    pub group_first_sequence: u64,
    pub kind: u16,
}

/// Appends a record (header, payload, alignment padding) to `out`.
pub fn encode_record(out: &mut Vec<u8>, header: &RecordHeader, payload: &[u8]) {
    assert_eq!(payload.len() as u64, u64::from(header.payload_len));
    assert!(u64::from(header.payload_len) <= RECORD_PAYLOAD_MAX_BYTES);
    assert!(header.kind != 0);
    assert!(header.sequence >= header.group_first_sequence && header.group_first_sequence >= 1);
    let start = out.len();
    assert!((start as u64).is_multiple_of(RECORD_ALIGN_BYTES));
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&header.payload_len.to_le_bytes());
    out.extend_from_slice(&header.sequence.to_le_bytes());
    out.extend_from_slice(&header.group_first_sequence.to_le_bytes());
    out.extend_from_slice(&header.kind.to_le_bytes());
    out.extend_from_slice(&[0u8; 6]);
    out.extend_from_slice(payload);
    let checksum = xxh3_64(&out[start + 8..]);
    out[start..start + 8].copy_from_slice(&checksum.to_le_bytes());
    let size = record_size_bytes(payload.len() as u64) as usize;
    out.resize(start + size, 0);
    // Read-back check of what was just encoded.
    let decoded = decode_record(&out[start..]).expect("a record just encoded decodes");
    assert_eq!(decoded.0, *header);
}

/// Why bytes at some position are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordDefect {
    Truncated,
    BadMagic,
    BadLength,
    BadReserved,
    BadChecksum,
}

/// Decodes and verifies the record at the start of `bytes`. Returns the header and the
/// payload. Never panics on bad bytes.
pub fn decode_record(bytes: &[u8]) -> Result<(RecordHeader, &[u8]), RecordDefect> {
    let header_len = RECORD_HEADER_SIZE_BYTES as usize;
    if bytes.len() < header_len {
        return Err(RecordDefect::Truncated);
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if u32_at(8) != RECORD_MAGIC {
        return Err(RecordDefect::BadMagic);
    }
    let payload_len = u32_at(12);
    if u64::from(payload_len) > RECORD_PAYLOAD_MAX_BYTES {
        return Err(RecordDefect::BadLength);
    }
    if bytes[34..40] != [0u8; 6] {
        return Err(RecordDefect::BadReserved);
    }
    let end = header_len + payload_len as usize;
    if bytes.len() < end {
        return Err(RecordDefect::Truncated);
    }
    if xxh3_64(&bytes[8..end]) != u64_at(0) {
        return Err(RecordDefect::BadChecksum);
    }
    let header = RecordHeader {
        payload_len,
        sequence: u64_at(16),
        group_first_sequence: u64_at(24),
        kind: u16::from_le_bytes([bytes[32], bytes[33]]),
    };
    if header.kind == 0
        || header.sequence == 0
        || header.group_first_sequence == 0
        || header.group_first_sequence > header.sequence
    {
        return Err(RecordDefect::BadChecksum);
    }
    Ok((header, &bytes[header_len..end]))
}

/// The header in a segment's first block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub index: u64,
    /// Sequence of the first record appended to this segment.
    pub first_sequence: u64,
    pub segment_size_bytes: u64,
}

pub fn encode_segment_header(header: &SegmentHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEGMENT_HEADER_SIZE_BYTES as usize);
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&header.index.to_le_bytes());
    out.extend_from_slice(&header.first_sequence.to_le_bytes());
    out.extend_from_slice(&header.segment_size_bytes.to_le_bytes());
    let checksum = xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out.resize(SEGMENT_HEADER_SIZE_BYTES as usize, 0);
    assert_eq!(decode_segment_header(&out), Some(*header));
    out
}

/// `None` when the bytes are not a segment header of this format.
pub fn decode_segment_header(bytes: &[u8]) -> Option<SegmentHeader> {
    if (bytes.len() as u64) < SEGMENT_HEADER_SIZE_BYTES || bytes[0..8] != SEGMENT_MAGIC {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION || xxh3_64(&bytes[0..40]) != u64_at(40) {
        return None;
    }
    let header = SegmentHeader {
        index: u64_at(16),
        first_sequence: u64_at(24),
        segment_size_bytes: u64_at(32),
    };
    let size_ok = (SEGMENT_SIZE_MIN_BYTES..=SEGMENT_SIZE_MAX_BYTES)
        .contains(&header.segment_size_bytes)
        && header.segment_size_bytes.is_multiple_of(BLOCK_SIZE_BYTES);
    (size_ok && header.first_sequence >= 1).then_some(header)
}

/// Contents of `wal.head`: the index of the first live segment (segments below it were
/// truncated away after a stable checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadFile {
    pub first_segment: u64,
}

pub fn encode_head(head: &HeadFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_FILE_SIZE_BYTES as usize);
    out.extend_from_slice(&HEAD_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&head.first_segment.to_le_bytes());
    let checksum = xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    // Non-empty and one block long: the DMA probe file (see wal.rs) relies on it.
    out.resize(HEAD_FILE_SIZE_BYTES as usize, 0xA5);
    assert_eq!(decode_head(&out), Some(*head));
    out
}

pub fn decode_head(bytes: &[u8]) -> Option<HeadFile> {
    if (bytes.len() as u64) != HEAD_FILE_SIZE_BYTES || bytes[0..8] != HEAD_MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let checksum = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
    if version != FORMAT_VERSION || xxh3_64(&bytes[0..24]) != checksum {
        return None;
    }
    Some(HeadFile {
        first_segment: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_every_bit_flip_is_caught() {
        let header = RecordHeader {
            payload_len: 5,
            sequence: 9,
            group_first_sequence: 7,
            kind: 3,
        };
        let mut out = Vec::new();
        encode_record(&mut out, &header, b"hello");
        assert_eq!(out.len() as u64, record_size_bytes(5));
        let (decoded, payload) = decode_record(&out).unwrap();
        assert_eq!((decoded, payload), (header, &b"hello"[..]));
        let end = RECORD_HEADER_SIZE_BYTES as usize + 5;
        for bit in 0..end * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_record(&bad).is_err(), "bit {bit} flip not caught");
        }
        assert_eq!(decode_record(&out[..20]), Err(RecordDefect::Truncated));
        assert_eq!(decode_record(&[0u8; 64]), Err(RecordDefect::BadMagic));
    }

    #[test]
    fn names_and_headers() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("wal-1.seg"), None);
        assert_eq!(parse_segment_file_name("notes.txt"), None);
        let header = SegmentHeader {
            index: 3,
            first_sequence: 100,
            segment_size_bytes: SEGMENT_SIZE_MIN_BYTES,
        };
        let bytes = encode_segment_header(&header);
        assert_eq!(decode_segment_header(&bytes), Some(header));
        let mut bad = bytes.clone();
        bad[20] ^= 4;
        assert_eq!(decode_segment_header(&bad), None);
        let head = HeadFile { first_segment: 7 };
        assert_eq!(decode_head(&encode_head(&head)), Some(head));
        assert_eq!(decode_head(&[0u8; 4096]), None);
    }
}
