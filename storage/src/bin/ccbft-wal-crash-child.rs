//! Crash-test child: opens the log in DIR, then APPENDERS tasks append with group commit and
//! print `ack <sequence> <id>` on stdout once each append is durable. The crash test kills
//! it with SIGKILL at random points. Usage: ccbft-wal-crash-child DIR APPENDERS SEGMENT_BYTES

use ccbft_storage::testkit::crash_payload;
use ccbft_storage::wal::{executor_builder, Wal, WalConfig};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Kind of the records this child appends.
const CRASH_RECORD_KIND: u16 = 7;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: ccbft-wal-crash-child DIR APPENDERS SEGMENT_BYTES");
        return ExitCode::from(2);
    }
    let dir = PathBuf::from(&args[1]);
    let (Ok(appenders), Ok(segment_size_bytes)) = (args[2].parse::<u64>(), args[3].parse::<u64>())
    else {
        eprintln!("APPENDERS and SEGMENT_BYTES must be integers");
        return ExitCode::from(2);
    };
    let result = executor_builder("crash-child")
        .spawn(move || async move {
            let config = WalConfig {
                segment_size_bytes,
                ..WalConfig::default()
            };
            let (wal, recovery) = Wal::open(&dir, config, |_| {}).await?;
            println!("open {}", recovery.last_sequence);
            let base = u64::from(std::process::id()) << 32;
            let mut tasks = Vec::new();
            for appender in 0..appenders {
                let wal = wal.clone();
                tasks.push(glommio::spawn_local(async move {
                    for n in 0u64.. {
                        let id = base | (n * appenders + appender);
                        let appended = wal.append(CRASH_RECORD_KIND, &crash_payload(id)).await?;
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {} {id}", appended.sequence).expect("stdout");
                        out.flush().expect("stdout");
                    }
                    Ok::<(), ccbft_storage::WalError>(())
                }));
            }
            for task in tasks {
                task.await?;
            }
            Ok::<(), ccbft_storage::WalError>(())
        })
        .expect("spawning the executor")
        .join()
        .expect("joining the executor");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}
