//! A fault-injecting in-memory file layer for tests: it records every write, sync and
//! directory operation the log makes, and builds the disk a crash at any point of that
//! history would leave:
//!
//! - what an fdatasync covered (the file's writes before it) survives;
//! - directory operations survive only once a directory sync followed them;
//! - every write not yet covered is, independently, dropped, kept, or torn (any subset of
//!   its 512-byte sectors), and the survivors land in a random order (reordering within the
//!   unsynced window);
//! - `Crash::ProcessKill` keeps everything but leaves the unsynced part unsynced, as
//!   SIGKILL does with the page cache: a later power loss can still drop it.
//!
//! An fdatasync can be made to fail with EIO; the writes it was to cover are then in limbo
//! (visible to reads, as in the page cache after a failed writeback, but never made
//! durable by later syncs).

use crate::format::{BLOCK_SIZE_BYTES, SECTOR_SIZE_BYTES};
use crate::testkit::splitmix64;
use crate::vfs::{IoFuture, LogDir, LogFile, ScanSource};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

type Inode = u64;

/// One recorded operation.
#[derive(Debug, Clone)]
pub enum Op {
    Create {
        name: String,
        inode: Inode,
    },
    Rename {
        from: String,
        to: String,
    },
    Remove {
        name: String,
    },
    Write {
        inode: Inode,
        offset: u64,
        bytes: Arc<[u8]>,
    },
    SetLen {
        inode: Inode,
        len: u64,
    },
    Sync {
        inode: Inode,
    },
    /// An fdatasync that failed: the writes it was to cover stay in limbo.
    SyncFailed {
        inode: Inode,
    },
    SyncDir,
}

/// Files and names.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    names: BTreeMap<String, Inode>,
    files: HashMap<Inode, Vec<u8>>,
}

impl Disk {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create { name, inode } => {
                // Inodes are never reused: the data may have been synced before the name.
                self.files.entry(*inode).or_default();
                self.names.insert(name.clone(), *inode);
            }
            Op::Rename { from, to } => {
                if let Some(inode) = self.names.remove(from) {
                    self.names.insert(to.clone(), inode);
                }
            }
            Op::Remove { name } => {
                self.names.remove(name);
            }
            Op::Write {
                inode,
                offset,
                bytes,
            } => {
                let file = self.files.entry(*inode).or_default();
                let end = *offset as usize + bytes.len();
                if file.len() < end {
                    file.resize(end, 0);
                }
                file[*offset as usize..end].copy_from_slice(bytes);
            }
            Op::SetLen { inode, len } => {
                self.files
                    .entry(*inode)
                    .or_default()
                    .resize(*len as usize, 0);
            }
            Op::Sync { .. } | Op::SyncFailed { .. } | Op::SyncDir => {}
        }
    }

    /// Bytes of the file `name`, if it exists.
    pub fn file(&self, name: &str) -> Option<&Vec<u8>> {
        self.files.get(self.names.get(name)?)
    }

    pub fn names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    /// Replaces (or creates) a file's content, for tests that damage an image.
    pub fn put(&mut self, name: &str, bytes: Vec<u8>) {
        let inode = self.names.get(name).copied().unwrap_or_else(|| {
            let inode = 1 << 40 | self.files.len() as u64;
            self.names.insert(name.to_string(), inode);
            inode
        });
        self.files.insert(inode, bytes);
    }

    pub fn remove(&mut self, name: &str) {
        self.names.remove(name);
    }
}

/// What a crash does to the writes and directory operations not yet synced.
#[derive(Debug, Clone, Copy)]
pub enum Crash {
    /// SIGKILL: nothing is lost, nothing unsynced becomes durable.
    ProcessKill,
    /// Power loss, the fates drawn from the seed.
    PowerLoss { seed: u64 },
}

#[derive(Default)]
struct State {
    base: Disk,
    /// Ops replayed on `base` at a crash; starts with the unsynced ops inherited from a
    /// `ProcessKill` image.
    history: Vec<Op>,
    current: Disk,
    next_inode: Inode,
    syncs: u64,
    fail_sync_at: Option<u64>,
}

/// The in-memory, fault-injecting directory. Clones share it (across threads too, so a
/// test can hand it to an executor thread).
#[derive(Clone)]
pub struct FaultyDir {
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

impl Default for FaultyDir {
    fn default() -> Self {
        FaultyDir::new()
    }
}

/// What was durable and what was not at some point of the history.
struct Replayed {
    durable: Disk,
    /// Unsynced ops, in order.
    pending: Vec<Op>,
}

impl FaultyDir {
    pub fn new() -> FaultyDir {
        FaultyDir::from_disk(Disk::default(), Vec::new())
    }

    fn from_disk(base: Disk, pending: Vec<Op>) -> FaultyDir {
        let mut current = base.clone();
        for op in &pending {
            current.apply(op);
        }
        let next_inode = current.files.keys().max().map_or(1, |max| max + 1);
        FaultyDir {
            path: PathBuf::from("/faulty"),
            state: Arc::new(Mutex::new(State {
                base,
                history: pending,
                current,
                next_inode,
                syncs: 0,
                fail_sync_at: None,
            })),
        }
    }

