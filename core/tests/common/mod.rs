//! What the simulation test targets share: seeds on two threads (the CI machine has two
//! cores) and the clean-run assertion. Every failure names its seed; `ccbft sim --seed S
//! --trace` replays it.

#![allow(dead_code)] // each test target uses its own part

use ccbft_core::sim::{self, RunReport, SimOptions};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `run_seeds` stops at the first run with a violation (a planted-bug hunt), or
/// with a violation its description of which passes the test.
#[derive(Clone, Copy)]
pub enum Until {
    AllSeeds,
    FirstViolation,
    FirstMatching(fn(&str) -> bool),
}

impl Until {
    fn stops_at(&self, report: &RunReport) -> bool {
        match self {
            Until::AllSeeds => false,
            Until::FirstViolation => !report.violations.is_empty(),
            Until::FirstMatching(matches) => report.violations.iter().any(|v| matches(&v.what)),
        }
    }
}

/// Runs seeds `start..start + count`, interleaved over two threads.
pub fn run_seeds(start: u64, count: u64, options: &SimOptions, until: Until) -> Vec<RunReport> {
    let found = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|half| {
                let found = &found;
                scope.spawn(move || {
                    let mut reports = Vec::new();
                    for seed in (start..start + count).filter(|s| s % 2 == half) {
                        if found.load(Ordering::Relaxed) {
                            break;
                        }
                        let report = sim::run(seed, options).unwrap();
                        if until.stops_at(&report) {
                            found.store(true, Ordering::Relaxed);
                        }
                        reports.push(report);
                    }
                    reports
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// No run violated an invariant and every run committed transactions.
pub fn assert_clean(reports: &[RunReport]) {
    for report in reports {
        assert_no_violation(report);
        assert!(
            report.committed_txs > 0,
            "seed {} ({}) committed nothing",
            report.seed,
            report.shape
        );
    }
}

pub fn assert_no_violation(report: &RunReport) {
    assert!(
        report.violations.is_empty(),
        "seed {} ({}) violated: {:?}",
        report.seed,
        report.shape,
        report.violations
    );
}
