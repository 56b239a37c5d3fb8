//! The write-ahead log: glommio DMA files (O_DIRECT over io_uring), group commit, bounded
//! in-flight bytes, recovery on open.
//!
//! Group commit: `append` encodes the record into the open group and waits. Whichever
//! waiting appender finds no group being written becomes the leader: it writes the oldest
//! group in one DMA write, calls fdatasync once, advances the durable watermark and wakes
//! everyone. Appends made while a group is in flight form the next group. One group is in
//! flight at a time, which is what lets recovery tell a torn tail from corruption
//! (format.rs). An append's future completes only once its record is durable.
//!
//! The glommio pitfall on this machine's virtio disk: glommio probes IOPOLL support with a
//! read on the first DMA file it opens on a device, and caches the answer per thread. On an
//! empty new file the probe read returns EOF "successfully", the device is marked pollable,
//! and every later DMA read fails with EOPNOTSUPP. `Wal::open` therefore opens the non-empty
//! head file (one block) first and reads it back, before any segment is opened.
//!
//! A failed write or fdatasync poisons the log: the page state after a failed fdatasync is
//! unknown, so it is never retried; the replica must reopen (and recover) the log.

use crate::format::*;
use crate::scan::{self, Corruption, Location, RecordView, ScanError, ScanReport};
use glommio::io::{DmaFile, OpenOptions};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Default segment size.
pub const SEGMENT_SIZE_DEFAULT_BYTES: u64 = 64 << 20;
/// Default bound on bytes appended but not yet durable.
pub const IN_FLIGHT_DEFAULT_BYTES: u64 = 8 << 20;
/// Upper bound of the in-flight setting.
pub const IN_FLIGHT_MAX_BYTES: u64 = 256 << 20;
/// DMA buffer memory glommio registers per executor (this machine allows 8 MiB locked).
pub const EXECUTOR_IO_MEMORY_BYTES: usize = 2 << 20;

const _: () =
    assert!(IN_FLIGHT_DEFAULT_BYTES >= RECORD_HEADER_SIZE_BYTES + RECORD_PAYLOAD_MAX_BYTES);
const _: () = assert!(IN_FLIGHT_DEFAULT_BYTES <= IN_FLIGHT_MAX_BYTES);
const _: () = assert!(SEGMENT_SIZE_DEFAULT_BYTES >= SEGMENT_SIZE_MIN_BYTES);
const _: () = assert!(SEGMENT_SIZE_DEFAULT_BYTES <= SEGMENT_SIZE_MAX_BYTES);

/// What `open` does when acknowledged records are damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptionPolicy {
    /// Refuse to open: `WalError::Corrupt` lists what is damaged.
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
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size_bytes: SEGMENT_SIZE_DEFAULT_BYTES,
            in_flight_max_bytes: IN_FLIGHT_DEFAULT_BYTES,
            on_corruption: CorruptionPolicy::Fail,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("log corrupted: {} damaged range(s), first in segment {} at offset {} (sequences {}..={}: {})",
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
    #[error("the log failed earlier and must be reopened: {0}")]
    Poisoned(String),
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

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn glommio_err<'a, T>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(glommio::GlommioError<T>) -> WalError + 'a {
    move |err| WalError::Io {
        op,
        path: path.to_path_buf(),
        source: err.into(),
    }
}

/// What recovery found, for the replica and for logs.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub segments: u64,
    pub records: u64,
    pub first_sequence: u64,
    /// Highest durable sequence (`first_sequence - 1` when empty).
    pub last_sequence: u64,
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
    pub fdatasyncs: u64,
    pub bytes_written: u64,
    pub durable_sequence: u64,
    /// Most bytes ever appended and not yet durable (never above `in_flight_max_bytes`).
    pub in_flight_high_water_bytes: u64,
}

struct Group {
    segment: u64,
    start: u64,
    buf: Vec<u8>,
    first_sequence: u64,
    last_sequence: u64,
}

struct Sealed {
    path: PathBuf,
    first_sequence: u64,
    mmap: Option<memmap2::Mmap>,
}

