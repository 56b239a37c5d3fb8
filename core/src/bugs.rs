//! Deliberately wrong protocol rules, so the simulator can prove its checkers fail.
//!
//! Only code inside this crate can build a [`PlantedBugs`] with a bug switched on (the
//! fields are crate-private), and only the simulator does: a real replica is always built
//! with [`PlantedBugs::none`].

/// Names accepted by `ccbft sim --plant-bug`.
pub const BUG_NAMES: &[(&str, &str)] = &[
    (
        "commit-one-chain",
        "global tier commits a block as soon as it is certified by one QC",
    ),
    (
        "ignore-lock",
        "global tier votes without the locking (safe-to-vote) check",
    ),
    (
        "pbft-no-prepare",
        "local tier commits without waiting for a prepare quorum",
    ),
    (
        "double-execute",
        "execution ignores idempotency keys, so a replayed transfer runs twice",
    ),
    (
        "tc-without-quorum",
        "a timeout certificate is accepted without q timeout votes",
    ),
    (
        "qc-sub-quorum",
        "a quorum certificate is accepted with fewer than q signers",
    ),
    (
        "unchecked-signers",
        "a local certificate's signers are counted, not checked to be members of its domain",
    ),
    (
        "genesis-qc-anywhere",
        "a round-0 certificate is accepted for any block, not only genesis",
    ),
    (
        "skip-persist-vote",
        "a global vote is sent without its safety record being persisted",
    ),
    (
        "send-before-durable",
        "the host releases sends before the records they wait for are durable",
    ),
    (
        "restore-forgets-commit",
        "restore drops the records of PBFT commits sent",
    ),
    (
        "skip-client-recheck",
        "members prepare a pre-prepare without checking its transactions' client signatures",
    ),
    (
        "rejoin-without-floor",
        "a replica that lost its disk votes at once, not only above the floors a quorum shows",
    ),
    (
        "admit-without-reservation",
        "home-lane admission accepts debits without reserving them, so it over-accepts",
    ),
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    pub(crate) commit_one_chain: bool,
    pub(crate) ignore_lock: bool,
    pub(crate) pbft_no_prepare: bool,
    pub(crate) double_execute: bool,
    pub(crate) tc_without_quorum: bool,
    pub(crate) qc_sub_quorum: bool,
    pub(crate) unchecked_signers: bool,
    pub(crate) genesis_qc_anywhere: bool,
    pub(crate) skip_persist_vote: bool,
    /// A host bug: the simulator's disk model honours it, the replica cannot see it.
    pub(crate) send_before_durable: bool,
    pub(crate) restore_forgets_commit: bool,
    pub(crate) skip_client_recheck: bool,
    pub(crate) rejoin_without_floor: bool,
    pub(crate) admit_without_reservation: bool,
}

impl PlantedBugs {
    pub const fn none() -> PlantedBugs {
        PlantedBugs {
            commit_one_chain: false,
            ignore_lock: false,
            pbft_no_prepare: false,
            double_execute: false,
            tc_without_quorum: false,
            qc_sub_quorum: false,
            unchecked_signers: false,
            genesis_qc_anywhere: false,
            skip_persist_vote: false,
            send_before_durable: false,
            restore_forgets_commit: false,
            skip_client_recheck: false,
            rejoin_without_floor: false,
            admit_without_reservation: false,
        }
    }

    /// Parse a bug name; `None` for an unknown name.
    #[cfg(any(test, feature = "simulator"))]
    pub(crate) fn named(name: &str) -> Option<PlantedBugs> {
        let mut bugs = PlantedBugs::none();
        match name {
            "commit-one-chain" => bugs.commit_one_chain = true,
            "ignore-lock" => bugs.ignore_lock = true,
            "pbft-no-prepare" => bugs.pbft_no_prepare = true,
            "double-execute" => bugs.double_execute = true,
            "tc-without-quorum" => bugs.tc_without_quorum = true,
            "qc-sub-quorum" => bugs.qc_sub_quorum = true,
            "unchecked-signers" => bugs.unchecked_signers = true,
            "genesis-qc-anywhere" => bugs.genesis_qc_anywhere = true,
            "skip-persist-vote" => bugs.skip_persist_vote = true,
            "send-before-durable" => bugs.send_before_durable = true,
            "restore-forgets-commit" => bugs.restore_forgets_commit = true,
            "skip-client-recheck" => bugs.skip_client_recheck = true,
            "rejoin-without-floor" => bugs.rejoin_without_floor = true,
            "admit-without-reservation" => bugs.admit_without_reservation = true,
            _ => return None,
        }
        Some(bugs)
    }

    pub fn any(&self) -> bool {
        *self != PlantedBugs::none()
    }
}
