//! Adaptive vote pattern of the global HotStuff tier (DESIGN.md, data path item 4).
//!
//! Linear: each replica sends its vote to the next leader (pre-aggregated per domain, so one
//! message per domain crosses the WAN); about n messages per round, but the quorum
//! certificate reaches the others only with the next proposal. All-to-all: every replica
//! sends its vote to every replica and forms the QC itself; one message delay less, but
//! n(n-1) messages per round. The policy compares the per-round delay the two patterns
//! differ in (cost model at [`pattern_cost`]) and switches with hysteresis: the other
//! pattern must be better by [`SWITCH_MARGIN_PERCENT`] for [`HYSTERESIS_ROUNDS`]
//! consecutive observations, and two switches are at least [`SWITCH_GAP_ROUNDS_MIN`] apart.
//!
//! Pure and deterministic: the decision depends only on the observations fed in. Replicas
//! fed different (local) measurements may pick different patterns; to agree, feed samples
//! taken from committed state.

use crate::topology::REPLICAS_MAX;

/// Above this many replicas all-to-all is never used: n(n-1) votes per round (992 at 32)
/// cost more CPU for signature checks than one message delay saves.
pub const ALL_TO_ALL_REPLICAS_MAX: u32 = 32;
/// The other pattern must be estimated at least this much faster (percent of the current
/// pattern's delay) to count towards a switch; keeps estimates near the break-even point
/// from flapping.
pub const SWITCH_MARGIN_PERCENT: u32 = 20;
/// Consecutive observations the other pattern must be better for; one noisy sample resets
/// nothing and switches nothing.
pub const HYSTERESIS_ROUNDS: u32 = 8;
/// Fewest rounds between two switches: a switch costs a round of mixed patterns, so even
/// input that flips at the hysteresis rate switches at most once per gap.
pub const SWITCH_GAP_ROUNDS_MIN: u64 = 1_000;

const _: () = assert!(ALL_TO_ALL_REPLICAS_MAX as usize <= REPLICAS_MAX);
const _: () = assert!(SWITCH_MARGIN_PERCENT < 100);
const _: () = assert!(HYSTERESIS_ROUNDS >= 1);
const _: () = assert!(HYSTERESIS_ROUNDS as u64 <= SWITCH_GAP_ROUNDS_MIN);

/// How votes of the global tier travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VotePattern {
    /// Votes to the next leader, pre-aggregated per domain.
    Linear,
    /// Every replica to every replica; each forms the QC itself.
    AllToAll,
}

impl VotePattern {
    fn other(self) -> VotePattern {
        match self {
            VotePattern::Linear => VotePattern::AllToAll,
            VotePattern::AllToAll => VotePattern::Linear,
        }
    }
}

/// Tuning of the policy; [`PolicyConfig::default`] takes the named constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    pub all_to_all_replicas_max: u32,
    pub switch_margin_percent: u32,
    pub hysteresis_rounds: u32,
    pub switch_gap_rounds_min: u64,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            all_to_all_replicas_max: ALL_TO_ALL_REPLICAS_MAX,
            switch_margin_percent: SWITCH_MARGIN_PERCENT,
            hysteresis_rounds: HYSTERESIS_ROUNDS,
            switch_gap_rounds_min: SWITCH_GAP_ROUNDS_MIN,
        }
    }
}

/// One observation of the global tier's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSample {
    /// Replicas in the global tier.
    pub n: u32,
    /// Round trip within which a quorum answers (the q-th smallest RTT).
    pub quorum_rtt_us: u32,
    /// Bandwidth available to one replica for votes.
    pub bandwidth_bytes_per_s: u64,
    /// Size of one vote message on the wire.
    pub vote_bytes: u32,
}

/// A switch, returned so the replica records it as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSwitch {
    pub round: u64,
    pub from: VotePattern,
    pub to: VotePattern,
    pub reason: String,
}

/// Estimated per-round delay, in microseconds, of the part where the patterns differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternCost {
    pub linear_us: u64,
    pub all_to_all_us: u64,
}

impl PatternCost {
    fn of(&self, pattern: VotePattern) -> u64 {
        match pattern {
            VotePattern::Linear => self.linear_us,
            VotePattern::AllToAll => self.all_to_all_us,
        }
    }
}

/// Linear pays one extra one-way delay (quorum RTT / 2: the QC reaches the others only
/// through the next leader) plus sending one vote. All-to-all pays the serialization of n
/// votes through each replica's link (its vote to n - 1 peers, rounded up to n). A
/// bandwidth of 0 (not measured yet) makes all-to-all infinitely expensive.
pub fn pattern_cost(sample: &LinkSample) -> PatternCost {
    let one_way_us = u64::from(sample.quorum_rtt_us) / 2;
    let vote_bytes = u64::from(sample.vote_bytes);
    let bandwidth = sample.bandwidth_bytes_per_s;
    PatternCost {
        linear_us: one_way_us.saturating_add(serialization_us(vote_bytes, bandwidth)),
        all_to_all_us: serialization_us(u64::from(sample.n) * vote_bytes, bandwidth),
    }
}

