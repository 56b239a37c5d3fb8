//! The group-commit benchmark behind `ccbft log bench`: N concurrent appenders on one
//! glommio executor append fixed-size records for S seconds into a real log directory;
//! the disk's own fdatasync rate is measured in the same run for comparison.
//! Timing lives here and in perf/results/, never in tests.

use crate::wal::{executor_builder, Wal, WalConfig, WalError};
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub const BENCH_APPENDERS_MAX: u32 = 4096;
pub const BENCH_SECONDS_MAX: f64 = 3600.0;
/// Length of the raw fdatasync measurement.
pub const RAW_FDATASYNC_SECONDS: f64 = 2.0;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub dir: PathBuf,
    pub appenders: u32,
    pub record_size_bytes: u32,
    pub seconds: f64,
    /// Stop early once this many payload bytes are in the log.
    pub bytes_max: Option<u64>,
    pub wal: WalConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub dir: String,
    pub appenders: u32,
    pub record_size: u32,
    pub seconds: f64,
    pub appends: u64,
    pub payload_bytes: u64,
    pub fdatasyncs: u64,
    pub appends_per_s: f64,
    pub mb_per_s: f64,
    pub fdatasyncs_per_s: f64,
    pub records_per_fdatasync: f64,
    pub raw_fdatasync_per_s: f64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub last_sequence: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("measuring the raw fdatasync rate in {path}: {source}")]
    Raw {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the benchmark executor failed: {0}")]
    Executor(String),
}

/// Runs the benchmark; `progress` gets a line about once a second.
pub fn run(
    config: BenchConfig,
    progress: impl Fn(&str) + Send + 'static,
) -> Result<BenchReport, BenchError> {
    if config.appenders == 0 || config.appenders > BENCH_APPENDERS_MAX {
        return Err(BenchError::Input(format!(
            "--appenders must be in 1..={BENCH_APPENDERS_MAX}"
        )));
    }
    if config.record_size_bytes as u64 > crate::format::RECORD_PAYLOAD_MAX_BYTES {
        return Err(BenchError::Input(format!(
            "--record-size must be at most {} bytes",
            crate::format::RECORD_PAYLOAD_MAX_BYTES
        )));
    }
    if !(config.seconds > 0.0 && config.seconds <= BENCH_SECONDS_MAX) {
        return Err(BenchError::Input(format!(
            "--seconds must be in (0, {BENCH_SECONDS_MAX}]"
        )));
    }
    std::fs::create_dir_all(&config.dir).map_err(|source| BenchError::Raw {
        path: config.dir.clone(),
        source,
    })?;
    // The raw rate is measured beside the log (same device), before the log opens.
    let raw_dir = config
        .dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    progress(&format!(
        "measuring raw fdatasync rate for {RAW_FDATASYNC_SECONDS} s"
    ));
    let raw_fdatasync_per_s = raw_fdatasync_rate(&raw_dir, RAW_FDATASYNC_SECONDS)?;
    progress(&format!(
        "raw fdatasync: {raw_fdatasync_per_s:.0}/s; appending"
    ));
    let handle = executor_builder("log-bench")
        .spawn(move || async move { append_phase(config, progress).await })
        .map_err(|err| BenchError::Executor(err.to_string()))?;
    let mut report = handle
        .join()
        .map_err(|err| BenchError::Executor(err.to_string()))??;
    report.raw_fdatasync_per_s = raw_fdatasync_per_s;
    Ok(report)
}

async fn append_phase(
    config: BenchConfig,
    progress: impl Fn(&str) + 'static,
) -> Result<BenchReport, BenchError> {
    let (wal, recovery) = Wal::open(&config.dir, config.wal.clone(), |_| {}).await?;
    let before = wal.stats();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(config.seconds);
    let payload = Rc::new(vec![0x5Au8; config.record_size_bytes as usize]);
    let bytes_max = config.bytes_max.unwrap_or(u64::MAX);
    let mut tasks = Vec::new();
    for _ in 0..config.appenders {
        let (wal, payload) = (wal.clone(), payload.clone());
        tasks.push(glommio::spawn_local(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline && wal.stats().payload_bytes < bytes_max {
                let t = Instant::now();
                wal.append(0x100, &payload).await?;
                latencies.push(t.elapsed().as_micros() as u64);
            }
            Ok::<Vec<u64>, WalError>(latencies)
        }));
    }
    let ticker = {
        let wal = wal.clone();
        glommio::spawn_local(async move {
            while Instant::now() < deadline && wal.stats().payload_bytes < bytes_max {
                glommio::timer::sleep(Duration::from_secs(1)).await;
                let s = wal.stats();
                progress(&format!(
                    "{:.0} s: {} appends, {} fdatasyncs, {} MiB",
                    start.elapsed().as_secs_f64(),
                    s.appends - before.appends,
                    s.fdatasyncs - before.fdatasyncs,
                    (s.payload_bytes - before.payload_bytes) >> 20
                ));
            }
        })
    };
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    ticker.cancel().await;
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let after = wal.stats();
    let appends = after.appends - before.appends;
    let fdatasyncs = after.fdatasyncs - before.fdatasyncs;
    let payload_bytes = after.payload_bytes - before.payload_bytes;
    assert_eq!(after.durable_sequence, recovery.last_sequence + appends);
    Ok(BenchReport {
        dir: config.dir.display().to_string(),
        appenders: config.appenders,
        record_size: config.record_size_bytes,
        seconds: elapsed,
        appends,
        payload_bytes,
        fdatasyncs,
        appends_per_s: appends as f64 / elapsed,
        mb_per_s: payload_bytes as f64 / elapsed / 1e6,
        fdatasyncs_per_s: fdatasyncs as f64 / elapsed,
        records_per_fdatasync: appends as f64 / fdatasyncs.max(1) as f64,
        raw_fdatasync_per_s: 0.0,
        latency_p50_us: pick(0.5),
        latency_p99_us: pick(0.99),
        last_sequence: after.durable_sequence,
    })
}

/// The disk's own rate of "append one 4 KiB block with O_DIRECT, then fdatasync" (the
/// pattern of a log with one appender and no group commit), over `seconds`.
pub fn raw_fdatasync_rate(dir: &Path, seconds: f64) -> Result<f64, BenchError> {
    let path = dir.join(format!(".ccbft-raw-fdatasync-{}", std::process::id()));
    let raw_err = |source| BenchError::Raw {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .map_err(raw_err)?;
    let layout = std::alloc::Layout::from_size_align(4096, 4096).expect("layout");
    // SAFETY: non-zero size; freed below.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!ptr.is_null());
    // SAFETY: ptr holds 4096 initialised (zeroed) bytes.
    let block = unsafe { std::slice::from_raw_parts(ptr, 4096) };
    let start = Instant::now();
    let mut syncs = 0u64;
    let mut result = Ok(());
    while start.elapsed().as_secs_f64() < seconds {
        if let Err(err) = file.write_all(block).and_then(|()| file.sync_data()) {
            result = Err(err);
            break;
        }
        syncs += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // SAFETY: allocated above with the same layout.
    unsafe { std::alloc::dealloc(ptr, layout) };
    drop(file);
    let _ = std::fs::remove_file(&path);
    result.map_err(|source| BenchError::Raw {
        path: path.clone(),
        source,
    })?;
    Ok(syncs as f64 / elapsed)
}
