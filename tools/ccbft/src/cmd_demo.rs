//! `ccbft demo`: the main job on real processes. A local cluster (the embedded three-clouds
//! topology by default: AWS 3, Azure 2, GCP 2, its round trips emulated on the links) of
//! `ccbft node` processes with their write-ahead logs; genesis clients drive signed payments
//! through it; midway the global leader is killed with SIGKILL and restarted from its log.
//! Ends with a summary: committed, TPS, local and global latency, view changes, evidence,
//! whether every replica executed to the same state roots, and transactions lost.

use anyhow::{anyhow, bail};
use ccbft_core::topology::{Topology, THREE_CLOUDS_TOML};
use ccbft_node::client_proto::Wait;
use ccbft_node::local_cluster::{LocalCluster, Usage};
use ccbft_node::submit::{latency_histogram, SubmitOptions, SubmitReport};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// A cluster file instead of the embedded three-clouds default (addresses are moved to
    /// free ports on 127.0.0.1).
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// Payments to submit, spread over the clients.
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    txs: u64,
    /// Genesis clients submitting at once (one connection each).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    clients: u32,
    /// Payments each client keeps in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    window: u64,
    /// Do not kill and restart a replica midway.
    #[arg(long)]
    no_kill: bool,
    /// Keep the cluster's directory (keys, logs, WALs) and print where it is.
    #[arg(long)]
    keep: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Ctrl-C and SIGTERM stop the cluster and remove its files (`node::stop_requested`); a
/// closed stdout becomes a write error the demo ignores instead of a signal that kills it.
fn catch_interrupts() {
    ccbft_node::node::catch_stop_signals();
    // SAFETY: setting a signal disposition; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// How long the demo waits for answers and for the replicas to converge.
const PATIENCE: Duration = Duration::from_secs(90);
/// How long the killed replica stays down.
const DOWNTIME: Duration = Duration::from_secs(3);

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let template = match &args.cluster {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None => THREE_CLOUDS_TOML.to_string(),
    };
    let topology = Topology::from_toml_str(&template)?;
    catch_interrupts();
    let dir = std::env::temp_dir().join(format!(
        "ccbft-demo-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos())
    ));
    let result = run(&args, &topology, &template, &dir);
    if args.keep {
        eprintln!("demo files kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let summary = result?;
    let text = if args.json {
        serde_json::to_string_pretty(&summary)? + "\n"
    } else {
        summary_text(&summary)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    let healthy = summary["lost_txs"] == json!(0)
        && summary["state_roots_equal"] == json!(true)
        && summary["unclean_stops"] == json!([]);
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FOUND)
    })
}

/// Progress goes to stdout (stderr with --json). A closed pipe does not stop the demo: it
/// must still stop its cluster and remove its files.
fn say(args: &DemoArgs, line: impl std::fmt::Display) {
    if args.json {
        let _ = writeln!(std::io::stderr(), "{line}");
    } else {
        let _ = writeln!(std::io::stdout(), "{line}");
    }
}

fn check_interrupt() -> anyhow::Result<()> {
    if ccbft_node::node::stop_requested() {
        bail!("interrupted: the cluster was stopped and its files removed");
    }
    Ok(())
}

fn run(
    args: &DemoArgs,
    topology: &Topology,
    template: &str,
    dir: &Path,
) -> anyhow::Result<serde_json::Value> {
    let program = std::env::current_exe()?;
    say(
        args,
        format!(
            "CC-BFT demo: cluster {:?}, {} replica processes in {} domains on 127.0.0.1, \
             WAN round trips emulated on the links",
            topology.name,
            topology.n(),
            topology.domains.len()
        ),
    );
    let mut cluster = LocalCluster::create(&program, dir, template, args.clients, true)
        .map_err(|e| anyhow!(e))?;
    cluster.start_all().map_err(|e| anyhow!(e))?;
    say(
        args,
        format!(
            "started {} replicas; submitting {} signed payments from {} clients",
            cluster.replicas(),
            args.txs,
            args.clients
        ),
    );

    let progress = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let loads = spawn_loads(args, &cluster, &progress);
    let killed = watch(args, &mut cluster, &progress, started, &loads)?;
    let mut reports = Vec::new();
    for load in loads {
        let report = load
            .join()
            .map_err(|_| anyhow!("a client thread panicked"))?
            .map_err(|e| anyhow!("client: {e}\n{}", cluster.log_tails(5)))?;
        reports.push(report);
    }
    let elapsed = started.elapsed();
    let height = reports.iter().map(|r| r.highest_height).max().unwrap_or(0);
    converge(&cluster, height)?;
    let usage: BTreeMap<u32, Usage> = (0..cluster.replicas())
        .map(|id| (id, cluster.usage(id)))
        .collect();
    let mut summary = summarize(args, topology, &cluster, &reports, elapsed, killed, &usage);
    let unclean = cluster.stop_all(Duration::from_secs(10));
    summary["unclean_stops"] = json!(unclean
        .iter()
        .map(|(id, why)| format!("replica {id}: {why}"))
        .collect::<Vec<_>>());
    Ok(summary)
}