fn serialization_us(bytes: u64, bandwidth_bytes_per_s: u64) -> u64 {
    if bandwidth_bytes_per_s == 0 {
        return u64::MAX;
    }
    let us = (u128::from(bytes) * 1_000_000).div_ceil(u128::from(bandwidth_bytes_per_s));
    u64::try_from(us).unwrap_or(u64::MAX)
}

/// Chooses the vote pattern round by round. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VotePatternPolicy {
    config: PolicyConfig,
    current: VotePattern,
    /// Consecutive observations in which the other pattern was better by the margin.
    streak: u32,
    last_switch_round: Option<u64>,
    last_observed_round: Option<u64>,
}

impl VotePatternPolicy {
    /// Until the first observation `initial` holds, even all-to-all with a large n.
    pub fn new(initial: VotePattern, config: PolicyConfig) -> VotePatternPolicy {
        assert!(config.all_to_all_replicas_max as usize <= REPLICAS_MAX);
        assert!(
            config.switch_margin_percent < 100,
            "margin is a percentage below 100"
        );
        assert!(config.hysteresis_rounds >= 1);
        VotePatternPolicy {
            config,
            current: initial,
            streak: 0,
            last_switch_round: None,
            last_observed_round: None,
        }
    }

    pub fn current(&self) -> VotePattern {
        self.current
    }

    /// Feed one observation per round, in round order. Returns the switch if one happens.
    pub fn observe(&mut self, round: u64, sample: LinkSample) -> Option<PatternSwitch> {
        assert!(
            sample.n >= 1 && sample.n as usize <= REPLICAS_MAX,
            "n = {}",
            sample.n
        );
        assert!(
            self.last_observed_round.is_none_or(|last| round >= last),
            "observations in round order"
        );
        self.last_observed_round = Some(round);
        let switch = if sample.n > self.config.all_to_all_replicas_max {
            self.force_linear(round, &sample)
        } else {
            self.weigh(round, &sample)
        };
        assert!(self.streak <= self.config.hysteresis_rounds);
        assert!(switch
            .as_ref()
            .is_none_or(|s| s.to == self.current && s.from != s.to));
        switch
    }

    /// Large n: all-to-all is out regardless of latency, so no hysteresis and no gap.
    fn force_linear(&mut self, round: u64, sample: &LinkSample) -> Option<PatternSwitch> {
        self.streak = 0;
        if self.current == VotePattern::Linear {
            return None;
        }
        let n = u64::from(sample.n);
        let reason = format!(
            "n = {n} > {}: all-to-all would send {} votes per round",
            self.config.all_to_all_replicas_max,
            n * (n - 1)
        );
        Some(self.switch(round, VotePattern::Linear, reason))
    }

    fn weigh(&mut self, round: u64, sample: &LinkSample) -> Option<PatternSwitch> {
        let cost = pattern_cost(sample);
        if !self.other_better_by_margin(&cost) {
            self.streak = 0;
            return None;
        }
        // Saturate at the threshold: a long streak blocked by the gap still switches the
        // first round the gap allows.
        self.streak = (self.streak + 1).min(self.config.hysteresis_rounds);
        if self.streak < self.config.hysteresis_rounds || !self.gap_passed(round) {
            return None;
        }
        let to = self.current.other();
        let reason = format!(
            "{to:?} estimated {} us per round vs {:?} {} us, at least {}% better for {} \
             observations (n = {}, quorum RTT {} us, {} B/s, vote {} B)",
            cost.of(to),
            self.current,
            cost.of(self.current),
            self.config.switch_margin_percent,
            self.streak,
            sample.n,
            sample.quorum_rtt_us,
            sample.bandwidth_bytes_per_s,
            sample.vote_bytes
        );
        Some(self.switch(round, to, reason))
    }

    /// other <= current x (100 - margin) / 100, in u128 so u64::MAX costs compare exactly.
    fn other_better_by_margin(&self, cost: &PatternCost) -> bool {
        let current = u128::from(cost.of(self.current));
        let other = u128::from(cost.of(self.current.other()));
        other * 100 <= current * u128::from(100 - self.config.switch_margin_percent)
            && other < current
    }

    fn gap_passed(&self, round: u64) -> bool {
        self.last_switch_round
            .is_none_or(|last| round >= last.saturating_add(self.config.switch_gap_rounds_min))
    }

