//! The write-ahead log: glommio DMA files (O_DIRECT over io_uring), group commit, a durable
//! watermark, bounded in-flight bytes, recovery on open.
//!
//! Group commit: `append` encodes the record into the open group and waits. Whichever
//! waiting appender finds no group being written becomes the leader: it writes the oldest
//! group in one DMA write, calls fdatasync once, then writes the superblock's next slot with
//! the new watermark (the group's last sequence) and syncs that, and only then advances the
//! durable sequence and wakes everyone. Appends made meanwhile form the next group. One
//! group is in flight at a time, so at most one group lies beyond the durable watermark and
//! only it can be a torn tail (format.rs). An append completes only once its record is
//! durable *and* covered by the watermark.
//!
//! Recovery (`open`) makes durable what it replays before acknowledging anything: the
//! active segment is cut back to its last whole group (the rest zeroed with O_DIRECT writes,
//! never rewriting a block that holds a good group), fdatasynced, the directory fsynced,
//! and the watermark moved to the last replayed record.
//!
//! All I/O goes through `crate::vfs`, so the fault-injecting layer (`crate::faulty`) can
//! stand in for the disk in tests; `Wal::open` uses the real one.
//!
//! The glommio pitfall on this machine's virtio disk: glommio probes IOPOLL support with a
//! read on the first DMA file it opens on a device, and caches the answer per thread. On an
//! empty new file the probe read returns EOF "successfully", the device is marked pollable,
//! and every later DMA read fails with EOPNOTSUPP. `Wal::open` therefore opens the non-empty
//! head file (two blocks) first and reads it back, before any segment is opened.
//!
//! A failed write or fdatasync poisons the log and its directory for the rest of the
//! process: the page state after a failed fdatasync is unknown (the page cache may still
//! show bytes that will never reach the disk), so neither this log nor a reopen of it in
//! the same process may trust them. The process must restart and recover.

use crate::format::*;
use crate::scan::{self, Corruption, Location, RecordView, ScanError, ScanReport};
use crate::vfs::{LogDir, LogFile, RealDir};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Default segment size.
pub const SEGMENT_SIZE_DEFAULT_BYTES: u64 = 64 << 20;
/// Default bound on bytes appended but not yet durable.
pub const IN_FLIGHT_DEFAULT_BYTES: u64 = 8 << 20;
/// Upper bound of the in-flight setting.
pub const IN_FLIGHT_MAX_BYTES: u64 = 256 << 20;
/// DMA buffer memory glommio registers per executor (this machine allows 8 MiB locked).
pub const EXECUTOR_IO_MEMORY_BYTES: usize = 2 << 20;
/// Zeroes written per DMA write when repairing a tail.
const REPAIR_WRITE_MAX_BYTES: u64 = 1 << 20;

const _: () =
    assert!(IN_FLIGHT_DEFAULT_BYTES >= RECORD_HEADER_SIZE_BYTES + RECORD_PAYLOAD_MAX_BYTES);
const _: () = assert!(IN_FLIGHT_DEFAULT_BYTES <= IN_FLIGHT_MAX_BYTES);
const _: () = assert!(SEGMENT_SIZE_DEFAULT_BYTES >= SEGMENT_SIZE_MIN_BYTES);
const _: () = assert!(SEGMENT_SIZE_DEFAULT_BYTES <= SEGMENT_SIZE_MAX_BYTES);
const _: () = assert!(
    SEGMENT_SIZE_DEFAULT_BYTES
        >= SEGMENT_HEADER_SIZE_BYTES
            + GROUP_HEADER_SIZE_BYTES
            + RECORD_HEADER_SIZE_BYTES
            + RECORD_PAYLOAD_MAX_BYTES
);
const _: () = assert!(REPAIR_WRITE_MAX_BYTES.is_multiple_of(BLOCK_SIZE_BYTES));

/// Log directories whose log failed a write or fdatasync in this process.
static POISONED_DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn poisoned_dir(key: &Path) -> bool {
    POISONED_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(key)
}

fn poison_dir(key: &Path) {
    POISONED_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_path_buf());
}

