//! Threshold ECDSA (secp256k1): `ccbft dkg --scheme ecdsa-secp256k1`, `ccbft ecdsa sign` and
//! `ccbft ecdsa verify`.
//!
//! The key generation and the signing rounds run every listed party's cggmp21 state machine
//! in this one process ([`ccbft_crypto::ecdsa::delivery`]): the process therefore sees every
//! share it loads. That suits demonstrations, tests and a committee whose shares sit on one
//! operator's host; across replicas the same state machines run over the replica transport.
//! Share files are secrets (mode 0600, refused when group or others may read them);
//! `ecdsa-group.json` is public. `ccbft ecdsa verify` needs nothing but the group's address.

use anyhow::{bail, ensure, Context};
use ccbft_crypto::ecdsa::attest::Checkpoint;
use ccbft_crypto::ecdsa::files::{self, GroupFile};
use ccbft_crypto::ecdsa::{self, protocol, GroupKey, KeyShare, Primes, RecoverableSignature};
use ccbft_crypto::hex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct EcdsaArgs {
    #[command(subcommand)]
    command: EcdsaCommand,
}

#[derive(clap::Subcommand)]
enum EcdsaCommand {
    /// Sign a 32-byte digest or attest a checkpoint with t shares (run in this process).
    Sign(SignArgs),
    /// Check a signature or an attestation against the group's Ethereum address (offline).
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
struct SignArgs {
    /// Directory holding the share files (ecdsa-share-<i>.key) and ecdsa-group.json.
    #[arg(long)]
    shares: PathBuf,
    /// Exactly t signers, comma-separated keygen indices (0-based), e.g. 0,2,3,5,6.
    #[arg(long, value_delimiter = ',', required = true)]
    signers: Vec<u16>,
    /// The 32-byte digest to sign, 64 hex characters.
    #[arg(
        long,
        conflicts_with = "attest_checkpoint",
        required_unless_present = "attest_checkpoint"
    )]
    digest: Option<String>,
    /// A checkpoint JSON file ({"chain_id", "height", "block_digest", "state_root"}) to attest.
    #[arg(long)]
    attest_checkpoint: Option<PathBuf>,
    /// Print the result as JSON (r, s, v, public_key, address, ... all hex).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The group's Ethereum address (0x and 40 hex digits), or read it from --group.
    #[arg(long, required_unless_present = "group")]
    address: Option<String>,
    /// The group's public file (ecdsa-group.json).
    #[arg(long, conflicts_with = "address")]
    group: Option<PathBuf>,
    /// The JSON written by `ccbft ecdsa sign --json` (a signature or an attestation).
    #[arg(long)]
    signature: PathBuf,
}

/// A checkpoint as written in files: digests in hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointJson {
    chain_id: u64,
    height: u64,
    block_digest: String,
    state_root: String,
}

impl CheckpointJson {
    fn parse(&self) -> anyhow::Result<Checkpoint> {
        Ok(Checkpoint {
            chain_id: self.chain_id,
            height: self.height,
            block_digest: hex32(&self.block_digest).context("block_digest")?,
            state_root: hex32(&self.state_root).context("state_root")?,
        })
    }
}

/// What `sign --json` prints and `verify` reads.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureJson {
    scheme: String,
    /// The digest signed (for an attestation: its EIP-191 hash).
    digest: String,
    r: String,
    s: String,
    /// 27 or 28, hex (`1b` or `1c`).
    v: String,
    /// r || s || v, 65 bytes.
    signature: String,
    public_key: String,
    address: String,
    signers: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<CheckpointJson>,
}

pub fn run(args: EcdsaArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        EcdsaCommand::Sign(a) => sign(a),
        EcdsaCommand::Verify(a) => verify(a),
    }
}

