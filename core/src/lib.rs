//! CC-BFT replica core.
//!
//! Everything in this crate is sans-IO: state machines take inputs and return actions; the
//! runtime (or the deterministic simulator in [`sim`]) carries them out.
//!
//! - [`topology`]: cluster file, quorum arithmetic, provider-loss analysis.
//! - [`pbft`]: the local tier, one PBFT lane per (domain, shard).
//! - [`hotstuff`]: the global tier, chained HotStuff with two-chain commit.
//! - [`leader`], [`vote_pattern`]: latency-aware leader schedule, adaptive vote pattern.
//! - [`vote_aggregation`]: quorum certificates from vote pieces, per-domain pre-aggregation.
//! - [`ledger`]: the deterministic payments state machine.
//! - [`client`]: signed client transactions and who may debit which account.
//! - [`checkpoint`]: signed state checkpoints, stable certificates, snapshot chunks.
//! - [`durable`]: the records a replica persists, and the persist-then-send contract.
//! - [`replica`]: one replica composed of the above behind `step(input) -> actions`.
//! - [`sim`]: the deterministic simulator and its checkers.
//! - [`wire`]: the versioned binary encoding of every message and record.

pub mod bls;
pub mod bugs;
pub mod certificates;
pub mod checkpoint;
pub mod client;
pub mod crypto;
pub mod durable;
pub mod evidence;
pub mod hotstuff;
pub mod leader;
pub mod ledger;
pub mod messages;
pub mod pbft;
pub mod replica;
#[cfg(any(test, feature = "simulator"))]
pub mod sim;
pub mod topology;
pub mod transaction;
pub mod vote_aggregation;
pub mod vote_pattern;
pub mod wire;
