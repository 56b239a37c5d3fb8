//! The replica's records on the write-ahead log: one WAL record per core [`Record`], the
//! WAL's sequence number equal to the core's [`RecordSeq`], so the WAL's durable watermark
//! is exactly `Input::Durable { upto }`.
//!
//! `persist` only queues; one writer task submits the queued records in order and then
//! waits for them to be durable, so every record queued while a group is being written
//! joins the next group (group commit without a timer).
//!
//! Compaction (opt-in, `ccbft node --compact-after-records N`; see the runtime issue: an
//! end-to-end run on a loaded host once stopped committing after a restart from a compacted
//! log, not yet explained): once a stable checkpoint's record is durable and at least
//! `compact_after` records lie between it and the last base, a compaction task
//! reads those records back, compacts them with the base ([`ccbft_core::durable::compact`],
//! on a blocking thread), writes the new base ([`crate::log_base`]) and only then drops the
//! log's segments below it. Meanwhile the writer goes on: records after the checkpoint are
//! not touched.

use crate::log_base::{self, LogBase};
use ccbft_core::durable::{Record, RecordSeq};
use ccbft_core::wire::{decode_record, encode_record};
use ccbft_storage::{Location, Wal, WalConfig, WalError};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// WAL record kind of a core record (the payload names its own kind).
pub const CORE_RECORD_KIND: u16 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("record {sequence} of the log is kind {kind}, not a core record: this is not a replica's log")]
    ForeignRecord { sequence: u64, kind: u16 },
    #[error("record {sequence} of the log does not decode ({reason}): the log was written by another version or is damaged")]
    Undecodable { sequence: u64, reason: String },
    #[error("the log starts at record {first} but its base stands for records up to {base}: records in between are missing")]
    Gap { first: u64, base: u64 },
    #[error("the log ends at record {last} but its base stands for records up to {base}: the log was lost or replaced")]
    BehindBase { last: u64, base: u64 },
    #[error("{0}")]
    Base(String),
}

impl LogError {
    /// Acknowledged records are damaged: this replica cannot trust its own history, but
    /// the quorum has it (see [`quarantine`]). Foreign or undecodable logs are not this: they
    /// mean a wrong directory or version, which an operator must look at.
    pub fn is_corruption(&self) -> bool {
        matches!(self, LogError::Wal(WalError::Corrupt { .. }))
    }
}

/// Moves a damaged log (the WAL and its base) aside, into `data/quarantine/SECONDS/`, so
/// the replica starts as one whose disk was lost: it rejoins by state transfer and votes
/// only once its recovery protocol allows, instead of guessing at what the damaged records
/// held. Nothing is deleted: the operator can examine the quarantined files. Returns where
/// they went.
pub fn quarantine(data: &Path) -> Result<PathBuf, String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dest = data.join("quarantine").join(secs.to_string());
    std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    for name in ["wal", crate::log_base::BASE_FILE] {
        let from = data.join(name);
        if from.exists() {
            std::fs::rename(&from, dest.join(name))
                .map_err(|e| format!("moving {} aside: {e}", from.display()))?;
        }
    }
    // The renames are durable before the replica writes a new log in their place.
    for dir in [dest.as_path(), data] {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("syncing {}: {e}", dir.display()))?;
    }
    Ok(dest)
}

/// What the log held at start-up.
pub struct Restored {
    pub records: Vec<Record>,
    pub last: RecordSeq,
    pub torn_tail: bool,
}

/// Encoded records handed to the writer task, in sequence order.
type PendingRecords = Rc<RefCell<VecDeque<(RecordSeq, Vec<u8>)>>>;

pub struct ReplicaLog {
    queue: PendingRecords,
    wake: LocalSender<()>,
    next: Cell<RecordSeq>,
    failed: Rc<RefCell<Option<String>>>,
    compaction: Rc<Compaction>,
}