type Load = std::thread::JoinHandle<Result<SubmitReport, String>>;

/// One thread per client, each with its own connection and share of the payments.
fn spawn_loads(args: &DemoArgs, cluster: &LocalCluster, progress: &Arc<AtomicU64>) -> Vec<Load> {
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_nanos())
        << 24;
    (0..args.clients)
        .map(|client| {
            let share = args.txs / u64::from(args.clients)
                + u64::from(u64::from(client) < args.txs % u64::from(args.clients));
            let options = SubmitOptions {
                cluster: cluster.cluster_file(),
                keys: cluster.keys_dir(),
                client,
                count: share,
                window: args.window as usize,
                wait: Wait::Both,
                amount: 1,
                first_key: base + (u128::from(client) << 40),
                timeout: PATIENCE,
                silence_failover: ccbft_node::submit::SILENCE_FAILOVER,
                progress: Some(progress.clone()),
            };
            std::thread::spawn(move || ccbft_node::submit::run(options))
        })
        .collect()
}

/// Prints progress each second; a third of the way in, kills the global leader and
/// restarts it after [`DOWNTIME`]. Returns the replica killed.
fn watch(
    args: &DemoArgs,
    cluster: &mut LocalCluster,
    progress: &AtomicU64,
    started: Instant,
    loads: &[Load],
) -> anyhow::Result<Option<u32>> {
    let mut killed: Option<(u32, Instant)> = None;
    let mut restarted = false;
    let mut last_print = Instant::now();
    while !loads.iter().all(|l| l.is_finished()) {
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(50));
        let done = progress.load(Ordering::Relaxed);
        if killed.is_none() && !args.no_kill && done * 3 >= args.txs {
            let observer = cluster.replicas() - 1;
            let victim = cluster.last_named(observer, "global leader").unwrap_or(0);
            cluster.kill(victim);
            killed = Some((victim, Instant::now()));
            say(
                args,
                format!(
                    "[{:>5.1}s] SIGKILL replica {victim} (the global leader)",
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        if let Some((victim, at)) = killed {
            if !restarted && at.elapsed() >= DOWNTIME {
                cluster.start(victim).map_err(|e| anyhow!(e))?;
                restarted = true;
                say(
                    args,
                    format!(
                        "[{:>5.1}s] restarted replica {victim} from its write-ahead log",
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            let heights: Vec<String> = (0..cluster.replicas())
                .map(|id| cluster.executed_height(id).to_string())
                .collect();
            say(
                args,
                format!(
                    "[{secs:>5.1}s] {done}/{} globally final, {:.0} tps; heights {}",
                    args.txs,
                    done as f64 / secs,
                    heights.join(" ")
                ),
            );
        }
    }
    if let Some((victim, _)) = killed {
        if !restarted {
            cluster.start(victim).map_err(|e| anyhow!(e))?;
        }
    }
    Ok(killed.map(|(victim, _)| victim))
}

/// Waits until every replica executed `height` (the restarted one catches up).
fn converge(cluster: &LocalCluster, height: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        check_interrupt()?;
        let lagging: Vec<(u32, u64)> = (0..cluster.replicas())
            .map(|id| (id, cluster.executed_height(id)))
            .filter(|&(_, h)| h < height)
            .collect();
        if lagging.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "replicas {lagging:?} did not reach height {height}\n{}",
                cluster.log_tails(5)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn summarize(
    args: &DemoArgs,
    topology: &Topology,
    cluster: &LocalCluster,
    reports: &[SubmitReport],
    elapsed: Duration,
    killed: Option<u32>,
    usage: &BTreeMap<u32, Usage>,
) -> serde_json::Value {
    let mut local = latency_histogram();
    let mut global = latency_histogram();
    for report in reports {
        local.add(&report.local_latency_us).expect("same bounds");
        global.add(&report.final_latency_us).expect("same bounds");
    }
    let sum = |f: fn(&SubmitReport) -> u64| reports.iter().map(f).sum::<u64>();
    let committed = sum(|r| r.applied + r.duplicate + r.ledger_rejected);
    let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let count = |marker: &str| -> usize {
        (0..cluster.replicas())
            .map(|id| cluster.count_lines(id, marker))
            .sum()
    };
    let disagreement = cluster.root_disagreement();
    let heights: Vec<u64> = (0..cluster.replicas())
        .map(|id| cluster.executed_height(id))
        .collect();
    json!({
        "cluster": topology.name,
        "replicas": cluster.replicas(),
        "submitted_txs": args.txs,
        "committed_txs": committed,
        "applied_txs": sum(|r| r.applied),
        "duplicate_answers": sum(|r| r.duplicate),
        "ledger_rejected_txs": sum(|r| r.ledger_rejected),
        "refused_txs": sum(|r| r.refused),
        "lost_txs": args.txs - committed.min(args.txs),
        "client_failovers": sum(|r| r.failovers),
        "overloaded_retries": sum(|r| r.retries),
        "elapsed_s": elapsed.as_secs_f64(),
        "tps": committed as f64 / elapsed.as_secs_f64().max(1e-9),
        "local_p50_ms": ms(&local, 0.5),
        "local_p99_ms": ms(&local, 0.99),
        "global_p50_ms": ms(&global, 0.5),
        "global_p99_ms": ms(&global, 0.99),
        "global_max_ms": global.max() as f64 / 1000.0,
        "killed_replica": killed,
        "view_changes": count("LocalViewChange"),
        "global_timeouts": count("GlobalTimeout"),
        "evidence": count("evidence:"),
        "executed_heights": heights,
        "state_roots_equal": disagreement.is_none(),
        "state_root_disagreement": disagreement,
        "replica_usage": usage.iter().map(|(id, u)| json!({
            "replica": id,
            "cpu_s": u.cpu_s,
            "peak_rss_mib": u.peak_rss_kib as f64 / 1024.0,
        })).collect::<Vec<_>>(),
    })
}

fn summary_text(s: &serde_json::Value) -> String {
    let mut out = String::from("\nSummary\n");
    out += &format!(
        "  committed   {} of {} payments ({} applied, {} answered duplicate after a failover resend, {} rejected by the ledger), lost {}\n",
        s["committed_txs"], s["submitted_txs"], s["applied_txs"], s["duplicate_answers"], s["ledger_rejected_txs"], s["lost_txs"]
    );
    out += &format!(
        "  throughput  {:.0} tps over {:.1} s ({} client failovers)\n",
        s["tps"].as_f64().unwrap_or(0.0),
        s["elapsed_s"].as_f64().unwrap_or(0.0),
        s["client_failovers"]
    );
    let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
    out += &format!(
        "  latency     locally final p50 {:.1} ms p99 {:.1} ms; globally final p50 {:.1} ms p99 {:.1} ms\n",
        f("local_p50_ms"), f("local_p99_ms"), f("global_p50_ms"), f("global_p99_ms")
    );
    out += &format!(
        "  faults      killed replica {}, {} local view changes, {} global timeouts, {} evidence records\n",
        s["killed_replica"], s["view_changes"], s["global_timeouts"], s["evidence"]
    );
    out += &format!(
        "  state roots {} (heights {})\n",
        if s["state_roots_equal"] == json!(true) {
            "equal on every replica"
        } else {
            "DIFFER"
        },
        s["executed_heights"]
    );
    out
}
