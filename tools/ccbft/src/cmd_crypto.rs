//! `ccbft keygen` and `ccbft dkg`: replica BLS keys with proofs of possession, Ed25519 link
//! keys for the replica transport (separate from the consensus keys, pinned in the cluster
//! file), and threshold key shares from a local distributed key generation.
//!
//! Secret files are created with mode 0600 and public files with 0644. Every file written is
//! read back and checked (keys match, proofs of possession verify, a test signature or a
//! threshold signature combines and verifies) before the command exits 0.

use anyhow::{bail, ensure, Context};
use ccbft_crypto::bls::{ProofOfPossession, PublicKey, SecretKey, Tag};
use ccbft_crypto::certificate::{Committee, COMMITTEE_SIZE_MAX};
use ccbft_crypto::dkg::{self};
use ccbft_crypto::hex;
use ccbft_crypto::threshold::{
    KeyShare, PartialSignature, ThresholdParams, ThresholdPublicKey, PARTIES_MAX,
};
use ccbft_net::keys::{read_link_public_key, read_link_secret_key, LinkKeyFile, LinkSecretKey};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const SECRET_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Directory for the key files (created; must be empty unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Number of replicas to make keys for.
    #[arg(long)]
    replicas: u32,
    /// Committee epoch recorded in committee.json.
    #[arg(long, default_value_t = 0)]
    epoch: u64,
    /// Overwrite key files in a non-empty directory.
    #[arg(long)]
    force: bool,
    /// 64 hex characters: derive the keys deterministically (tests and simulation only).
    #[arg(long)]
    seed: Option<String>,
}

#[derive(clap::Args)]
pub struct DkgArgs {
    /// Shares needed to sign.
    #[arg(long)]
    threshold: u32,
    /// Parties (shares) in total.
    #[arg(long)]
    parties: u32,
    /// Directory for the share files and the group key (created; must be empty unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite files in a non-empty directory.
    #[arg(long)]
    force: bool,
    /// 64 hex characters: run the DKG deterministically (tests and simulation only).
    #[arg(long)]
    seed: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SecretKeyFile {
    kind: String,
    replica: u32,
    secret_key: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct PublicKeyFile {
    kind: String,
    replica: u32,
    public_key: String,
    proof_of_possession: String,
}

#[derive(Serialize, Deserialize)]
struct CommitteeFile {
    kind: String,
    epoch: u64,
    members: Vec<PublicKeyFile>,
    /// `Committee::to_bytes`, hex.
    committee: String,
}

#[derive(Serialize, Deserialize)]
struct ShareFile {
    kind: String,
    index: u32,
    threshold: u32,
    parties: u32,
    /// `KeyShare::to_bytes`, hex.
    key_share: String,
}

#[derive(Serialize, Deserialize)]
struct GroupFile {
    kind: String,
    threshold: u32,
    parties: u32,
    group_public_key: String,
    share_public_keys: Vec<String>,
    qualified_dealers: Vec<u32>,
    /// `ThresholdPublicKey::to_bytes`, hex.
    threshold_public_key: String,
}

const KIND_SECRET: &str = "ccbft-bls-secret-key";
const KIND_PUBLIC: &str = "ccbft-bls-public-key";
const KIND_COMMITTEE: &str = "ccbft-committee";
const KIND_SHARE: &str = "ccbft-threshold-key-share";
const KIND_GROUP: &str = "ccbft-threshold-public-key";

fn parse_seed(seed: Option<&str>) -> anyhow::Result<Option<[u8; 32]>> {
    let Some(text) = seed else { return Ok(None) };
    let bytes = hex::decode(text).context("--seed must be hex")?;
    let seed: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        anyhow::anyhow!(
            "--seed must be 32 bytes (64 hex characters), got {} bytes",
            b.len()
        )
    })?;
    eprintln!("warning: --seed given: keys are deterministic; use only for tests and simulation");
    Ok(Some(seed))
}

