//! One door for certificates (STYLE.md 17).
//!
//! Every QC, TC, LC, prepared certificate and checkpoint certificate a replica accepts is
//! checked here against the replicas allowed to sign it and the quorum it needs. The host
//! verifies the signatures themselves ([`crate::crypto::Check`]); this module decides
//! whether the right replicas, and enough of them, signed. A certificate counted but not
//! checked is how a single Byzantine leader forks a chain: an empty timeout certificate
//! verifies (it has no signature to fail) and, taken for a quorum, releases every lock.

use crate::bugs::PlantedBugs;
use crate::checkpoint::CheckpointCert;
use crate::crypto::{Bitmap, Certificate, Digest};
use crate::messages::{Lane, LocalCert, PreparedProof, QuorumCert, TimeoutCert};
use crate::topology::{ReplicaId, Topology};

/// Why a certificate is refused. Each names what is wrong, for evidence and traces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("{got} signers where a quorum needs {need}")]
    SubQuorum { got: u32, need: u32 },
    #[error("r{0} may not sign this certificate")]
    Outsider(ReplicaId),
    #[error("r{0} signs twice")]
    DuplicateSigner(ReplicaId),
    #[error("a round-0 QC that is not the genesis certificate")]
    FalseGenesis,
    #[error("timeout vote of r{signer} names a QC of round {high_qc_round}, not below its round {round}")]
    HighQcNotBelow {
        signer: ReplicaId,
        high_qc_round: u64,
        round: u64,
    },
    #[error("lane {0:?} is not a lane of this cluster")]
    UnknownLane(Lane),
    #[error("certificate of lane {got:?} where lane {want:?} was expected")]
    WrongLane { got: Lane, want: Lane },
}

/// Who may sign a certificate, and how many must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerSet {
    pub members: Bitmap,
    pub quorum: u32,
}

impl SignerSet {
    pub fn new(members: &[ReplicaId], quorum: u32) -> SignerSet {
        let mut set = Bitmap::default();
        members.iter().for_each(|&m| {
            set.insert(m);
        });
        assert!(
            quorum >= 1 && quorum as usize <= members.len(),
            "a quorum of members"
        );
        SignerSet {
            members: set,
            quorum,
        }
    }

    /// Every signer is a member (always checked), and there are a quorum of them (unless
    /// `skip_quorum`, which only a planted bug asks for).
    fn admits(&self, signers: &Bitmap, skip_quorum: bool) -> Result<(), CertError> {
        if let Some(outsider) = signers.ids().find(|&id| !self.members.contains(id)) {
            return Err(CertError::Outsider(outsider));
        }
        let got = signers.count();
        if got < self.quorum && !skip_quorum {
            return Err(CertError::SubQuorum {
                got,
                need: self.quorum,
            });
        }
        Ok(())
    }
}

/// The signer sets of one cluster: the global committee and each domain's members.
#[derive(Debug, Clone)]
pub struct CertRules {
    global: SignerSet,
    /// Indexed by domain.
    domains: Vec<SignerSet>,
    shards: u32,
    /// The one genesis block; only its QC has round 0 and no signers.
    genesis: Digest,
    bugs: PlantedBugs,
}

impl CertRules {
    /// Shards per domain.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The lane that alone orders debits of `account`.
    pub fn home_lane(&self, account: crate::ledger::AccountId) -> Lane {
        crate::client::home_lane(account, self.domains.len() as u32, self.shards)
    }

    pub fn new(topology: &Topology, bugs: PlantedBugs) -> CertRules {
        let ids: Vec<ReplicaId> = topology.replicas.iter().map(|r| r.id).collect();
        let domains = (0..topology.domains.len() as u32)
            .map(|d| SignerSet::new(&topology.domain_members(d), topology.domain_quorum(d).q))
            .collect();
        let lanes = topology.domains.len() * topology.shards as usize;
        CertRules {
            global: SignerSet::new(&ids, topology.quorum().q),
            domains,
            shards: topology.shards,
            genesis: crate::hotstuff::genesis_block(lanes).digest(),
            bugs,
        }
    }

    pub fn genesis(&self) -> Digest {
        self.genesis
    }

    /// The genesis QC: round 0, the genesis block, no signers.
    pub fn genesis_qc(&self) -> QuorumCert {
        QuorumCert {
            round: 0,
            block: self.genesis,
            cert: Certificate {
                signers: Bitmap::default(),
                aggregate: crate::crypto::Signature(Vec::new()),
            },
        }
    }

