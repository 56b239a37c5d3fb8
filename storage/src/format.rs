//! On-disk format of the write-ahead log (version 2): the superblock, segment headers,
//! group headers, records, file names.
//!
//! A log directory holds `wal.head` (the superblock) and segment files `wal-<index>.seg`.
//!
//! **Superblock** (`wal.head`, two 4 KiB slots): the log's identity (a random 128-bit UUID
//! drawn when the log is created), the first live segment, and the durable watermark: the
//! last acknowledged sequence, where its group ends and the chain value of its record. It
//! is rewritten, alternating slots, after every group's data is durable and before any
//! record of the group is acknowledged; the slot with the higher epoch that verifies wins,
//! so a torn slot write leaves the previous watermark. Recovery that falls short of the
//! watermark has lost acknowledged records; only what lies after it may be a torn tail.
//!
//! **Segment**: one header block (UUID, index, first sequence, the chain value before its
//! first record), then groups. **Group**: written in one DMA write at a block boundary: a
//! group header (UUID, first sequence, record count and bytes, chain value before it, all
//! checksummed with a UUID-derived seed), the records, zero padding to the block boundary.
//! One group is in flight at a time, so at most one group lies beyond the watermark.
//!
//! **Record** (little endian): `[0..8)` xxh3-64 of bytes `[8..40+len)` seeded with a key
//! derived from the UUID, `[8..12)` magic, `[12..16)` payload length, `[16..24)` sequence,
//! `[24..26)` kind, `[26..32)` zero, `[32..40)` the checksum of the record before it (the
//! chain; the first record of the log chains from the UUID), then the payload. A record is only ever decoded at the position
//! its group header says, so bytes inside a payload that look like a record are never
//! taken for one, and a record of another log (another UUID) or another position in the
//! chain never verifies.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Unit of every write: groups are padded to it and written at aligned offsets.
pub const BLOCK_SIZE_BYTES: u64 = 4096;
/// Records start at multiples of this.
pub const RECORD_ALIGN_BYTES: u64 = 8;
pub const RECORD_HEADER_SIZE_BYTES: u64 = 40;
pub const GROUP_HEADER_SIZE_BYTES: u64 = 64;
/// Largest payload of one record.
pub const RECORD_PAYLOAD_MAX_BYTES: u64 = 1 << 20;
/// The segment header takes the first block of each segment.
pub const SEGMENT_HEADER_SIZE_BYTES: u64 = BLOCK_SIZE_BYTES;
/// Small segments exist for tests (fault injection over many segment rolls); a record
/// must fit an empty segment, which `Wal::append` checks against the configured size.
pub const SEGMENT_SIZE_MIN_BYTES: u64 = 64 << 10;
pub const SEGMENT_SIZE_MAX_BYTES: u64 = 1 << 30;
pub const SUPERBLOCK_SLOT_SIZE_BYTES: u64 = BLOCK_SIZE_BYTES;
pub const HEAD_FILE_SIZE_BYTES: u64 = 2 * SUPERBLOCK_SLOT_SIZE_BYTES;
pub const LOG_ID_SIZE_BYTES: usize = 16;
/// Sector size assumed by the fault model: a write may be torn at any multiple of it.
pub const SECTOR_SIZE_BYTES: u64 = 512;