/// What `open` does when acknowledged records are damaged or missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptionPolicy {
    /// Refuse to open: `WalError::Corrupt` lists what is damaged or missing.
    Fail,
    /// Open, replay the good records and list the missing ranges in `Recovery::corruption`
    /// so the replica can fetch them from its peers.
    Report,
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub segment_size_bytes: u64,
    pub in_flight_max_bytes: u64,
    pub on_corruption: CorruptionPolicy,
    /// Start a new log when the directory is empty or absent. Off: only an existing log
    /// opens (`ccbft log recover`).
    pub create: bool,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size_bytes: SEGMENT_SIZE_DEFAULT_BYTES,
            in_flight_max_bytes: IN_FLIGHT_DEFAULT_BYTES,
            on_corruption: CorruptionPolicy::Fail,
            create: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("log corrupted: {} damaged or missing range(s) of acknowledged records, first in segment {} at offset {} (sequences {}..={}: {})",
        corruption.len(), corruption[0].segment, corruption[0].offset,
        corruption[0].first_missing, corruption[0].last_missing, corruption[0].defect)]
    Corrupt { corruption: Vec<Corruption> },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid log configuration: {0}")]
    Config(String),
    #[error("payload of {len} bytes is above the {max} byte limit")]
    PayloadTooLarge { len: u64, max: u64 },
    #[error("record kind 0 is reserved")]
    KindZero,
    #[error("the log failed earlier and must be recovered by a new process: {0}")]
    Poisoned(String),
    #[error("the log in {path} failed a write or fdatasync earlier in this process; what the page cache shows of it cannot be trusted: restart the process to recover it")]
    PoisonedDir { path: PathBuf },
    #[error("no durable record at segment {} offset {}", location.segment, location.offset)]
    NoRecord { location: Location },
    #[error("record at segment {} offset {} fails its check: {defect}", location.segment, location.offset)]
    BadRecord { location: Location, defect: String },
    #[error("DMA reads fail on {path} ({source}): glommio's IOPOLL probe misfired on this device; open the log before any other DMA file on the same device")]
    PollProbe {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What recovery found, for the replica and for logs.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub segments: u64,
    pub records: u64,
    pub first_sequence: u64,
    /// Highest durable sequence (`first_sequence - 1` when empty).
    pub last_sequence: u64,
    /// The watermark found in the superblock: the last sequence acknowledged before.
    pub acked_sequence: u64,
    pub torn_tail: Option<scan::TornTail>,
    /// Only with `CorruptionPolicy::Report`: acknowledged records that are gone.
    pub corruption: Vec<Corruption>,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sequence: u64,
    pub kind: u16,
    pub payload: Vec<u8>,
}

/// A durable append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub sequence: u64,
    pub location: Location,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    pub appends: u64,
    pub payload_bytes: u64,
    pub groups: u64,
    /// Every fdatasync: one on the segment and one on the superblock per group.
    pub fdatasyncs: u64,
    pub bytes_written: u64,
    pub durable_sequence: u64,
    /// Most bytes ever appended and not yet durable (never above `in_flight_max_bytes`).
    pub in_flight_high_water_bytes: u64,
}

struct Group {
    segment: u64,
    start: u64,
    /// Starts with room for the group header, filled in when the group is written.
    buf: Vec<u8>,
    first_sequence: u64,
    last_sequence: u64,
    chain_in: u64,
    chain_out: u64,
}

impl Group {
    fn records(&self) -> u32 {
        (self.last_sequence + 1 - self.first_sequence) as u32
    }
}

struct Inner {
    dir: Rc<dyn LogDir>,
    key: PathBuf,
    config: WalConfig,
    log_id: LogId,
    record_key: u64,
    head: Rc<dyn LogFile>,
    superblock: Superblock,
    /// Sealed segments: index -> first sequence.
    sealed: BTreeMap<u64, u64>,
    active: Rc<dyn LogFile>,
    active_index: u64,
    active_first_sequence: u64,
    /// End of the durable data of the active segment (block aligned).
    active_durable_end: u64,
    /// Segment and end of the newest group (open or not), and the chain after it.
    tail_segment: u64,
    tail_end: u64,
    chain: u64,
    pending: VecDeque<Group>,
    next_sequence: u64,
    durable_sequence: u64,
    first_sequence: u64,
    in_flight_bytes: u64,
    /// A leader is writing (a group, or the superblock for a truncation).
    flushing: bool,
    poisoned: Option<String>,
    generation: u64,
    waiters: Vec<Waker>,
    stats: WalStats,
}

/// The write-ahead log. Single-threaded (one per executor/core); clones share the log.
#[derive(Clone)]
pub struct Wal {
    inner: Rc<RefCell<Inner>>,
}

/// A glommio executor builder sized for this machine (locked memory is limited to 8 MiB).
pub fn executor_builder(name: &str) -> glommio::LocalExecutorBuilder {
    glommio::LocalExecutorBuilder::default()
        .name(name)
        .io_memory(EXECUTOR_IO_MEMORY_BYTES)
}