struct Inner {
    dir: PathBuf,
    config: WalConfig,
    sealed: BTreeMap<u64, Sealed>,
    active: Rc<DmaFile>,
    active_index: u64,
    active_first_sequence: u64,
    /// End of the durable data of the active segment (block aligned).
    active_durable_end: u64,
    /// Segment and end of the newest group (open or not).
    tail_segment: u64,
    tail_end: u64,
    pending: VecDeque<Group>,
    next_sequence: u64,
    durable_sequence: u64,
    first_sequence: u64,
    in_flight_bytes: u64,
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

impl Wal {
    /// Opens (creating if `dir` is empty or absent) the log in `dir`, recovering it: every
    /// record is checked, a torn tail is cut off, and `replay` sees each good record in
    /// sequence order. Must run inside a glommio executor.
    pub async fn open(
        dir: &Path,
        config: WalConfig,
        mut replay: impl FnMut(RecordView<'_>),
    ) -> Result<(Wal, Recovery), WalError> {
        check_config(&config)?;
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        initialize_if_new(dir, &config)?;
        probe_dma_reads(dir).await?;
        let report = scan::scan(dir, &mut replay)?;
        if !report.corruption.is_empty() && config.on_corruption == CorruptionPolicy::Fail {
            return Err(WalError::Corrupt {
                corruption: report.corruption,
            });
        }
        remove_leftovers(dir, &report)?;
        let last = report
            .segments
            .last()
            .expect("scan returns one segment at least");
        let durable_end = repair_tail(&last.path, last.valid_end, last.file_len)?;
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&last.path)
            .await
            .map_err(glommio_err("opening", &last.path))?;
        let sealed = report.segments[..report.segments.len() - 1]
            .iter()
            .map(|segment| {
                let sealed = Sealed {
                    path: segment.path.clone(),
                    first_sequence: segment.first_sequence,
                    mmap: None,
                };
                (segment.index, sealed)
            })
            .collect();
        let recovery = Recovery {
            segments: report.segments.len() as u64,
            records: report.records,
            first_sequence: report.first_sequence,
            last_sequence: report.last_sequence,
            torn_tail: report.torn_tail.clone(),
            corruption: report.corruption.clone(),
        };
        let inner = Inner {
            dir: dir.to_path_buf(),
            config,
            sealed,
            active: Rc::new(active),
            active_index: last.index,
            active_first_sequence: last.first_sequence,
            active_durable_end: durable_end,
            tail_segment: last.index,
            tail_end: durable_end,
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
        self.inner.borrow().dir.clone()
    }

    /// Highest sequence whose record is durable.
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

    /// Appends one record; completes once it is durable (it shares its fdatasync with the
    /// other appends of its group). Waits while `in_flight_max_bytes` are not yet durable.
    pub async fn append(&self, kind: u16, payload: &[u8]) -> Result<Appended, WalError> {
        if kind == 0 {
            return Err(WalError::KindZero);
        }
        if payload.len() as u64 > RECORD_PAYLOAD_MAX_BYTES {
            return Err(WalError::PayloadTooLarge {
                len: payload.len() as u64,
                max: RECORD_PAYLOAD_MAX_BYTES,
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
        let appended = self.inner.borrow_mut().enqueue(kind, payload, size);
        self.wait_durable(appended.sequence).await?;
        Ok(appended)
    }

    /// Waits until every record appended so far is durable.
    pub async fn sync(&self) -> Result<u64, WalError> {
        let last = self.inner.borrow().next_sequence - 1;
        self.wait_durable(last).await?;
        Ok(last)
    }

    async fn wait_durable(&self, sequence: u64) -> Result<(), WalError> {
        loop {
            let generation = {
                let inner = self.inner.borrow();
                if inner.durable_sequence >= sequence {
                    return Ok(());
                }
                if let Some(why) = &inner.poisoned {
                    return Err(WalError::Poisoned(why.clone()));
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

    /// Writes and syncs the oldest pending group; the caller is the group leader.
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
            Ok(()) => {
                assert_eq!(inner.durable_sequence + 1, group.first_sequence);
                inner.durable_sequence = group.last_sequence;
                inner.in_flight_bytes -= group.buf.len() as u64;
                let padded = align_up(group.buf.len() as u64, BLOCK_SIZE_BYTES);
                inner.active_durable_end = group.start + padded;
                inner.stats.groups += 1;
                inner.stats.fdatasyncs += 1;
                inner.stats.bytes_written += padded;
                inner.stats.durable_sequence = group.last_sequence;
            }
            Err(err) => inner.poisoned = Some(err.to_string()),
        }
        inner.notify();
    }

    async fn write_group(&self, group: &Group, roll: bool) -> Result<(), WalError> {
        if roll {
            self.roll_segment(group.segment, group.first_sequence)
                .await?;
        }
        let (file, path) = {
            let inner = self.inner.borrow();
            let path = inner.dir.join(segment_file_name(inner.active_index));
            (inner.active.clone(), path)
        };
        let padded = align_up(group.buf.len() as u64, BLOCK_SIZE_BYTES) as usize;
        let mut buffer = file.alloc_dma_buffer(padded);
        let bytes = buffer.as_bytes_mut();
        bytes[..group.buf.len()].copy_from_slice(&group.buf);
        bytes[group.buf.len()..].fill(0);
        let written = file
            .write_at(buffer, group.start)
            .await
            .map_err(glommio_err("writing", &path))?;
        if written != padded {
            return Err(WalError::Io {
                op: "writing",
                path,
                source: std::io::Error::other(format!("short write: {written} of {padded} bytes")),
            });
        }
        file.fdatasync()
            .await
            .map_err(glommio_err("fdatasync", &path))?;
        Ok(())
    }

    /// Creates segment `index` (temporary name, header, fdatasync, rename, directory
    /// sync) and seals the active one, whose last group is already durable.
    async fn roll_segment(&self, index: u64, first_sequence: u64) -> Result<(), WalError> {
        let (dir, segment_size_bytes) = {
            let inner = self.inner.borrow();
            (inner.dir.clone(), inner.config.segment_size_bytes)
        };
        let path = dir.join(segment_file_name(index));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", segment_file_name(index)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&tmp)
            .await
            .map_err(glommio_err("creating", &tmp))?;
        let header = encode_segment_header(&SegmentHeader {
            index,
            first_sequence,
            segment_size_bytes,
        });
        let mut buffer = file.alloc_dma_buffer(header.len());
        buffer.as_bytes_mut().copy_from_slice(&header);
        let written = file
            .write_at(buffer, 0)
            .await
            .map_err(glommio_err("writing", &tmp))?;
        assert_eq!(written, header.len());
        file.fdatasync()
            .await
            .map_err(glommio_err("fdatasync", &tmp))?;
        file.rename(&path)
            .await
            .map_err(glommio_err("renaming", &tmp))?;
        sync_dir(&dir)?;
        let mut inner = self.inner.borrow_mut();
        let old_index = inner.active_index;
        let old = Sealed {
            path: dir.join(segment_file_name(old_index)),
            first_sequence: inner.active_first_sequence,
            mmap: None,
        };
        inner.sealed.insert(old_index, old);
        // The old DmaFile closes when its last Rc drops.
        inner.active = Rc::new(file);
        inner.active_index = index;
        inner.active_first_sequence = first_sequence;
        inner.active_durable_end = SEGMENT_HEADER_SIZE_BYTES;
        Ok(())
    }

    /// Reads a durable record back, checking it. Sealed segments are read through a memory
    /// map, the active one with a DMA read.
    pub async fn read(&self, location: Location) -> Result<Record, WalError> {
        let active = {
            let mut inner = self.inner.borrow_mut();
            if location.segment != inner.active_index {
                return inner.read_sealed(location);
            }
            if location.offset < SEGMENT_HEADER_SIZE_BYTES
                || location.offset + RECORD_HEADER_SIZE_BYTES > inner.active_durable_end
            {
                return Err(WalError::NoRecord { location });
            }
            inner.active.clone()
        };
        let path = self.dir().join(segment_file_name(location.segment));
        let head = active
            .read_at(location.offset, RECORD_HEADER_SIZE_BYTES as usize)
            .await
            .map_err(glommio_err("reading", &path))?;
        let len = if head.len() as u64 == RECORD_HEADER_SIZE_BYTES {
            u64::from(u32::from_le_bytes(
                head[12..16].try_into().expect("4 bytes"),
            ))
        } else {
            0
        };
        let size = (RECORD_HEADER_SIZE_BYTES + len.min(RECORD_PAYLOAD_MAX_BYTES)) as usize;
        let whole = active
            .read_at(location.offset, size)
            .await
            .map_err(glommio_err("reading", &path))?;
        decode_owned(&whole, location)
    }

    /// Drops whole sealed segments all of whose records are below `sequence` (the first
    /// sequence the replica still needs after a stable checkpoint). Returns how many
    /// segments were removed.
    pub fn truncate_below(&self, sequence: u64) -> Result<u64, WalError> {
        let mut inner = self.inner.borrow_mut();
        // Segment i may go when segment i+1 starts at or below `sequence`.
        let mut starts: Vec<(u64, u64)> = inner
            .sealed
            .iter()
            .map(|(index, sealed)| (*index, sealed.first_sequence))
            .collect();
        starts.push((inner.active_index, inner.active_first_sequence));
        let removable: Vec<u64> = starts
            .windows(2)
            .take_while(|pair| pair[1].1 <= sequence)
            .map(|pair| pair[0].0)
            .collect();
        let Some(&last_removed) = removable.last() else {
            return Ok(0);
        };
        let new_first = last_removed + 1;
        write_atomically(
            &inner.dir,
            HEAD_FILE_NAME,
            &encode_head(&HeadFile {
                first_segment: new_first,
            }),
        )?;
        for index in &removable {
            let sealed = inner
                .sealed
                .remove(index)
                .expect("removable segments are sealed");
            std::fs::remove_file(&sealed.path).map_err(io_err("removing", &sealed.path))?;
        }
        sync_dir(&inner.dir)?;
        inner.first_sequence = inner
            .sealed
            .values()
            .next()
            .map_or(inner.active_first_sequence, |sealed| sealed.first_sequence);
        assert!(inner.first_sequence <= sequence.max(inner.first_sequence));
        Ok(removable.len() as u64)
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
            if start + size > segment_size {
                segment += 1;
                start = SEGMENT_HEADER_SIZE_BYTES;
            }
            self.pending.push_back(Group {
                segment,
                start,
                buf: Vec::new(),
                first_sequence: sequence,
                last_sequence: sequence - 1,
            });
        }
        let group = self.pending.back_mut().expect("a group is open");
        let offset = group.start + group.buf.len() as u64;
        let header = RecordHeader {
            payload_len: payload.len() as u32,
            sequence,
            group_first_sequence: group.first_sequence,
            kind,
        };
        encode_record(&mut group.buf, &header, payload);
        assert_eq!(group.start + group.buf.len() as u64, offset + size);
        assert!(offset + size <= segment_size);
        group.last_sequence = sequence;
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

    fn read_sealed(&mut self, location: Location) -> Result<Record, WalError> {
        let sealed = self
            .sealed
            .get_mut(&location.segment)
            .ok_or(WalError::NoRecord { location })?;
        if sealed.mmap.is_none() {
            let file =
                std::fs::File::open(&sealed.path).map_err(io_err("opening", &sealed.path))?;
            // SAFETY: sealed segments are never written again; they are only removed
            // (truncate_below), which drops this map first.
            let mmap =
                unsafe { memmap2::Mmap::map(&file) }.map_err(io_err("mapping", &sealed.path))?;
            sealed.mmap = Some(mmap);
        }
        let mmap = sealed.mmap.as_ref().expect("just mapped");
        let bytes = mmap
            .get(location.offset as usize..)
            .filter(|_| location.offset >= SEGMENT_HEADER_SIZE_BYTES)
            .ok_or(WalError::NoRecord { location })?;
        decode_owned(bytes, location)
    }

    fn notify(&mut self) {
        self.generation += 1;
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }
}

fn decode_owned(bytes: &[u8], location: Location) -> Result<Record, WalError> {
    match decode_record(bytes) {
        Ok((header, payload)) => Ok(Record {
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
            inner.poisoned = Some("a group commit was abandoned mid-write".into());
            inner.notify();
        }
    }
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
    let record_max = record_size_bytes(RECORD_PAYLOAD_MAX_BYTES);
    if !(record_max..=IN_FLIGHT_MAX_BYTES).contains(&in_flight) {
        return Err(WalError::Config(format!(
            "in-flight bound {in_flight} must be in {record_max}..={IN_FLIGHT_MAX_BYTES}"
        )));
    }
    Ok(())
}

/// Starts a log in an empty directory: segment 0 first, then the head file. A crash in
/// between leaves segment 0 alone (header only), which is finished here on the next open.
fn initialize_if_new(dir: &Path, config: &WalConfig) -> Result<(), WalError> {
    if dir.join(HEAD_FILE_NAME).exists() {
        return Ok(());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let entry = entry.map_err(io_err("listing", dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    let segment0 = segment_file_name(0);
    let is_tmp = |name: &String| name.ends_with(TMP_SUFFIX);
    let others: Vec<&String> = names
        .iter()
        .filter(|n| !is_tmp(n) && **n != segment0)
        .collect();
    if !others.is_empty() {
        return Err(ScanError::NotALog {
            path: dir.to_path_buf(),
        }
        .into());
    }
    let segment_path = dir.join(&segment0);
    let header = SegmentHeader {
        index: 0,
        first_sequence: 1,
        segment_size_bytes: config.segment_size_bytes,
    };
    if names.contains(&segment0) {
        // Finish an interrupted start only if segment 0 is exactly a fresh header.
        let bytes = std::fs::read(&segment_path).map_err(io_err("reading", &segment_path))?;
        let fresh = bytes.len() as u64 == SEGMENT_HEADER_SIZE_BYTES
            && decode_segment_header(&bytes).is_some_and(|h| h.index == 0 && h.first_sequence == 1);
        if !fresh {
            return Err(ScanError::NotALog {
                path: dir.to_path_buf(),
            }
            .into());
        }
    } else {
        write_atomically(dir, &segment0, &encode_segment_header(&header))?;
    }
    write_atomically(
        dir,
        HEAD_FILE_NAME,
        &encode_head(&HeadFile { first_segment: 0 }),
    )?;
    Ok(())
}

/// Opens the non-empty head file as the first DMA file of this thread on the device and
/// reads it back, so glommio's IOPOLL probe reads real data (see the module comment).
async fn probe_dma_reads(dir: &Path) -> Result<(), WalError> {
    let path = dir.join(HEAD_FILE_NAME);
    let file = DmaFile::open(&path)
        .await
        .map_err(glommio_err("opening", &path))?;
    let result = file.read_at(0, HEAD_FILE_SIZE_BYTES as usize).await;
    let _ = file.close().await;
    match result {
        Ok(bytes)
            if bytes.len() as u64 == HEAD_FILE_SIZE_BYTES && decode_head(&bytes).is_some() =>
        {
            Ok(())
        }
        Ok(_) => Err(ScanError::BadHead { path }.into()),
        Err(err) => Err(WalError::PollProbe {
            path,
            source: err.into(),
        }),
    }
}

fn remove_leftovers(dir: &Path, report: &ScanReport) -> Result<(), WalError> {
    let leftovers: Vec<&PathBuf> = report
        .stale_segments
        .iter()
        .chain(&report.temporary_files)
        .collect();
    for path in &leftovers {
        std::fs::remove_file(path).map_err(io_err("removing", path))?;
    }
    if !leftovers.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Cuts the active segment back to its good records: the block holding the end of the last
/// good record keeps its prefix and is zeroed after it; the file ends at that block.
/// Returns the block-aligned end where the next group goes.
fn repair_tail(path: &Path, valid_end: u64, file_len: u64) -> Result<u64, WalError> {
    let durable_end = align_up(valid_end, BLOCK_SIZE_BYTES);
    let block_start = align_down(valid_end, BLOCK_SIZE_BYTES);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))?;
    let mut dirty = file_len != durable_end;
    if block_start < valid_end && durable_end <= file_len {
        let mut block = vec![0u8; BLOCK_SIZE_BYTES as usize];
        use std::io::Read;
        file.seek(std::io::SeekFrom::Start(block_start))
            .map_err(io_err("seeking", path))?;
        file.read_exact(&mut block)
            .map_err(io_err("reading", path))?;
        let keep = (valid_end - block_start) as usize;
        if block[keep..].iter().any(|b| *b != 0) {
            block[keep..].fill(0);
            file.seek(std::io::SeekFrom::Start(block_start))
                .map_err(io_err("seeking", path))?;
            file.write_all(&block).map_err(io_err("writing", path))?;
            dirty = true;
        }
    }
    if dirty {
        file.set_len(durable_end)
            .map_err(io_err("truncating", path))?;
        file.sync_all().map_err(io_err("fsync", path))?;
    }
    assert_eq!(
        file.metadata().map_err(io_err("stat", path))?.len(),
        durable_end
    );
    Ok(durable_end)
}

/// Writes `name` in `dir` through a temporary file, fsync and rename, then syncs `dir`.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WalError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let path = dir.join(name);
    let mut file = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(bytes).map_err(io_err("writing", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))?;
    sync_dir(dir)?;
    let back = std::fs::read(&path).map_err(io_err("reading", &path))?;
    assert!(
        back == bytes,
        "read-back of {} differs from what was written",
        path.display()
    );
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))
}