    /// A directory starting from `disk`, all of it durable.
    pub fn with_disk(disk: Disk) -> FaultyDir {
        FaultyDir::from_disk(disk, Vec::new())
    }

    /// Number of operations recorded so far: crash points are `0..=ops()`.
    pub fn ops(&self) -> usize {
        lock(&self.state).history.len()
    }

    /// Makes the fdatasync with this index (0 is the first from now) fail with EIO.
    pub fn fail_fdatasync(&self, index: u64) {
        let mut state = lock(&self.state);
        state.fail_sync_at = Some(state.syncs + index);
    }

    /// What the running process sees now.
    pub fn current(&self) -> Disk {
        lock(&self.state).current.clone()
    }

    fn replay(&self, point: usize) -> Replayed {
        let state = lock(&self.state);
        let mut durable = state.base.clone();
        let mut pending: Vec<Op> = Vec::new();
        for op in &state.history[..point] {
            match op {
                Op::Sync { inode } => {
                    let (covered, rest): (Vec<Op>, Vec<Op>) = std::mem::take(&mut pending)
                        .into_iter()
                        .partition(|p| data_inode(p) == Some(*inode));
                    for p in &covered {
                        durable.apply(p);
                    }
                    pending = rest;
                }
                Op::SyncFailed { inode } => {
                    // Limbo: mark the covered writes as never to be made durable by a sync.
                    for p in pending.iter_mut() {
                        if data_inode(p) == Some(*inode) {
                            *p = limbo(p);
                        }
                    }
                }
                Op::SyncDir => {
                    let (covered, rest): (Vec<Op>, Vec<Op>) = std::mem::take(&mut pending)
                        .into_iter()
                        .partition(is_dir_op);
                    for p in &covered {
                        durable.apply(p);
                    }
                    pending = rest;
                }
                other => pending.push(other.clone()),
            }
        }
        Replayed { durable, pending }
    }

    /// The directory a crash after the first `point` operations leaves. A `ProcessKill`
    /// image keeps the unsynced operations unsynced (a later crash can still lose them).
    pub fn crash_at(&self, point: usize, crash: Crash) -> FaultyDir {
        let Replayed {
            mut durable,
            pending,
        } = self.replay(point);
        match crash {
            Crash::ProcessKill => {
                let pending = pending.into_iter().map(|op| unlimbo(&op)).collect();
                FaultyDir::from_disk(durable, pending)
            }
            Crash::PowerLoss { seed } => {
                lose_unsynced(&mut durable, pending, seed);
                FaultyDir::from_disk(durable, Vec::new())
            }
        }
    }
}

const LIMBO_INODE_BIT: u64 = 1 << 63;

fn data_inode(op: &Op) -> Option<Inode> {
    match op {
        Op::Write { inode, .. } | Op::SetLen { inode, .. } => Some(*inode),
        _ => None,
    }
}

fn is_dir_op(op: &Op) -> bool {
    matches!(
        op,
        Op::Create { .. } | Op::Rename { .. } | Op::Remove { .. }
    )
}

fn limbo(op: &Op) -> Op {
    match op {
        Op::Write {
            inode,
            offset,
            bytes,
        } => Op::Write {
            inode: inode | LIMBO_INODE_BIT,
            offset: *offset,
            bytes: bytes.clone(),
        },
        Op::SetLen { inode, len } => Op::SetLen {
            inode: inode | LIMBO_INODE_BIT,
            len: *len,
        },
        other => other.clone(),
    }
}

fn unlimbo(op: &Op) -> Op {
    match op {
        Op::Write {
            inode,
            offset,
            bytes,
        } => Op::Write {
            inode: inode & !LIMBO_INODE_BIT,
            offset: *offset,
            bytes: bytes.clone(),
        },
        Op::SetLen { inode, len } => Op::SetLen {
            inode: inode & !LIMBO_INODE_BIT,
            len: *len,
        },
        other => other.clone(),
    }
}

/// Power loss: each unsynced directory operation survives or not (in order); each unsynced
/// write is dropped, kept or torn to a subset of its sectors, the survivors applied in a
/// shuffled order.
fn lose_unsynced(disk: &mut Disk, pending: Vec<Op>, seed: u64) {
    let mut rng = seed ^ 0x5EED_F00D;
    let mut data = Vec::new();
    for op in pending {
        if is_dir_op(&op) {
            if splitmix64(&mut rng).is_multiple_of(2) {
                disk.apply(&op);
            }
            continue;
        }
        match splitmix64(&mut rng) % 3 {
            0 => {}
            1 => data.push(unlimbo(&op)),
            _ => match unlimbo(&op) {
                Op::Write {
                    inode,
                    offset,
                    bytes,
                } => {
                    let sectors = bytes.len().div_ceil(SECTOR_SIZE_BYTES as usize);
                    for sector in 0..sectors {
                        if splitmix64(&mut rng).is_multiple_of(2) {
                            let start = sector * SECTOR_SIZE_BYTES as usize;
                            let end = (start + SECTOR_SIZE_BYTES as usize).min(bytes.len());
                            data.push(Op::Write {
                                inode,
                                offset: offset + start as u64,
                                bytes: bytes[start..end].into(),
                            });
                        }
                    }
                }
                other => data.push(other),
            },
        }
    }
    // Fisher-Yates with the seeded generator.
    for i in (1..data.len()).rev() {
        let j = (splitmix64(&mut rng) % (i as u64 + 1)) as usize;
        data.swap(i, j);
    }
    for op in &data {
        // A write to a file no durable name reaches is applied to an orphan inode.
        disk.apply(op);
    }
}

impl State {
    fn record(&mut self, op: Op) {
        self.current.apply(&op);
        self.history.push(op);
    }