fn io_err(op: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> WalError {
    move |source| WalError::Io { op, path, source }
}

impl Wal {
    /// Opens (creating if `dir` is empty or absent and `config.create`) the log in `dir` on
    /// the real disk, recovering it: every record is checked, a torn tail is cut off,
    /// `replay` sees each good record in sequence order, and what was replayed is durable
    /// before this returns. Must run inside a glommio executor.
    pub async fn open(
        dir: &Path,
        config: WalConfig,
        replay: impl FnMut(RecordView<'_>),
    ) -> Result<(Wal, Recovery), WalError> {
        check_config(&config)?;
        if config.create {
            std::fs::create_dir_all(dir).map_err(io_err("creating", dir.to_path_buf()))?;
        } else if !dir.is_dir() {
            return Err(ScanError::NotALog {
                path: dir.to_path_buf(),
            }
            .into());
        }
        let key = std::fs::canonicalize(dir).map_err(io_err("resolving", dir.to_path_buf()))?;
        Wal::open_in(Rc::new(RealDir::new(dir)), key, config, replay).await
    }

    /// `open` over any file layer; `key` names the directory for the process-wide poison
    /// list (a log that failed an fdatasync is not reopened in the same process).
    pub async fn open_in(
        dir: Rc<dyn LogDir>,
        key: PathBuf,
        config: WalConfig,
        mut replay: impl FnMut(RecordView<'_>),
    ) -> Result<(Wal, Recovery), WalError> {
        check_config(&config)?;
        if poisoned_dir(&key) {
            return Err(WalError::PoisonedDir { path: key });
        }
        initialize_if_new(&*dir, &config).await?;
        let head_path = dir.location().join(HEAD_FILE_NAME);
        dir.probe(HEAD_FILE_NAME, HEAD_FILE_SIZE_BYTES as usize)
            .await
            .map_err(|source| WalError::PollProbe {
                path: head_path.clone(),
                source,
            })?;
        let report = scan::scan_source(&*dir, &mut replay)?;
        if !report.corruption.is_empty() && config.on_corruption == CorruptionPolicy::Fail {
            return Err(WalError::Corrupt {
                corruption: report.corruption,
            });
        }
        remove_leftovers(&*dir, &report)?;
        let last = report
            .segments
            .last()
            .expect("scan returns one segment at least");
        let last_path = dir.location().join(&last.name);
        let active = dir
            .open(&last.name)
            .await
            .map_err(io_err("opening", last_path.clone()))?;
        repair_tail(&*dir, &*active, &last.name, last.valid_end, last.file_len).await?;
        let head = dir
            .open(HEAD_FILE_NAME)
            .await
            .map_err(io_err("opening", head_path.clone()))?;
        let superblock = recovered_superblock(&report);
        write_superblock(&*head, &superblock)
            .await
            .map_err(io_err("writing the superblock", head_path))?;
        let recovery = Recovery {
            segments: report.segments.len() as u64,
            records: report.records,
            first_sequence: report.first_sequence,
            last_sequence: report.last_sequence,
            acked_sequence: report.acked_sequence,
            torn_tail: report.torn_tail.clone(),
            corruption: report.corruption.clone(),
        };
        let sealed = report.segments[..report.segments.len() - 1]
            .iter()
            .map(|segment| (segment.index, segment.first_sequence))
            .collect();
        let inner = Inner {
            dir,
            key,
            config,
            log_id: report.log_id,
            record_key: record_key(&report.log_id),
            head,
            superblock,
            sealed,
            active,
            active_index: last.index,
            active_first_sequence: last.first_sequence,
            active_durable_end: last.valid_end,
            tail_segment: last.index,
            tail_end: last.valid_end,
            chain: last.chain_end,
            pending: VecDeque::new(),
            next_sequence: report.last_sequence + 1,
            durable_sequence: report.last_sequence,
            first_sequence: report.first_sequence,
            in_flight_bytes: 0,
            flushing: false,
            poisoned: None,
            generation: 0,
            waiters: Vec::new(),
            stats: WalStats {
                durable_sequence: report.last_sequence,
                ..WalStats::default()
            },
        };
        Ok((
            Wal {
                inner: Rc::new(RefCell::new(inner)),
            },
            recovery,
        ))
    }

    pub fn dir(&self) -> PathBuf {
        self.inner.borrow().dir.location().to_path_buf()
    }

    /// Highest sequence whose record is durable and covered by the watermark.
    pub fn durable_sequence(&self) -> u64 {
        self.inner.borrow().durable_sequence
    }

    /// Lowest sequence still in the log.
    pub fn first_sequence(&self) -> u64 {
        self.inner.borrow().first_sequence
    }

    pub fn stats(&self) -> WalStats {
        self.inner.borrow().stats
    }

    /// Largest payload an append takes with this log's segment size.
    pub fn payload_max_bytes(&self) -> u64 {
        payload_max_bytes(&self.inner.borrow().config)
    }

    /// Appends one record; completes once it is durable (it shares its fdatasync with the
    /// other appends of its group). Waits while `in_flight_max_bytes` are not yet durable.
    pub async fn append(&self, kind: u16, payload: &[u8]) -> Result<Appended, WalError> {
        let appended = self.submit(kind, payload).await?;
        self.wait_durable(appended.sequence).await?;
        Ok(appended)
    }

    /// Puts one record into the open group and returns its place without waiting for it to
    /// be durable; waits only while `in_flight_max_bytes` are not yet durable. Records are
    /// numbered in the order their submits complete, so a caller that awaits each submit
    /// before the next keeps its own order. [`Wal::wait_durable`] (or [`Wal::sync`]) then
    /// writes the groups and says when the record is durable.
    pub async fn submit(&self, kind: u16, payload: &[u8]) -> Result<Appended, WalError> {
        if kind == 0 {
            return Err(WalError::KindZero);
        }
        let max = self.payload_max_bytes();
        if payload.len() as u64 > max {
            return Err(WalError::PayloadTooLarge {
                len: payload.len() as u64,
                max,
            });
        }
        let size = record_size_bytes(payload.len() as u64);
        loop {
            let (generation, lead) = {
                let inner = self.inner.borrow();
                if let Some(why) = &inner.poisoned {
                    return Err(WalError::Poisoned(why.clone()));
                }
                if inner.in_flight_bytes + size <= inner.config.in_flight_max_bytes {
                    break;
                }
                // Groups whose appenders went away (dropped futures) still need a leader.
                (
                    inner.generation,
                    !inner.flushing && !inner.pending.is_empty(),
                )
            };
            if lead {
                self.write_one_group().await;
            } else {
                self.changed(generation).await;
            }
        }
        Ok(self.inner.borrow_mut().enqueue(kind, payload, size))
    }

    /// Waits until every record appended so far is durable.
    pub async fn sync(&self) -> Result<u64, WalError> {
        let last = self.inner.borrow().next_sequence - 1;
        self.wait_durable(last).await?;
        Ok(last)
    }

    /// Waits until every record up to `sequence` is durable, leading group writes as needed.
    pub async fn wait_durable(&self, sequence: u64) -> Result<(), WalError> {
        assert!(
            sequence < self.inner.borrow().next_sequence,
            "waiting for record {sequence}, never submitted"
        );
        loop {
            let generation = {
                let inner = self.inner.borrow();
                if let Some(why) = &inner.poisoned {
                    return Err(WalError::Poisoned(why.clone()));
                }
                if inner.durable_sequence >= sequence {
                    return Ok(());
                }
                if !inner.flushing {
                    assert!(!inner.pending.is_empty(), "a record not durable is pending");
                    None
                } else {
                    Some(inner.generation)
                }
            };
            match generation {
                None => self.write_one_group().await,
                Some(generation) => self.changed(generation).await,
            }
        }
    }

    /// Resolves once the log's state changed after `generation`.
    fn changed(&self, generation: u64) -> Changed<'_> {
        Changed {
            wal: self,
            generation,
        }
    }

    /// Writes and syncs the oldest pending group and the watermark after it; the caller is
    /// the group leader.
    async fn write_one_group(&self) {
        let (group, roll) = {
            let mut inner = self.inner.borrow_mut();
            assert!(!inner.flushing);
            let Some(group) = inner.pending.pop_front() else {
                return;
            };
            inner.flushing = true;
            let roll = group.segment != inner.active_index;
            assert!(!roll || group.segment == inner.active_index + 1);
            assert!(roll || group.start == inner.active_durable_end);
            (group, roll)
        };
        // If this future is dropped mid-write, the guard poisons the log: the state of the
        // group on disk is unknown and nobody else may lead.
        let mut guard = LeaderGuard {
            wal: self,
            done: false,
        };
        let result = self.write_group(&group, roll).await;
        guard.done = true;
        let mut inner = self.inner.borrow_mut();
        inner.flushing = false;
        match result {
            Ok(superblock) => {
                assert_eq!(inner.durable_sequence + 1, group.first_sequence);
                assert!(superblock.epoch > inner.superblock.epoch);
                assert_eq!(superblock.acked_sequence, group.last_sequence);
                inner.superblock = superblock;
                inner.durable_sequence = group.last_sequence;
                inner.in_flight_bytes -= group.buf.len() as u64 - GROUP_HEADER_SIZE_BYTES;
                let padded = align_up(group.buf.len() as u64, BLOCK_SIZE_BYTES);
                inner.active_durable_end = group.start + padded;
                inner.stats.groups += 1;
                inner.stats.fdatasyncs += 2;
                inner.stats.bytes_written += padded + SUPERBLOCK_SLOT_SIZE_BYTES;
                inner.stats.durable_sequence = group.last_sequence;
            }
            Err(err) => inner.poison(err.to_string()),
        }
        inner.notify();
    }

    /// The group's data, its fdatasync, then the watermark and its fdatasync. Returns the
    /// superblock now on disk.
    async fn write_group(&self, group: &Group, roll: bool) -> Result<Superblock, WalError> {
        if roll {
            self.roll_segment(group.segment, group.first_sequence, group.chain_in)
                .await?;
        }
        let (file, head, path, log_id, mut superblock) = {
            let inner = self.inner.borrow();
            let path = inner
                .dir
                .location()
                .join(segment_file_name(inner.active_index));
            (
                inner.active.clone(),
                inner.head.clone(),
                path,
                inner.log_id,
                inner.superblock,
            )
        };
        let padded = align_up(group.buf.len() as u64, BLOCK_SIZE_BYTES) as usize;
        let mut bytes = Vec::with_capacity(padded);
        bytes.extend_from_slice(&group.buf);
        bytes.resize(padded, 0);
        encode_group_header(
            &mut bytes,
            &log_id,
            &GroupHeader {
                first_sequence: group.first_sequence,
                records: group.records(),
                records_bytes: group.buf.len() as u64 - GROUP_HEADER_SIZE_BYTES,
                chain: group.chain_in,
            },
        );
        file.write_at(group.start, &bytes)
            .await
            .map_err(io_err("writing", path.clone()))?;
        file.fdatasync().await.map_err(io_err("fdatasync", path))?;
        superblock.epoch += 1;
        superblock.acked_sequence = group.last_sequence;
        superblock.acked_segment = group.segment;
        superblock.acked_chain = group.chain_out;
        let head_path = self.dir().join(HEAD_FILE_NAME);
        write_superblock(&*head, &superblock)
            .await
            .map_err(io_err("writing the superblock", head_path))?;
        Ok(superblock)
    }

    /// Creates segment `index` (temporary name, header, fdatasync, rename, directory
    /// sync) and seals the active one, whose last group is already durable.
    async fn roll_segment(
        &self,
        index: u64,
        first_sequence: u64,
        chain: u64,
    ) -> Result<(), WalError> {
        let (dir, segment_size_bytes, log_id) = {
            let inner = self.inner.borrow();
            (
                inner.dir.clone(),
                inner.config.segment_size_bytes,
                inner.log_id,
            )
        };
        let name = segment_file_name(index);
        let tmp = format!("{name}{TMP_SUFFIX}");
        let tmp_path = dir.location().join(&tmp);
        let file = dir
            .create(&tmp)
            .await
            .map_err(io_err("creating", tmp_path.clone()))?;
        let header = encode_segment_header(&SegmentHeader {
            log_id,
            index,
            first_sequence,
            segment_size_bytes,
            chain,
        });
        file.write_at(0, &header)
            .await
            .map_err(io_err("writing", tmp_path.clone()))?;
        file.fdatasync()
            .await
            .map_err(io_err("fdatasync", tmp_path.clone()))?;
        dir.rename(&tmp, &name)
            .map_err(io_err("renaming", tmp_path))?;
        dir.sync_dir()
            .map_err(io_err("syncing directory", dir.location().to_path_buf()))?;
        let mut inner = self.inner.borrow_mut();
        let old_index = inner.active_index;
        let old_first = inner.active_first_sequence;
        inner.sealed.insert(old_index, old_first);
        inner.active = file;
        inner.active_index = index;
        inner.active_first_sequence = first_sequence;
        inner.active_durable_end = SEGMENT_HEADER_SIZE_BYTES;
        inner.stats.fdatasyncs += 1;
        Ok(())
    }

    /// Reads a durable record back, checking it. Sealed segments are read through a memory
    /// map, the active one with a DMA read.
    pub async fn read(&self, location: Location) -> Result<Record, WalError> {
        let (active, key, dir) = {
            let inner = self.inner.borrow();
            let sealed = inner.sealed.contains_key(&location.segment);
            if (!sealed && location.segment != inner.active_index)
                || location.offset < SEGMENT_HEADER_SIZE_BYTES + GROUP_HEADER_SIZE_BYTES
                || (!sealed
                    && location.offset + RECORD_HEADER_SIZE_BYTES > inner.active_durable_end)
            {
                return Err(WalError::NoRecord { location });
            }
            let active = (!sealed).then(|| inner.active.clone());
            (active, inner.record_key, inner.dir.clone())
        };
        let name = segment_file_name(location.segment);
        let path = dir.location().join(&name);
        let header_len = RECORD_HEADER_SIZE_BYTES as usize;
        let head = match &active {
            Some(file) => file.read_at(location.offset, header_len).await,
            None => dir.read_sealed(&name, location.offset, header_len),
        }
        .map_err(io_err("reading", path.clone()))?;
        let len = if head.len() == header_len {
            u64::from(u32::from_le_bytes(
                head[12..16].try_into().expect("4 bytes"),
            ))
        } else {
            0
        };
        let size = header_len + len.min(RECORD_PAYLOAD_MAX_BYTES) as usize;
        let whole = match &active {
            Some(file) => file.read_at(location.offset, size).await,
            None => dir.read_sealed(&name, location.offset, size),
        }
        .map_err(io_err("reading", path))?;
        decode_owned(&whole, key, location)
    }

    /// Drops whole sealed segments all of whose records are below `low_water` (the lowest
    /// sequence the caller still needs). The new first segment is made durable in the
    /// superblock first; memory follows; then the files go (a file that fails to go is a
    /// stale segment the next open removes). Returns how many segments were dropped.
    pub async fn truncate_below(&self, low_water: u64) -> Result<u64, WalError> {
        self.lock_io().await?;
        let _lock = IoLock { wal: self };
        self.truncate_locked(low_water).await
    }

    async fn truncate_locked(&self, low_water: u64) -> Result<u64, WalError> {
        let (removable, head, mut superblock, dir) = {
            let inner = self.inner.borrow();
            // Segment i may go when segment i+1 starts at or below `low_water`.
            let mut starts: Vec<(u64, u64)> = inner
                .sealed
                .iter()
                .map(|(index, first)| (*index, *first))
                .collect();
            starts.push((inner.active_index, inner.active_first_sequence));
            let removable: Vec<u64> = starts
                .windows(2)
                .take_while(|pair| pair[1].1 <= low_water)
                .map(|pair| pair[0].0)
                .collect();
            (
                removable,
                inner.head.clone(),
                inner.superblock,
                inner.dir.clone(),
            )
        };
        let Some(&last_removed) = removable.last() else {
            return Ok(0);
        };
        superblock.epoch += 1;
        superblock.first_segment = last_removed + 1;
        let written = write_superblock(&*head, &superblock).await;
        if let Err(err) = written {
            let err = io_err(
                "writing the superblock",
                dir.location().join(HEAD_FILE_NAME),
            )(err);
            self.inner.borrow_mut().poison(err.to_string());
            return Err(err);
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.superblock = superblock;
            inner.stats.fdatasyncs += 1;
            for index in &removable {
                inner
                    .sealed
                    .remove(index)
                    .expect("removable segments are sealed");
            }
            inner.first_sequence = inner
                .sealed
                .values()
                .next()
                .copied()
                .unwrap_or(inner.active_first_sequence);
            assert!(inner.first_sequence <= low_water.max(inner.first_sequence));
        }
        let mut first_error = None;
        for index in &removable {
            let name = segment_file_name(*index);
            if let Err(err) = dir.remove(&name) {
                first_error.get_or_insert(io_err("removing", dir.location().join(&name))(err));
            }
        }
        if let Err(err) = dir.sync_dir() {
            first_error.get_or_insert(io_err("syncing directory", dir.location().to_path_buf())(
                err,
            ));
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(removable.len() as u64),
        }
    }

    /// Takes the leader role for a write that is not a group (the superblock).
    async fn lock_io(&self) -> Result<(), WalError> {
        loop {
            let generation = {
                let mut inner = self.inner.borrow_mut();
                if let Some(why) = &inner.poisoned {
                    return Err(WalError::Poisoned(why.clone()));
                }
                if !inner.flushing {
                    inner.flushing = true;
                    return Ok(());
                }
                inner.generation
            };
            self.changed(generation).await;
        }
    }
}

/// Releases `lock_io`.
struct IoLock<'a> {
    wal: &'a Wal,
}

impl Drop for IoLock<'_> {
    fn drop(&mut self) {
        let mut inner = self.wal.inner.borrow_mut();
        if inner.flushing {
            inner.flushing = false;
            inner.notify();
        }
    }
}