/// What compaction needs: where every record after the base is in the log, the newest
/// stable checkpoint persisted, and the base itself.
struct Compaction {
    data: PathBuf,
    shards: u32,
    /// None: never compact.
    compact_after: Option<u64>,
    locations: RefCell<VecDeque<(RecordSeq, Location)>>,
    newest_checkpoint: Cell<RecordSeq>,
    base: RefCell<LogBase>,
    running: Cell<bool>,
}

impl ReplicaLog {
    /// Opens (or creates) the log in `data/wal` with its base in `data`, and decodes the
    /// base's records and then the log's after it; a torn tail is cut by the WAL. Durable
    /// watermarks go to `durable` as the writer advances. `shards` is the cluster's (for
    /// compaction); `compact_after` the records a compaction waits for, at least.
    pub async fn open(
        data: &Path,
        shards: u32,
        compact_after: Option<u64>,
        durable: LocalSender<RecordSeq>,
    ) -> Result<(ReplicaLog, Restored), LogError> {
        let base = log_base::read(data)
            .map_err(LogError::Base)?
            .unwrap_or_default();
        let mut raw = Vec::new();
        let (wal, recovery) = Wal::open(&data.join("wal"), WalConfig::default(), |view| {
            if view.sequence > base.upto {
                raw.push((
                    view.sequence,
                    view.kind,
                    view.payload.to_vec(),
                    view.location,
                ));
            }
        })
        .await?;
        if recovery.first_sequence > base.upto + 1 {
            return Err(LogError::Gap {
                first: recovery.first_sequence,
                base: base.upto,
            });
        }
        if recovery.last_sequence < base.upto {
            return Err(LogError::BehindBase {
                last: recovery.last_sequence,
                base: base.upto,
            });
        }
        let mut records = base.records.clone();
        let mut locations = VecDeque::with_capacity(raw.len());
        for (sequence, kind, payload, location) in raw {
            records.push(decode_core_record(sequence, kind, &payload)?);
            locations.push_back((sequence, location));
        }
        let last = recovery.last_sequence;
        assert_eq!(
            locations.len() as u64,
            last - base.upto,
            "the log holds every record after its base"
        );
        let (wake, woken) = local_channel::new_bounded(1);
        let compaction = Rc::new(Compaction {
            data: data.to_path_buf(),
            shards,
            compact_after: compact_after.map(|n| n.max(1)),
            locations: RefCell::new(locations),
            newest_checkpoint: Cell::new(base.upto),
            base: RefCell::new(base),
            running: Cell::new(false),
        });
        let log = ReplicaLog {
            queue: Rc::default(),
            wake,
            next: Cell::new(last + 1),
            failed: Rc::default(),
            compaction: compaction.clone(),
        };
        glommio::spawn_local(write_loop(
            Rc::new(wal),
            log.queue.clone(),
            woken,
            durable,
            log.failed.clone(),
            compaction,
        ))
        .detach();
        let restored = Restored {
            records,
            last,
            torn_tail: recovery.torn_tail.is_some(),
        };
        Ok((log, restored))
    }

    /// Queues record `seq` (the next one: records come in order).
    pub fn persist(&self, seq: RecordSeq, record: &Record) {
        assert_eq!(seq, self.next.get(), "records are persisted in order");
        self.next.set(seq + 1);
        if matches!(record, Record::StableCheckpoint(_)) {
            self.compaction.newest_checkpoint.set(seq);
        }
        self.queue
            .borrow_mut()
            .push_back((seq, encode_record(record)));
        let _ = self.wake.try_send(()); // full: the writer is already woken
    }

    /// The last record handed to the log (durable or not yet).
    pub fn last_persisted(&self) -> RecordSeq {
        self.next.get() - 1
    }

    /// Why the log stopped, if it did (a failed write: the process must restart).
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }
}