const _: () = assert!(BLOCK_SIZE_BYTES.is_power_of_two());
const _: () = assert!(BLOCK_SIZE_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(BLOCK_SIZE_BYTES.is_multiple_of(SECTOR_SIZE_BYTES));
const _: () = assert!(RECORD_HEADER_SIZE_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(GROUP_HEADER_SIZE_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(RECORD_PAYLOAD_MAX_BYTES <= u32::MAX as u64);
const _: () = assert!(
    SEGMENT_HEADER_SIZE_BYTES + GROUP_HEADER_SIZE_BYTES + RECORD_HEADER_SIZE_BYTES
        < SEGMENT_SIZE_MIN_BYTES
);
const _: () = assert!(SEGMENT_SIZE_MIN_BYTES <= SEGMENT_SIZE_MAX_BYTES);
const _: () = assert!(SEGMENT_SIZE_MIN_BYTES.is_multiple_of(BLOCK_SIZE_BYTES));
const _: () = assert!(SEGMENT_SIZE_MAX_BYTES.is_multiple_of(BLOCK_SIZE_BYTES));

pub const RECORD_MAGIC: u32 = 0x4C41_5743; // "CWAL"
pub const GROUP_MAGIC: u32 = 0x5052_4743; // "CGRP"
pub const SEGMENT_MAGIC: [u8; 8] = *b"CCBFTSEG";
pub const HEAD_MAGIC: [u8; 8] = *b"CCBFTSUP";
pub const FORMAT_VERSION: u32 = 2;

pub const HEAD_FILE_NAME: &str = "wal.head";
pub const TMP_SUFFIX: &str = ".tmp";

/// A log's identity, drawn at random when the log is created.
pub type LogId = [u8; LOG_ID_SIZE_BYTES];

pub fn align_up(value: u64, align: u64) -> u64 {
    assert!(align.is_power_of_two());
    value.div_ceil(align) * align
}

pub fn align_down(value: u64, align: u64) -> u64 {
    assert!(align.is_power_of_two());
    value / align * align
}

/// Bytes a record with this payload takes in a group, padding included.
pub fn record_size_bytes(payload_len: u64) -> u64 {
    align_up(RECORD_HEADER_SIZE_BYTES + payload_len, RECORD_ALIGN_BYTES)
}

/// The chain value before the first record of the log.
pub fn chain_origin(log_id: &LogId) -> u64 {
    xxh3_64_with_seed(log_id, 0x4343_4246_5443_4841) // "CCBFTCHA"
}

/// Seed of group header checksums: a header verifies only under its own log's UUID.
fn group_seed(log_id: &LogId) -> u64 {
    xxh3_64_with_seed(log_id, 0x4343_4246_5447_5250) // "CCBFTGRP"
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

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// A record header as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub payload_len: u32,
    pub sequence: u64,
    pub kind: u16,
    /// Checksum of the record before this one (the chain).
    pub prev: u64,
}

/// Seed of record checksums: a record verifies only under its own log's UUID.
pub fn record_key(log_id: &LogId) -> u64 {
    xxh3_64_with_seed(log_id, 0x4343_4246_5452_4543) // "CCBFTREC"
}

/// Appends a record (header, payload, alignment padding) to `out`; returns its checksum,
/// the chain value the next record names as `prev`.
pub fn encode_record(out: &mut Vec<u8>, key: u64, header: &RecordHeader, payload: &[u8]) -> u64 {
    assert_eq!(payload.len() as u64, u64::from(header.payload_len));
    assert!(u64::from(header.payload_len) <= RECORD_PAYLOAD_MAX_BYTES);
    assert!(header.kind != 0 && header.sequence != 0);
    let start = out.len();
    assert!((start as u64).is_multiple_of(RECORD_ALIGN_BYTES));
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&header.payload_len.to_le_bytes());
    out.extend_from_slice(&header.sequence.to_le_bytes());
    out.extend_from_slice(&header.kind.to_le_bytes());
    out.extend_from_slice(&[0u8; 6]);
    out.extend_from_slice(&header.prev.to_le_bytes());
    out.extend_from_slice(payload);
    let checksum = xxh3_64_with_seed(&out[start + 8..], key);
    out[start..start + 8].copy_from_slice(&checksum.to_le_bytes());
    let size = record_size_bytes(payload.len() as u64) as usize;
    out.resize(start + size, 0);
    // Read-back check of what was just encoded.
    let decoded = decode_record(&out[start..], key).expect("a record just encoded decodes");
    assert_eq!((decoded.0, decoded.2), (*header, checksum));
    checksum
}

/// Why bytes at some position are not a record of this log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordDefect {
    Truncated,
    BadMagic,
    BadLength,
    BadReserved,
    /// Damaged, or a record of another log.
    BadChecksum,
}

/// Decodes and verifies the record at the start of `bytes` under `key` (`record_key`).
/// Returns the header, the payload and the record's checksum. Never panics on bad bytes.
/// Whether it is the record due (sequence, `prev`) is for the caller to check.
pub fn decode_record(bytes: &[u8], key: u64) -> Result<(RecordHeader, &[u8], u64), RecordDefect> {
    let header_len = RECORD_HEADER_SIZE_BYTES as usize;
    if bytes.len() < header_len {
        return Err(RecordDefect::Truncated);
    }
    if u32_at(bytes, 8) != RECORD_MAGIC {
        return Err(RecordDefect::BadMagic);
    }
    let payload_len = u32_at(bytes, 12);
    if u64::from(payload_len) > RECORD_PAYLOAD_MAX_BYTES {
        return Err(RecordDefect::BadLength);
    }
    if bytes[26..32] != [0u8; 6] {
        return Err(RecordDefect::BadReserved);
    }
    let end = header_len + payload_len as usize;
    if bytes.len() < end {
        return Err(RecordDefect::Truncated);
    }
    let checksum = u64_at(bytes, 0);
    if xxh3_64_with_seed(&bytes[8..end], key) != checksum {
        return Err(RecordDefect::BadChecksum);
    }
    let header = RecordHeader {
        payload_len,
        sequence: u64_at(bytes, 16),
        kind: u16::from_le_bytes([bytes[24], bytes[25]]),
        prev: u64_at(bytes, 32),
    };
    if header.kind == 0 || header.sequence == 0 {
        return Err(RecordDefect::BadChecksum);
    }
    Ok((header, &bytes[header_len..end], checksum))
}

/// The header at the start of each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupHeader {
    pub first_sequence: u64,
    pub records: u32,
    /// Bytes of the records after the group header (padding to the block not included).
    pub records_bytes: u64,
    /// Chain value before the group's first record.
    pub chain: u64,
}