impl Inner {
    fn enqueue(&mut self, kind: u16, payload: &[u8], size: u64) -> Appended {
        let segment_size = self.config.segment_size_bytes;
        let sequence = self.next_sequence;
        let joins_open = self
            .pending
            .back()
            .is_some_and(|group| group.start + group.buf.len() as u64 + size <= segment_size);
        if !joins_open {
            let mut segment = self.tail_segment;
            let mut start = align_up(self.tail_end, BLOCK_SIZE_BYTES);
            if start + GROUP_HEADER_SIZE_BYTES + size > segment_size {
                segment += 1;
                start = SEGMENT_HEADER_SIZE_BYTES;
            }
            self.pending.push_back(Group {
                segment,
                start,
                buf: vec![0u8; GROUP_HEADER_SIZE_BYTES as usize],
                first_sequence: sequence,
                last_sequence: sequence - 1,
                chain_in: self.chain,
                chain_out: self.chain,
            });
        }
        let record_key = self.record_key;
        let group = self.pending.back_mut().expect("a group is open");
        let offset = group.start + group.buf.len() as u64;
        let header = RecordHeader {
            payload_len: payload.len() as u32,
            sequence,
            kind,
            prev: group.chain_out,
        };
        let checksum = encode_record(&mut group.buf, record_key, &header, payload);
        assert_eq!(group.start + group.buf.len() as u64, offset + size);
        assert!(offset + size <= segment_size);
        group.last_sequence = sequence;
        group.chain_out = checksum;
        self.chain = checksum;
        self.tail_segment = group.segment;
        self.tail_end = offset + size;
        self.next_sequence += 1;
        self.in_flight_bytes += size;
        assert!(self.in_flight_bytes <= self.config.in_flight_max_bytes);
        self.stats.in_flight_high_water_bytes = self
            .stats
            .in_flight_high_water_bytes
            .max(self.in_flight_bytes);
        self.stats.appends += 1;
        self.stats.payload_bytes += payload.len() as u64;
        Appended {
            sequence,
            location: Location {
                segment: group.segment,
                offset,
            },
        }
    }

