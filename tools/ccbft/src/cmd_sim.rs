//! `ccbft sim` and `ccbft demo`: the deterministic simulator from the command line.

use anyhow::{bail, Context};
use ccbft_core::sim::adversary::{Strategy, STRATEGIES};
use ccbft_core::sim::{self, RunReport, SimOptions};
use ccbft_core::topology::Topology;
use serde_json::json;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct SimArgs {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run exactly this seed (implies --seeds 1).
    #[arg(long)]
    seed: Option<u64>,
    /// Replicas (drawn per seed from {4, 5, 7, 10} when absent).
    #[arg(long)]
    replicas: Option<u32>,
    /// Domains (cloud regions; drawn per seed from 1..=3 when absent).
    #[arg(long)]
    domains: Option<u32>,
    /// Byzantine replicas (drawn per seed from 0..=f when absent).
    #[arg(long)]
    byzantine: Option<u32>,
    /// PBFT shards per replica (drawn per seed from 1..=2 when absent).
    #[arg(long)]
    shards: Option<u32>,
    /// Crash and restart honest replicas: `yes`, `no` (drawn per seed when absent).
    #[arg(long)]
    crashes: Option<YesNo>,
    /// A cluster file to simulate instead of a synthetic topology.
    #[arg(long)]
    cluster: Option<std::path::PathBuf>,
    /// Turn on one deliberately wrong rule (see --list-bugs).
    #[arg(long)]
    plant_bug: Option<String>,
    /// List the bugs --plant-bug accepts.
    #[arg(long)]
    list_bugs: bool,
    /// Every Byzantine replica follows this strategy (drawn per replica when absent), for
    /// example empty-tc-fork, sub-quorum-qc-fork, genesis-fork, outsider-certificates,
    /// extreme-values, equivocate-everything, flood, replay, fork, equivocate.
    #[arg(long)]
    strategy: Option<String>,
    /// Simulated fault phase and stabilisation phase, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    fault_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    stable_ms: u64,
    /// Client transactions per simulated second.
    #[arg(long, default_value_t = 400)]
    tx_per_s: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print a readable trace of the run (with --seed).
    #[arg(long)]
    trace: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum YesNo {
    Yes,
    No,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Seed of the simulated run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// A cluster file instead of the embedded three-clouds default.
    #[arg(long)]
    cluster: Option<std::path::PathBuf>,
}

fn options(args: &SimArgs) -> anyhow::Result<SimOptions> {
    let topology = match &args.cluster {
        Some(path) => Some(Arc::new(Topology::load(path)?)),
        None => None,
    };
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let strategy = match &args.strategy {
        None => None,
        Some(name) => Some(Strategy::named(name).ok_or_else(|| {
            let names: Vec<&str> = STRATEGIES.iter().map(Strategy::name).collect();
            anyhow::anyhow!("unknown strategy {name:?}; one of {}", names.join(", "))
        })?),
    };
    Ok(SimOptions {
        replicas: args.replicas,
        domains: args.domains,
        byzantine: args.byzantine,
        crashes: args.crashes.map(|c| matches!(c, YesNo::Yes)),
        shards: args.shards,
        topology,
        bug: args.plant_bug.clone(),
        fault_ms: args.fault_ms,
        stable_ms: args.stable_ms,
        tx_per_s: args.tx_per_s,
        trace: args.trace,
        fault: None,
        strategy,
        ..SimOptions::default()
    })
}

pub fn sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    if args.list_bugs {
        for (name, what) in sim::bug_names() {
            println!("{name:<18} {what}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = options(&args)?;
    // An assertion that fails inside a simulated replica is a finding, reported as a
    // violation with its seed; keep the default hook from printing each one.
    std::panic::set_hook(Box::new(|_| {}));
    let (start, count) = match args.seed {
        Some(seed) => (seed, 1),
        None => (args.start, args.seeds),
    };
    // Validate the options once before spreading the seeds over threads.
    sim::run(
        start,
        &SimOptions {
            fault_ms: 1,
            stable_ms: 1,
            tx_per_s: 0,
            trace: false,
            ..options.clone()
        },
    )
    .context("invalid simulation options")?;
    let reports = run_seeds(start, count, &options, args.jobs, !args.json)?;
    if args.trace {
        reports
            .iter()
            .flat_map(|r| &r.trace)
            .for_each(|line| println!("{line}"));
    }
    let violations: Vec<_> = reports.iter().flat_map(|r| &r.violations).collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary_json(&reports, &options))?
        );
    } else {
        print_summary(&reports);
    }
    Ok(if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_seeds(
    start: u64,
    count: u64,
    options: &SimOptions,
    jobs: Option<usize>,
    progress: bool,
) -> anyhow::Result<Vec<RunReport>> {
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let mut reports: Vec<RunReport> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return mine;
                        }
                        let report = sim::run(start + i, options).expect("options validated");
                        let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if progress
                            && (finished.is_multiple_of(100) || finished == count)
                            && count > 1
                        {
                            eprintln!("  {finished}/{count} seeds");
                        }
                        mine.push(report);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("simulation worker"))
            .collect()
    });
    reports.sort_by_key(|r| r.seed);
    Ok(reports)
}