/// Creates `dir` (mode 0700) or checks that it is empty, unless `force`.
fn prepare_dir(dir: &Path, force: bool) -> anyhow::Result<()> {
    if dir.exists() {
        ensure!(
            dir.is_dir(),
            "{} exists and is not a directory",
            dir.display()
        );
        let non_empty = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some();
        if non_empty && !force {
            bail!(
                "{} is not empty; refusing to overwrite key material (use --force)",
                dir.display()
            );
        }
    } else {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
            .with_context(|| format!("setting mode of {}", dir.display()))?;
    }
    Ok(())
}

/// Writes `contents` to `path` with `mode`, replacing a previous file (its mode included).
fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    if path.exists() {
        fs::remove_file(path).with_context(|| format!("replacing {}", path.display()))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have cleared bits of a public file; secret files can only lose bits.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn check_secret_mode(path: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    ensure!(
        mode == SECRET_MODE,
        "{} has mode {mode:o}, expected 600",
        path.display()
    );
    Ok(())
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    ensure!(args.replicas > 0, "--replicas must be at least 1");
    ensure!(
        args.replicas as usize <= COMMITTEE_SIZE_MAX,
        "--replicas {} exceeds the committee maximum of {COMMITTEE_SIZE_MAX}",
        args.replicas
    );
    let seed = parse_seed(args.seed.as_deref())?;
    prepare_dir(&args.out, args.force)?;

    let mut members = Vec::with_capacity(args.replicas as usize);
    for replica in 0..args.replicas {
        let sk = match seed {
            Some(mut s) => {
                for (b, x) in s.iter_mut().zip(replica.to_le_bytes()) {
                    *b ^= x;
                }
                SecretKey::from_seed(&s)
            }
            None => SecretKey::generate(),
        };
        let pk = sk.public_key();
        let pop = sk.proof_of_possession();
        let secret = SecretKeyFile {
            kind: KIND_SECRET.into(),
            replica,
            secret_key: hex::encode(&sk.to_bytes()),
        };
        let public = PublicKeyFile {
            kind: KIND_PUBLIC.into(),
            replica,
            public_key: hex::encode(&pk.to_bytes()),
            proof_of_possession: hex::encode(&pop.to_bytes()),
        };
        write_file(
            &args.out.join(format!("replica-{replica}.key")),
            &serde_json::to_string_pretty(&secret)?,
            SECRET_MODE,
        )?;
        write_file(
            &args.out.join(format!("replica-{replica}.pub")),
            &serde_json::to_string_pretty(&public)?,
            PUBLIC_MODE,
        )?;
        members.push(public);
        let link = match seed {
            Some(s) => LinkSecretKey::from_seed(&link_seed(&s, replica)),
            None => LinkSecretKey::generate(),
        };
        write_file(
            &args.out.join(format!("replica-{replica}.link.key")),
            &serde_json::to_string_pretty(&LinkKeyFile::secret(replica, &link))?,
            SECRET_MODE,
        )?;
        write_file(
            &args.out.join(format!("replica-{replica}.link.pub")),
            &serde_json::to_string_pretty(&LinkKeyFile::public(replica, &link.public_key()))?,
            PUBLIC_MODE,
        )?;
    }
    let committee = Committee::new(args.epoch, decode_members(&members)?)?;
    let file = CommitteeFile {
        kind: KIND_COMMITTEE.into(),
        epoch: args.epoch,
        members,
        committee: hex::encode(&committee.to_bytes()),
    };
    write_file(
        &args.out.join("committee.json"),
        &serde_json::to_string_pretty(&file)?,
        PUBLIC_MODE,
    )?;
    verify_keygen(&args.out, args.replicas, args.epoch).context("verifying the written keys")?;
    println!(
        "wrote {} replica BLS and link key pairs (secret keys mode 600) and committee.json (epoch {}) to {}; verified",
        args.replicas,
        args.epoch,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The link key seed of `replica` under a deterministic `--seed`: distinct from the BLS seed
/// derivation (which XORs only the replica index into the first bytes).
fn link_seed(seed: &[u8; 32], replica: u32) -> [u8; 32] {
    let mut s = *seed;
    for (b, x) in s.iter_mut().zip(replica.to_le_bytes()) {
        *b ^= x;
    }
    for b in &mut s[16..] {
        *b ^= 0x6c; // 'l'ink
    }
    s
}

fn decode_members(
    members: &[PublicKeyFile],
) -> anyhow::Result<Vec<(PublicKey, ProofOfPossession)>> {
    members
        .iter()
        .map(|m| {
            let pk = PublicKey::from_bytes(&hex::decode(&m.public_key)?)
                .with_context(|| format!("public key of replica {}", m.replica))?;
            let pop = ProofOfPossession::from_bytes(&hex::decode(&m.proof_of_possession)?)
                .with_context(|| format!("proof of possession of replica {}", m.replica))?;
            Ok((pk, pop))
        })
        .collect()
}

/// Reads every file back: each secret key matches its public key, each proof of possession
/// verifies, the committee file decodes to the same committee, and a certificate signed by
/// every replica verifies against it.
fn verify_keygen(dir: &Path, replicas: u32, epoch: u64) -> anyhow::Result<()> {
    let committee_file: CommitteeFile = read_json(&dir.join("committee.json"))?;
    ensure!(
        committee_file.kind == KIND_COMMITTEE && committee_file.epoch == epoch,
        "committee.json header"
    );
    let committee = Committee::from_bytes(&hex::decode(&committee_file.committee)?)?;
    ensure!(
        committee.len() == replicas as usize,
        "committee.json has {} members",
        committee.len()
    );
    let msg = b"ccbft keygen self-check";
    let mut builder = committee.certificate_builder(Tag::Checkpoint, msg);
    for replica in 0..replicas {
        let key_path = dir.join(format!("replica-{replica}.key"));
        check_secret_mode(&key_path)?;
        let secret: SecretKeyFile = read_json(&key_path)?;
        let public: PublicKeyFile = read_json(&dir.join(format!("replica-{replica}.pub")))?;
        ensure!(
            secret.kind == KIND_SECRET && secret.replica == replica,
            "{} header",
            key_path.display()
        );
        ensure!(
            public.kind == KIND_PUBLIC && public.replica == replica,
            "replica-{replica}.pub header"
        );
        let sk = SecretKey::from_bytes(&hex::decode(&secret.secret_key)?)?;
        let (pk, pop) = decode_members(std::slice::from_ref(&public))?.remove(0);
        ensure!(
            sk.public_key() == pk,
            "replica-{replica}: secret and public key differ"
        );
        pop.verify(&pk)
            .with_context(|| format!("replica-{replica}: proof of possession"))?;
        ensure!(
            committee.public_key(replica as usize) == Some(&pk),
            "replica-{replica}: committee order"
        );
        builder.add_vote(replica as usize, sk.sign(Tag::Checkpoint, msg))?;
        // The link key pair: the loader refuses a secret file others can read.
        let (id, link) = read_link_secret_key(&dir.join(format!("replica-{replica}.link.key")))?;
        let (pub_id, link_pub) =
            read_link_public_key(&dir.join(format!("replica-{replica}.link.pub")))?;
        ensure!(
            id == replica && pub_id == replica && link.public_key() == link_pub,
            "replica-{replica}: link key files disagree"
        );
    }
    let cert = builder.build(replicas as usize)?;
    committee.verify_certificate(Tag::Checkpoint, msg, &cert, replicas as usize)?;
    Ok(())
}

pub fn dkg(args: DkgArgs) -> anyhow::Result<ExitCode> {
    ensure!(args.threshold > 0, "--threshold must be at least 1");
    ensure!(args.parties > 0, "--parties must be at least 1");
    ensure!(
        args.threshold <= args.parties,
        "--threshold {} exceeds --parties {}",
        args.threshold,
        args.parties
    );
    ensure!(
        args.parties <= PARTIES_MAX,
        "--parties {} exceeds the maximum of {PARTIES_MAX}",
        args.parties
    );
    let params = ThresholdParams::new(args.threshold, args.parties)?;
    let seed = parse_seed(args.seed.as_deref())?.unwrap_or_else(ccbft_crypto::random_seed);
    prepare_dir(&args.out, args.force)?;

    println!(
        "running a {}-of-{} distributed key generation (joint-Feldman, no trusted dealer)",
        args.threshold, args.parties
    );
    let report = dkg::run_local(params, seed, &[], &mut |line| println!("  {line}"))?;
    ensure!(
        report.disqualified.is_empty(),
        "dealers disqualified: {:?}",
        report.disqualified
    );
    let public = report.outputs[0].public.clone();
    for out in &report.outputs {
        ensure!(
            out.public == public,
            "party {} derived another public key",
            out.share.index()
        );
        let file = ShareFile {
            kind: KIND_SHARE.into(),
            index: out.share.index(),
            threshold: args.threshold,
            parties: args.parties,
            key_share: hex::encode(&out.share.to_bytes()),
        };
        write_file(
            &args.out.join(format!("share-{}.key", out.share.index())),
            &serde_json::to_string_pretty(&file)?,
            SECRET_MODE,
        )?;
    }
    let group = GroupFile {
        kind: KIND_GROUP.into(),
        threshold: args.threshold,
        parties: args.parties,
        group_public_key: hex::encode(&public.group_key().to_bytes()),
        share_public_keys: (1..=args.parties)
            .map(|i| public.share_key(i).map(|k| hex::encode(&k.to_bytes())))
            .collect::<Result<_, _>>()?,
        qualified_dealers: report.outputs[0].qualified.clone(),
        threshold_public_key: hex::encode(&public.to_bytes()),
    };
    write_file(
        &args.out.join("group.pub"),
        &serde_json::to_string_pretty(&group)?,
        PUBLIC_MODE,
    )?;
    verify_dkg(&args.out, params).context("verifying the written shares")?;
    println!(
        "wrote {} key shares (mode 600) and group.pub to {}; verified: {} shares combine into a signature valid under the group key",
        args.parties,
        args.out.display(),
        args.threshold
    );
    println!("group public key {}", group.group_public_key);
    Ok(ExitCode::SUCCESS)
}

/// Reads every file back: shares decode and match their public share keys, and the first
/// and the last `threshold` shares each produce a signature valid under the group key.
fn verify_dkg(dir: &Path, params: ThresholdParams) -> anyhow::Result<()> {
    let group: GroupFile = read_json(&dir.join("group.pub"))?;
    ensure!(group.kind == KIND_GROUP, "group.pub header");
    let public = ThresholdPublicKey::from_bytes(&hex::decode(&group.threshold_public_key)?)?;
    ensure!(public.params() == params, "group.pub parameters");
    let group_key = PublicKey::from_bytes(&hex::decode(&group.group_public_key)?)?;
    ensure!(
        &group_key == public.group_key(),
        "group.pub: group key fields differ"
    );
    let msg = b"ccbft dkg self-check";
    let mut partials: Vec<PartialSignature> = Vec::new();
    for index in 1..=params.parties() {
        let path = dir.join(format!("share-{index}.key"));
        check_secret_mode(&path)?;
        let file: ShareFile = read_json(&path)?;
        ensure!(
            file.kind == KIND_SHARE && file.index == index,
            "{} header",
            path.display()
        );
        let share = KeyShare::from_bytes(&hex::decode(&file.key_share)?)?;
        ensure!(
            share.index() == index && share.params() == params,
            "{}: index or parameters",
            path.display()
        );
        ensure!(
            &share.public_key() == public.share_key(index)?,
            "{}: share does not match group.pub",
            path.display()
        );
        partials.push(share.sign(Tag::Checkpoint, msg));
    }
    let t = params.threshold() as usize;
    for chosen in [&partials[..t], &partials[partials.len() - t..]] {
        let sig = public.combine(Tag::Checkpoint, msg, chosen)?;
        group_key.verify(Tag::Checkpoint, msg, &sig)?;
    }
    Ok(())
}
