//! CC-BFT storage: what a replica must not forget.
//!
//! - [`wal`]: the write-ahead log (glommio DMA, group commit, durable watermark, recovery).
//! - [`vfs`]: the file layer the log does its I/O through; [`faulty`]: the fault-injecting
//!   one for crash tests.
//! - [`scan`]: the synchronous recovery scanner (io-uring crate), also behind `ccbft log inspect`.
//! - [`stores`]: consensus safety state, batches and blocks over the log.
//! - [`checkpoint`]: Merkle-chunked snapshots and state transfer from untrusted peers.
//! - [`bench`]: the group-commit benchmark behind `ccbft log bench`.

pub mod bench;
pub mod checkpoint;
pub mod faulty;
pub mod format;
pub mod merkle;
pub mod scan;
pub mod stores;
#[doc(hidden)]
pub mod testkit;
pub mod uring_read;
pub mod vfs;
pub mod wal;

pub use scan::{Corruption, Location, RecordView, ScanError, ScanReport, TornTail};
pub use wal::{Appended, CorruptionPolicy, Record, Recovery, Wal, WalConfig, WalError, WalStats};