    fn poison(&mut self, why: String) {
        poison_dir(&self.key);
        self.poisoned.get_or_insert(why);
    }

    fn notify(&mut self) {
        self.generation += 1;
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }
}

fn decode_owned(bytes: &[u8], key: u64, location: Location) -> Result<Record, WalError> {
    match decode_record(bytes, key) {
        Ok((header, payload, _)) => Ok(Record {
            sequence: header.sequence,
            kind: header.kind,
            payload: payload.to_vec(),
        }),
        Err(defect) => Err(WalError::BadRecord {
            location,
            defect: format!("{defect:?}"),
        }),
    }
}

struct Changed<'a> {
    wal: &'a Wal,
    generation: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.wal.inner.borrow_mut();
        if inner.generation != self.generation {
            return Poll::Ready(());
        }
        inner.waiters.push(cx.waker().clone());
        Poll::Pending
    }
}

struct LeaderGuard<'a> {
    wal: &'a Wal,
    done: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut inner = self.wal.inner.borrow_mut();
            inner.flushing = false;
            inner.poison("a group commit was abandoned mid-write".into());
            inner.notify();
        }
    }
}

fn payload_max_bytes(config: &WalConfig) -> u64 {
    RECORD_PAYLOAD_MAX_BYTES.min(
        config.segment_size_bytes
            - SEGMENT_HEADER_SIZE_BYTES
            - GROUP_HEADER_SIZE_BYTES
            - RECORD_HEADER_SIZE_BYTES,
    ) / RECORD_ALIGN_BYTES
        * RECORD_ALIGN_BYTES
}

