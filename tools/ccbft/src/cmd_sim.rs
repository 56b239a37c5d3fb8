//! `ccbft sim` and `ccbft demo`: the deterministic simulator from the command line.

use anyhow::{bail, Context};
use ccbft_core::sim::adversary::{Strategy, STRATEGIES};
use ccbft_core::sim::{self, RunReport, SimOptions};
use ccbft_core::topology::Topology;
use ccbft_core::transaction::PayloadKind;
use serde_json::json;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Longest simulated fault or stabilisation phase accepted, in milliseconds (one hour). Runs
/// this long usually hit [`sim::EVENTS_PER_RUN_MAX`] first and are reported incomplete.
pub const PHASE_MS_MAX: u64 = 3_600_000;
/// Most client transactions per simulated second.
pub const TX_PER_S_MAX: u64 = 1_000_000;
/// Most seeds in one invocation.
pub const SEEDS_MAX: u64 = 10_000_000;

#[derive(clap::Args)]
pub struct SimArgs {
    /// Number of seeds to run (1 to 10,000,000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=SEEDS_MAX))]
    seeds: u64,
    /// First seed; seeds START to START+SEEDS-1 are run.
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
    /// One honest replica loses its whole disk and rejoins without it: `yes`, `no` (drawn
    /// per seed when absent; only where the fault bounds leave room for it).
    #[arg(long)]
    disk_losses: Option<YesNo>,
    /// What the cluster orders: `transfers` (the ledger) or `opaque` (signed byte strings
    /// delivered in order, not executed). Default: the cluster file's, else transfers.
    #[arg(long)]
    transactions: Option<Transactions>,
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
    /// extreme-values, equivocate-everything, flood, replay, twins, fork, equivocate.
    #[arg(long)]
    strategy: Option<String>,
    /// Simulated fault phase, in milliseconds (1 to 3,600,000).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=PHASE_MS_MAX))]
    fault_ms: u64,
    /// Simulated stabilisation phase after the heal, in milliseconds (1 to 3,600,000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=PHASE_MS_MAX))]
    stable_ms: u64,
    /// Client transactions per simulated second (0 to 1,000,000).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(0..=TX_PER_S_MAX))]
    tx_per_s: u64,
    /// Worker threads (default: all cores; 1 to 1024).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    jobs: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print a readable trace of the run (one seed only: with --seed or --seeds 1).
    #[arg(long)]
    trace: bool,
    /// The simulated demo: one seed (--seed, default 7) on the embedded three-clouds cluster
    /// (or --cluster) with one Byzantine replica and WAN faults, and a readable summary.
    #[arg(long)]
    demo: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Transactions {
    /// Signed ledger transfers, executed.
    Transfers,
    /// Signed opaque byte strings, ordered and delivered.
    Opaque,
}

impl Transactions {
    fn kind(self) -> PayloadKind {
        match self {
            Transactions::Transfers => PayloadKind::Transfers,
            Transactions::Opaque => PayloadKind::Opaque,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum YesNo {
    /// Turn the fault on.
    Yes,
    /// Leave it out.
    No,
}

impl YesNo {
    fn name(self) -> &'static str {
        match self {
            YesNo::Yes => "yes",
            YesNo::No => "no",
        }
    }
}

/// The simulated demo (`ccbft sim --demo`): one seed on a cluster file, with a summary.
pub struct DemoArgs {
    seed: u64,
    cluster: Option<std::path::PathBuf>,
    json: bool,
}

fn options(args: &SimArgs) -> anyhow::Result<SimOptions> {
    let topology = match &args.cluster {
        Some(path) => Some(Arc::new(Topology::load(path)?)),
        None => None,
    };
    if args.seed.is_none() && args.start.checked_add(args.seeds - 1).is_none() {
        bail!(
            "--start {} with --seeds {} runs past the last seed {}; lower --start or --seeds",
            args.start,
            args.seeds,
            u64::MAX
        );
    }
    if args.trace && args.seed.is_none() && args.seeds != 1 {
        bail!("--trace prints one run: give --seed S (or --seeds 1)");
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
        disk_losses: args.disk_losses.map(|c| matches!(c, YesNo::Yes)),
        transactions: args.transactions.map(Transactions::kind),
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
    if args.demo {
        return demo(DemoArgs {
            seed: args.seed.unwrap_or(7),
            cluster: args.cluster,
            json: args.json,
        });
    }
    if args.list_bugs {
        for (name, what) in sim::bug_names() {
            println!("{name:<18} {what}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = options(&args)?;
    // An assertion that fails inside a simulated replica is a finding: the default panic hook
    // prints it, and the run reports it as a violation with its seed.
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
    let jobs = args.jobs.map(|j| j as usize);
    let mut reports = run_seeds(start, count, &options, jobs, !args.json)?;
    let incomplete = judge_incomplete(&mut reports);
    if args.trace {
        reports
            .iter()
            .flat_map(|r| &r.trace)
            .for_each(|line| println!("{line}"));
    }
    let violations: Vec<_> = reports.iter().flat_map(|r| &r.violations).collect();
    if args.json {
        let mut summary = summary_json(&reports, &options);
        summary["incomplete_runs"] = incomplete_json(&reports, &incomplete);
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&reports, &args);
        print_incomplete(&reports, &incomplete);
    }
    Ok(if !violations.is_empty() {
        ExitCode::from(crate::EXIT_FOUND)
    } else if !incomplete.is_empty() {
        ExitCode::from(crate::EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}

/// A run that processed [`sim::EVENTS_PER_RUN_MAX`] events was cut before its end.
pub fn hit_event_cap(report: &RunReport) -> bool {
    report.events >= sim::EVENTS_PER_RUN_MAX
}

/// Safety findings of a cut run stand (they happened), but its liveness check compared a
/// truncated run against the full schedule: drop those, and return the cut runs' indexes.
fn judge_incomplete(reports: &mut [RunReport]) -> Vec<usize> {
    let mut cut = Vec::new();
    for (i, report) in reports.iter_mut().enumerate() {
        if hit_event_cap(report) {
            report
                .violations
                .retain(|v| !v.what.starts_with("liveness:"));
            cut.push(i);
        }
    }
    cut
}

fn incomplete_json(reports: &[RunReport], cut: &[usize]) -> serde_json::Value {
    let runs: Vec<_> = cut
        .iter()
        .map(|&i| {
            let r = &reports[i];
            json!({"seed": r.seed, "events": r.events, "simulated_seconds": r.simulated_us as f64 / 1e6})
        })
        .collect();
    json!({"event_cap": sim::EVENTS_PER_RUN_MAX, "runs": runs, "liveness_judged": false})
}

fn print_incomplete(reports: &[RunReport], cut: &[usize]) {
    if cut.is_empty() {
        return;
    }
    println!(
        "{} incomplete runs: the simulator stopped at its cap of {} events before the end of the run; liveness is not judged for them (shorten --fault-ms or --stable-ms)",
        cut.len(),
        sim::EVENTS_PER_RUN_MAX
    );
    for &i in cut.iter().take(20) {
        let r = &reports[i];
        println!(
            "  seed {}: cut at {:.3} simulated s",
            r.seed,
            r.simulated_us as f64 / 1e6
        );
    }
}

/// The command that replays one seed of this invocation, with every option it was run with.
fn replay_command(seed: u64, args: &SimArgs) -> String {
    let mut cmd = format!("ccbft sim --seed {seed}");
    let mut opt = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            cmd += &format!(" --{name} {v}");
        }
    };
    opt("replicas", args.replicas.map(|v| v.to_string()));
    opt("domains", args.domains.map(|v| v.to_string()));
    opt("byzantine", args.byzantine.map(|v| v.to_string()));
    opt("shards", args.shards.map(|v| v.to_string()));
    opt("crashes", args.crashes.map(|v| v.name().to_string()));
    opt(
        "disk-losses",
        args.disk_losses.map(|v| v.name().to_string()),
    );
    opt(
        "transactions",
        args.transactions.map(|v| v.kind().name().to_string()),
    );
    opt(
        "cluster",
        args.cluster
            .as_ref()
            .map(|p| shell_word(&p.display().to_string())),
    );
    opt("plant-bug", args.plant_bug.as_deref().map(shell_word));
    opt("strategy", args.strategy.as_deref().map(shell_word));
    opt("fault-ms", Some(args.fault_ms.to_string()));
    opt("stable-ms", Some(args.stable_ms.to_string()));
    opt("tx-per-s", Some(args.tx_per_s.to_string()));
    cmd + " --trace"
}

/// Quote a word for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
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
                            return Ok(mine);
                        }
                        // start + count - 1 was checked not to overflow.
                        let report = match sim::run(start + i, options) {
                            Ok(report) => report,
                            Err(e) => return Err(e),
                        };
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
        let mut all = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(Ok(mine)) => all.extend(mine),
                Ok(Err(e)) => return Err(anyhow::anyhow!(e)),
                // A panic outside a simulated replica is a bug of the tool: pass it on.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(all)
    })?;
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
        "lost_txs": reports.iter().map(|r| r.lost_txs).sum::<u64>(),
        "pending_beyond_fault_bound": reports.iter().map(|r| r.pending_beyond_bound).sum::<u64>(),
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
            "disk_losses": reports.iter().map(|r| r.disk_losses).sum::<u64>(),
            "rejoin_floors_learned": reports.iter().map(|r| r.rejoin_floors_learned).sum::<u64>(),
            "rejoins_voting_globally": reports.iter().map(|r| r.rejoins_voting_globally).sum::<u64>(),
            "disk_losses_over_fault_budget": reports.iter().filter(|r| r.disk_loss_over_budget).count(),
            "over_budget_runs_live": reports.iter().filter(|r| r.disk_loss_over_budget && r.live).count(),
            "log_compactions": reports.iter().map(|r| r.compactions).sum::<u64>(),
            "max_log_records_held": reports.iter().map(|r| r.log_records_max).max().unwrap_or(0),
        },
        "admission": {
            "locally_final_checked": reports.iter().map(|r| r.admission.checked).sum::<u64>(),
            "locally_rejected": reports.iter().map(|r| r.admission.rejected).sum::<u64>(),
            "beyond_fault_bound": reports.iter().map(|r| r.admission.exempt).sum::<u64>(),
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

fn print_summary(reports: &[RunReport], args: &SimArgs) {
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
        println!("    replay: {}", replay_command(violation.seed, args));
    }
}

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let topology = match &args.cluster {
        Some(path) => Topology::load(path)?,
        None => Topology::three_clouds(),
    };
    let options = SimOptions {
        topology: Some(Arc::new(topology.clone())),
        byzantine: Some(1),
        crashes: Some(false),
        disk_losses: Some(false),
        fault_ms: 3_000,
        stable_ms: 3_000,
        tx_per_s: 1_000,
        ..SimOptions::standard()
    };
    if !args.json {
        println!(
            "CC-BFT simulated demo: cluster {:?} (`ccbft demo` runs real processes)",
            topology.name
        );
        print_topology(&topology);
        println!("\nRunning 6 simulated seconds: 1,000 payments/s for 3 s with one Byzantine replica and WAN faults, then 3 s to settle...");
    }
    let mut reports = vec![sim::run(args.seed, &options)?];
    let incomplete = judge_incomplete(&mut reports);
    let mut report = reports.remove(0);
    if args.json {
        let mut summary = summary_json(std::slice::from_ref(&report), &options);
        summary["cluster"] = json!(topology.name);
        summary["topology"] = serde_json::to_value(&topology)?;
        summary["provider_losses"] = serde_json::to_value(topology.provider_losses())?;
        summary["shape"] = json!(report.shape);
        summary["evidence"] = json!(report.evidence);
        summary["incomplete_runs"] = incomplete_json(std::slice::from_ref(&report), &incomplete);
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_demo_report(&mut report, &topology);
        print_incomplete(std::slice::from_ref(&report), &incomplete);
    }
    Ok(if !report.violations.is_empty() {
        ExitCode::from(crate::EXIT_FOUND)
    } else if !incomplete.is_empty() {
        ExitCode::from(crate::EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_demo_report(report: &mut RunReport, topology: &Topology) {
    println!("  shape: {}", report.shape);
    println!(
        "  leader rotation: the simulator draws it per seed (rotation= above); the file's leader_rotation_blocks = {} applies to the networked runtime",
        topology.leader_rotation_blocks
    );
    println!(
        "  transactions: {} submitted, {} executed on every honest replica",
        report.submitted_txs, report.committed_txs
    );
    if report.pending_beyond_bound > 0 {
        println!(
            "  {} debits not executed: homed in a domain beyond its fault bound (a Byzantine member in a domain of f_d = 0); only their home domain may order them",
            report.pending_beyond_bound
        );
    }
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
    }
    for violation in &report.violations {
        println!("  VIOLATION: {}", violation.what);
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

#[cfg(test)]
mod tests {
    use super::*;
    use ccbft_core::sim::checker::Violation;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn report(seed: u64, events: u64, what: &[&str]) -> RunReport {
        RunReport {
            seed,
            events,
            simulated_us: 124_000_000,
            violations: what
                .iter()
                .map(|w| Violation {
                    seed,
                    what: w.to_string(),
                })
                .collect(),
            ..RunReport::default()
        }
    }

    #[test]
    fn a_run_cut_at_the_event_cap_is_incomplete_not_a_liveness_violation() {
        let cap = sim::EVENTS_PER_RUN_MAX;
        let mut reports = vec![
            report(1, cap, &["liveness: r0 has not executed 5 of 9 submitted transactions after stabilisation"]),
            report(2, cap, &["agreement: r0 and r1 executed different blocks at height 3"]),
            report(3, cap - 1, &["liveness: r0 has not executed 5 of 9 submitted transactions after stabilisation"]),
        ];
        let cut = judge_incomplete(&mut reports);
        assert_eq!(cut, vec![0, 1]);
        assert!(
            reports[0].violations.is_empty(),
            "liveness of a cut run is not judged"
        );
        assert_eq!(reports[1].violations.len(), 1, "a safety finding stands");
        assert_eq!(reports[2].violations.len(), 1, "a complete run is judged");
        let value = incomplete_json(&reports, &cut);
        assert_eq!(value["runs"].as_array().map(Vec::len), Some(2));
        assert_eq!(value["liveness_judged"], json!(false));
    }

    #[test]
    fn the_replay_hint_repeats_every_option() {
        let w = Wrapper::parse_from([
            "x",
            "--seeds",
            "50",
            "--replicas",
            "7",
            "--domains",
            "3",
            "--byzantine",
            "2",
            "--shards",
            "2",
            "--crashes",
            "yes",
            "--plant-bug",
            "skip-qc-check",
            "--strategy",
            "fork",
            "--fault-ms",
            "600000",
            "--stable-ms",
            "5000",
            "--tx-per-s",
            "100",
            "--cluster",
            "my cluster.toml",
        ]);
        assert_eq!(
            replay_command(17, &w.sim),
            "ccbft sim --seed 17 --replicas 7 --domains 3 --byzantine 2 --shards 2 --crashes yes --cluster 'my cluster.toml' --plant-bug skip-qc-check --strategy fork --fault-ms 600000 --stable-ms 5000 --tx-per-s 100 --trace"
        );
    }
}