    /// A QC: q committee signers, or exactly the genesis certificate.
    pub fn qc(&self, qc: &QuorumCert) -> Result<(), CertError> {
        if qc.round == 0 {
            let genesis = qc.block == self.genesis && qc.cert.signers.count() == 0;
            return match genesis || self.bugs.genesis_qc_anywhere {
                true => Ok(()),
                false => Err(CertError::FalseGenesis),
            };
        }
        self.global
            .admits(&qc.cert.signers, self.bugs.qc_sub_quorum)
    }

    /// A TC: q distinct committee members, each timing out in the TC's round with a QC
    /// from an earlier round (a later one would be a lie that blocks every proposal).
    pub fn tc(&self, tc: &TimeoutCert) -> Result<(), CertError> {
        let mut signers = Bitmap::default();
        for &(signer, high_qc_round, _) in &tc.votes {
            if !self.global.members.contains(signer) {
                return Err(CertError::Outsider(signer));
            }
            if !signers.insert(signer) {
                return Err(CertError::DuplicateSigner(signer));
            }
            if high_qc_round >= tc.round {
                return Err(CertError::HighQcNotBelow {
                    signer,
                    high_qc_round,
                    round: tc.round,
                });
            }
        }
        self.global.admits(&signers, self.bugs.tc_without_quorum)
    }

    /// An LC: q_d members of the lane's domain.
    pub fn lc(&self, lc: &LocalCert) -> Result<(), CertError> {
        self.domain_cert(lc.lane, &lc.cert)
    }

    /// A prepared certificate of `lane`: q_d members of the lane's domain.
    pub fn prepared(&self, lane: Lane, proof: &PreparedProof) -> Result<(), CertError> {
        self.domain_cert(lane, &proof.cert)
    }

    /// A stable checkpoint: q committee members.
    pub fn checkpoint(&self, cert: &CheckpointCert) -> Result<(), CertError> {
        self.global
            .admits(&cert.cert.signers, self.bugs.qc_sub_quorum)
    }

    /// A piece of global votes (one domain's aggregate): committee members, at least one.
    pub fn vote_piece(&self, piece: &Certificate) -> Result<(), CertError> {
        self.global.admits(&piece.signers, true)?;
        match piece.signers.count() {
            0 => Err(CertError::SubQuorum { got: 0, need: 1 }),
            _ => Ok(()),
        }
    }

    /// Whether `lane` exists in this cluster.
    pub fn lane_exists(&self, lane: Lane) -> bool {
        (lane.domain as usize) < self.domains.len() && lane.shard < self.shards
    }

    /// The lane's index in lane order (domain, then shard), if it exists.
    pub fn lane_index(&self, lane: Lane) -> Option<usize> {
        self.lane_exists(lane)
            .then(|| lane.domain as usize * self.shards as usize + lane.shard as usize)
    }

