//! `ccbft keygen` and `ccbft dkg`: replica BLS keys with proofs of possession, Ed25519 link
//! keys for the replica transport (separate from the consensus keys, pinned in the cluster
//! file), and threshold key shares from a distributed key generation.
//!
//! `ccbft dkg` is a ceremony with no trusted dealer: every operator runs the steps for their
//! own party on their own machine (`init`, `deal`, `complain`, `justify`, `finish`, each with
//! `--party i`), holding only their own ceremony key, and the parties exchange only signed
//! public files on a shared board directory: roster entries, commitments with shares sealed
//! to each recipient (HPKE), complaints and justifications ([`ccbft_crypto::ceremony`]).
//! `ccbft dkg --trusted-dealer-demo` runs every party in one process, which therefore knows
//! the group secret: demonstrations and tests only.
//!
//! Secret files are created with mode 0600 and public files with 0644; every secret is read
//! through [`keyfile::read_secret_file`], which refuses files readable by group or others,
//! and secret text lives in zeroizing buffers. Every file written is read back and checked
//! (keys match, proofs of possession verify, a test signature or a threshold signature
//! combines and verifies) before the command exits 0.

use anyhow::{bail, ensure, Context};
use ccbft_crypto::bls::{ProofOfPossession, PublicKey, SecretKey, Tag};
use ccbft_crypto::ceremony::{self, CeremonyKey, CeremonyPublic, Roster, SignedMessage};
use ccbft_crypto::certificate::{sign_vote, Committee, COMMITTEE_SIZE_MAX};
use ccbft_crypto::dkg::{self};
use ccbft_crypto::hex;
use ccbft_crypto::keyfile::{self, Zeroizing};
use ccbft_crypto::threshold::{
    KeyShare, PartialSignature, ThresholdParams, ThresholdPublicKey, PARTIES_MAX,
};
use ccbft_net::keys::{read_link_public_key, read_link_secret_key, LinkKeyFile, LinkSecretKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DIR_MODE: u32 = 0o700;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Directory for the key files (created; must be empty unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Number of replicas to make keys for (a cluster needs at least 4).
    #[arg(long)]
    replicas: u32,
    /// Committee epoch recorded in committee.json.
    #[arg(long, default_value_t = 0)]
    epoch: u64,
    /// Overwrite key files in a non-empty directory (key files of replicas beyond
    /// --replicas are removed, so the directory holds one committee).
    #[arg(long)]
    force: bool,
    /// 64 hex characters: derive the keys deterministically (tests and simulation only).
    #[arg(long)]
    seed: Option<String>,
    /// Also write a genesis (genesis.json) with this many clients and one secret key file
    /// per client (client-N.key); client c owns accounts c * accounts-per-client onwards.
    #[arg(long, default_value_t = 0)]
    clients: u32,
    /// Accounts each genesis client owns.
    #[arg(long, default_value_t = 10)]
    accounts_per_client: u64,
    /// Opening balance of every genesis account.
    #[arg(long, default_value_t = 1_000_000)]
    opening_balance: u64,
}

/// `ccbft dkg`: a ceremony step, or the all-in-one trusted-dealer demonstration.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DkgArgs {
    #[command(subcommand)]
    step: Option<DkgStep>,
    /// Run every party in this one process: this process then knows every share and the
    /// group secret (a trusted dealer). Demonstrations and tests only.
    #[arg(long)]
    trusted_dealer_demo: bool,
    /// Shares needed to sign (with --trusted-dealer-demo).
    #[arg(long)]
    threshold: Option<u32>,
    /// Parties (shares) in total (with --trusted-dealer-demo).
    #[arg(long)]
    parties: Option<u32>,
    /// Directory for the share files and the group key (with --trusted-dealer-demo).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overwrite files in a non-empty directory.
    #[arg(long)]
    force: bool,
    /// 64 hex characters: run the demo deterministically (tests and simulation only).
    #[arg(long)]
    seed: Option<String>,
    /// Signature scheme: bls12-381 (threshold BLS) or ecdsa-secp256k1 (threshold ECDSA,
    /// CGGMP21; every party runs in this process; --threshold defaults to the global quorum).
    #[arg(long, default_value = "bls12-381", value_parser = ["bls12-381", "ecdsa-secp256k1"])]
    scheme: String,
    /// ecdsa-secp256k1: pregenerated safe primes (a secret JSON file, one pair per party)
    /// instead of generating them here.
    #[arg(long)]
    primes: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum DkgStep {
    /// Create this party's ceremony key (secret, mode 600) and its roster entry on the board.
    Init(InitArgs),
    /// Publish this party's dealing: commitment and shares sealed to each party.
    Deal(StepArgs),
    /// Open this party's shares and publish its complaints (possibly none).
    Complain(StepArgs),
    /// Publish the shares this party was accused about, revealed.
    Justify(StepArgs),
    /// Derive this party's key share and the group key; write them to --out.
    Finish(FinishArgs),
}

#[derive(clap::Args)]
struct InitArgs {
    /// This operator's party (1-based).
    #[arg(long)]
    party: u32,
    /// Shares needed to sign.
    #[arg(long)]
    threshold: u32,
    /// Parties in total.
    #[arg(long)]
    parties: u32,
    /// Where to create this party's ceremony key (must not exist).
    #[arg(long)]
    key: PathBuf,
    /// The shared board directory (created if missing).
    #[arg(long)]
    board: PathBuf,
}

#[derive(clap::Args)]
struct StepArgs {
    /// This operator's party (1-based); must match the key file.
    #[arg(long)]
    party: u32,
    /// This party's ceremony key (mode 600).
    #[arg(long)]
    key: PathBuf,
    /// The shared board directory.
    #[arg(long)]
    board: PathBuf,
}

#[derive(clap::Args)]
struct FinishArgs {
    #[command(flatten)]
    step: StepArgs,
    /// Directory for this party's share and group.pub (created; must be empty unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite files in a non-empty directory.
    #[arg(long)]
    force: bool,
}

#[derive(Serialize, Deserialize)]
struct SecretKeyFile {
    kind: String,
    replica: u32,
    secret_key: Zeroizing<String>,
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
    key_share: Zeroizing<String>,
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
    /// Digest of the ceremony's broadcast (absent for the trusted-dealer demo): operators
    /// compare it, with the group key, before using the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transcript: Option<String>,
}

/// This party's ceremony key (secret).
#[derive(Serialize, Deserialize)]
struct CeremonyKeyFile {
    kind: String,
    party: u32,
    threshold: u32,
    parties: u32,
    /// `CeremonyKey::to_bytes`, hex.
    ceremony_key: Zeroizing<String>,
}

/// A party's roster entry on the board.
#[derive(Serialize, Deserialize)]
struct PartyFile {
    kind: String,
    party: u32,
    threshold: u32,
    parties: u32,
    /// `CeremonyPublic::to_bytes`, hex.
    public: String,
    /// SHA-256 of `public`, hex: compare out of band.
    fingerprint: String,
}

/// A signed broadcast message on the board.
#[derive(Serialize, Deserialize)]
struct MessageFile {
    kind: String,
    phase: String,
    party: u32,
    /// `SignedMessage::to_bytes`, hex.
    message: String,
}

const KIND_SECRET: &str = "ccbft-bls-secret-key";
const KIND_PUBLIC: &str = "ccbft-bls-public-key";
const KIND_COMMITTEE: &str = "ccbft-committee";
const KIND_SHARE: &str = "ccbft-threshold-key-share";
const KIND_GROUP: &str = "ccbft-threshold-public-key";
const KIND_CEREMONY_KEY: &str = "ccbft-dkg-ceremony-key";
const KIND_PARTY: &str = "ccbft-dkg-party";
const KIND_MESSAGE: &str = "ccbft-dkg-message";
/// Capacity of the buffer a secret file's JSON is written into (sized once, zeroized).
const SECRET_JSON_BYTES_MAX: usize = 16 * 1024;

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
/// A public file (mode 0644, synced), `contents` and a newline.
fn write_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    keyfile::write_public_file(path, format!("{contents}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads a secret JSON file through the crypto crate's loader (refuses group/other access).
fn read_secret_json<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = keyfile::read_secret_file(path)?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Writes a secret JSON file (mode 600, replacing a previous one) from a zeroizing buffer.
fn write_secret_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut buf = Zeroizing::new(Vec::with_capacity(SECRET_JSON_BYTES_MAX));
    serde_json::to_writer_pretty(&mut *buf, value)?;
    buf.push(b'\n');
    if path.exists() {
        fs::remove_file(path).with_context(|| format!("replacing {}", path.display()))?;
    }
    keyfile::write_secret_file(path, &buf)?;
    Ok(())
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        args.replicas as usize >= ccbft_core::topology::REPLICAS_MIN,
        "--replicas {} is too few: a BFT cluster needs at least {}",
        args.replicas,
        ccbft_core::topology::REPLICAS_MIN
    );
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
            secret_key: keyfile::secret_hex(&Zeroizing::new(sk.to_bytes())[..]),
        };
        let public = PublicKeyFile {
            kind: KIND_PUBLIC.into(),
            replica,
            public_key: hex::encode(&pk.to_bytes()),
            proof_of_possession: hex::encode(&pop.to_bytes()),
        };
        write_secret_json(&args.out.join(format!("replica-{replica}.key")), &secret)?;
        write_file(
            &args.out.join(format!("replica-{replica}.pub")),
            &serde_json::to_string_pretty(&public)?,
        )?;
        members.push(public);
        let link = match seed {
            Some(s) => LinkSecretKey::from_seed(&link_seed(&s, replica)),
            None => LinkSecretKey::generate(),
        };
        write_secret_json(
            &args.out.join(format!("replica-{replica}.link.key")),
            &LinkKeyFile::secret(replica, &link),
        )?;
        write_file(
            &args.out.join(format!("replica-{replica}.link.pub")),
            &serde_json::to_string_pretty(&LinkKeyFile::public(replica, &link.public_key()))?,
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
    )?;
    remove_stale_keys(&args.out, args.replicas)?;
    verify_keygen(&args.out, args.replicas, args.epoch).context("verifying the written keys")?;
    if args.clients > 0 {
        ccbft_node::genesis::write(
            &args.out,
            args.clients,
            args.accounts_per_client,
            args.opening_balance,
            seed,
        )?;
        ccbft_node::genesis::load(&args.out).context("verifying the written genesis")?;
        println!(
            "wrote genesis.json: {} clients (secret keys client-N.key, mode 600), {} accounts each, opening balance {}",
            args.clients, args.accounts_per_client, args.opening_balance
        );
    }
    println!(
        "wrote {} replica BLS and link key pairs (secret keys mode 600) and committee.json (epoch {}) to {}; verified",
        args.replicas,
        args.epoch,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Key files a previous, larger `keygen --force` left behind (`replica-N.key`, `.pub`,
/// `.link.key`, `.link.pub` with N >= `replicas`): removed, so that no stale key sits
/// beside the new committee.
fn remove_stale_keys(dir: &Path, replicas: u32) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix("replica-") else {
            continue;
        };
        let (id, suffix) = rest.split_at(rest.find('.').unwrap_or(rest.len()));
        let ours = [".key", ".pub", ".link.key", ".link.pub"].contains(&suffix);
        if ours && id.parse::<u32>().is_ok_and(|id| id >= replicas) {
            fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
        }
    }
    Ok(())
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
        let secret: SecretKeyFile = read_secret_json(&key_path)?;
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
        let sk = SecretKey::from_bytes(&keyfile::decode_secret_hex(&secret.secret_key)?)?;
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
        builder.add_vote(
            replica as usize,
            sign_vote(&sk, committee.epoch(), Tag::Checkpoint, msg),
        )?;
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
    if args.scheme == ccbft_crypto::ecdsa::files::SCHEME {
        return ecdsa_dkg(args);
    }
    match args.step {
        Some(DkgStep::Init(a)) => dkg_init(a),
        Some(DkgStep::Deal(a)) => dkg_deal(a),
        Some(DkgStep::Complain(a)) => dkg_complain(a),
        Some(DkgStep::Justify(a)) => dkg_justify(a),
        Some(DkgStep::Finish(a)) => dkg_finish(a),
        None if args.trusted_dealer_demo => trusted_dealer_demo(args),
        None => bail!(
            "ccbft dkg needs a ceremony step (init, deal, complain, justify, finish; each \
             operator runs them for their own --party), or --trusted-dealer-demo to run every \
             party in this process (a trusted dealer: demonstrations only)"
        ),
    }
}

fn ecdsa_dkg(args: DkgArgs) -> anyhow::Result<ExitCode> {
    let (None, Some(parties), Some(out)) = (&args.step, args.parties, &args.out) else {
        bail!("--scheme ecdsa-secp256k1 needs --parties and --out (and no ceremony step)");
    };
    prepare_dir(out, args.force)?;
    crate::cmd_ecdsa::dkg(args.threshold, parties, out, args.primes.as_deref())
}

fn check_params(threshold: u32, parties: u32) -> anyhow::Result<ThresholdParams> {
    ensure!(threshold > 0, "--threshold must be at least 1");
    ensure!(parties > 0, "--parties must be at least 1");
    ensure!(
        threshold <= parties,
        "--threshold {threshold} exceeds --parties {parties}"
    );
    ensure!(
        parties <= PARTIES_MAX,
        "--parties {parties} exceeds the maximum of {PARTIES_MAX}"
    );
    Ok(ThresholdParams::new(threshold, parties)?)
}

fn trusted_dealer_demo(args: DkgArgs) -> anyhow::Result<ExitCode> {
    let (Some(threshold), Some(parties), Some(out)) = (args.threshold, args.parties, args.out)
    else {
        bail!("--trusted-dealer-demo needs --threshold, --parties and --out");
    };
    let params = check_params(threshold, parties)?;
    let seed = parse_seed(args.seed.as_deref())?.unwrap_or_else(ccbft_crypto::random_seed);
    prepare_dir(&out, args.force)?;

    println!(
        "running a {threshold}-of-{parties} DKG with a TRUSTED DEALER: this one process plays \
         every party and sees every share and the group secret; demonstrations and tests only \
         (a real ceremony: ccbft dkg init/deal/complain/justify/finish, one operator per party)"
    );
    let report = dkg::run_local(params, seed, &[], &mut |line| println!("  {line}"))?;
    ensure!(
        report.disqualified.is_empty(),
        "dealers disqualified: {:?}",
        report.disqualified
    );
    let public = report.outputs[0].public.clone();
    for o in &report.outputs {
        ensure!(
            o.public == public,
            "party {} derived another public key",
            o.share.index()
        );
        write_share(&out, &o.share, params)?;
    }
    let group = group_file(&public, &report.outputs[0].qualified, None)?;
    write_file(
        &out.join("group.pub"),
        &serde_json::to_string_pretty(&group)?,
    )?;
    verify_dkg(&out, params).context("verifying the written shares")?;
    println!(
        "wrote {parties} key shares (mode 600) and group.pub to {}; verified: {threshold} shares combine into a signature valid under the group key",
        out.display(),
    );
    println!("group public key {}", group.group_public_key);
    Ok(ExitCode::SUCCESS)
}

fn write_share(dir: &Path, share: &KeyShare, params: ThresholdParams) -> anyhow::Result<()> {
    let file = ShareFile {
        kind: KIND_SHARE.into(),
        index: share.index(),
        threshold: params.threshold(),
        parties: params.parties(),
        key_share: keyfile::secret_hex(&Zeroizing::new(share.to_bytes())[..]),
    };
    write_secret_json(&dir.join(format!("share-{}.key", share.index())), &file)
}

fn group_file(
    public: &ThresholdPublicKey,
    qualified: &[u32],
    transcript: Option<[u8; 32]>,
) -> anyhow::Result<GroupFile> {
    let params = public.params();
    Ok(GroupFile {
        kind: KIND_GROUP.into(),
        threshold: params.threshold(),
        parties: params.parties(),
        group_public_key: hex::encode(&public.group_key().to_bytes()),
        share_public_keys: (1..=params.parties())
            .map(|i| public.share_key(i).map(|k| hex::encode(&k.to_bytes())))
            .collect::<Result<_, _>>()?,
        qualified_dealers: qualified.to_vec(),
        threshold_public_key: hex::encode(&public.to_bytes()),
        transcript: transcript.map(|t| hex::encode(&t)),
    })
}

/// The board's file for `phase` of `party`.
fn message_path(board: &Path, phase: &str, party: u32) -> PathBuf {
    board.join(format!("{phase}-{party}.json"))
}

fn dkg_init(a: InitArgs) -> anyhow::Result<ExitCode> {
    let params = check_params(a.threshold, a.parties)?;
    params
        .check_index(a.party)
        .with_context(|| format!("--party {}", a.party))?;
    ensure!(
        !a.key.exists(),
        "{} exists; refusing to overwrite a ceremony key",
        a.key.display()
    );
    if !a.board.exists() {
        fs::create_dir_all(&a.board).with_context(|| format!("creating {}", a.board.display()))?;
    }
    let entry = a.board.join(format!("party-{}.json", a.party));
    ensure!(
        !entry.exists(),
        "{} exists: party {} is already on the board",
        entry.display(),
        a.party
    );
    let key = CeremonyKey::generate(params, a.party)?;
    let file = CeremonyKeyFile {
        kind: KIND_CEREMONY_KEY.into(),
        party: a.party,
        threshold: a.threshold,
        parties: a.parties,
        ceremony_key: keyfile::secret_hex(&key.to_bytes()),
    };
    write_secret_json(&a.key, &file)?;
    let public = key.public();
    let fingerprint = hex::encode(&public.fingerprint());
    let party = PartyFile {
        kind: KIND_PARTY.into(),
        party: a.party,
        threshold: a.threshold,
        parties: a.parties,
        public: hex::encode(&public.to_bytes()),
        fingerprint: fingerprint.clone(),
    };
    write_file(&entry, &serde_json::to_string_pretty(&party)?)?;
    ensure!(
        load_key(&a.key, a.party)?.public() == public,
        "ceremony key read-back differs"
    );
    println!(
        "party {} of a {}-of-{} ceremony: key in {} (mode 600), roster entry {}",
        a.party,
        a.threshold,
        a.parties,
        a.key.display(),
        entry.display()
    );
    println!("fingerprint {fingerprint} (confirm it with the other operators out of band)");
    Ok(ExitCode::SUCCESS)
}

/// Loads this party's ceremony key through the secret loader and checks `--party`.
fn load_key(path: &Path, party: u32) -> anyhow::Result<CeremonyKey> {
    let file: CeremonyKeyFile = read_secret_json(path)?;
    ensure!(
        file.kind == KIND_CEREMONY_KEY,
        "{} is not a ceremony key",
        path.display()
    );
    let key = CeremonyKey::from_bytes(&keyfile::decode_secret_hex(&file.ceremony_key)?)
        .with_context(|| format!("decoding {}", path.display()))?;
    ensure!(
        key.index() == party && file.party == party,
        "{} is the key of party {}, not --party {party}",
        path.display(),
        key.index()
    );
    Ok(key)
}

/// The key and the roster (every party's entry must be on the board).
fn load_ceremony(a: &StepArgs) -> anyhow::Result<(CeremonyKey, Roster)> {
    let key = load_key(&a.key, a.party)?;
    let params = key.params();
    let members = (1..=params.parties())
        .map(|i| {
            let path = a.board.join(format!("party-{i}.json"));
            let file: PartyFile = read_json(&path).with_context(|| {
                format!(
                    "roster entry of party {i} missing: every party runs `ccbft dkg init` first"
                )
            })?;
            ensure!(file.kind == KIND_PARTY, "{} header", path.display());
            let public = CeremonyPublic::from_bytes(&hex::decode(&file.public)?)
                .with_context(|| format!("decoding {}", path.display()))?;
            ensure!(
                public.index() == i && hex::encode(&public.fingerprint()) == file.fingerprint,
                "{}: index or fingerprint",
                path.display()
            );
            Ok(public)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let roster = Roster::new(params, members)?;
    Ok((key, roster))
}

/// The messages of `phase` on the board (a party that has not posted is absent).
fn load_messages(board: &Path, phase: &str, parties: u32) -> anyhow::Result<Vec<SignedMessage>> {
    let mut out = Vec::new();
    for party in 1..=parties {
        let path = message_path(board, phase, party);
        if !path.exists() {
            continue;
        }
        let file: MessageFile = read_json(&path)?;
        ensure!(
            file.kind == KIND_MESSAGE && file.phase == phase && file.party == party,
            "{} header",
            path.display()
        );
        let message = SignedMessage::from_bytes(&hex::decode(&file.message)?)
            .with_context(|| format!("decoding {}", path.display()))?;
        ensure!(
            message.sender() == party,
            "{}: message of party {}",
            path.display(),
            message.sender()
        );
        out.push(message);
    }
    Ok(out)
}

/// Posts this party's message of `phase`; never replaces one (a second, different message
/// would be equivocation).
fn post(board: &Path, phase: &str, message: &SignedMessage) -> anyhow::Result<PathBuf> {
    let path = message_path(board, phase, message.sender());
    ensure!(
        !path.exists(),
        "{} is already on the board; a step is run once per party",
        path.display()
    );
    let file = MessageFile {
        kind: KIND_MESSAGE.into(),
        phase: phase.into(),
        party: message.sender(),
        message: hex::encode(&message.to_bytes()),
    };
    write_file(&path, &serde_json::to_string_pretty(&file)?)?;
    Ok(path)
}

fn dkg_deal(a: StepArgs) -> anyhow::Result<ExitCode> {
    let (key, roster) = load_ceremony(&a)?;
    let message = ceremony::deal(&key, &roster)?;
    let path = post(&a.board, "deal", &message)?;
    println!(
        "party {}: dealing posted to {} (commitment, shares sealed to each party)",
        a.party,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn dkg_complain(a: StepArgs) -> anyhow::Result<ExitCode> {
    let (key, roster) = load_ceremony(&a)?;
    let n = roster.params().parties();
    let deals = load_messages(&a.board, "deal", n)?;
    let message = ceremony::complain(&key, &roster, &deals)?;
    let path = post(&a.board, "complaints", &message)?;
    println!(
        "party {}: {} of {n} dealings on the board; complaints posted to {}",
        a.party,
        deals.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn dkg_justify(a: StepArgs) -> anyhow::Result<ExitCode> {
    let (key, roster) = load_ceremony(&a)?;
    let n = roster.params().parties();
    let complaints = load_messages(&a.board, "complaints", n)?;
    let message = ceremony::justify(&key, &roster, &complaints)?;
    let path = post(&a.board, "justifications", &message)?;
    println!(
        "party {}: {} complaint file(s) read; justifications posted to {}",
        a.party,
        complaints.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn dkg_finish(a: FinishArgs) -> anyhow::Result<ExitCode> {
    let (key, roster) = load_ceremony(&a.step)?;
    let params = roster.params();
    let n = params.parties();
    let board = &a.step.board;
    let out = ceremony::finish(
        &key,
        &roster,
        &load_messages(board, "deal", n)?,
        &load_messages(board, "complaints", n)?,
        &load_messages(board, "justifications", n)?,
    )?;
    prepare_dir(&a.out, a.force)?;
    write_share(&a.out, &out.dkg.share, params)?;
    let group = group_file(&out.dkg.public, &out.dkg.qualified, Some(out.transcript))?;
    write_file(
        &a.out.join("group.pub"),
        &serde_json::to_string_pretty(&group)?,
    )?;
    verify_own_share(&a.out, a.step.party, params).context("verifying the written share")?;
    let disqualified: Vec<u32> = out.dkg.disqualified.iter().map(|(d, _)| *d).collect();
    println!(
        "party {}: key share written to {} (mode 600) with group.pub; qualified dealers {:?}, disqualified {:?}",
        a.step.party,
        a.out.display(),
        out.dkg.qualified,
        disqualified
    );
    println!("group public key {}", group.group_public_key);
    println!(
        "transcript {} (every operator must see the same group key and transcript before use)",
        group.transcript.as_deref().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads this party's share and group.pub back: the share matches its public share key and
/// signs a partial signature that verifies.
fn verify_own_share(dir: &Path, party: u32, params: ThresholdParams) -> anyhow::Result<()> {
    let group: GroupFile = read_json(&dir.join("group.pub"))?;
    ensure!(group.kind == KIND_GROUP, "group.pub header");
    let public = ThresholdPublicKey::from_bytes(&hex::decode(&group.threshold_public_key)?)?;
    ensure!(public.params() == params, "group.pub parameters");
    let path = dir.join(format!("share-{party}.key"));
    let file: ShareFile = read_secret_json(&path)?;
    ensure!(
        file.kind == KIND_SHARE && file.index == party,
        "{} header",
        path.display()
    );
    let share = KeyShare::from_bytes(&keyfile::decode_secret_hex(&file.key_share)?)?;
    ensure!(
        share.index() == party && share.params() == params,
        "{}: index or parameters",
        path.display()
    );
    let msg = b"ccbft dkg self-check";
    public.verify_partial(Tag::Checkpoint, msg, &share.sign(Tag::Checkpoint, msg))?;
    Ok(())
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
        let file: ShareFile = read_secret_json(&path)?;
        ensure!(
            file.kind == KIND_SHARE && file.index == index,
            "{} header",
            path.display()
        );
        let share = KeyShare::from_bytes(&keyfile::decode_secret_hex(&file.key_share)?)?;
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
