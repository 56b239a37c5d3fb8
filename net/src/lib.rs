//! CC-BFT transport.
//!
//! - [`frame`]: the fixed-header frame format, the zero-copy stream decoder and the
//!   coalescing writer.
//! - [`keys`] and [`peers`]: Ed25519 link keys and the peer table (id, address, pinned key).
//! - [`tls`]: rustls (aws-lc-rs) configurations: TLS 1.3, X25519MLKEM768 only on replica
//!   links, mutual RFC 7250 raw-public-key authentication against the peer table.
//! - [`endpoint`]: a replica's links on a glommio executor: one connection per pair (the
//!   lower id dials), reconnect with back-off, two-class bounded send queues, pings.
//! - [`client`]: the client listener (server-authenticated TLS, connection and in-flight
//!   bounds).
//! - [`shaper`]: per-link delay, jitter, loss, bandwidth cap and cut on a timer wheel.
//! - [`metrics`]: counters per link, Prometheus text.
//! - `listen`: every listening socket (`SO_REUSEADDR`, never shared with another process).
//!
//! glommio types stay inside this crate's tasks; what callers see is frames, peer ids and
//! metrics. Bad input from the network is an error value that closes one link, never a panic.

// One audited `unsafe` hands a std listener to glommio (`listen`).
#![deny(unsafe_code)]

pub mod client;
pub mod endpoint;
pub mod frame;
pub mod keys;
mod listen;
pub mod metrics;
pub mod peers;
pub mod shaper;
pub mod tls;

/// Locked memory glommio registers per executor for socket I/O (no DMA files here).
pub const EXECUTOR_IO_MEMORY_BYTES: usize = 1 << 20;

/// A glommio executor builder sized for transport work on this kind of machine.
pub fn executor_builder(name: &str) -> glommio::LocalExecutorBuilder {
    glommio::LocalExecutorBuilder::default()
        .name(name)
        .io_memory(EXECUTOR_IO_MEMORY_BYTES)
}

pub use endpoint::{Endpoint, EndpointConfig, EndpointError, LinkLimits, SendError};
pub use frame::{Frame, FrameDecoder, FrameError, FrameKind, SendClass};
pub use keys::{LinkPublicKey, LinkSecretKey};
pub use peers::{PeerEntry, PeerId, PeerTable};
pub use shaper::{LinkShape, ShaperControl};
