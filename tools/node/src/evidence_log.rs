//! Evidence a replica found, kept beside its log (`DATA/evidence.jsonl`): one JSON line per
//! finding with the signed messages that prove it, in their wire encoding (hex), so an
//! operator, an auditor or the DORA engine can check the proof with the committee's public
//! keys alone and without trusting this replica.
//!
//! Bounded: a Byzantine peer can make a replica find evidence in every message it sends, so
//! one run of the process records at most [`EVIDENCE_RECORDS_MAX`] findings and counts the
//! rest. Each record is synced before the next input: evidence is rare, and a proof that a
//! crash could lose is no proof.

use ccbft_core::evidence::Evidence;
use ccbft_core::messages::Message;
use ccbft_core::wire::encode_message;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Findings one run of a replica process records; later ones are only counted.
pub const EVIDENCE_RECORDS_MAX: u64 = 1_024;

/// The file's name in the data directory.
pub const EVIDENCE_FILE: &str = "evidence.jsonl";

pub struct EvidenceLog {
    path: PathBuf,
    file: Option<File>,
    bound: u64,
    recorded: u64,
    dropped: u64,
}

impl EvidenceLog {
    /// The evidence file in `data` (opened on the first finding).
    pub fn new(data: &Path) -> EvidenceLog {
        EvidenceLog::bounded(data, EVIDENCE_RECORDS_MAX)
    }

    fn bounded(data: &Path, bound: u64) -> EvidenceLog {
        EvidenceLog {
            path: data.join(EVIDENCE_FILE),
            file: None,
            bound,
            recorded: 0,
            dropped: 0,
        }
    }

    /// Appends one finding and syncs it; past the bound, only counts it. Returns whether it
    /// was recorded.
    pub fn record(&mut self, evidence: &Evidence) -> Result<bool, String> {
        if self.recorded >= self.bound {
            self.dropped += 1;
            return Ok(false);
        }
        let mut line = serde_json::to_string(&to_json(evidence)).map_err(|e| e.to_string())?;
        line.push('\n');
        let path = self.path.clone();
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(fail)?,
            ),
        };
        file.write_all(line.as_bytes()).map_err(fail)?;
        file.sync_data().map_err(fail)?;
        self.recorded += 1;
        Ok(true)
    }

    /// Findings past the bound, not written.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// One finding as JSON: kind, offender, and the signed messages (wire encoding, hex).
pub fn to_json(evidence: &Evidence) -> serde_json::Value {
    let messages: Vec<&Message> = match evidence {
        Evidence::Equivocation { first, second, .. } => vec![first, second],
        Evidence::InvalidProposal { message, .. } => vec![message],
        Evidence::InvalidCertificate { .. } | Evidence::TimingViolation { .. } => Vec::new(),
    };
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut json = serde_json::json!({
        "unix_ms": unix_ms,
        "kind": evidence.kind(),
        "offender": evidence.offender(),
        "provable": evidence.proof().is_some(),
        "messages": messages
            .iter()
            .map(|m| ccbft_crypto::hex::encode(&encode_message(m)))
            .collect::<Vec<_>>(),
    });
    if let Evidence::InvalidProposal { reason, .. } = evidence {
        json["reason"] = reason.clone().into();
    }
    json
}

/// An equivocation's two messages (wire encoding, hex) when each encodes to at most
/// `max_bytes`: small enough to travel in a health event (votes and proposals do; a
/// pre-prepare with its batch may not, and stays in the evidence file only).
pub fn equivocation_hex(evidence: &Evidence, max_bytes: usize) -> Option<(String, String)> {
    let Evidence::Equivocation { first, second, .. } = evidence else {
        return None;
    };
    let (a, b) = (encode_message(first), encode_message(second));
    (a.len() <= max_bytes && b.len() <= max_bytes)
        .then(|| (ccbft_crypto::hex::encode(&a), ccbft_crypto::hex::encode(&b)))
}

/// The findings in an evidence file, for tools and tests: each line parsed back, with its
/// messages decoded. A line that does not parse is an error naming it.
pub fn read(path: &Path) -> Result<Vec<(serde_json::Value, Vec<Message>)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let at = || format!("{} line {}", path.display(), i + 1);
            let json: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{}: {e}", at()))?;
            let messages = json["messages"]
                .as_array()
                .ok_or_else(|| format!("{}: no messages", at()))?
                .iter()
                .map(|hex| decode_hex_message(hex.as_str().unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", at()))?;
            Ok((json, messages))
        })
        .collect()
}

fn decode_hex_message(hex: &str) -> Result<Message, String> {
    let bytes = ccbft_crypto::hex::decode(hex).map_err(|e| e.to_string())?;
    ccbft_core::wire::decode_message(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbft_core::bls::BlsSigner;
    use ccbft_core::messages::{Lane, LocalMessage};

    fn prepare(digest_byte: u8, signer: &BlsSigner) -> Message {
        let lane = Lane {
            domain: 0,
            shard: 0,
        };
        Message::Local(LocalMessage::prepare(
            lane,
            1,
            5,
            [digest_byte; 32],
            3,
            signer,
        ))
    }

    fn signer() -> BlsSigner {
        let secret = ccbft_crypto::bls::SecretKey::from_seed(&[7; 32]);
        BlsSigner::new(3, secret)
    }

    #[test]
    fn a_recorded_equivocation_reads_back_with_both_signed_messages() {
        let dir = tempfile::tempdir().unwrap();
        let signer = signer();
        let evidence = Evidence::Equivocation {
            offender: 3,
            first: Box::new(prepare(1, &signer)),
            second: Box::new(prepare(2, &signer)),
        };
        let mut log = EvidenceLog::new(dir.path());
        assert!(log.record(&evidence).unwrap());
        assert!(log.record(&evidence).unwrap());
        let found = read(&dir.path().join(EVIDENCE_FILE)).unwrap();
        assert_eq!(found.len(), 2);
        let (json, messages) = &found[0];
        assert_eq!(json["kind"], "equivocation");
        assert_eq!(json["offender"], 3);
        assert_eq!(json["provable"], true);
        let back = Evidence::Equivocation {
            offender: 3,
            first: Box::new(messages[0].clone()),
            second: Box::new(messages[1].clone()),
        };
        assert_eq!(back, evidence);
        let (a, b) = equivocation_hex(&evidence, 4096).unwrap();
        assert_eq!(json["messages"][0], a.as_str());
        assert_eq!(json["messages"][1], b.as_str());
        assert_eq!(equivocation_hex(&evidence, 8), None, "too big for an event");
    }

    #[test]
    fn findings_past_the_bound_are_counted_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EvidenceLog::bounded(dir.path(), 3);
        let evidence = Evidence::InvalidCertificate { offender: 1 };
        for _ in 0..3 {
            assert!(log.record(&evidence).unwrap());
        }
        assert!(!log.record(&evidence).unwrap());
        assert!(!log.record(&evidence).unwrap());
        assert_eq!(log.dropped(), 2);
        let found = read(&dir.path().join(EVIDENCE_FILE)).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].0["provable"], false, "no signed messages prove it");
    }

    #[test]
    fn a_damaged_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVIDENCE_FILE);
        std::fs::write(&path, "{\"messages\": [\"zz\"]}\n").unwrap();
        let error = read(&path).unwrap_err();
        assert!(error.contains("line 1"), "{error}");
    }
}
