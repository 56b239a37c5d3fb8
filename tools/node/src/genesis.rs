//! The genesis a cluster starts from: the registered clients (their Ed25519 keys) and the
//! accounts each owns, all with the same opening balance. `genesis.json` sits in the keys
//! directory beside the replica keys; `ccbft keygen --clients K` writes it and one secret
//! key file per client.

use ccbft_core::client::{ClientId, ClientKey, ClientRegistry};
use ccbft_core::ledger::AccountId;
use ccbft_crypto::client::ClientSigningKey;
use ccbft_crypto::{hex, keyfile};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const GENESIS_FILE: &str = "genesis.json";
const KIND_GENESIS: &str = "ccbft-genesis-v1";
const KIND_CLIENT_SECRET: &str = "ccbft-client-secret-key-v1";
/// Accounts in one genesis at most (the ledger holds every balance in memory).
pub const ACCOUNTS_MAX: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    kind: String,
    opening_balance: u64,
    clients: Vec<ClientEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    id: ClientId,
    public_key: String,
    /// First account and how many consecutive accounts the client owns.
    first_account: AccountId,
    accounts: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSecretFile {
    kind: String,
    client: ClientId,
    secret_key: keyfile::Zeroizing<String>,
}

/// What the replicas start from.
#[derive(Debug, Clone)]
pub struct Genesis {
    pub accounts: Vec<(AccountId, u64)>,
    pub clients: ClientRegistry,
}

/// Path of client `id`'s secret key in the keys directory.
pub fn client_key_path(dir: &Path, id: ClientId) -> PathBuf {
    dir.join(format!("client-{id}.key"))
}

/// Makes `clients` clients, client `c` owning accounts `c * per_client ..`, writes their
/// secret keys (mode 600) and `genesis.json` into `dir`. `seed` makes the keys deterministic
/// (tests and local clusters only).
pub fn write(
    dir: &Path,
    clients: u32,
    per_client: u64,
    opening_balance: u64,
    seed: Option<[u8; 32]>,
) -> Result<(), GenesisError> {
    let total = u64::from(clients) * per_client;
    if clients == 0 || per_client == 0 || total > ACCOUNTS_MAX {
        return Err(GenesisError::Invalid {
            path: dir.join(GENESIS_FILE),
            reason: format!(
                "{clients} clients of {per_client} accounts: need 1 to {ACCOUNTS_MAX} accounts"
            ),
        });
    }
    let mut entries = Vec::with_capacity(clients as usize);
    for id in 0..clients {
        let key = match seed {
            Some(seed) => ClientSigningKey::from_seed(&client_seed(&seed, id)),
            None => ClientSigningKey::generate(),
        };
        let path = client_key_path(dir, id);
        let secret = ClientSecretFile {
            kind: KIND_CLIENT_SECRET.into(),
            client: id,
            secret_key: keyfile::secret_hex(&keyfile::Zeroizing::new(key.to_bytes())[..]),
        };
        let json =
            keyfile::Zeroizing::new(serde_json::to_vec_pretty(&secret).expect("serializable"));
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| write_error(&path, e))?;
        }
        keyfile::write_secret_file(&path, &json).map_err(|e| write_error(&path, e))?;
        entries.push(ClientEntry {
            id,
            public_key: hex::encode(&key.public_key().to_bytes()),
            first_account: u64::from(id) * per_client,
            accounts: per_client,
        });
    }
    let file = GenesisFile {
        kind: KIND_GENESIS.into(),
        opening_balance,
        clients: entries,
    };
    let path = dir.join(GENESIS_FILE);
    let text = serde_json::to_string_pretty(&file).expect("serializable") + "\n";
    keyfile::write_public_file(&path, text.as_bytes()).map_err(|e| write_error(&path, e))
}

fn write_error(path: &Path, e: impl std::fmt::Display) -> GenesisError {
    GenesisError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn client_seed(seed: &[u8; 32], id: ClientId) -> [u8; 32] {
    ccbft_core::crypto::digest(&[b"ccbft/genesis-client-seed/v1", seed, &id.to_le_bytes()])
}

/// Reads `genesis.json` from the keys directory `dir`.
pub fn load(dir: &Path) -> Result<Genesis, GenesisError> {
    let path = dir.join(GENESIS_FILE);
    let invalid = |reason: String| GenesisError::Invalid {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|source| GenesisError::Read {
        path: path.clone(),
        source,
    })?;
    let file: GenesisFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    if file.kind != KIND_GENESIS {
        return Err(invalid(format!(
            "kind {:?}, expected {KIND_GENESIS:?}",
            file.kind
        )));
    }
    let mut keys = Vec::with_capacity(file.clients.len());
    let mut owners = Vec::new();
    for client in &file.clients {
        let bytes = hex::decode(&client.public_key).map_err(|e| invalid(e.to_string()))?;
        let key =
            ClientKey(bytes.try_into().map_err(|_| {
                invalid(format!("client {}: public key is not 32 bytes", client.id))
            })?);
        keys.push((client.id, key));
        let end = client.first_account.checked_add(client.accounts);
        if end.is_none_or(|end| end > ACCOUNTS_MAX)
            || owners.len() as u64 + client.accounts > ACCOUNTS_MAX
        {
            return Err(invalid(format!(
                "client {}: accounts beyond {ACCOUNTS_MAX}",
                client.id
            )));
        }
        owners.extend(
            (client.first_account..client.first_account + client.accounts).map(|a| (a, client.id)),
        );
    }
    let mut accounts: Vec<AccountId> = owners.iter().map(|(a, _)| *a).collect();
    accounts.sort_unstable();
    if accounts.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("an account has two owners".into()));
    }
    let clients = ClientRegistry::new(keys, owners).map_err(|e| invalid(e.to_string()))?;
    Ok(Genesis {
        accounts: accounts
            .into_iter()
            .map(|a| (a, file.opening_balance))
            .collect(),
        clients,
    })
}

/// Reads client `id`'s secret key from the keys directory.
pub fn load_client_key(dir: &Path, id: ClientId) -> Result<ClientSigningKey, GenesisError> {
    let path = client_key_path(dir, id);
    let invalid = |reason: String| GenesisError::Invalid {
        path: path.clone(),
        reason,
    };
    let bytes = keyfile::read_secret_file(&path).map_err(|e| invalid(e.to_string()))?;
    let file: ClientSecretFile =
        serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if file.kind != KIND_CLIENT_SECRET || file.client != id {
        return Err(invalid(format!("not client {id}'s secret key")));
    }
    let secret =
        keyfile::decode_secret_hex(&file.secret_key).map_err(|e| invalid(e.to_string()))?;
    ClientSigningKey::from_bytes(&secret).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_genesis_loads_with_its_owners_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 3, 4, 500, Some([7; 32])).unwrap();
        let genesis = load(dir.path()).unwrap();
        assert_eq!(genesis.accounts.len(), 12);
        assert!(genesis.accounts.iter().all(|(_, b)| *b == 500));
        let key = load_client_key(dir.path(), 2).unwrap();
        let text = std::fs::read_to_string(dir.path().join(GENESIS_FILE)).unwrap();
        assert!(text.contains(&hex::encode(&key.public_key().to_bytes())));
        assert!(load_client_key(dir.path(), 3).is_err());
    }

    #[test]
    fn overlapping_accounts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 2, 4, 500, Some([7; 32])).unwrap();
        let path = dir.path().join(GENESIS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("\"first_account\": 4", "\"first_account\": 2"),
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("two owners"), "{err}");
    }
}