impl GroupHeader {
    /// Bytes from the group's start to the next block boundary.
    pub fn padded_size_bytes(&self) -> u64 {
        align_up(
            GROUP_HEADER_SIZE_BYTES + self.records_bytes,
            BLOCK_SIZE_BYTES,
        )
    }
}

pub fn encode_group_header(out: &mut [u8], log_id: &LogId, header: &GroupHeader) {
    assert!(out.len() >= GROUP_HEADER_SIZE_BYTES as usize);
    assert!(header.records >= 1 && header.first_sequence >= 1);
    let out = &mut out[..GROUP_HEADER_SIZE_BYTES as usize];
    out[8..12].copy_from_slice(&GROUP_MAGIC.to_le_bytes());
    out[12..16].copy_from_slice(&header.records.to_le_bytes());
    out[16..24].copy_from_slice(&header.first_sequence.to_le_bytes());
    out[24..32].copy_from_slice(&header.records_bytes.to_le_bytes());
    out[32..48].copy_from_slice(log_id);
    out[48..56].copy_from_slice(&header.chain.to_le_bytes());
    out[56..64].fill(0);
    let checksum = xxh3_64_with_seed(&out[8..64], group_seed(log_id));
    out[0..8].copy_from_slice(&checksum.to_le_bytes());
    assert_eq!(decode_group_header(out, log_id), Some(*header));
}

/// `None` when the bytes are not a group header of log `log_id`.
pub fn decode_group_header(bytes: &[u8], log_id: &LogId) -> Option<GroupHeader> {
    if (bytes.len() as u64) < GROUP_HEADER_SIZE_BYTES
        || u32_at(bytes, 8) != GROUP_MAGIC
        || bytes[32..48] != log_id[..]
        || bytes[56..64] != [0u8; 8]
        || xxh3_64_with_seed(&bytes[8..64], group_seed(log_id)) != u64_at(bytes, 0)
    {
        return None;
    }
    let header = GroupHeader {
        first_sequence: u64_at(bytes, 16),
        records: u32_at(bytes, 12),
        records_bytes: u64_at(bytes, 24),
        chain: u64_at(bytes, 48),
    };
    let bytes_ok = header.records_bytes >= u64::from(header.records) * RECORD_HEADER_SIZE_BYTES
        && header.records_bytes <= SEGMENT_SIZE_MAX_BYTES;
    (header.records >= 1 && header.first_sequence >= 1 && bytes_ok).then_some(header)
}