/// `ccbft dkg --scheme ecdsa-secp256k1`: keygen, aux info and the files.
pub fn dkg(
    threshold: Option<u32>,
    parties: u32,
    out: &Path,
    primes: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let parties = u16::try_from(parties).context("--parties is too large")?;
    let threshold = match threshold {
        Some(t) => u16::try_from(t).context("--threshold is too large")?,
        None => ecdsa::default_threshold(parties),
    };
    ecdsa::check_params(threshold, parties)?;
    println!(
        "running a {threshold}-of-{parties} threshold ECDSA (secp256k1, CGGMP21) key generation; \
         every party runs in this process, which sees every share"
    );
    let primes = load_or_generate_primes(primes, parties)?;
    let eid = execution_id("keygen");
    println!("  auxiliary info (Paillier keys and their proofs)...");
    let (aux, _) = protocol::aux_info(format!("{eid} aux").as_bytes(), primes)?;
    println!("  key generation...");
    let (incomplete, _) = protocol::keygen(eid.as_bytes(), threshold, parties)?;
    let shares = protocol::complete(incomplete, aux)?;
    for share in &shares {
        files::write_share(&files::share_path(out, share.i), share)?;
    }
    let group = GroupFile::of_share(&shares[0]);
    group.write(out)?;
    drop(shares);
    check_written(out, threshold, parties, &group)?;
    println!(
        "  public key {}\n  address {}",
        group.public_key, group.address
    );
    println!(
        "wrote {parties} share files (mode 600) and {}",
        files::GROUP_FILE
    );
    Ok(ExitCode::SUCCESS)
}

fn load_or_generate_primes(path: Option<&Path>, parties: u16) -> anyhow::Result<Vec<Primes>> {
    if let Some(path) = path {
        let bytes = ccbft_crypto::keyfile::read_secret_file(path)?;
        let primes: Vec<Primes> = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a JSON list of prime pairs", path.display()))?;
        ensure!(
            primes.len() == usize::from(parties),
            "{} holds {} prime pairs, need one per party ({parties})",
            path.display(),
            primes.len()
        );
        return Ok(primes);
    }
    Ok((1..=parties)
        .map(|i| {
            println!("  safe primes for party {i}/{parties} (each pair takes a while)...");
            ecdsa::generate_primes()
        })
        .collect())
}

/// Reads every share back, checks it belongs to the group, and signs a test digest with the
/// first t shares.
fn check_written(
    out: &Path,
    threshold: u16,
    parties: u16,
    group: &GroupFile,
) -> anyhow::Result<()> {
    let read = GroupFile::read(&out.join(files::GROUP_FILE))?;
    ensure!(&read == group, "ecdsa-group.json does not read back");
    let key = read.group_key()?;
    let shares = read_shares(out, &(0..parties).collect::<Vec<_>>())?;
    for s in &shares {
        ensure!(
            GroupKey::of_share(s) == key,
            "share {} is of another key",
            s.i
        );
    }
    let signers: Vec<&KeyShare> = shares.iter().take(usize::from(threshold)).collect();
    let digest = [0u8; 32];
    let (sig, _) = protocol::sign(execution_id("check").as_bytes(), &signers, &digest)?;
    ecdsa::verify_against_address(&key.address(), &digest, &sig)?;
    println!("  read back: shares valid, a test signature by parties 0..{threshold} verifies");
    Ok(())
}

fn read_shares(dir: &Path, signers: &[u16]) -> anyhow::Result<Vec<KeyShare>> {
    signers
        .iter()
        .map(|&i| {
            let path = files::share_path(dir, i);
            let share = files::read_share(&path)?;
            ensure!(
                share.i == i,
                "{} holds party {}'s share",
                path.display(),
                share.i
            );
            Ok(share)
        })
        .collect()
}

fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let group = GroupFile::read(&args.shares.join(files::GROUP_FILE))?;
    let (digest, checkpoint) = match (&args.digest, &args.attest_checkpoint) {
        (Some(d), None) => (hex32(d).context("--digest")?, None),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let c: CheckpointJson = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a checkpoint", path.display()))?;
            (c.parse()?.digest(), Some(c))
        }
        _ => bail!("give exactly one of --digest and --attest-checkpoint"),
    };
    ensure!(
        args.signers.len() == usize::from(group.threshold),
        "--signers lists {} parties; this key needs exactly {} of {}",
        args.signers.len(),
        group.threshold,
        group.parties
    );
    let shares = read_shares(&args.shares, &args.signers)?;
    let refs: Vec<&KeyShare> = shares.iter().collect();
    let (sig, _) = protocol::sign(execution_id("sign").as_bytes(), &refs, &digest)?;
    let key = group.group_key()?;
    ecdsa::verify_against_address(&key.address(), &digest, &sig)?;
    let out = signature_json(&key, &digest, &sig, &args.signers, checkpoint);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "signed {} by parties {:?}\n  r {}\n  s {}\n  v {}\n  address {}",
            out.digest, out.signers, out.r, out.s, out.v, out.address
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn signature_json(
    key: &GroupKey,
    digest: &[u8; 32],
    sig: &RecoverableSignature,
    signers: &[u16],
    checkpoint: Option<CheckpointJson>,
) -> SignatureJson {
    SignatureJson {
        scheme: files::SCHEME.to_string(),
        digest: hex::encode(digest),
        r: hex::encode(&sig.r),
        s: hex::encode(&sig.s),
        v: hex::encode(&[sig.v()]),
        signature: hex::encode(&sig.to_rsv()),
        public_key: hex::encode(&key.compressed()),
        address: ecdsa::eth_address_hex(&key.address()),
        signers: signers.to_vec(),
        checkpoint,
    }
}

/// Exit 0 when the signature verifies, 1 when it does not, 2 on unreadable input.
fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let address = match (&args.address, &args.group) {
        (Some(a), _) => ecdsa::parse_eth_address(a)?,
        (None, Some(g)) => ecdsa::parse_eth_address(&GroupFile::read(g)?.address)?,
        (None, None) => bail!("give --address or --group"),
    };
    let path = &args.signature;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: SignatureJson = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a signature written by ccbft ecdsa sign",
            path.display()
        )
    })?;
    let (digest, sig) = parse_signature(&json)?;
    if let Some(c) = &json.checkpoint {
        if c.parse()?.digest() != digest {
            println!("INVALID: the digest is not the attestation hash of the checkpoint");
            return Ok(ExitCode::from(1));
        }
    }
    match ecdsa::verify_against_address(&address, &digest, &sig) {
        Ok(key) => {
            let what = match &json.checkpoint {
                Some(c) => format!("checkpoint of chain {} at height {}", c.chain_id, c.height),
                None => format!("digest {}", json.digest),
            };
            println!(
                "valid: {what} signed by {}",
                ecdsa::eth_address_hex(&key.address())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("INVALID: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The digest and (r, s, v) of a signature file; `signature` (r || s || v) must agree.
fn parse_signature(json: &SignatureJson) -> anyhow::Result<([u8; 32], RecoverableSignature)> {
    let digest = hex32(&json.digest).context("digest")?;
    let r = hex32(&json.r).context("r")?;
    let s = hex32(&json.s).context("s")?;
    let v = hex::decode(&json.v)
        .ok()
        .filter(|v| v.len() == 1)
        .context("v: one hex byte")?[0];
    ensure!(v == 27 || v == 28, "v must be 27 or 28 (1b or 1c)");
    let sig = RecoverableSignature {
        r,
        s,
        recovery_id: v - 27,
    };
    ensure!(
        json.signature == hex::encode(&sig.to_rsv()),
        "signature (r || s || v) disagrees with r, s and v"
    );
    Ok((digest, sig))
}

fn hex32(text: &str) -> anyhow::Result<[u8; 32]> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .with_context(|| format!("{text:?} is not 64 hex characters"))
}

/// A fresh execution id: never repeats, so no transcript can be replayed into another run.
fn execution_id(what: &str) -> String {
    format!(
        "ccbft ecdsa {what} {}",
        hex::encode(&ccbft_crypto::random_seed())
    )
}
