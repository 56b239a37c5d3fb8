//! CC-BFT replica core.
//!
//! Everything in this crate is sans-IO: state machines take inputs and return actions; the
//! runtime (or the deterministic simulator) carries them out.

pub mod ledger;
pub mod topology;
