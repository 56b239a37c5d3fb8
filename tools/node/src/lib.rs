//! CC-BFT replica runtime: drives the sans-IO core (`ccbft-core`) over the transport
//! (`ccbft-net`) and the write-ahead log (`ccbft-storage`).
//!
//! - [`node`]: start-up of one replica process (`ccbft node`).
//! - [`host`]: the event loop between the replica and its I/O.
//! - [`latency`]: round trips to every peer (ping/pong), percentiles, delayed links.
//! - [`evidence_log`]: the proofs of misbehaviour a replica found, kept beside its log.
//! - [`adversary`]: adversary mode (test builds): a Byzantine strategy on what a node sends.
//! - [`control`]: the control plane (`/metrics`, `/health`, `/events`), and [`admin`], its
//!   token-guarded admin API (link cuts, stop).
//! - [`log`]: the replica's records on the WAL, the durable watermark, compaction; and
//!   [`log_base`], the compacted head of the log beside it.
//! - [`keys`], [`genesis`]: what a replica is given (its keys, the clients and accounts).
//! - [`client_proto`], [`client`]: the client protocol and a small client.
//! - [`local_cluster`]: node processes on this host (the demo, the end-to-end tests), on
//!   ports [`ports`] reserves.
//! - [`supervisor`]: `ccbft cluster up/status/down`, one supervised process per replica.
//! - [`submit`]: a client's transfers through the cluster, with what came back (`ccbft submit`).

pub mod admin;
pub mod adversary;
pub mod client;
pub mod client_proto;
pub mod control;
pub mod evidence_log;
pub mod genesis;
pub mod host;
pub mod keys;
pub mod latency;
pub mod local_cluster;
pub mod log;
pub mod log_base;
pub mod node;
pub mod ports;
pub mod submit;
pub mod supervisor;
