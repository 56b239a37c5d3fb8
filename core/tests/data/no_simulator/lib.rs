//! A crate that depends on ccbft-core and names the simulator's signer and verifier. Checked by
//! `core/tests/no_simulator.rs` twice: without core's `simulator` feature it must not compile,
//! with it (the control) it must.

use ccbft_core::crypto::{SimKeys, SimSigner};

pub fn simulated_signer() -> SimSigner {
    SimKeys::new(4, 1).signer(0)
}