/// The header in a segment's first block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub log_id: LogId,
    pub index: u64,
    /// Sequence of the first record appended to this segment.
    pub first_sequence: u64,
    pub segment_size_bytes: u64,
    /// Chain value before the segment's first record.
    pub chain: u64,
}

pub fn encode_segment_header(header: &SegmentHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEGMENT_HEADER_SIZE_BYTES as usize);
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&header.log_id);
    out.extend_from_slice(&header.index.to_le_bytes());
    out.extend_from_slice(&header.first_sequence.to_le_bytes());
    out.extend_from_slice(&header.segment_size_bytes.to_le_bytes());
    out.extend_from_slice(&header.chain.to_le_bytes());
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
    if u32_at(bytes, 8) != FORMAT_VERSION || xxh3_64(&bytes[0..64]) != u64_at(bytes, 64) {
        return None;
    }
    let header = SegmentHeader {
        log_id: bytes[16..32].try_into().expect("16 bytes"),
        index: u64_at(bytes, 32),
        first_sequence: u64_at(bytes, 40),
        segment_size_bytes: u64_at(bytes, 48),
        chain: u64_at(bytes, 56),
    };
    let size_ok = (SEGMENT_SIZE_MIN_BYTES..=SEGMENT_SIZE_MAX_BYTES)
        .contains(&header.segment_size_bytes)
        && header.segment_size_bytes.is_multiple_of(BLOCK_SIZE_BYTES);
    (size_ok && header.first_sequence >= 1).then_some(header)
}

/// One slot of the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub log_id: LogId,
    /// Incremented with every write; the valid slot with the higher epoch is current.
    pub epoch: u64,
    /// Index of the first live segment (segments below it were truncated away).
    pub first_segment: u64,
    /// The durable watermark: every record up to here was acknowledged and must come
    /// back. `first sequence - 1` of the log when nothing was.
    pub acked_sequence: u64,
    /// Segment holding the acknowledged record (or the first segment when none).
    pub acked_segment: u64,
    /// Chain value after the acknowledged record (the chain origin when none).
    pub acked_chain: u64,
}

impl Superblock {
    /// Which slot this epoch goes to.
    pub fn slot(&self) -> u64 {
        self.epoch % 2
    }
}

pub fn encode_superblock(block: &Superblock) -> Vec<u8> {
    let mut out = Vec::with_capacity(SUPERBLOCK_SLOT_SIZE_BYTES as usize);
    out.extend_from_slice(&HEAD_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&block.log_id);
    out.extend_from_slice(&block.epoch.to_le_bytes());
    out.extend_from_slice(&block.first_segment.to_le_bytes());
    out.extend_from_slice(&block.acked_sequence.to_le_bytes());
    out.extend_from_slice(&block.acked_segment.to_le_bytes());
    out.extend_from_slice(&block.acked_chain.to_le_bytes());
    let checksum = xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    // Non-empty slots: the DMA probe (see wal.rs) reads this file first.
    out.resize(SUPERBLOCK_SLOT_SIZE_BYTES as usize, 0xA5);
    assert_eq!(decode_superblock_slot(&out), Some(*block));
    out
}

/// One slot; `None` when it does not verify.
pub fn decode_superblock_slot(bytes: &[u8]) -> Option<Superblock> {
    if (bytes.len() as u64) < SUPERBLOCK_SLOT_SIZE_BYTES || bytes[0..8] != HEAD_MAGIC {
        return None;
    }
    if u32_at(bytes, 8) != FORMAT_VERSION || xxh3_64(&bytes[0..72]) != u64_at(bytes, 72) {
        return None;
    }
    Some(Superblock {
        log_id: bytes[16..32].try_into().expect("16 bytes"),
        epoch: u64_at(bytes, 32),
        first_segment: u64_at(bytes, 40),
        acked_sequence: u64_at(bytes, 48),
        acked_segment: u64_at(bytes, 56),
        acked_chain: u64_at(bytes, 64),
    })
}

