//! A replica's keys, read from the directory `ccbft keygen` writes: its BLS secret key
//! (`replica-N.key`), the committee (`committee.json`), its link secret key and every
//! replica's link public key (`replica-N.link.key`, `replica-*.link.pub`).

use ccbft_core::bls::{BlsSigner, BlsVerifier};
use ccbft_core::topology::{ReplicaId, Topology};
use ccbft_crypto::bls::SecretKey;
use ccbft_crypto::certificate::Committee;
use ccbft_crypto::{hex, keyfile};
use ccbft_net::keys::{read_link_public_key, read_link_secret_key};
use ccbft_net::{LinkSecretKey, PeerEntry, PeerId, PeerTable};
use serde::Deserialize;
use std::path::{Path, PathBuf};

const KIND_BLS_SECRET: &str = "ccbft-bls-secret-key";
const KIND_COMMITTEE: &str = "ccbft-committee";

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct KeyError {
    pub path: PathBuf,
    pub reason: String,
}

pub struct ReplicaKeys {
    pub signer: BlsSigner,
    pub verifier: BlsVerifier,
    pub link: LinkSecretKey,
    pub peers: PeerTable,
}

#[derive(Deserialize)]
struct SecretKeyFile {
    kind: String,
    replica: u32,
    secret_key: keyfile::Zeroizing<String>,
}

#[derive(Deserialize)]
struct CommitteeFile {
    kind: String,
    committee: String,
}

fn error(path: &Path, reason: impl std::fmt::Display) -> KeyError {
    KeyError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Loads replica `me`'s keys and checks them against each other: the BLS key is member `me`
/// of the committee, the committee has one member per replica of the topology.
pub fn load(dir: &Path, me: ReplicaId, topology: &Topology) -> Result<ReplicaKeys, KeyError> {
    let committee_path = dir.join("committee.json");
    let text = std::fs::read_to_string(&committee_path).map_err(|e| error(&committee_path, e))?;
    let file: CommitteeFile = serde_json::from_str(&text).map_err(|e| error(&committee_path, e))?;
    if file.kind != KIND_COMMITTEE {
        return Err(error(&committee_path, format!("kind {:?}", file.kind)));
    }
    let bytes = hex::decode(&file.committee).map_err(|e| error(&committee_path, e))?;
    let committee = Committee::from_bytes(&bytes).map_err(|e| error(&committee_path, e))?;
    if committee.len() != topology.n() as usize {
        return Err(error(
            &committee_path,
            format!("{} members for {} replicas", committee.len(), topology.n()),
        ));
    }

    let secret_path = dir.join(format!("replica-{me}.key"));
    let bytes = keyfile::read_secret_file(&secret_path).map_err(|e| error(&secret_path, e))?;
    let file: SecretKeyFile = serde_json::from_slice(&bytes).map_err(|e| error(&secret_path, e))?;
    if file.kind != KIND_BLS_SECRET || file.replica != me {
        return Err(error(
            &secret_path,
            format!("not replica {me}'s BLS secret key"),
        ));
    }
    let secret =
        keyfile::decode_secret_hex(&file.secret_key).map_err(|e| error(&secret_path, e))?;
    let secret = SecretKey::from_bytes(&secret).map_err(|e| error(&secret_path, e))?;
    if committee.public_key(me as usize) != Some(&secret.public_key()) {
        return Err(error(
            &secret_path,
            format!("not member {me} of the committee"),
        ));
    }
    let signer = BlsSigner::new(me, secret);
    let verifier = BlsVerifier::new(committee).map_err(|e| error(&committee_path, e))?;

    let link_path = dir.join(format!("replica-{me}.link.key"));
    let (id, link) = read_link_secret_key(&link_path).map_err(|e| error(&link_path, e))?;
    if id != me {
        return Err(error(
            &link_path,
            format!("link key of replica {id}, not {me}"),
        ));
    }
    let mut entries = Vec::with_capacity(topology.n() as usize);
    for spec in &topology.replicas {
        let path = dir.join(format!("replica-{}.link.pub", spec.id));
        let (id, link_key) = read_link_public_key(&path).map_err(|e| error(&path, e))?;
        if id != spec.id {
            return Err(error(
                &path,
                format!("link key of replica {id}, not {}", spec.id),
            ));
        }
        let addr = spec.address.parse().map_err(|e| error(&path, e))?;
        entries.push(PeerEntry {
            id: PeerId(spec.id),
            addr,
            link_key,
        });
    }
    let peers = PeerTable::new(entries).map_err(|e| error(dir, e))?;
    Ok(ReplicaKeys {
        signer,
        verifier,
        link,
        peers,
    })
}
