//! Adversary mode: a node that runs one of the simulator's Byzantine strategies
//! ([`ccbft_core::sim::adversary`]) on what it sends, with its real key, so end-to-end tests
//! can show what the simulator shows (equivocation proven, withheld votes tolerated) with real
//! processes, signatures and sockets. The node keeps running the honest replica; the
//! strategy rewrites, splits, delays or drops its outgoing messages and may inject its own.
//!
//! Only in builds with the cargo feature `adversary`, which release builds refuse (see the
//! `compile_error!` below); elsewhere [`NodeAdversary`] cannot be made, and `ccbft node
//! --adversary` says the build has no adversary mode.

use ccbft_core::bls::BlsSigner;
use ccbft_core::messages::Message;
use ccbft_core::topology::{ReplicaId, Topology};
use std::sync::Arc;
use std::time::Duration;

#[cfg(all(feature = "adversary", not(debug_assertions)))]
compile_error!("the `adversary` feature is for test builds only: release builds never enable it");

/// Messages to send: recipients, message, how long to hold it back first.
pub type Outgoing = Vec<(Vec<ReplicaId>, Message, Duration)>;

#[cfg(feature = "adversary")]
mod enabled {
    use super::*;
    use ccbft_core::crypto::Signer;
    use ccbft_core::sim::adversary::{Adversary, Coalition, Strategy};
    use ccbft_core::sim::rng::Rng;

    /// One replica's strategy, a coalition of itself (it holds only its own key).
    pub struct NodeAdversary {
        adversary: Adversary<BlsSigner>,
        rng: Rng,
    }

    impl NodeAdversary {
        /// The strategy named `name` (as `ccbft sim` names them) for the replica `signer`
        /// signs for; `seed` drives its random choices.
        pub fn new(
            name: &str,
            signer: BlsSigner,
            topology: Arc<Topology>,
            rotation_rounds: u64,
            seed: u64,
        ) -> Result<NodeAdversary, String> {
            let strategy = Strategy::named(name)
                .filter(|s| *s != Strategy::Twins)
                .ok_or_else(|| format!("no adversary strategy {name:?} for a node"))?;
            let coalition = Coalition {
                members: vec![signer.id()],
                signers: vec![signer.clone()],
                topology,
                rotation_rounds,
            };
            Ok(NodeAdversary {
                adversary: Adversary::new(strategy, signer, coalition),
                rng: Rng::new(seed),
            })
        }

        pub fn name(&self) -> &'static str {
            self.adversary.strategy.name()
        }

        /// What arrives from peers (proposals to fork from, rounds to aim at).
        pub fn observe(&mut self, message: &Message) {
            self.adversary.observe(message);
        }

        /// What the strategy makes of one message the honest replica sends.
        pub fn transform(&mut self, to: Vec<ReplicaId>, message: Message) -> Outgoing {
            let outgoing = self.adversary.transform(to, message, &mut self.rng);
            with_delays(outgoing)
        }

        /// What the strategy sends on its own at a tick.
        pub fn on_tick(&mut self) -> Outgoing {
            let outgoing = self.adversary.on_tick(&mut self.rng);
            with_delays(outgoing)
        }
    }

    fn with_delays(outgoing: Vec<(Vec<ReplicaId>, Message, u64)>) -> Outgoing {
        outgoing
            .into_iter()
            .map(|(to, message, extra_us)| (to, message, Duration::from_micros(extra_us)))
            .collect()
    }
}

#[cfg(not(feature = "adversary"))]
mod enabled {
    use super::*;

    /// No adversary mode in this build: the type has no value.
    pub enum NodeAdversary {}

    impl NodeAdversary {
        pub fn new(
            name: &str,
            _signer: BlsSigner,
            _topology: Arc<Topology>,
            _rotation_rounds: u64,
            _seed: u64,
        ) -> Result<NodeAdversary, String> {
            Err(format!(
                "adversary strategy {name:?}: this build has no adversary mode (cargo feature \
                 `adversary`, test builds only)"
            ))
        }

        pub fn name(&self) -> &'static str {
            match *self {}
        }

        pub fn observe(&mut self, _message: &Message) {
            match *self {}
        }

        pub fn transform(&mut self, _to: Vec<ReplicaId>, _message: Message) -> Outgoing {
            match *self {}
        }

        pub fn on_tick(&mut self) -> Outgoing {
            match *self {}
        }
    }
}

pub use enabled::NodeAdversary;
