//! The fast simulation target mutation testing runs against (perf/mutants.sh): about half a
//! minute of seeds over small shapes, every adversary strategy drawn, each seed checked by
//! every checker. A mutant of a protocol rule that this (with the unit tests) cannot kill is
//! a missing adversary, checker or rule test.

use ccbft_core::sim::SimOptions;

mod common;
use common::{assert_clean, run_seeds, Until};

fn run(replicas: u32, domains: u32, byzantine: u32, seeds: std::ops::Range<u64>) {
    let options = SimOptions {
        replicas: Some(replicas),
        domains: Some(domains),
        byzantine: Some(byzantine),
        fault_ms: 800,
        stable_ms: 4_000,
        tx_per_s: 150,
        ..SimOptions::default()
    };
    assert_clean(&run_seeds(
        seeds.start,
        seeds.end - seeds.start,
        &options,
        Until::AllSeeds,
    ));
}

#[test]
fn four_replicas_one_byzantine() {
    run(4, 1, 1, 0..24);
}

#[test]
fn seven_replicas_three_domains_two_byzantine() {
    run(7, 3, 2, 0..24);
}

#[test]
fn ten_replicas_two_domains_three_byzantine() {
    run(10, 2, 3, 0..12);
}