fn percentile_ms(samples: &mut [u64], p: usize) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    samples[(samples.len() - 1) * p / 100] as f64 / 1_000.0
}

fn summary_json(reports: &[RunReport], options: &SimOptions) -> serde_json::Value {
    let violations: Vec<_> = reports
        .iter()
        .flat_map(|r| {
            r.violations
                .iter()
                .map(move |v| json!({"seed": v.seed, "what": v.what, "shape": r.shape}))
        })
        .collect();
    let mut local: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.local_latency_us.iter().copied())
        .collect();
    let mut global: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.global_latency_us.iter().copied())
        .collect();
    let mut strategies: std::collections::BTreeMap<&str, u64> = Default::default();
    for strategy in reports.iter().flat_map(|r| r.strategies.iter()) {
        *strategies.entry(strategy.name()).or_default() += 1;
    }
    json!({
        "runs": reports.len(),
        "violations": violations,
        "byzantine_strategies": strategies,
        "plant_bug": options.bug,
        "committed_blocks": reports.iter().map(|r| r.committed_blocks).sum::<u64>(),
        "committed_txs": reports.iter().map(|r| r.committed_txs).sum::<u64>(),
        "submitted_txs": reports.iter().map(|r| r.submitted_txs).sum::<u64>(),
        "runs_without_commits": reports.iter().filter(|r| r.committed_txs == 0).count(),
        "min_committed_txs_per_run": reports.iter().map(|r| r.committed_txs).min().unwrap_or(0),
        "local_view_changes": reports.iter().map(|r| r.local_view_changes).sum::<u64>(),
        "global_timeouts": reports.iter().map(|r| r.global_timeouts).sum::<u64>(),
        "local_latency_ms": {"p50": percentile_ms(&mut local, 50), "p99": percentile_ms(&mut local, 99)},
        "global_latency_ms": {"p50": percentile_ms(&mut global, 50), "p99": percentile_ms(&mut global, 99)},
        "simulated_seconds": reports.iter().map(|r| r.simulated_us).sum::<u64>() as f64 / 1e6,
        "events": reports.iter().map(|r| r.events).sum::<u64>(),
        "durability": {
            "restores": reports.iter().map(|r| r.restores).sum::<u64>(),
            "lost_records": reports.iter().map(|r| r.lost_records).sum::<u64>(),
            "torn_tails": reports.iter().map(|r| r.torn_tails).sum::<u64>(),
        },
        "checkpoints": {
            "runs_with_stable_checkpoint": reports.iter().filter(|r| r.stable_checkpoint_height > 0).count(),
            "max_stable_height": reports.iter().map(|r| r.stable_checkpoint_height).max().unwrap_or(0),
            "snapshots_installed": reports.iter().map(|r| r.snapshots_installed).sum::<u64>(),
            "runs_with_state_transfer": reports.iter().filter(|r| r.snapshots_installed > 0).count(),
            "blocks_executed_after_install": reports.iter().map(|r| r.executed_after_install).sum::<u64>(),
            "snapshot_chunks_rejected": reports.iter().map(|r| r.snapshot_chunks_rejected).sum::<u64>(),
            "max_batches_held": reports.iter().map(|r| r.retained_max.0).max().unwrap_or(0),
            "max_blocks_held": reports.iter().map(|r| r.retained_max.1).max().unwrap_or(0),
        },
    })
}