/// The current superblock of a head file: the verifying slot with the higher epoch.
/// `None` when neither slot verifies, the file has the wrong size, or the slots name
/// different logs.
pub fn decode_head(bytes: &[u8]) -> Option<Superblock> {
    if bytes.len() as u64 != HEAD_FILE_SIZE_BYTES {
        return None;
    }
    let slot = SUPERBLOCK_SLOT_SIZE_BYTES as usize;
    let slots = [
        decode_superblock_slot(&bytes[..slot]).filter(|b| b.slot() == 0),
        decode_superblock_slot(&bytes[slot..]).filter(|b| b.slot() == 1),
    ];
    match slots {
        [Some(a), Some(b)] if a.log_id != b.log_id => None,
        [Some(a), Some(b)] => Some(if a.epoch > b.epoch { a } else { b }),
        [one, other] => one.or(other),
    }
}

/// A whole head file holding `block` in both slots (a new log, or a rewrite by rename).
pub fn encode_head(block: &Superblock) -> Vec<u8> {
    let mut first = *block;
    let mut second = *block;
    // Epochs e (slot e % 2) and e - 1 in the other slot, both naming the same state.
    let other = block.epoch.checked_sub(1).unwrap_or(block.epoch + 1);
    if block.slot() == 0 {
        second.epoch = other;
    } else {
        first.epoch = other;
    }
    let mut out = encode_superblock(&first);
    out.extend_from_slice(&encode_superblock(&second));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_every_bit_flip_is_caught() {
        let header = RecordHeader {
            payload_len: 5,
            sequence: 9,
            kind: 3,
            prev: 1234,
        };
        let mut out = Vec::new();
        let checksum = encode_record(&mut out, 77, &header, b"hello");
        assert_eq!(out.len() as u64, record_size_bytes(5));
        let (decoded, payload, sum) = decode_record(&out, 77).unwrap();
        assert_eq!((decoded, payload, sum), (header, &b"hello"[..], checksum));
        // Another log's key: the same bytes are not a record of this log.
        assert_eq!(decode_record(&out, 78), Err(RecordDefect::BadChecksum));
        let end = RECORD_HEADER_SIZE_BYTES as usize + 5;
        for bit in 0..end * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_record(&bad, 77).is_err(),
                "bit {bit} flip not caught"
            );
        }
        assert_eq!(decode_record(&out[..20], 77), Err(RecordDefect::Truncated));
        assert_eq!(decode_record(&[0u8; 64], 77), Err(RecordDefect::BadMagic));
    }

    #[test]
    fn group_headers_verify_only_under_their_log() {
        let id: LogId = [3; 16];
        let header = GroupHeader {
            first_sequence: 5,
            records: 2,
            records_bytes: 200,
            chain: 99,
        };
        let mut block = vec![0u8; 64];
        encode_group_header(&mut block, &id, &header);
        assert_eq!(decode_group_header(&block, &id), Some(header));
        assert_eq!(decode_group_header(&block, &[4; 16]), None);
        for bit in 0..64 * 8 {
            let mut bad = block.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_group_header(&bad, &id), None, "bit {bit}");
        }
    }

    #[test]
    fn names_headers_and_superblock_slots() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("wal-1.seg"), None);
        assert_eq!(parse_segment_file_name("notes.txt"), None);
        let header = SegmentHeader {
            log_id: [1; 16],
            index: 3,
            first_sequence: 100,
            segment_size_bytes: SEGMENT_SIZE_MIN_BYTES,
            chain: 5,
        };
        let bytes = encode_segment_header(&header);
        assert_eq!(decode_segment_header(&bytes), Some(header));
        let mut bad = bytes.clone();
        bad[20] ^= 4;
        assert_eq!(decode_segment_header(&bad), None);
        let block = Superblock {
            log_id: [2; 16],
            epoch: 7,
            first_segment: 1,
            acked_sequence: 40,
            acked_segment: 2,
            acked_chain: 11,
        };
        let mut head = encode_head(&block);
        assert_eq!(decode_head(&head), Some(block));
        // A torn write of the current slot leaves the other, one epoch older.
        let slot = SUPERBLOCK_SLOT_SIZE_BYTES as usize;
        head[slot + 40] ^= 1;
        assert_eq!(decode_head(&head).map(|b| b.epoch), Some(6));
        assert_eq!(decode_head(&[0u8; 8192]), None);
    }
}
