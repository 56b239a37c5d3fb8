//! Synchronous scanner of a log directory: checks every segment and record, tells a torn
//! tail (the last, never acknowledged group was cut by a crash) from corruption (a record
//! that was acknowledged is damaged), and hands each good record to a replay callback.
//! Used by recovery (`Wal::open`) and by `ccbft log inspect`; it never writes.

use crate::format::*;
use crate::uring_read;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where a record sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
}

/// A record handed to the replay callback.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub sequence: u64,
    pub kind: u16,
    pub payload: &'a [u8],
    pub location: Location,
}

/// Acknowledged records that are damaged or gone. The replica fetches
/// `first_missing..=last_missing` from its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Corruption {
    pub segment: u64,
    pub offset: u64,
    pub first_missing: u64,
    pub last_missing: u64,
    pub defect: String,
}

/// A partial last group after a crash; dropped on recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTail {
    pub segment: u64,
    pub offset: u64,
    pub bytes_discarded: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentScan {
    pub index: u64,
    #[serde(skip)]
    pub path: PathBuf,
    pub first_sequence: u64,
    pub records: u64,
    pub file_len: u64,
    /// End of the last good record.
    pub valid_end: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub first_segment: u64,
    pub segments: Vec<SegmentScan>,
    pub records: u64,
    /// Sequence the log starts at (records below were truncated after a checkpoint).
    pub first_sequence: u64,
    /// Highest good sequence; `first_sequence - 1` when the log is empty.
    pub last_sequence: u64,
    pub torn_tail: Option<TornTail>,
    pub corruption: Vec<Corruption>,
    /// Damaged bytes where no record was lost (zero padding between groups).
    pub padding_damage: Vec<Location>,
    /// Segments below `wal.head`, left over from a truncation interrupted by a crash.
    #[serde(skip)]
    pub stale_segments: Vec<PathBuf>,
    /// Temporary files left over from a crash while creating a segment or the head.
    #[serde(skip)]
    pub temporary_files: Vec<PathBuf>,
}

