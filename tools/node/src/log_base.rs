//! The compacted head of a replica's log, `DATA/log-base`: the records
//! [`ccbft_core::durable::compact`] keeps of everything up to a stable checkpoint (the
//! checkpoint's state first), beside the write-ahead log, which then drops its segments below
//! it. A restart reads the base, then the log's records after it.
//!
//! Written whole to a temporary file, synced, renamed over the old base, and the directory
//! synced: a crash leaves the old base or the new one, never a mix, and the log is truncated
//! only once the new base is durable. A base that fails its checksum or does not decode is an
//! error naming the file: the replica does not guess at its committed state (an operator
//! moves the data directory away, and the replica rejoins by state transfer as a new disk).
//!
//! Layout (little-endian): magic `CCBFTLB1`, upto u64 (the last record the base stands for),
//! count u64, then per record its length u32 and its wire encoding; last, the xxh3-64 of all
//! that precedes it.

use ccbft_core::durable::{Record, RecordSeq};
use ccbft_core::wire::{decode_record, encode_record};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const BASE_FILE: &str = "log-base";
const MAGIC: &[u8; 8] = b"CCBFTLB1";
/// Largest base accepted (a ledger snapshot and a few records per lane).
pub const BASE_BYTES_MAX: u64 = 1 << 30;

/// Records standing for the log up to `upto` (fewer than `upto`: compaction drops records).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogBase {
    pub upto: RecordSeq,
    pub records: Vec<Record>,
}

pub fn path(data: &Path) -> PathBuf {
    data.join(BASE_FILE)
}

/// The base in `data`, if there is one.
pub fn read(data: &Path) -> Result<Option<LogBase>, String> {
    let path = path(data);
    let size = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if size > BASE_BYTES_MAX {
        return Err(format!(
            "{}: {size} bytes, more than a base holds ({BASE_BYTES_MAX})",
            path.display()
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    decode(&bytes)
        .map(Some)
        .map_err(|why| format!("{}: {why}: the replica will not guess its committed state; move the data directory away to rejoin by state transfer", path.display()))
}

/// Replaces the base in `data` by `base`, durably (see the module doc).
pub fn write(data: &Path, base: &LogBase) -> Result<(), String> {
    let bytes = encode(base);
    let path = path(data);
    let temporary = data.join(format!("{BASE_FILE}.tmp"));
    let fail = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    let mut file = std::fs::File::create(&temporary).map_err(|e| fail(&temporary, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail(&temporary, e))?;
    std::fs::rename(&temporary, &path).map_err(|e| fail(&path, e))?;
    std::fs::File::open(data)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| fail(data, e))
}

fn encode(base: &LogBase) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&base.upto.to_le_bytes());
    out.extend_from_slice(&(base.records.len() as u64).to_le_bytes());
    for record in &base.records {
        let bytes = encode_record(record);
        let len = u32::try_from(bytes.len()).expect("a record is far below 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    let checksum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Result<LogBase, String> {
    let (body, checksum) = bytes
        .split_last_chunk::<8>()
        .ok_or("shorter than its checksum")?;
    if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(*checksum) {
        return Err("checksum mismatch (damaged or torn)".into());
    }
    let mut rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a log base (magic)")?;
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err("truncated".into());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let upto = u64_at(take(8)?);
    let count = u64_at(take(8)?);
    if count > upto {
        return Err(format!("{count} records standing for {upto}"));
    }
    let mut records = Vec::new();
    for index in 0..count {
        let len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let record = decode_record(take(len)?)
            .map_err(|e| format!("record {index} does not decode: {e}"))?;
        records.push(record);
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last record", rest.len()));
    }
    Ok(LogBase { upto, records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbft_core::durable::RejoinState;

    fn base() -> LogBase {
        LogBase {
            upto: 40,
            records: vec![
                Record::Rejoined(RejoinState {
                    nonce: 7,
                    floors: None,
                }),
                Record::Rejoined(RejoinState {
                    nonce: 8,
                    floors: None,
                }),
            ],
        }
    }

    #[test]
    fn a_written_base_reads_back_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(
            dir.path(),
            &LogBase {
                upto: 3,
                records: Vec::new(),
            },
        )
        .unwrap();
        write(dir.path(), &base()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(base()));
        assert!(!dir.path().join(format!("{BASE_FILE}.tmp")).exists());
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = encode(&base());
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(decode(&damaged).is_err(), "byte {i} flipped");
            assert!(decode(&bytes[..i]).is_err(), "cut at {i}");
        }
        assert_eq!(decode(&bytes).unwrap(), base());
    }

    #[test]
    fn a_base_stands_for_at_least_as_many_records_as_it_holds() {
        let mut whole = base();
        whole.upto = whole.records.len() as u64; // nothing compacted away: valid
        assert_eq!(decode(&encode(&whole)).unwrap(), whole);
        whole.upto -= 1;
        let error = decode(&encode(&whole)).unwrap_err();
        assert!(error.contains("2 records standing for 1"), "{error}");
    }

    #[test]
    fn a_base_that_cannot_be_read_is_an_error_not_an_absent_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(path(dir.path())).unwrap(); // a directory where the file goes
        assert!(read(dir.path()).is_err());
        let file = dir.path().join("plain");
        std::fs::write(&file, b"").unwrap(); // a data "directory" that is a file
        assert!(read(&file).is_err());
    }

    #[test]
    fn a_base_larger_than_the_bound_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(path(dir.path())).unwrap();
        file.set_len(BASE_BYTES_MAX + 1).unwrap(); // sparse: no disk used
        let error = read(dir.path()).unwrap_err();
        assert!(error.contains("more than a base holds"), "{error}");
    }

    #[test]
    fn a_damaged_base_names_its_file_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"garbage").unwrap();
        let error = read(dir.path()).unwrap_err();
        assert!(
            error.contains(BASE_FILE) && error.contains("state transfer"),
            "{error}"
        );
    }
}