fn print_summary(reports: &[RunReport]) {
    let violations: Vec<_> = reports
        .iter()
        .flat_map(|r| r.violations.iter().map(move |v| (r, v)))
        .collect();
    println!(
        "{} runs, {} violations, {} blocks and {} transactions committed",
        reports.len(),
        violations.len(),
        reports.iter().map(|r| r.committed_blocks).sum::<u64>(),
        reports.iter().map(|r| r.committed_txs).sum::<u64>()
    );
    for (report, violation) in violations.iter().take(20) {
        println!(
            "  seed {}: {}\n    shape: {}",
            violation.seed, violation.what, report.shape
        );
        println!("    replay: ccbft sim --seed {} --trace", violation.seed);
    }
}

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let topology = match &args.cluster {
        Some(path) => Topology::load(path)?,
        None => Topology::three_clouds(),
    };
    println!(
        "CC-BFT demo: cluster {:?}, simulated (the networked runtime is not built yet)",
        topology.name
    );
    print_topology(&topology);
    let options = SimOptions {
        topology: Some(Arc::new(topology)),
        byzantine: Some(1),
        crashes: Some(false),
        fault_ms: 3_000,
        stable_ms: 3_000,
        tx_per_s: 1_000,
        ..SimOptions::standard()
    };
    println!("\nRunning 6 simulated seconds: 1,000 payments/s for 3 s with one Byzantine replica and WAN faults, then 3 s to settle...");
    let mut report = sim::run(args.seed, &options)?;
    println!("  shape: {}", report.shape);
    println!(
        "  transactions: {} submitted, {} executed on every honest replica",
        report.submitted_txs, report.committed_txs
    );
    println!("  global blocks committed: {}", report.committed_blocks);
    println!(
        "  local finality (PBFT inside a cloud), simulated: p50 {:.1} ms, p99 {:.1} ms",
        percentile_ms(&mut report.local_latency_us, 50),
        percentile_ms(&mut report.local_latency_us, 99)
    );
    println!(
        "  global finality (HotStuff across clouds), simulated: p50 {:.1} ms, p99 {:.1} ms",
        percentile_ms(&mut report.global_latency_us, 50),
        percentile_ms(&mut report.global_latency_us, 99)
    );
    println!(
        "  local view changes: {}, global round timeouts: {}",
        report.local_view_changes, report.global_timeouts
    );
    let evidence: Vec<String> = report
        .evidence
        .iter()
        .map(|(k, v)| format!("{k} x{v}"))
        .collect();
    println!(
        "  evidence recorded: {}",
        if evidence.is_empty() {
            "none".into()
        } else {
            evidence.join(", ")
        }
    );
    if report.violations.is_empty() {
        println!("  invariants: agreement, total order, validity, conservation, state roots, liveness all hold");
        Ok(ExitCode::SUCCESS)
    } else {
        for violation in &report.violations {
            println!("  VIOLATION: {}", violation.what);
        }
        Ok(ExitCode::from(1))
    }
}

fn print_topology(topology: &Topology) {
    let quorum = topology.quorum();
    println!("  n = {}, f = {}, q = {}", quorum.n, quorum.f, quorum.q);
    for (index, domain) in topology.domains.iter().enumerate() {
        let local = topology.domain_quorum(index as u32);
        println!(
            "  {:<22} {} replicas, local q_d = {}",
            domain.name, local.n, local.q
        );
    }
    for loss in topology.provider_losses() {
        let verdict = if loss.global_live {
            "global tier keeps going"
        } else {
            "global tier STOPS"
        };
        println!(
            "  losing {:<6}: {} of {} replicas left, quorum {} -> {verdict}",
            loss.provider, loss.remaining, quorum.n, loss.quorum
        );
    }
}
