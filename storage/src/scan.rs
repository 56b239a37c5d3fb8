//! Synchronous scanner of a log directory: checks the superblock, every segment, group and
//! record, tells a torn tail (the one group beyond the durable watermark, cut by a crash)
//! from corruption (an acknowledged record, at or below the watermark, that is damaged or
//! gone), and hands each good record to a replay callback. Used by recovery (`Wal::open`)
//! and by `ccbft log inspect`; it never writes.

use crate::format::*;
use crate::vfs::{RealDir, ScanSource};
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

/// The unacknowledged last group, cut by a crash; dropped on recovery.
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
    pub name: String,
    pub first_sequence: u64,
    pub records: u64,
    pub file_len: u64,
    /// End of the last whole group (block aligned): the next group goes here.
    pub valid_end: u64,
    /// Chain value after the segment's last good record.
    #[serde(skip)]
    pub chain_end: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    #[serde(serialize_with = "hex_id")]
    pub log_id: LogId,
    pub first_segment: u64,
    pub segments: Vec<SegmentScan>,
    pub records: u64,
    /// Sequence the log starts at (records below were truncated after a checkpoint).
    pub first_sequence: u64,
    /// Highest good sequence; `first_sequence - 1` when the log is empty.
    pub last_sequence: u64,
    /// The durable watermark from the superblock: the last acknowledged sequence.
    pub acked_sequence: u64,
    #[serde(skip)]
    pub superblock: Superblock,
    pub torn_tail: Option<TornTail>,
    pub corruption: Vec<Corruption>,
    /// Segments below the first live one, left over from a truncation.
    #[serde(skip)]
    pub stale_segments: Vec<String>,
    /// Temporary files left over from a crash while creating a segment or the head.
    #[serde(skip)]
    pub temporary_files: Vec<String>,
}

fn hex_id<S: serde::Serializer>(id: &LogId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.iter().map(|b| format!("{b:02x}")).collect::<String>())
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
    #[error("{path} belongs to another log (log id {found}, this log is {expected}): a segment of another log or replica is never mixed in")]
    ForeignSegment {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path} has a damaged or foreign superblock (neither slot verifies): the durable watermark is unknown")]
    BadHead { path: PathBuf },
    #[error("segment {index} is missing from {dir}")]
    MissingSegment { dir: PathBuf, index: u64 },
}

fn hex(id: &LogId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lists and classifies the files of a log directory.
struct Listing {
    head: Superblock,
    segments: Vec<(u64, String)>,
    stale: Vec<String>,
    temporary: Vec<String>,
}

fn list(source: &dyn ScanSource) -> Result<Listing, ScanError> {
    let dir = source.location();
    let io_err = |name: &str| {
        let path = dir.join(name);
        move |source| ScanError::Io { path, source }
    };
    let mut segments = Vec::new();
    let mut temporary = Vec::new();
    let mut has_head = false;
    let mut foreign = None;
    for name in source.list().map_err(io_err(""))? {
        if name == HEAD_FILE_NAME {
            has_head = true;
        } else if let Some(index) = parse_segment_file_name(&name) {
            segments.push((index, name));
        } else if name
            .strip_suffix(TMP_SUFFIX)
            .is_some_and(|base| base == HEAD_FILE_NAME || parse_segment_file_name(base).is_some())
        {
            temporary.push(name);
        } else {
            foreign.get_or_insert(name);
        }
    }
    if !has_head {
        return Err(ScanError::NotALog {
            path: dir.to_path_buf(),
        });
    }
    if let Some(name) = foreign {
        return Err(ScanError::ForeignFile {
            path: dir.join(name),
        });
    }
    let head_bytes = source
        .read_whole(HEAD_FILE_NAME)
        .map_err(io_err(HEAD_FILE_NAME))?;
    let head = decode_head(&head_bytes).ok_or(ScanError::BadHead {
        path: dir.join(HEAD_FILE_NAME),
    })?;
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
        stale: stale.into_iter().map(|(_, name)| name).collect(),
        temporary,
    })
}

