//! Proof of misbehaviour and the health events the DORA engine consumes.

use crate::messages::{Message, Round};
use crate::topology::ReplicaId;

/// Evidence against a replica, holding the signed messages where there are any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Two signed messages for the same slot (same view and sequence, or same round).
    Equivocation {
        offender: ReplicaId,
        first: Box<Message>,
        second: Box<Message>,
    },
    /// A correctly signed proposal or pre-prepare that breaks a protocol rule.
    InvalidProposal {
        offender: ReplicaId,
        reason: String,
        message: Box<Message>,
    },
    /// A message whose signatures or certificate failed verification.
    InvalidCertificate { offender: ReplicaId },
    /// A leader that let its round time out.
    TimingViolation { offender: ReplicaId, round: Round },
}

impl Evidence {
    pub fn offender(&self) -> ReplicaId {
        match self {
            Evidence::Equivocation { offender, .. }
            | Evidence::InvalidProposal { offender, .. }
            | Evidence::InvalidCertificate { offender }
            | Evidence::TimingViolation { offender, .. } => *offender,
        }
    }

    /// Proven misbehaviour, as opposed to a timing fault an honest but slow replica can show.
    pub fn is_proof_of_misbehaviour(&self) -> bool {
        !matches!(self, Evidence::TimingViolation { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Evidence::Equivocation { .. } => "equivocation",
            Evidence::InvalidProposal { .. } => "invalid_proposal",
            Evidence::InvalidCertificate { .. } => "invalid_certificate",
            Evidence::TimingViolation { .. } => "timing_violation",
        }
    }
}