fn check_config(config: &WalConfig) -> Result<(), WalError> {
    let segment = config.segment_size_bytes;
    if !(SEGMENT_SIZE_MIN_BYTES..=SEGMENT_SIZE_MAX_BYTES).contains(&segment)
        || !segment.is_multiple_of(BLOCK_SIZE_BYTES)
    {
        return Err(WalError::Config(format!(
            "segment size {segment} must be a multiple of {BLOCK_SIZE_BYTES} in {SEGMENT_SIZE_MIN_BYTES}..={SEGMENT_SIZE_MAX_BYTES}"
        )));
    }
    let in_flight = config.in_flight_max_bytes;
    let record_max = record_size_bytes(payload_max_bytes(config));
    if !(record_max..=IN_FLIGHT_MAX_BYTES).contains(&in_flight) {
        return Err(WalError::Config(format!(
            "in-flight bound {in_flight} must be in {record_max}..={IN_FLIGHT_MAX_BYTES}"
        )));
    }
    Ok(())
}

/// A new log's identity: 16 bytes from the kernel's random source.
fn new_log_id() -> Result<LogId, WalError> {
    let mut id = [0u8; LOG_ID_SIZE_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .map_err(io_err("reading", PathBuf::from("/dev/urandom")))?;
    Ok(id)
}

/// Writes a whole new file through a temporary name: create, write, sync, rename. The
/// caller syncs the directory.
fn write_new_file(dir: &dyn LogDir, name: &str, bytes: &[u8]) -> Result<(), WalError> {
    let tmp = format!("{name}{TMP_SUFFIX}");
    let tmp_path = dir.location().join(&tmp);
    dir.write_file(&tmp, bytes)
        .map_err(io_err("writing", tmp_path.clone()))?;
    dir.rename(&tmp, name).map_err(io_err("renaming", tmp_path))
}

/// Starts a log in an empty directory: segment 0 first, then the superblock, then a
/// directory sync. A crash in between leaves segment 0 alone (header only), which is
/// finished here on the next open with the identity it carries.
async fn initialize_if_new(dir: &dyn LogDir, config: &WalConfig) -> Result<(), WalError> {
    let location = dir.location().to_path_buf();
    let names = dir.list().map_err(io_err("listing", location.clone()))?;
    if names.iter().any(|n| n == HEAD_FILE_NAME) {
        return Ok(());
    }
    let not_a_log = || {
        WalError::from(ScanError::NotALog {
            path: location.clone(),
        })
    };
    let segment0 = segment_file_name(0);
    let others = names
        .iter()
        .any(|n| !n.ends_with(TMP_SUFFIX) && *n != segment0);
    if others || !config.create {
        return Err(not_a_log());
    }
    let log_id = if names.contains(&segment0) {
        // Finish an interrupted start only if segment 0 is exactly a fresh header.
        let bytes = dir
            .read_whole(&segment0)
            .map_err(io_err("reading", location.join(&segment0)))?;
        match decode_segment_header(&bytes) {
            Some(h)
                if bytes.len() as u64 == SEGMENT_HEADER_SIZE_BYTES
                    && h.index == 0
                    && h.first_sequence == 1
                    && h.chain == chain_origin(&h.log_id) =>
            {
                h.log_id
            }
            _ => return Err(not_a_log()),
        }
    } else {
        let log_id = new_log_id()?;
        let header = SegmentHeader {
            log_id,
            index: 0,
            first_sequence: 1,
            segment_size_bytes: config.segment_size_bytes,
            chain: chain_origin(&log_id),
        };
        write_new_file(dir, &segment0, &encode_segment_header(&header))?;
        // Segment 0's name is durable before the head names the log: a crash never leaves
        // a head without its first segment.
        dir.sync_dir()
            .map_err(io_err("syncing directory", location.clone()))?;
        log_id
    };
    let superblock = Superblock {
        log_id,
        epoch: 1,
        first_segment: 0,
        acked_sequence: 0,
        acked_segment: 0,
        acked_chain: chain_origin(&log_id),
    };
    write_new_file(dir, HEAD_FILE_NAME, &encode_head(&superblock))?;
    dir.sync_dir()
        .map_err(io_err("syncing directory", location))
}

/// Writes `superblock` to its slot of the head file and syncs it.
async fn write_superblock(head: &dyn LogFile, superblock: &Superblock) -> std::io::Result<()> {
    let bytes = encode_superblock(superblock);
    head.write_at(superblock.slot() * SUPERBLOCK_SLOT_SIZE_BYTES, &bytes)
        .await?;
    head.fdatasync().await
}

/// The superblock after recovery: the watermark moves to the last replayed record (made
/// durable just before), or down to it when acknowledged records were lost and reported.
fn recovered_superblock(report: &ScanReport) -> Superblock {
    let last = report.segments.last().expect("one segment at least");
    let acked_segment = report
        .segments
        .iter()
        .rev()
        .find(|s| s.records > 0)
        .map_or(report.first_segment, |s| s.index);
    Superblock {
        epoch: report.superblock.epoch + 1,
        acked_sequence: report.last_sequence,
        acked_segment,
        acked_chain: last.chain_end,
        ..report.superblock
    }
}

fn remove_leftovers(dir: &dyn LogDir, report: &ScanReport) -> Result<(), WalError> {
    let location = dir.location();
    for name in report.stale_segments.iter().chain(&report.temporary_files) {
        dir.remove(name)
            .map_err(io_err("removing", location.join(name)))?;
    }
    Ok(())
}

/// Cuts the active segment back to its last whole group. Everything from `valid_end` (a
/// block boundary: groups are padded to blocks, so no block holding a good group is ever
/// rewritten) to the end of the file's last block is zeroed with O_DIRECT writes, the file
/// is cut to `valid_end`, and then, repaired or not, the segment is fdatasynced and the
/// directory fsynced: what recovery replays is durable before anything is acknowledged.
async fn repair_tail(
    dir: &dyn LogDir,
    file: &dyn LogFile,
    name: &str,
    valid_end: u64,
    file_len: u64,
) -> Result<(), WalError> {
    assert!(valid_end.is_multiple_of(BLOCK_SIZE_BYTES));
    let path = dir.location().join(name);
    let end = align_up(file_len, BLOCK_SIZE_BYTES);
    let mut at = valid_end;
    while at < end {
        let len = (end - at).min(REPAIR_WRITE_MAX_BYTES);
        file.write_at(at, &vec![0u8; len as usize])
            .await
            .map_err(io_err("zeroing the torn tail of", path.clone()))?;
        at += len;
    }
    if file_len != valid_end {
        dir.set_len(name, valid_end)
            .map_err(io_err("truncating", path.clone()))?;
    }
    file.fdatasync().await.map_err(io_err("fdatasync", path))?;
    dir.sync_dir()
        .map_err(io_err("syncing directory", dir.location().to_path_buf()))
}