/// Scans the log in `dir` on the real disk; see [`scan_source`].
pub fn scan(dir: &Path, replay: impl FnMut(RecordView<'_>)) -> Result<ScanReport, ScanError> {
    scan_source(&RealDir::new(dir), replay)
}

/// Where the scan stands between groups.
struct Cursor {
    expected: u64,
    chain: u64,
    /// Past a torn tail: nothing after it is read.
    stopped: bool,
    /// Damage that no group start resumed from: the next segment header resets the chain.
    lost_chain: bool,
}

/// Scans a log, calling `replay` for each good record in sequence order.
pub fn scan_source(
    source: &dyn ScanSource,
    mut replay: impl FnMut(RecordView<'_>),
) -> Result<ScanReport, ScanError> {
    let listing = list(source)?;
    let head = listing.head;
    let mut report = ScanReport {
        log_id: head.log_id,
        first_segment: head.first_segment,
        segments: Vec::new(),
        records: 0,
        first_sequence: 0,
        last_sequence: 0,
        acked_sequence: head.acked_sequence,
        superblock: head,
        torn_tail: None,
        corruption: Vec::new(),
        stale_segments: listing.stale,
        temporary_files: listing.temporary,
    };
    let dir = source.location();
    let mut cursor = Cursor {
        expected: 0,
        chain: 0,
        stopped: false,
        lost_chain: false,
    };
    for (position, (index, name)) in listing.segments.iter().enumerate() {
        let path = dir.join(name);
        let buf = source.read_whole(name).map_err(|source| ScanError::Io {
            path: path.clone(),
            source,
        })?;
        if buf.is_empty() {
            return Err(ScanError::EmptySegment { path });
        }
        let header = decode_segment_header(&buf)
            .filter(|header| header.index == *index)
            .ok_or_else(|| ScanError::BadSegmentHeader { path: path.clone() })?;
        if header.log_id != head.log_id {
            return Err(ScanError::ForeignSegment {
                path,
                expected: hex(&head.log_id),
                found: hex(&header.log_id),
            });
        }
        if position == 0 {
            report.first_sequence = header.first_sequence;
            cursor.expected = header.first_sequence;
            cursor.chain = header.chain;
        } else if cursor.stopped {
            // A segment after a torn tail: never written past its header (one group is
            // in flight at a time), so nothing in it was acknowledged.
        } else if cursor.lost_chain {
            if let Some(last) = report.corruption.last_mut() {
                last.last_missing = header
                    .first_sequence
                    .saturating_sub(1)
                    .max(last.first_missing);
            }
            cursor.expected = header.first_sequence;
            cursor.chain = header.chain;
            cursor.lost_chain = false;
        } else if (header.first_sequence, header.chain) != (cursor.expected, cursor.chain) {
            // A later segment exists only once everything before it was acknowledged.
            let previous = report.segments.last().expect("not the first segment");
            report.corruption.push(Corruption {
                segment: previous.index,
                offset: previous.valid_end,
                first_missing: cursor.expected,
                last_missing: header.first_sequence.saturating_sub(1).max(cursor.expected),
                defect: format!(
                    "segment {index} starts at sequence {} but the log reached {}",
                    header.first_sequence,
                    cursor.expected - 1
                ),
            });
            cursor.expected = header.first_sequence;
            cursor.chain = header.chain;
        }
        let segment = scan_segment(
            name,
            &buf,
            &header,
            &head,
            &mut cursor,
            &mut report,
            &mut replay,
        );
        report.records += segment.records;
        report.segments.push(segment);
    }
    report.last_sequence = cursor.expected - 1;
    check_watermark(&mut report, &head);
    assert!(report.last_sequence + 1 >= report.first_sequence);
    Ok(report)
}

/// Recovery must reach the watermark: what it falls short of was acknowledged and is gone.
fn check_watermark(report: &mut ScanReport, head: &Superblock) {
    let last = report.segments.last().expect("one segment at least");
    let missing_from = report.last_sequence + 1;
    if head.acked_sequence >= missing_from {
        let defect = if head.acked_segment > last.index {
            format!(
                "acknowledged through sequence {} in segment {}, but the log ends with segment {} at sequence {}",
                head.acked_sequence, head.acked_segment, last.index, report.last_sequence
            )
        } else {
            format!(
                "acknowledged through sequence {}, but the good records end at sequence {}",
                head.acked_sequence, report.last_sequence
            )
        };
        report.corruption.push(Corruption {
            segment: last.index,
            offset: last.valid_end,
            first_missing: missing_from,
            last_missing: head.acked_sequence,
            defect,
        });
        // What was there after the watermark's shortfall is not a torn tail.
        report.torn_tail = None;
    }
}

fn scan_segment(
    name: &str,
    buf: &[u8],
    header: &SegmentHeader,
    head: &Superblock,
    cursor: &mut Cursor,
    report: &mut ScanReport,
    replay: &mut impl FnMut(RecordView<'_>),
) -> SegmentScan {
    let len = buf.len() as u64;
    let mut pos = SEGMENT_HEADER_SIZE_BYTES.min(len);
    let mut records = 0u64;
    let mut valid_end = pos;
    while !cursor.stopped && pos + GROUP_HEADER_SIZE_BYTES <= len {
        let group = decode_group_header(&buf[pos as usize..], &head.log_id);
        let mut defect_at = pos;
        let defect = match group {
            None if is_zero(&buf[pos as usize..]) => break, // end of the written part
            None => "no valid group header".to_string(),
            Some(g) if (g.first_sequence, g.chain) != (cursor.expected, cursor.chain) => format!(
                "group of sequence {} where {} was due (or its chain differs)",
                g.first_sequence, cursor.expected
            ),
            Some(g) => match check_group(buf, pos, &g, header.index, record_key(&head.log_id)) {
                Ok(views) => {
                    let last = views.last().expect("a group holds a record");
                    cursor.chain = last.1;
                    cursor.expected = last.0.sequence + 1;
                    check_acked_chain(report, head, &views);
                    records += views.len() as u64;
                    for (view, _) in views {
                        replay(view);
                    }
                    pos += g.padded_size_bytes();
                    valid_end = pos;
                    continue;
                }
                Err((good, at, defect)) if cursor.expected <= head.acked_sequence => {
                    defect_at = at;
                    // Acknowledged records damaged: keep the good prefix (reporting mode).
                    if let Some(last) = good.last() {
                        cursor.chain = last.1;
                        cursor.expected = last.0.sequence + 1;
                    }
                    records += good.len() as u64;
                    for (view, _) in good {
                        replay(view);
                    }
                    defect
                }
                Err((_, _, defect)) => defect,
            },
        };
        if cursor.expected > head.acked_sequence {
            // Beyond the watermark: the one unacknowledged group, cut by a crash.
            report.torn_tail = Some(TornTail {
                segment: header.index,
                offset: pos,
                bytes_discarded: len - pos,
            });
            cursor.stopped = true;
            break;
        }
        // Acknowledged records are damaged: resume at the next group start that verifies.
        let resume = find_group(buf, pos + BLOCK_SIZE_BYTES, &head.log_id, cursor.expected);
        let last_missing = match resume {
            Some((_, g)) => g.first_sequence - 1,
            None => head.acked_sequence,
        };
        report.corruption.push(Corruption {
            segment: header.index,
            offset: defect_at,
            first_missing: cursor.expected,
            last_missing: last_missing.max(cursor.expected),
            defect,
        });
        match resume {
            Some((at, g)) => {
                cursor.expected = g.first_sequence;
                cursor.chain = g.chain;
                pos = at;
            }
            None => {
                // Nothing verifies after the damage in this segment.
                cursor.expected = last_missing.max(cursor.expected) + 1;
                cursor.lost_chain = true;
                valid_end = align_up(pos + 1, BLOCK_SIZE_BYTES).max(valid_end);
                break;
            }
        }
    }
    SegmentScan {
        index: header.index,
        name: name.to_string(),
        first_sequence: header.first_sequence,
        records,
        file_len: len,
        valid_end,
        chain_end: cursor.chain,
    }
}

/// The record at the watermark must be the one acknowledged: the same chain value.
fn check_acked_chain(report: &mut ScanReport, head: &Superblock, views: &GroupRecords<'_>) {
    for (view, checksum) in views {
        if view.sequence == head.acked_sequence && *checksum != head.acked_chain {
            report.corruption.push(Corruption {
                segment: view.location.segment,
                offset: view.location.offset,
                first_missing: view.sequence,
                last_missing: view.sequence,
                defect:
                    "the record at the watermark is not the one acknowledged (its chain differs)"
                        .to_string(),
            });
        }
    }
}

type GroupRecords<'a> = Vec<(RecordView<'a>, u64)>;

/// The records of the group at `pos`, each with its checksum (the chain after it); on a
/// defect, the good prefix and what is wrong.
fn check_group<'a>(
    buf: &'a [u8],
    pos: u64,
    group: &GroupHeader,
    segment: u64,
    key: u64,
) -> Result<GroupRecords<'a>, (GroupRecords<'a>, u64, String)> {
    let end = pos + GROUP_HEADER_SIZE_BYTES + group.records_bytes;
    let mut views = Vec::new();
    if end > buf.len() as u64 {
        return Err((
            views,
            pos,
            format!("group ends at {end}, past the file end"),
        ));
    }
    let mut at = pos + GROUP_HEADER_SIZE_BYTES;
    let mut chain = group.chain;
    for n in 0..u64::from(group.records) {
        let sequence = group.first_sequence + n;
        match decode_record(&buf[at as usize..end as usize], key) {
            Ok((record, _, _)) if record.prev != chain => {
                return Err((
                    views,
                    at,
                    format!("record {sequence} does not chain to the one before"),
                ))
            }
            Ok((record, payload, checksum)) if record.sequence == sequence => {
                views.push((
                    RecordView {
                        sequence,
                        kind: record.kind,
                        payload,
                        location: Location {
                            segment,
                            offset: at,
                        },
                    },
                    checksum,
                ));
                chain = checksum;
                at += record_size_bytes(u64::from(record.payload_len));
            }
            Ok((record, _, _)) => {
                return Err((
                    views,
                    at,
                    format!("sequence {} where {sequence} was due", record.sequence),
                ))
            }
            Err(defect) => return Err((views, at, format!("record {sequence}: {defect:?}"))),
        }
    }
    if at != end {
        return Err((
            views,
            at,
            "group length does not match its records".to_string(),
        ));
    }
    Ok(views)
}

/// The first block-aligned group header of this log at or after `from` that starts past
/// `sequence_min - 1`.
fn find_group(
    buf: &[u8],
    from: u64,
    log_id: &LogId,
    sequence_min: u64,
) -> Option<(u64, GroupHeader)> {
    let mut pos = align_up(from, BLOCK_SIZE_BYTES);
    while pos + GROUP_HEADER_SIZE_BYTES <= buf.len() as u64 {
        if let Some(g) = decode_group_header(&buf[pos as usize..], log_id) {
            if g.first_sequence > sequence_min {
                return Some((pos, g));
            }
        }
        pos += BLOCK_SIZE_BYTES;
    }
    None
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}