async fn write_loop(
    wal: Rc<Wal>,
    queue: PendingRecords,
    woken: LocalReceiver<()>,
    durable: LocalSender<RecordSeq>,
    failed: Rc<RefCell<Option<String>>>,
    compaction: Rc<Compaction>,
) {
    while woken.recv().await.is_some() {
        let mut last = None;
        loop {
            let Some((seq, bytes)) = queue.borrow_mut().pop_front() else {
                break;
            };
            match wal.submit(CORE_RECORD_KIND, &bytes).await {
                Ok(appended) => {
                    assert_eq!(
                        appended.sequence, seq,
                        "the WAL numbers records as the core does"
                    );
                    compaction
                        .locations
                        .borrow_mut()
                        .push_back((seq, appended.location));
                    last = Some(seq);
                }
                Err(e) => return fail(&failed, e),
            }
        }
        let Some(last) = last else { continue };
        if let Err(e) = wal.wait_durable(last).await {
            return fail(&failed, e);
        }
        if durable.send(last).await.is_err() {
            return; // the replica is gone
        }
        if let Some(upto) = compaction.due(last) {
            compaction.running.set(true);
            let (wal, compaction, failed) = (wal.clone(), compaction.clone(), failed.clone());
            glommio::spawn_local(async move {
                if let Err(e) = compaction.run(&wal, upto).await {
                    tracing::error!("log compaction failed: {e}");
                    *failed.borrow_mut() = Some(format!("log compaction: {e}"));
                }
                compaction.running.set(false);
            })
            .detach();
        }
    }
}

fn decode_core_record(sequence: u64, kind: u16, payload: &[u8]) -> Result<Record, LogError> {
    if kind != CORE_RECORD_KIND {
        return Err(LogError::ForeignRecord { sequence, kind });
    }
    decode_record(payload).map_err(|e| LogError::Undecodable {
        sequence,
        reason: e.to_string(),
    })
}

impl Compaction {
    /// The stable checkpoint to compact at: durable, far enough past the base, and no
    /// compaction running. (Taken now: a newer checkpoint may be persisted before the task
    /// starts, and it is not durable yet.)
    fn due(&self, durable: RecordSeq) -> Option<RecordSeq> {
        let checkpoint = self.newest_checkpoint.get();
        let due = !self.running.get()
            && checkpoint <= durable
            && self
                .compact_after
                .is_some_and(|n| checkpoint >= self.base.borrow().upto + n);
        due.then_some(checkpoint)
    }

    /// Compacts the log up to the durable stable checkpoint `upto`: reads the records after
    /// the base back, compacts on a blocking thread, makes the new base durable, then lets
    /// the log drop what lies below it.
    async fn run(&self, wal: &Wal, upto: RecordSeq) -> Result<(), String> {
        assert!(
            upto <= wal.durable_sequence(),
            "compaction reads durable records only"
        );
        let wanted: Vec<(RecordSeq, Location)> = self
            .locations
            .borrow()
            .iter()
            .take_while(|(seq, _)| *seq <= upto)
            .copied()
            .collect();
        let mut records = self.base.borrow().records.clone();
        for (seq, location) in wanted {
            let read = wal.read(location).await.map_err(|e| e.to_string())?;
            assert_eq!(read.sequence, seq, "a location names its record");
            records.push(
                decode_core_record(seq, read.kind, &read.payload).map_err(|e| e.to_string())?,
            );
        }
        let (data, shards) = (self.data.clone(), self.shards);
        let base = glommio::executor()
            .spawn_blocking(move || {
                let base = LogBase {
                    upto,
                    records: ccbft_core::durable::compact(&records, shards),
                };
                log_base::write(&data, &base).map(|()| base)
            })
            .await?;
        let kept = base.records.len();
        *self.base.borrow_mut() = base;
        self.locations.borrow_mut().retain(|(seq, _)| *seq > upto);
        let dropped = wal
            .truncate_below(upto + 1)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(upto, kept, segments_dropped = dropped, "log compacted");
        Ok(())
    }
}

fn fail(failed: &RefCell<Option<String>>, e: WalError) {
    tracing::error!("write-ahead log failed: {e}");
    *failed.borrow_mut() = Some(e.to_string());
}