    fn domain_cert(&self, lane: Lane, cert: &Certificate) -> Result<(), CertError> {
        if !self.lane_exists(lane) {
            return Err(CertError::UnknownLane(lane));
        }
        let domain = &self.domains[lane.domain as usize];
        if self.bugs.unchecked_signers {
            // The planted bug counts signers without asking who they are.
            return self.global.admits(&cert.signers, true).and_then(|_| {
                match cert.signers.count() >= domain.quorum {
                    true => Ok(()),
                    false => Err(CertError::SubQuorum {
                        got: cert.signers.count(),
                        need: domain.quorum,
                    }),
                }
            });
        }
        domain.admits(&cert.signers, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Signature;

    fn rules() -> CertRules {
        // 7 replicas over 3 domains: {0,3,6}, {1,4}, {2,5}; q = 5, q_d = 2 or 2.
        CertRules::new(&Topology::synthetic(7, 3, 1).unwrap(), PlantedBugs::none())
    }

    fn cert(ids: &[ReplicaId]) -> Certificate {
        let mut signers = Bitmap::default();
        ids.iter().for_each(|&i| {
            signers.insert(i);
        });
        Certificate {
            signers,
            aggregate: Signature(vec![1; 16]),
        }
    }

    fn tc(round: u64, votes: &[(ReplicaId, u64)]) -> TimeoutCert {
        TimeoutCert {
            round,
            votes: votes
                .iter()
                .map(|&(id, hqc)| (id, hqc, Signature(vec![2; 16])))
                .collect(),
        }
    }

    /// Mutation run: an empty piece adds no signer, but the rule refuses it outright so a
    /// peer cannot fill the aggregator with pieces that carry nothing.
    #[test]
    fn a_vote_piece_needs_a_member_signer() {
        let rules = rules();
        assert!(rules.vote_piece(&cert(&[])).is_err());
        assert!(rules.vote_piece(&cert(&[3])).is_ok());
        assert!(rules.vote_piece(&cert(&[7])).is_err(), "not a member");
    }

    /// Mutation run: the last lane exists, the one past it in either coordinate does not.
    #[test]
    fn lanes_end_at_the_last_domain_and_shard() {
        let rules = rules();
        assert!(rules.lane_exists(Lane {
            domain: 2,
            shard: 0
        }));
        assert!(!rules.lane_exists(Lane {
            domain: 3,
            shard: 0
        }));
        assert!(!rules.lane_exists(Lane {
            domain: 0,
            shard: 1
        }));
        assert_eq!(
            rules.lane_index(Lane {
                domain: 2,
                shard: 0
            }),
            Some(2)
        );
        assert_eq!(
            rules.lane_index(Lane {
                domain: 3,
                shard: 0
            }),
            None
        );
    }

    #[test]
    fn an_empty_or_sub_quorum_tc_is_refused() {
        let rules = rules();
        assert_eq!(
            rules.tc(&tc(9, &[])),
            Err(CertError::SubQuorum { got: 0, need: 5 })
        );
        let four: Vec<(ReplicaId, u64)> = (0..4).map(|i| (i, 3)).collect();
        assert!(rules.tc(&tc(9, &four)).is_err());
        let five: Vec<(ReplicaId, u64)> = (0..5).map(|i| (i, 3)).collect();
        assert_eq!(rules.tc(&tc(9, &five)), Ok(()));
    }

    #[test]
    fn a_tc_with_a_repeated_outside_or_lying_signer_is_refused() {
        let rules = rules();
        let repeated = [(0, 1), (1, 1), (2, 1), (3, 1), (3, 1)];
        assert_eq!(
            rules.tc(&tc(9, &repeated)),
            Err(CertError::DuplicateSigner(3))
        );
        let outside = [(0, 1), (1, 1), (2, 1), (3, 1), (u32::MAX, 1)];
        assert_eq!(
            rules.tc(&tc(9, &outside)),
            Err(CertError::Outsider(u32::MAX))
        );
        let lying = [(0, 1), (1, 1), (2, 1), (3, 1), (4, 9)];
        assert!(matches!(
            rules.tc(&tc(9, &lying)),
            Err(CertError::HighQcNotBelow { signer: 4, .. })
        ));
    }

    #[test]
    fn only_the_genesis_block_has_a_round_zero_qc() {
        let rules = rules();
        assert_eq!(rules.qc(&rules.genesis_qc()), Ok(()));
        let mut other = rules.genesis_qc();
        other.block = [9; 32];
        assert_eq!(rules.qc(&other), Err(CertError::FalseGenesis));
        let mut signed = rules.genesis_qc();
        signed.cert = cert(&[0]);
        assert_eq!(rules.qc(&signed), Err(CertError::FalseGenesis));
    }

    #[test]
    fn a_qc_needs_q_committee_signers() {
        let rules = rules();
        let qc = |ids: &[ReplicaId]| QuorumCert {
            round: 4,
            block: [1; 32],
            cert: cert(ids),
        };
        assert_eq!(rules.qc(&qc(&[0, 1, 2, 3, 4])), Ok(()));
        assert_eq!(
            rules.qc(&qc(&[0, 1, 2, 3])),
            Err(CertError::SubQuorum { got: 4, need: 5 })
        );
        assert_eq!(
            rules.qc(&qc(&[0, 1, 2, 3, 200])),
            Err(CertError::Outsider(200))
        );
    }

    #[test]
    fn an_lc_needs_members_of_its_own_domain() {
        let rules = rules();
        let lc = |domain, ids: &[ReplicaId]| LocalCert {
            lane: Lane { domain, shard: 0 },
            view: 0,
            seq: 1,
            digest: [0; 32],
            cert: cert(ids),
        };
        assert_eq!(rules.lc(&lc(1, &[1, 4])), Ok(()));
        // One member of domain 1 plus an outsider: counted 2 = q_d, but not members.
        assert_eq!(rules.lc(&lc(1, &[1, 2])), Err(CertError::Outsider(2)));
        assert!(rules.lc(&lc(1, &[4])).is_err());
        assert_eq!(
            rules.lc(&lc(7, &[1, 4])),
            Err(CertError::UnknownLane(Lane {
                domain: 7,
                shard: 0
            }))
        );
    }
}
