//! The replica's records on the write-ahead log: one WAL record per core [`Record`], the
//! WAL's sequence number equal to the core's [`RecordSeq`], so the WAL's durable watermark
//! is exactly `Input::Durable { upto }`.
//!
//! `persist` only queues; one writer task submits the queued records in order and then
//! waits for them to be durable, so every record queued while a group is being written
//! joins the next group (group commit without a timer).

use ccbft_core::durable::{Record, RecordSeq};
use ccbft_core::wire::{decode_record, encode_record};
use ccbft_storage::{Wal, WalConfig, WalError};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::Path;
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
    #[error("the log starts at record {first}: a compacted log needs its base record (not supported yet)")]
    Compacted { first: u64 },
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
}

impl ReplicaLog {
    /// Opens (or creates) the log in `dir` and decodes every record; a torn tail is cut
    /// by the WAL. Durable watermarks go to `durable` as the writer advances.
    pub async fn open(
        dir: &Path,
        durable: LocalSender<RecordSeq>,
    ) -> Result<(ReplicaLog, Restored), LogError> {
        let mut raw = Vec::new();
        let (wal, recovery) = Wal::open(dir, WalConfig::default(), |view| {
            raw.push((view.sequence, view.kind, view.payload.to_vec()));
        })
        .await?;
        if recovery.first_sequence != 1 {
            return Err(LogError::Compacted {
                first: recovery.first_sequence,
            });
        }
        let mut records = Vec::with_capacity(raw.len());
        for (sequence, kind, payload) in raw {
            if kind != CORE_RECORD_KIND {
                return Err(LogError::ForeignRecord { sequence, kind });
            }
            let record = decode_record(&payload).map_err(|e| LogError::Undecodable {
                sequence,
                reason: e.to_string(),
            })?;
            records.push(record);
        }
        let last = recovery.last_sequence;
        assert_eq!(
            records.len() as u64,
            last,
            "a log from record 1 holds every record"
        );
        let (wake, woken) = local_channel::new_bounded(1);
        let log = ReplicaLog {
            queue: Rc::default(),
            wake,
            next: Cell::new(last + 1),
            failed: Rc::default(),
        };
        glommio::spawn_local(write_loop(
            wal,
            log.queue.clone(),
            woken,
            durable,
            log.failed.clone(),
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
    wal: Wal,
    queue: PendingRecords,
    woken: LocalReceiver<()>,
    durable: LocalSender<RecordSeq>,
    failed: Rc<RefCell<Option<String>>>,
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
    }
}

fn fail(failed: &RefCell<Option<String>>, e: WalError) {
    tracing::error!("write-ahead log failed: {e}");
    *failed.borrow_mut() = Some(e.to_string());
}
