//! Proof of misbehaviour and the health events the DORA engine consumes.

use crate::crypto::{digest, Check, Digest};
use crate::messages::{GlobalMessage, Lane, LocalMessage, Message, Round, Seq, View};
use crate::topology::ReplicaId;

/// Equivocation proofs one global block may carry.
pub const EVIDENCE_PER_BLOCK_MAX: usize = 2;

/// What a signed statement is about: two different statements by one signer for the same
/// slot are an equivocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Proposal(Round),
    GlobalVote(Round),
    /// Pre-prepare and prepare sign the same payload (the primary's pre-prepare counts as
    /// its prepare), so they share a slot.
    LocalPrepare(Lane, View, Seq),
}

/// (signer, slot, the check of its signature) of a message that can be half of a proof.
/// The signer's own signature is the first check `Message::checks` lists for these kinds.
fn signed_statement(message: &Message) -> Option<(ReplicaId, Slot, Check)> {
    let (signer, slot) = match message {
        Message::Global(GlobalMessage::Proposal { block, .. }) => {
            (block.proposer, Slot::Proposal(block.round))
        }
        Message::Global(GlobalMessage::Vote { round, from, .. }) => {
            (*from, Slot::GlobalVote(*round))
        }
        Message::Local(
            LocalMessage::PrePrepare {
                lane,
                view,
                seq,
                from,
                ..
            }
            | LocalMessage::Prepare {
                lane,
                view,
                seq,
                from,
                ..
            },
        ) => (*from, Slot::LocalPrepare(*lane, *view, *seq)),
        _ => return None,
    };
    let check = message.checks().into_iter().next()?;
    matches!(&check, Check::Single { signer: s, .. } if *s == signer)
        .then_some((signer, slot, check))
}

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

    /// The signature checks that prove this evidence to anyone: both messages are signed by
    /// the offender, for the same slot, over different content. `None` for evidence that
    /// is not such a proof (only equivocations are; a failed certificate names the sender
    /// of a message, which a network peer can fake). Only provable evidence is committed
    /// into blocks and lowers reputation, so every honest replica acts on the same facts.
    pub fn proof(&self) -> Option<Vec<Check>> {
        let Evidence::Equivocation {
            offender,
            first,
            second,
        } = self
        else {
            return None;
        };
        let (signer_a, slot_a, check_a) = signed_statement(first)?;
        let (signer_b, slot_b, check_b) = signed_statement(second)?;
        let message = |check: &Check| match check {
            Check::Single { message, .. } => message.clone(),
            Check::Aggregate { message, .. } | Check::Client { message, .. } => message.clone(),
        };
        let conflicting = signer_a == *offender
            && signer_b == *offender
            && slot_a == slot_b
            && message(&check_a) != message(&check_b);
        conflicting.then(|| vec![check_a, check_b])
    }

    /// Binds a proof into the digest of the block that carries it.
    pub fn proof_digest(&self) -> Digest {
        let mut bytes = self.offender().to_le_bytes().to_vec();
        for check in self.proof().unwrap_or_default() {
            if let Check::Single {
                message, signature, ..
            } = check
            {
                bytes.extend_from_slice(&digest(&[&message, &signature.0]));
            }
        }
        digest(&[b"evidence", &bytes])
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

// ---- Wire encoding (crate::wire) ----

use crate::wire::{put_bytes, put_u32, put_u64, put_u8, Encoder, Reader, Wire, WireError};

/// Evidence carries whole messages, whose blocks carry evidence: levels of evidence inside
/// evidence a frame may hold. Each level holds two messages, so an honest proof chain
/// stays far below this, and a crafted one is refused before it can exhaust the stack.
pub const EVIDENCE_NESTING_MAX: u32 = 8;
/// Longest reason an invalid-proposal proof may give (ours are one short line).
pub const EVIDENCE_REASON_BYTES_MAX: usize = 1_024;

const EVIDENCE_EQUIVOCATION: u8 = 0;
const EVIDENCE_INVALID_PROPOSAL: u8 = 1;
const EVIDENCE_INVALID_CERTIFICATE: u8 = 2;
const EVIDENCE_TIMING_VIOLATION: u8 = 3;

impl Evidence {
    /// Levels of evidence this holds, itself included, as the decoder counts them: a block
    /// can carry it only while this is at most [`EVIDENCE_NESTING_MAX`]. An equivocation
    /// built from two proposals already that deep would make every block carrying it
    /// undecodable, so the accuser must leave such evidence out of its blocks.
    pub fn wire_nesting(&self) -> u32 {
        let inner = match self {
            Evidence::Equivocation { first, second, .. } => {
                message_nesting(first).max(message_nesting(second))
            }
            Evidence::InvalidProposal { message, .. } => message_nesting(message),
            Evidence::InvalidCertificate { .. } | Evidence::TimingViolation { .. } => 0,
        };
        inner.saturating_add(1)
    }

    fn encode_body(&self, out: &mut Encoder) {
        match self {
            Evidence::Equivocation {
                offender,
                first,
                second,
            } => {
                put_u8(out, EVIDENCE_EQUIVOCATION);
                put_u32(out, *offender);
                first.encode(out);
                second.encode(out);
            }
            Evidence::InvalidProposal {
                offender,
                reason,
                message,
            } => {
                put_u8(out, EVIDENCE_INVALID_PROPOSAL);
                put_u32(out, *offender);
                let reason = reason.as_bytes();
                put_bytes(out, "evidence reason", reason, EVIDENCE_REASON_BYTES_MAX);
                message.encode(out);
            }
            Evidence::InvalidCertificate { offender } => {
                put_u8(out, EVIDENCE_INVALID_CERTIFICATE);
                put_u32(out, *offender);
            }
            Evidence::TimingViolation { offender, round } => {
                put_u8(out, EVIDENCE_TIMING_VIOLATION);
                put_u32(out, *offender);
                put_u64(out, *round);
            }
        }
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        // Fields are read in the order the struct expressions name them.
        Ok(match reader.u8("evidence kind")? {
            EVIDENCE_EQUIVOCATION => Evidence::Equivocation {
                offender: reader.replica("offender")?,
                first: Box::decode(reader)?,
                second: Box::decode(reader)?,
            },
            EVIDENCE_INVALID_PROPOSAL => Evidence::InvalidProposal {
                offender: reader.replica("offender")?,
                reason: decode_reason(reader)?,
                message: Box::decode(reader)?,
            },
            EVIDENCE_INVALID_CERTIFICATE => Evidence::InvalidCertificate {
                offender: reader.replica("offender")?,
            },
            EVIDENCE_TIMING_VIOLATION => Evidence::TimingViolation {
                offender: reader.replica("offender")?,
                round: reader.u64("round")?,
            },
            tag => {
                return Err(WireError::UnknownTag {
                    what: "evidence kind",
                    tag,
                })
            }
        })
    }
}

/// Deepest evidence inside the blocks a message carries.
fn message_nesting(message: &Message) -> u32 {
    let blocks: Vec<&crate::messages::Block> = match message {
        Message::Global(GlobalMessage::Proposal { block, .. }) => vec![block],
        Message::Global(GlobalMessage::BlockResponse { blocks }) => {
            blocks.iter().map(|b| &**b).collect()
        }
        Message::SnapshotChunk(chunk) => vec![&chunk.block],
        _ => Vec::new(),
    };
    blocks
        .iter()
        .flat_map(|block| &block.evidence)
        .map(Evidence::wire_nesting)
        .max()
        .unwrap_or(0)
}

fn decode_reason(reader: &mut Reader<'_>) -> Result<String, WireError> {
    let bytes = reader.bytes("evidence reason", EVIDENCE_REASON_BYTES_MAX)?;
    let reason = std::str::from_utf8(bytes).map_err(|_| WireError::Invalid {
        what: "evidence reason",
        reason: "not UTF-8",
    })?;
    Ok(reason.to_owned())
}

/// Kind tag, offender, then the kind's fields; messages inside count one nesting level.
impl Wire for Evidence {
    fn encode(&self, out: &mut Encoder) {
        self.encode_body(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        reader.nested(EVIDENCE_NESTING_MAX, Evidence::decode_body)
    }
}