    fn inode(&self, name: &str) -> io::Result<Inode> {
        self.current
            .names
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))
    }
}

struct FaultyFile {
    state: Arc<Mutex<State>>,
    inode: Inode,
}

impl LogFile for FaultyFile {
    fn write_at<'a>(&'a self, offset: u64, bytes: &'a [u8]) -> IoFuture<'a, ()> {
        Box::pin(async move {
            // O_DIRECT's rule, checked so a misaligned write fails here as it would there.
            if !offset.is_multiple_of(BLOCK_SIZE_BYTES)
                || !(bytes.len() as u64).is_multiple_of(BLOCK_SIZE_BYTES)
            {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            lock(&self.state).record(Op::Write {
                inode: self.inode,
                offset,
                bytes: bytes.into(),
            });
            Ok(())
        })
    }

    fn read_at(&self, offset: u64, len: usize) -> IoFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let state = lock(&self.state);
            let file = state
                .current
                .files
                .get(&self.inode)
                .cloned()
                .unwrap_or_default();
            let start = (offset as usize).min(file.len());
            let end = start.saturating_add(len).min(file.len());
            Ok(file[start..end].to_vec())
        })
    }

    fn fdatasync(&self) -> IoFuture<'_, ()> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            let index = state.syncs;
            state.syncs += 1;
            if state.fail_sync_at == Some(index) {
                state.record(Op::SyncFailed { inode: self.inode });
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            state.record(Op::Sync { inode: self.inode });
            Ok(())
        })
    }
}

impl ScanSource for FaultyDir {
    fn location(&self) -> &Path {
        &self.path
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(lock(&self.state).current.names())
    }

    fn read_whole(&self, name: &str) -> io::Result<Vec<u8>> {
        let state = lock(&self.state);
        let inode = state.inode(name)?;
        Ok(state.current.files.get(&inode).cloned().unwrap_or_default())
    }
}

/// A disk image (no history) scanned directly, for checking many crash points quickly.
impl ScanSource for Disk {
    fn location(&self) -> &Path {
        Path::new("/image")
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.names())
    }

    fn read_whole(&self, name: &str) -> io::Result<Vec<u8>> {
        self.file(name)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))
    }
}

impl FaultyDir {
    /// The durable disk after a power loss at `point` (no directory object around it).
    pub fn image_at(&self, point: usize, seed: u64) -> Disk {
        let Replayed {
            mut durable,
            pending,
        } = self.replay(point);
        lose_unsynced(&mut durable, pending, seed);
        durable
    }
}

impl LogDir for FaultyDir {
    fn create<'a>(&'a self, name: &'a str) -> IoFuture<'a, Rc<dyn LogFile>> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            let inode = state.next_inode;
            state.next_inode += 1;
            state.record(Op::Create {
                name: name.to_string(),
                inode,
            });
            Ok(Rc::new(FaultyFile {
                state: self.state.clone(),
                inode,
            }) as Rc<dyn LogFile>)
        })
    }

    fn open<'a>(&'a self, name: &'a str) -> IoFuture<'a, Rc<dyn LogFile>> {
        Box::pin(async move {
            let inode = lock(&self.state).inode(name)?;
            Ok(Rc::new(FaultyFile {
                state: self.state.clone(),
                inode,
            }) as Rc<dyn LogFile>)
        })
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut state = lock(&self.state);
        let inode = state.next_inode;
        state.next_inode += 1;
        state.record(Op::Create {
            name: name.to_string(),
            inode,
        });
        state.record(Op::Write {
            inode,
            offset: 0,
            bytes: bytes.into(),
        });
        state.record(Op::Sync { inode });
        Ok(())
    }

    fn read_sealed(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = self.read_whole(name)?;
        let start = (offset as usize).min(file.len());
        let end = start.saturating_add(len).min(file.len());
        Ok(file[start..end].to_vec())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.inode(from)?;
        state.record(Op::Rename {
            from: from.to_string(),
            to: to.to_string(),
        });
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.inode(name)?;
        state.record(Op::Remove {
            name: name.to_string(),
        });
        Ok(())
    }

    fn set_len(&self, name: &str, len: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        let inode = state.inode(name)?;
        state.record(Op::SetLen { inode, len });
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        lock(&self.state).record(Op::SyncDir);
        Ok(())
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
