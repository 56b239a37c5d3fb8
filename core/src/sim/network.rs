//! The simulated network: per-pair latency from the topology, jitter, loss, partitions.

use super::rng::Rng;
use crate::topology::{ReplicaId, Topology};
use std::collections::BTreeSet;

/// A cut in the network during the fault phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partition {
    None,
    /// Nothing crosses between `side` and the rest, either way.
    Symmetric {
        side: BTreeSet<ReplicaId>,
    },
    /// Messages from `side` to the rest are lost; the other direction works.
    Asymmetric {
        side: BTreeSet<ReplicaId>,
    },
}

#[derive(Debug, Clone)]
pub struct Network {
    rtt_us: Vec<Vec<u32>>,
    domain_of: Vec<u32>,
    pub loss_per_mille: u32,
    pub jitter_percent: u32,
    pub partition: Partition,
    /// Extra one-way delay added to every message from these replicas (latency spike).
    pub slow: BTreeSet<ReplicaId>,
    pub slow_extra_us: u64,
}

impl Network {
    pub fn new(topology: &Topology) -> Network {
        Network {
            rtt_us: topology.rtt_us.clone(),
            domain_of: topology.replicas.iter().map(|r| r.domain).collect(),
            loss_per_mille: 0,
            jitter_percent: 10,
            partition: Partition::None,
            slow: BTreeSet::new(),
            slow_extra_us: 0,
        }
    }

    /// Heal every fault: from now on links are reliable (delays stay).
    pub fn heal(&mut self) {
        self.loss_per_mille = 0;
        self.partition = Partition::None;
        self.slow.clear();
    }

    fn cut(&self, from: ReplicaId, to: ReplicaId) -> bool {
        match &self.partition {
            Partition::None => false,
            Partition::Symmetric { side } => side.contains(&from) != side.contains(&to),
            Partition::Asymmetric { side } => side.contains(&from) && !side.contains(&to),
        }
    }

    /// One-way delay in microseconds, or `None` when the message is lost.
    pub fn delay_us(&self, from: ReplicaId, to: ReplicaId, rng: &mut Rng) -> Option<u64> {
        if from == to {
            return Some(1);
        }
        if self.cut(from, to) || rng.below(1000) < u64::from(self.loss_per_mille) {
            return None;
        }
        let base = u64::from(
            self.rtt_us[self.domain_of[from as usize] as usize]
                [self.domain_of[to as usize] as usize],
        ) / 2;
        let jitter = rng.below(base * u64::from(self.jitter_percent) / 100 + 50);
        let slow = if self.slow.contains(&from) {
            self.slow_extra_us
        } else {
            0
        };
        Some(base + jitter + slow)
    }
}