/// Why a directory is not a readable log.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a write-ahead log directory: no {HEAD_FILE_NAME}")]
    NotALog { path: PathBuf },
    #[error("foreign file {path} in the log directory (only wal.head and wal-<20 digits>.seg belong there)")]
    ForeignFile { path: PathBuf },
    #[error("{path} is empty: a segment file always holds at least its header block")]
    EmptySegment { path: PathBuf },
    #[error(
        "{path} has no valid segment header (not a CC-BFT log segment, or its header is damaged)"
    )]
    BadSegmentHeader { path: PathBuf },
    #[error("{path} has a damaged or foreign head file")]
    BadHead { path: PathBuf },
    #[error("segment {index} is missing from {dir}")]
    MissingSegment { dir: PathBuf, index: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ScanError + '_ {
    move |source| ScanError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lists and classifies the files of a log directory.
struct Listing {
    head: HeadFile,
    segments: Vec<(u64, PathBuf)>,
    stale: Vec<PathBuf>,
    temporary: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Listing, ScanError> {
    let mut segments = Vec::new();
    let mut temporary = Vec::new();
    let mut has_head = false;
    let mut foreign = None;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == HEAD_FILE_NAME {
            has_head = true;
        } else if let Some(index) = parse_segment_file_name(&name) {
            segments.push((index, path));
        } else if name
            .strip_suffix(TMP_SUFFIX)
            .is_some_and(|base| base == HEAD_FILE_NAME || parse_segment_file_name(base).is_some())
        {
            temporary.push(path);
        } else {
            foreign.get_or_insert(path);
        }
    }
    let head_path = dir.join(HEAD_FILE_NAME);
    if !has_head {
        return Err(ScanError::NotALog {
            path: dir.to_path_buf(),
        });
    }
    if let Some(path) = foreign {
        return Err(ScanError::ForeignFile { path });
    }
    let head_bytes = std::fs::read(&head_path).map_err(io_err(&head_path))?;
    let head = decode_head(&head_bytes).ok_or(ScanError::BadHead { path: head_path })?;
    segments.sort();
    let (stale, live): (Vec<_>, Vec<_>) = segments
        .into_iter()
        .partition(|(index, _)| *index < head.first_segment);
    for (expected, (index, _)) in (head.first_segment..).zip(live.iter()) {
        if *index != expected {
            return Err(ScanError::MissingSegment {
                dir: dir.to_path_buf(),
                index: expected,
            });
        }
    }
    if live.is_empty() {
        return Err(ScanError::MissingSegment {
            dir: dir.to_path_buf(),
            index: head.first_segment,
        });
    }
    Ok(Listing {
        head,
        segments: live,
        stale: stale.into_iter().map(|(_, path)| path).collect(),
        temporary,
    })
}

/// Scans the log in `dir`, calling `replay` for each good record in sequence order.
pub fn scan(dir: &Path, mut replay: impl FnMut(RecordView<'_>)) -> Result<ScanReport, ScanError> {
    let listing = list(dir)?;
    let mut report = ScanReport {
        first_segment: listing.head.first_segment,
        segments: Vec::new(),
        records: 0,
        first_sequence: 0,
        last_sequence: 0,
        torn_tail: None,
        corruption: Vec::new(),
        padding_damage: Vec::new(),
        stale_segments: listing.stale,
        temporary_files: listing.temporary,
    };
    let mut expected = 0u64;
    let count = listing.segments.len();
    for (position, (index, path)) in listing.segments.iter().enumerate() {
        let buf = uring_read::read_file(path).map_err(io_err(path))?;
        if buf.is_empty() {
            return Err(ScanError::EmptySegment { path: path.clone() });
        }
        let header = decode_segment_header(&buf)
            .filter(|header| header.index == *index)
            .ok_or_else(|| ScanError::BadSegmentHeader { path: path.clone() })?;
        if position == 0 {
            report.first_sequence = header.first_sequence;
            expected = header.first_sequence;
        } else if header.first_sequence != expected {
            // Records between the previous segment's last good one and this segment's
            // first are gone (or the previous segment ran past this one's start).
            let previous = report.segments.last().expect("not the first segment");
            let last_missing = header.first_sequence.saturating_sub(1).max(expected);
            report.corruption.push(Corruption {
                segment: previous.index,
                offset: previous.valid_end,
                first_missing: expected,
                last_missing,
                defect: format!(
                    "segment {index} starts at sequence {} but the log reached {}",
                    header.first_sequence,
                    expected - 1
                ),
            });
            expected = header.first_sequence;
        }
        let is_last = position + 1 == count;
        let segment = scan_segment(
            &buf,
            &header,
            &mut expected,
            is_last,
            &mut report,
            &mut replay,
        );
        report.records += segment.records;
        report.segments.push(SegmentScan {
            path: path.clone(),
            ..segment
        });
    }
    report.last_sequence = expected - 1;
    assert!(report.last_sequence + 1 >= report.first_sequence);
    Ok(report)
}

/// First good record at or after `from` (8-byte aligned positions) with a sequence of at
/// least `sequence_min`.
fn find_next(buf: &[u8], from: u64, sequence_min: u64) -> Option<(u64, RecordHeader)> {
    let mut pos = align_up(from, RECORD_ALIGN_BYTES);
    while pos + RECORD_HEADER_SIZE_BYTES <= buf.len() as u64 {
        if let Ok((header, _)) = decode_record(&buf[pos as usize..]) {
            if header.sequence >= sequence_min {
                return Some((pos, header));
            }
        }
        pos += RECORD_ALIGN_BYTES;
    }
    None
}

/// True when a good record at or after `from` belongs to a group that started after
/// `sequence`: that group was written only once `sequence`'s group was durable.
fn later_group_exists(buf: &[u8], from: u64, sequence: u64) -> bool {
    let mut pos = from;
    while let Some((at, header)) = find_next(buf, pos, sequence) {
        if header.group_first_sequence > sequence {
            return true;
        }
        pos = at + RECORD_ALIGN_BYTES;
    }
    false
}

fn scan_segment(
    buf: &[u8],
    header: &SegmentHeader,
    expected: &mut u64,
    is_last: bool,
    report: &mut ScanReport,
    replay: &mut impl FnMut(RecordView<'_>),
) -> SegmentScan {
    let len = buf.len() as u64;
    let mut pos = SEGMENT_HEADER_SIZE_BYTES.min(len);
    let mut records = 0u64;
    let mut valid_end = pos;
    while pos < len {
        let block_end = align_up(pos + 1, BLOCK_SIZE_BYTES).min(len);
        if !pos.is_multiple_of(BLOCK_SIZE_BYTES) && is_zero(&buf[pos as usize..block_end as usize])
        {
            pos = block_end; // padding after a group
            continue;
        }
        let defect = match decode_record(&buf[pos as usize..]) {
            Ok((record, payload)) if record.sequence == *expected => {
                replay(RecordView {
                    sequence: record.sequence,
                    kind: record.kind,
                    payload,
                    location: Location {
                        segment: header.index,
                        offset: pos,
                    },
                });
                records += 1;
                *expected += 1;
                pos += record_size_bytes(u64::from(record.payload_len));
                valid_end = pos;
                continue;
            }
            Ok((record, _)) => format!("sequence {} where {} was due", record.sequence, expected),
            Err(defect) => format!("{defect:?}"),
        };
        // Damage at `pos`: find where good records resume, if they do.
        let resume = find_next(buf, pos + RECORD_ALIGN_BYTES, *expected)
            .filter(|(_, record)| record.sequence > *expected - 1);
        match resume {
            Some((at, record)) if record.sequence == *expected => {
                report.padding_damage.push(Location {
                    segment: header.index,
                    offset: pos,
                });
                pos = at;
            }
            Some((at, record)) if !is_last || later_group_exists(buf, at, *expected) => {
                report.corruption.push(Corruption {
                    segment: header.index,
                    offset: pos,
                    first_missing: *expected,
                    last_missing: record.sequence - 1,
                    defect,
                });
                *expected = record.sequence;
                pos = at;
            }
            _ if is_last => {
                let junk = !is_zero(&buf[pos as usize..]);
                if junk {
                    report.torn_tail = Some(TornTail {
                        segment: header.index,
                        offset: pos,
                        bytes_discarded: len - pos,
                    });
                }
                break;
            }
            _ => {
                // A sealed segment ends early; the next segment's first sequence tells
                // whether records were lost (checked by the caller). Damaged bytes with
                // nothing lost count as padding damage.
                if !is_zero(&buf[pos as usize..]) {
                    report.padding_damage.push(Location {
                        segment: header.index,
                        offset: pos,
                    });
                }
                break;
            }
        }
    }
    SegmentScan {
        index: header.index,
        path: PathBuf::new(),
        first_sequence: header.first_sequence,
        records,
        file_len: len,
        valid_end,
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}