    fn switch(&mut self, round: u64, to: VotePattern, reason: String) -> PatternSwitch {
        assert_ne!(self.current, to);
        let from = self.current;
        self.current = to;
        self.streak = 0;
        self.last_switch_round = Some(round);
        PatternSwitch {
            round,
            from,
            to,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GBIT_BYTES_PER_S: u64 = 125_000_000;
    const MBIT_BYTES_PER_S: u64 = 125_000;

    /// Small n, 40 ms quorum RTT, 1 Gbit/s, 200-byte votes: all-to-all costs 12 us of
    /// serialization against 20 ms of an extra hop.
    const WAN_SMALL: LinkSample = LinkSample {
        n: 7,
        quorum_rtt_us: 40_000,
        bandwidth_bytes_per_s: GBIT_BYTES_PER_S,
        vote_bytes: 200,
    };
    /// Same n in one region (1 ms RTT) over 1 Mbit/s: 7 votes take 11.2 ms to send.
    const LAN_THIN: LinkSample = LinkSample {
        n: 7,
        quorum_rtt_us: 1_000,
        bandwidth_bytes_per_s: MBIT_BYTES_PER_S,
        vote_bytes: 200,
    };

    fn policy(initial: VotePattern) -> VotePatternPolicy {
        VotePatternPolicy::new(initial, PolicyConfig::default())
    }

    /// Feed `sample` for rounds `from..to`; return the switches.
    fn feed(
        policy: &mut VotePatternPolicy,
        rounds: std::ops::Range<u64>,
        sample: LinkSample,
    ) -> Vec<PatternSwitch> {
        rounds
            .filter_map(|round| policy.observe(round, sample))
            .collect()
    }

    #[test]
    fn cost_table() {
        // (sample, linear us, all-to-all us)
        let table: &[(LinkSample, u64, u64)] = &[
            (WAN_SMALL, 20_000 + 2, 12),
            (LAN_THIN, 500 + 1_600, 11_200),
            (
                LinkSample {
                    bandwidth_bytes_per_s: 0,
                    ..WAN_SMALL
                },
                u64::MAX,
                u64::MAX,
            ),
            (
                LinkSample {
                    n: 256,
                    vote_bytes: u32::MAX,
                    bandwidth_bytes_per_s: 1,
                    ..WAN_SMALL
                },
                20_000 + 4_294_967_295_000_000,
                256 * 4_294_967_295_000_000,
            ),
        ];
        for (sample, linear_us, all_to_all_us) in table {
            let cost = pattern_cost(sample);
            assert_eq!(
                (cost.linear_us, cost.all_to_all_us),
                (*linear_us, *all_to_all_us),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn small_n_high_rtt_ample_bandwidth_chooses_all_to_all() {
        let mut policy = policy(VotePattern::Linear);
        let switches = feed(&mut policy, 0..100, WAN_SMALL);
        assert_eq!(switches.len(), 1);
        let switch = &switches[0];
        assert_eq!(
            (switch.from, switch.to),
            (VotePattern::Linear, VotePattern::AllToAll)
        );
        assert_eq!(
            switch.round,
            u64::from(HYSTERESIS_ROUNDS) - 1,
            "after the hysteresis"
        );
        assert!(
            switch.reason.contains("AllToAll estimated 12 us"),
            "{}",
            switch.reason
        );
        assert_eq!(policy.current(), VotePattern::AllToAll);
    }

    #[test]
    fn decisions_table() {
        // (initial, sample, pattern after many rounds)
        let table: &[(VotePattern, LinkSample, VotePattern)] = &[
            (VotePattern::Linear, WAN_SMALL, VotePattern::AllToAll),
            (VotePattern::AllToAll, WAN_SMALL, VotePattern::AllToAll),
            (VotePattern::AllToAll, LAN_THIN, VotePattern::Linear),
            (VotePattern::Linear, LAN_THIN, VotePattern::Linear),
            (
                VotePattern::Linear,
                LinkSample { n: 32, ..WAN_SMALL },
                VotePattern::AllToAll,
            ),
            (
                VotePattern::Linear,
                LinkSample { n: 33, ..WAN_SMALL },
                VotePattern::Linear,
            ),
            (
                VotePattern::AllToAll,
                LinkSample { n: 64, ..WAN_SMALL },
                VotePattern::Linear,
            ),
            (
                VotePattern::AllToAll,
                LinkSample {
                    bandwidth_bytes_per_s: 0,
                    ..WAN_SMALL
                },
                VotePattern::AllToAll,
            ),
        ];
        for (initial, sample, expected) in table {
            let mut policy = policy(*initial);
            feed(&mut policy, 0..100, *sample);
            assert_eq!(policy.current(), *expected, "{initial:?} {sample:?}");
        }
    }

    #[test]
    fn large_n_switches_to_linear_at_once_and_stays() {
        let mut policy = policy(VotePattern::AllToAll);
        let large = LinkSample { n: 64, ..WAN_SMALL };
        let switch = policy.observe(5, large).expect("forced switch");
        assert_eq!((switch.round, switch.to), (5, VotePattern::Linear));
        assert!(switch.reason.contains("4032 votes"), "{}", switch.reason);
        assert!(feed(&mut policy, 6..5_000, large).is_empty());
    }

    #[test]
    fn a_single_noisy_sample_does_not_switch() {
        let mut policy = policy(VotePattern::Linear);
        let short = u64::from(HYSTERESIS_ROUNDS) - 1;
        assert!(feed(&mut policy, 0..50, LAN_THIN).is_empty());
        assert!(policy.observe(50, WAN_SMALL).is_none(), "one spike");
        assert!(policy.observe(51, LAN_THIN).is_none());
        // A streak one short of the hysteresis, broken by one sample, starts over.
        assert!(feed(&mut policy, 52..52 + short, WAN_SMALL).is_empty());
        assert!(policy.observe(52 + short, LAN_THIN).is_none());
        assert!(feed(&mut policy, 53 + short..53 + 2 * short, WAN_SMALL).is_empty());
        assert_eq!(policy.current(), VotePattern::Linear);
        // One more makes the streak long enough.
        assert!(policy.observe(53 + 2 * short, WAN_SMALL).is_some());
    }

    #[test]
    fn better_by_less_than_the_margin_does_not_switch() {
        // All-to-all 10% faster than linear: below the 20% margin.
        let sample = LinkSample {
            n: 10,
            quorum_rtt_us: 2_000,
            bandwidth_bytes_per_s: 1_000_000,
            vote_bytes: 100,
        };
        let cost = pattern_cost(&sample);
        assert!(cost.all_to_all_us < cost.linear_us);
        assert!(cost.all_to_all_us * 100 > cost.linear_us * u64::from(100 - SWITCH_MARGIN_PERCENT));
        let mut policy = policy(VotePattern::Linear);
        assert!(feed(&mut policy, 0..5_000, sample).is_empty());
    }

    #[test]
    fn flapping_input_switches_at_most_once_per_gap() {
        let mut policy = policy(VotePattern::Linear);
        let hysteresis = u64::from(HYSTERESIS_ROUNDS);
        let mut switches = Vec::new();
        for round in 0..20_000u64 {
            // Each side wins for exactly the hysteresis, so every phase could switch.
            let sample = if (round / hysteresis) % 2 == 0 {
                WAN_SMALL
            } else {
                LAN_THIN
            };
            switches.extend(policy.observe(round, sample));
        }
        assert!(switches.len() >= 2, "the input does call for switches");
        assert!(switches.len() as u64 <= 20_000 / SWITCH_GAP_ROUNDS_MIN + 1);
        for pair in switches.windows(2) {
            assert!(
                pair[1].round - pair[0].round >= SWITCH_GAP_ROUNDS_MIN,
                "{pair:?}"
            );
            assert_eq!(pair[0].to, pair[1].from);
        }
    }

    fn sample() -> impl Strategy<Value = LinkSample> {
        (1u32..=40, 0u32..200_000, 0u64..1_000_000_000, 0u32..2_000).prop_map(
            |(n, quorum_rtt_us, bandwidth_bytes_per_s, vote_bytes)| LinkSample {
                n,
                quorum_rtt_us,
                bandwidth_bytes_per_s,
                vote_bytes,
            },
        )
    }

    proptest! {
        #[test]
        fn switches_respect_gap_and_size_bound(
            initial in prop_oneof![Just(VotePattern::Linear), Just(VotePattern::AllToAll)],
            samples in proptest::collection::vec((1u64..400, sample()), 1..300),
        ) {
            let mut policy = policy(initial);
            let mut round = 0u64;
            let mut last_gap_switch: Option<u64> = None;
            for (step, sample) in samples {
                round += step;
                let switch = policy.observe(round, sample);
                if sample.n > ALL_TO_ALL_REPLICAS_MAX {
                    prop_assert_eq!(policy.current(), VotePattern::Linear);
                }
                if let Some(switch) = switch {
                    prop_assert_eq!(switch.to, policy.current());
                    let forced = sample.n > ALL_TO_ALL_REPLICAS_MAX;
                    if let (false, Some(last)) = (forced, last_gap_switch) {
                        prop_assert!(round - last >= SWITCH_GAP_ROUNDS_MIN);
                    }
                    last_gap_switch = Some(round);
                }
            }
        }

        #[test]
        fn same_observations_same_decisions(
            samples in proptest::collection::vec(sample(), 1..300),
        ) {
            let mut a = policy(VotePattern::Linear);
            let mut b = policy(VotePattern::Linear);
            for (round, sample) in samples.into_iter().enumerate() {
                prop_assert_eq!(a.observe(round as u64, sample), b.observe(round as u64, sample));
            }
            prop_assert_eq!(a, b);
        }
    }
}
