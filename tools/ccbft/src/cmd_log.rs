//! `ccbft log`: inspect, recover or benchmark a write-ahead log directory.

use anyhow::Context;
use ccbft_storage::bench::{self, BenchConfig};
use ccbft_storage::scan;
use ccbft_storage::wal::{executor_builder, CorruptionPolicy, Wal, WalConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(clap::Subcommand)]
enum LogCommand {
    /// Check every segment and record of a log directory without changing it. Exits 1 when
    /// an acknowledged record (at or below the superblock's durable watermark) is damaged
    /// or missing.
    Inspect {
        /// The log directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Open an existing log as a replica would (cutting a torn tail, making what it replays
    /// durable) and report how long it took. Refuses a directory that is not a log, and a
    /// log that lost acknowledged records (it says which; `inspect` lists them all) rather
    /// than accept the loss.
    Recover {
        /// The log directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Group-commit benchmark on the real disk; leaves the log in DIR.
    Bench {
        /// Log directory (created if absent; appends continue an existing log).
        #[arg(long)]
        dir: PathBuf,
        /// Concurrent appenders.
        #[arg(long, default_value_t = 64)]
        appenders: u32,
        /// Payload bytes per record.
        #[arg(long, default_value_t = 4096)]
        record_size: u32,
        /// Seconds to append for.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Stop once this many payload bytes were appended (e.g. to build a 1 GiB log).
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Segment size in bytes.
        #[arg(long, default_value_t = ccbft_storage::wal::SEGMENT_SIZE_DEFAULT_BYTES)]
        segment_size: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: LogArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LogCommand::Inspect { dir, json } => inspect(dir, json),
        LogCommand::Recover { dir, json } => recover(dir, json),
        LogCommand::Bench {
            dir,
            appenders,
            record_size,
            seconds,
            max_bytes,
            segment_size,
            json,
        } => {
            let config = BenchConfig {
                dir,
                appenders,
                record_size_bytes: record_size,
                seconds,
                bytes_max: max_bytes,
                wal: WalConfig {
                    segment_size_bytes: segment_size,
                    ..WalConfig::default()
                },
            };
            let report = bench::run(config, |line| eprintln!("bench: {line}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} appenders x {} B: {:.0} appends/s, {:.2} MB/s, {:.0} fdatasyncs/s, {:.1} records/fdatasync (raw fdatasync {:.0}/s), latency p50 {} us p99 {} us",
                    report.appenders,
                    report.record_size,
                    report.appends_per_s,
                    report.mb_per_s,
                    report.fdatasyncs_per_s,
                    report.records_per_fdatasync,
                    report.raw_fdatasync_per_s,
                    report.latency_p50_us,
                    report.latency_p99_us
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn inspect(dir: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    eprintln!("inspect: scanning {}", dir.display());
    let start = Instant::now();
    let report =
        scan::scan(&dir, |_| {}).with_context(|| format!("inspecting {}", dir.display()))?;
    let scan_seconds = start.elapsed().as_secs_f64();
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["scan_seconds"] = serde_json::json!(scan_seconds);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "log {}: {} segment(s), {} record(s)",
            dir.display(),
            report.segments.len(),
            report.records
        );
        for s in &report.segments {
            println!(
                "  segment {:>6}: first sequence {:>10}, {:>9} records, {:>11} bytes",
                s.index, s.first_sequence, s.records, s.file_len
            );
        }
        println!(
            "sequences {}..={} (acknowledged through {})",
            report.first_sequence, report.last_sequence, report.acked_sequence
        );
        if let Some(t) = &report.torn_tail {
            println!(
                "torn tail: segment {} offset {} ({} bytes, dropped on open)",
                t.segment, t.offset, t.bytes_discarded
            );
        }
        for c in &report.corruption {
            println!(
                "CORRUPTION: segment {} offset {}: sequences {}..={} missing ({})",
                c.segment, c.offset, c.first_missing, c.last_missing, c.defect
            );
        }
        println!("scanned in {scan_seconds:.3} s");
    }
    Ok(if report.corruption.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn recover(dir: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    eprintln!("recover: opening {}", dir.display());
    let recovered = executor_builder("log-recover")
        .spawn(move || async move {
            let start = Instant::now();
            let mut payload_bytes = 0u64;
            let config = WalConfig {
                on_corruption: CorruptionPolicy::Fail,
                create: false,
                ..WalConfig::default()
            };
            let (wal, recovery) =
                Wal::open(&dir, config, |r| payload_bytes += r.payload.len() as u64).await?;
            let seconds = start.elapsed().as_secs_f64();
            drop(wal);
            Ok::<_, ccbft_storage::WalError>((recovery, payload_bytes, seconds))
        })
        .map_err(|err| anyhow::anyhow!("starting the recovery executor: {err}"))?
        .join()
        .map_err(|err| anyhow::anyhow!("recovery executor: {err}"))?;
    let (recovery, payload_bytes, seconds) = recovered?;
    if json {
        let value = serde_json::json!({
            "segments": recovery.segments,
            "records": recovery.records,
            "payload_bytes": payload_bytes,
            "last_sequence": recovery.last_sequence,
            "acked_sequence": recovery.acked_sequence,
            "torn_tail": recovery.torn_tail,
            "corruption": recovery.corruption,
            "recovery_seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "recovered {} records ({} MiB) in {} segment(s) up to sequence {} in {seconds:.3} s",
            recovery.records,
            payload_bytes >> 20,
            recovery.segments,
            recovery.last_sequence
        );
        for c in &recovery.corruption {
            println!(
                "CORRUPTION: segment {} offset {}: sequences {}..={} missing",
                c.segment, c.offset, c.first_missing, c.last_missing
            );
        }
    }
    Ok(if recovery.corruption.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
