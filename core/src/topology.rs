//! Cluster topology: domains (cloud provider + region), replicas, the inter-domain latency
//! matrix and the quorum arithmetic of the fault model (DESIGN.md, "Topology and fault model").
//!
//! A cluster file is TOML:
//!
//! ```toml
//! [cluster]
//! name = "three-clouds"
//! shards = 2                     # PBFT shards per replica (optional, default 1)
//! leader_rotation_blocks = 100   # optional, at least 2 (a leader commits in its own slot)
//!
//! [[domains]]
//! name = "aws/eu-central-1"      # provider/region
//!
//! [[replicas]]
//! id = 0
//! domain = "aws/eu-central-1"
//! address = "127.0.0.1:7000"
//! public_key = "keys/replica-0.pub"   # optional key reference
//!
//! [[links]]                      # round-trip times between domains, in milliseconds
//! a = "aws/eu-central-1"
//! b = "azure/westeurope"
//! rtt_ms = 22.0
//!
//! [fault_model]                  # optional; default is classic BFT (n >= 3f + 1)
//! kind = "hybrid"                # safety against `byzantine`, liveness against `crash`
//! byzantine = 1
//! crash = 2
//! ```

use crate::transaction::PayloadKind;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Replica identifier as it appears on the wire and on disk.
pub type ReplicaId = u32;

/// Index of a domain in [`Topology::domains`].
pub type DomainIndex = u32;

/// Smallest cluster we accept: below four replicas no Byzantine fault is tolerated.
pub const REPLICAS_MIN: usize = 4;
/// Largest cluster the signer bitmaps and vote keepers are sized for.
pub const REPLICAS_MAX: usize = 256;
/// Largest round trip we accept in a cluster file; anything above is a typo.
pub const RTT_MS_MAX: f64 = 10_000.0;
/// Round trip assumed between two domains when the file gives none.
pub const DEFAULT_INTER_DOMAIN_RTT_MS: f64 = 40.0;
/// Round trip assumed inside one domain (same cloud region).
pub const DEFAULT_INTRA_DOMAIN_RTT_MS: f64 = 0.5;
/// Most PBFT shards per replica.
pub const SHARDS_MAX: u32 = 64;

/// Errors found while reading or validating a cluster file. Each names what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TopologyError {
    #[error("cannot read cluster file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("cluster file is not valid TOML: {0}")]
    Parse(String),
    #[error("domain name {0:?} must look like provider/region, for example aws/eu-central-1")]
    BadDomainName(String),
    #[error("domain {0:?} is listed twice")]
    DuplicateDomain(String),
    #[error("domain {0:?} has no replicas")]
    EmptyDomain(String),
    #[error("replica id {0} is listed twice")]
    DuplicateReplica(ReplicaId),
    #[error("replica ids must be 0, 1, ..., n-1 (a certificate names replica i by bit i); missing id {missing}")]
    SparseReplicaIds { missing: ReplicaId },
    #[error("replica {replica} names unknown domain {domain:?}")]
    UnknownDomain { replica: ReplicaId, domain: String },
    #[error("link names unknown domain {0:?}")]
    UnknownLinkDomain(String),
    #[error("link from domain {0:?} to itself: set cluster.intra_domain_rtt_ms instead")]
    SelfLink(String),
    #[error("replica {replica}: address {address:?} is not a socket address such as 10.0.0.1:7000 or [2001:db8::1]:7000")]
    BadAddress { replica: ReplicaId, address: String },
    #[error("replicas {first} and {second} have the same address {address}")]
    DuplicateAddress {
        first: ReplicaId,
        second: ReplicaId,
        address: String,
    },
    #[error("{n} replicas are too few: a BFT cluster needs at least {REPLICAS_MIN}")]
    TooFewReplicas { n: usize },
    #[error("{n} replicas are too many: at most {REPLICAS_MAX}")]
    TooManyReplicas { n: usize },
    #[error("cluster.transactions is {0:?}: it must be \"transfers\" or \"opaque\"")]
    UnknownTransactions(String),
    #[error("bad number for {field}: {reason}")]
    BadNumber { field: String, reason: String },
    #[error("hybrid fault model needs n >= 2u + r + 1, but n = {n}, u = {crash}, r = {byzantine}")]
    HybridTooSmall {
        n: usize,
        byzantine: u32,
        crash: u32,
    },
}

/// One cloud provider region hosting replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    /// `provider/region`, unique in the cluster.
    pub name: String,
    pub provider: String,
    pub region: String,
}

/// One replica as the cluster file describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaSpec {
    pub id: ReplicaId,
    pub domain: DomainIndex,
    pub address: String,
    pub public_key: Option<String>,
    /// Where the replica takes client connections (`replicas.client_address`; by default
    /// the replica address with its port plus [`CLIENT_PORT_OFFSET`]).
    pub client_address: Option<String>,
    /// Where the replica's control plane listens (`replicas.control_address`; by default
    /// 127.0.0.1 on the replica port plus [`CONTROL_PORT_OFFSET`]: metrics and the admin API
    /// stay on the host unless an operator says otherwise).
    pub control_address: Option<String>,
}

/// A replica's client port by default: its replica port plus this.
pub const CLIENT_PORT_OFFSET: u16 = 1000;
/// A replica's control-plane port by default: its replica port plus this.
pub const CONTROL_PORT_OFFSET: u16 = 2000;

impl ReplicaSpec {
    /// The address clients connect to.
    pub fn client_addr(&self) -> Result<std::net::SocketAddr, TopologyError> {
        let bad = |address: &str| TopologyError::BadAddress {
            replica: self.id,
            address: address.to_string(),
        };
        if let Some(text) = &self.client_address {
            return text.parse().map_err(|_| bad(text));
        }
        let mut addr: std::net::SocketAddr =
            self.address.parse().map_err(|_| bad(&self.address))?;
        let port = addr
            .port()
            .checked_add(CLIENT_PORT_OFFSET)
            .ok_or_else(|| bad(&self.address))?;
        addr.set_port(port);
        Ok(addr)
    }

    /// The address of the replica's control plane (`/metrics`, `/health`, `/events`, admin).
    pub fn control_addr(&self) -> Result<std::net::SocketAddr, TopologyError> {
        let bad = |address: &str| TopologyError::BadAddress {
            replica: self.id,
            address: address.to_string(),
        };
        if let Some(text) = &self.control_address {
            return text.parse().map_err(|_| bad(text));
        }
        let addr: std::net::SocketAddr = self.address.parse().map_err(|_| bad(&self.address))?;
        let port = addr
            .port()
            .checked_add(CONTROL_PORT_OFFSET)
            .ok_or_else(|| bad(&self.address))?;
        Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

/// Which faults the quorums are sized against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultModel {
    /// Classic BFT: f = floor((n-1)/3) Byzantine replicas, for safety and liveness alike.
    Byzantine,
    /// Safety against `byzantine` (r) replicas, liveness against `crash` (u) failures;
    /// requires n >= 2u + r + 1 and uses q = n - u.
    Hybrid { byzantine: u32, crash: u32 },
}

/// Quorum arithmetic for a set of n replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quorum {
    /// Replicas in the set.
    pub n: u32,
    /// Byzantine replicas tolerated for safety.
    pub f: u32,
    /// Replicas that may be down while the set still makes progress (n - q).
    pub u: u32,
    /// Quorum size.
    pub q: u32,
}

impl Quorum {
    /// Classic BFT sizing: f = floor((n-1)/3), q = ceil((n+f+1)/2) (2f+1 when n = 3f+1).
    pub fn byzantine(n: u32) -> Quorum {
        assert!(n >= 1, "a quorum needs at least one replica");
        let f = (n - 1) / 3;
        let q = (n + f + 1).div_ceil(2);
        Quorum::checked(n, f, n - q, q)
    }

    /// Hybrid sizing: q = n - u. The caller has validated n >= 2u + r + 1.
    pub fn hybrid(n: u32, byzantine: u32, crash: u32) -> Quorum {
        assert!(
            n > 2 * crash + byzantine,
            "hybrid model needs n >= 2u + r + 1"
        );
        Quorum::checked(n, byzantine, crash, n - crash)
    }

    fn checked(n: u32, f: u32, u: u32, q: u32) -> Quorum {
        // Two quorums intersect in 2q - n replicas; at least one of them must be honest.
        assert!(2 * q > n + f, "quorums must intersect in an honest replica");
        assert!(q <= n && q + u == n);
        Quorum { n, f, u, q }
    }
}

/// What losing one cloud provider does to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderLoss {
    pub provider: String,
    /// Replicas hosted by the provider.
    pub replicas: u32,
    /// Replicas left after the loss.
    pub remaining: u32,
    /// Global quorum size.
    pub quorum: u32,
    /// The global tier still makes progress: remaining >= q.
    pub global_live: bool,
    /// Safety holds even if the provider's replicas turn Byzantine: replicas <= f.
    pub global_safe_if_compromised: bool,
    /// Domains whose local tier is lost with the provider (their clients fail over).
    pub local_tiers_lost: Vec<String>,
}

/// A validated cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    pub name: String,
    pub domains: Vec<Domain>,
    /// Sorted by id.
    pub replicas: Vec<ReplicaSpec>,
    pub fault_model: FaultModel,
    /// PBFT shards per replica.
    pub shards: u32,
    /// Blocks between leader rotations of the global tier.
    pub leader_rotation_blocks: u32,
    /// Round-trip time in microseconds between domains, `rtt_us[a][b]`, symmetric.
    pub rtt_us: Vec<Vec<u32>>,
    /// What the cluster orders (`cluster.transactions`: "transfers", the default, or
    /// "opaque").
    pub transactions: PayloadKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    cluster: ClusterSection,
    domains: Vec<DomainEntry>,
    replicas: Vec<ReplicaEntry>,
    #[serde(default)]
    links: Vec<LinkEntry>,
    fault_model: Option<FaultModelEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    name: String,
    shards: Option<i64>,
    leader_rotation_blocks: Option<i64>,
    intra_domain_rtt_ms: Option<f64>,
    default_inter_domain_rtt_ms: Option<f64>,
    transactions: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainEntry {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaEntry {
    id: i64,
    domain: String,
    address: String,
    public_key: Option<String>,
    client_address: Option<String>,
    control_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    a: String,
    b: String,
    rtt_ms: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultModelEntry {
    kind: String,
    byzantine: Option<i64>,
    crash: Option<i64>,
}

/// The embedded default cluster: 7 replicas over AWS 3, Azure 2, GCP 2.
pub const THREE_CLOUDS_TOML: &str = include_str!("../../examples/three-clouds.toml");

impl Topology {
    /// The embedded default used by `ccbft demo`.
    pub fn three_clouds() -> Topology {
        Topology::from_toml_str(THREE_CLOUDS_TOML).expect("embedded topology is valid")
    }

    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Topology::from_toml_str(&text)
    }

    pub fn from_toml_str(text: &str) -> Result<Topology, TopologyError> {
        let file: FileFormat =
            toml::from_str(text).map_err(|e| TopologyError::Parse(e.to_string()))?;
        Topology::from_file(file)
    }

    fn from_file(file: FileFormat) -> Result<Topology, TopologyError> {
        let domains = parse_domains(&file.domains)?;
        let replicas = parse_replicas(&file.replicas, &domains)?;
        let n = replicas.len();
        if n < REPLICAS_MIN {
            return Err(TopologyError::TooFewReplicas { n });
        }
        if n > REPLICAS_MAX {
            return Err(TopologyError::TooManyReplicas { n });
        }
        for (index, domain) in domains.iter().enumerate() {
            if !replicas.iter().any(|r| r.domain as usize == index) {
                return Err(TopologyError::EmptyDomain(domain.name.clone()));
            }
        }
        let fault_model = parse_fault_model(file.fault_model.as_ref(), n)?;
        let shards = bounded_int(
            "cluster.shards",
            file.cluster.shards,
            1,
            1,
            SHARDS_MAX as i64,
        )?;
        let rotation = bounded_int(
            "cluster.leader_rotation_blocks",
            file.cluster.leader_rotation_blocks,
            100,
            crate::leader::ROTATION_ROUNDS_MIN as i64,
            1_000_000,
        )?;
        let rtt_us = parse_links(&file.cluster, &file.links, &domains)?;
        let transactions = match file.cluster.transactions.as_deref() {
            None => PayloadKind::Transfers,
            Some(name) => PayloadKind::from_name(name)
                .ok_or_else(|| TopologyError::UnknownTransactions(name.to_string()))?,
        };
        let topology = Topology {
            name: file.cluster.name,
            domains,
            replicas,
            fault_model,
            shards: shards as u32,
            leader_rotation_blocks: rotation as u32,
            rtt_us,
            transactions,
        };
        topology.assert_invariants();
        Ok(topology)
    }

    /// Build a synthetic topology for the simulator: `replicas` spread round-robin over
    /// `domains` providers (`sim<d>/region`), with inter-domain RTTs from 20 to 100 ms.
    pub fn synthetic(replicas: u32, domains: u32, shards: u32) -> Result<Topology, TopologyError> {
        let domains = domains.clamp(1, replicas.max(1));
        let mut text =
            format!("[cluster]\nname = \"sim-{replicas}x{domains}\"\nshards = {shards}\n");
        for d in 0..domains {
            text += &format!("[[domains]]\nname = \"cloud{d}/region{d}\"\n");
        }
        for r in 0..replicas {
            let d = r % domains;
            text += &format!(
                "[[replicas]]\nid = {r}\ndomain = \"cloud{d}/region{d}\"\naddress = \"127.0.0.1:{}\"\n",
                7000 + r
            );
        }
        for a in 0..domains {
            for b in (a + 1)..domains {
                let rtt = 20 + (a * 37 + b * 23) % 81;
                text += &format!(
                    "[[links]]\na = \"cloud{a}/region{a}\"\nb = \"cloud{b}/region{b}\"\nrtt_ms = {rtt}.0\n"
                );
            }
        }
        Topology::from_toml_str(&text)
    }

    pub fn n(&self) -> u32 {
        self.replicas.len() as u32
    }

    /// Global quorum arithmetic under the configured fault model.
    pub fn quorum(&self) -> Quorum {
        match self.fault_model {
            FaultModel::Byzantine => Quorum::byzantine(self.n()),
            FaultModel::Hybrid { byzantine, crash } => Quorum::hybrid(self.n(), byzantine, crash),
        }
    }

    /// Replica ids of one domain, sorted.
    pub fn domain_members(&self, domain: DomainIndex) -> Vec<ReplicaId> {
        self.replicas
            .iter()
            .filter(|r| r.domain == domain)
            .map(|r| r.id)
            .collect()
    }

    /// Local (per-domain) quorum arithmetic: always classic BFT sizing.
    pub fn domain_quorum(&self, domain: DomainIndex) -> Quorum {
        Quorum::byzantine(self.domain_members(domain).len() as u32)
    }

    pub fn replica(&self, id: ReplicaId) -> Option<&ReplicaSpec> {
        self.replicas.get(id as usize) // ids are dense from 0 (checked at parse)
    }

    pub fn domain_of(&self, id: ReplicaId) -> DomainIndex {
        self.replica(id).expect("known replica").domain
    }

    /// Distinct providers in file order.
    pub fn providers(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for d in &self.domains {
            if !seen.contains(&d.provider) {
                seen.push(d.provider.clone());
            }
        }
        seen
    }

    /// Round trip between two replicas in microseconds.
    pub fn rtt_between_us(&self, a: ReplicaId, b: ReplicaId) -> u32 {
        self.rtt_us[self.domain_of(a) as usize][self.domain_of(b) as usize]
    }

    /// For each provider, what losing it does to the global and local tiers.
    pub fn provider_losses(&self) -> Vec<ProviderLoss> {
        let quorum = self.quorum();
        self.providers()
            .into_iter()
            .map(|provider| {
                let hosted = self
                    .replicas
                    .iter()
                    .filter(|r| self.domains[r.domain as usize].provider == provider)
                    .count() as u32;
                let local_tiers_lost = self
                    .domains
                    .iter()
                    .filter(|d| d.provider == provider)
                    .map(|d| d.name.clone())
                    .collect();
                ProviderLoss {
                    provider,
                    replicas: hosted,
                    remaining: quorum.n - hosted,
                    quorum: quorum.q,
                    global_live: quorum.n - hosted >= quorum.q,
                    global_safe_if_compromised: hosted <= quorum.f,
                    local_tiers_lost,
                }
            })
            .collect()
    }

    /// A placement survives a provider outage only if every provider holds at most n - q
    /// replicas (DESIGN.md, fault model).
    pub fn survives_any_provider_loss(&self) -> bool {
        self.provider_losses().iter().all(|loss| loss.global_live)
    }

    fn assert_invariants(&self) {
        assert!(
            self.replicas
                .iter()
                .enumerate()
                .all(|(i, r)| r.id as usize == i),
            "replica ids dense from 0"
        );
        assert!(self.replicas.len() <= REPLICAS_MAX);
        assert!(self
            .replicas
            .iter()
            .all(|r| (r.domain as usize) < self.domains.len()));
        assert_eq!(self.rtt_us.len(), self.domains.len());
        for (a, row) in self.rtt_us.iter().enumerate() {
            assert_eq!(row.len(), self.domains.len());
            for (b, &rtt) in row.iter().enumerate() {
                assert_eq!(rtt, self.rtt_us[b][a], "latency matrix is symmetric");
            }
        }
    }
}

fn parse_domains(entries: &[DomainEntry]) -> Result<Vec<Domain>, TopologyError> {
    let mut domains: Vec<Domain> = Vec::with_capacity(entries.len());
    for entry in entries {
        let (provider, region) = entry
            .name
            .split_once('/')
            .filter(|(p, r)| !p.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| TopologyError::BadDomainName(entry.name.clone()))?;
        if domains.iter().any(|d| d.name == entry.name) {
            return Err(TopologyError::DuplicateDomain(entry.name.clone()));
        }
        domains.push(Domain {
            name: entry.name.clone(),
            provider: provider.to_string(),
            region: region.to_string(),
        });
    }
    Ok(domains)
}

fn parse_replicas(
    entries: &[ReplicaEntry],
    domains: &[Domain],
) -> Result<Vec<ReplicaSpec>, TopologyError> {
    let mut seen = BTreeSet::new();
    let mut replicas = Vec::with_capacity(entries.len());
    for entry in entries {
        let id = bounded_int("replicas.id", Some(entry.id), 0, 0, u32::MAX as i64)? as ReplicaId;
        if !seen.insert(id) {
            return Err(TopologyError::DuplicateReplica(id));
        }
        let domain = domains
            .iter()
            .position(|d| d.name == entry.domain)
            .ok_or_else(|| TopologyError::UnknownDomain {
                replica: id,
                domain: entry.domain.clone(),
            })?;
        let address: std::net::SocketAddr =
            entry
                .address
                .parse()
                .map_err(|_| TopologyError::BadAddress {
                    replica: id,
                    address: entry.address.clone(),
                })?;
        if let Some(other) = replicas
            .iter()
            .find(|r: &&ReplicaSpec| r.address.parse() == Ok(address))
        {
            return Err(TopologyError::DuplicateAddress {
                first: other.id,
                second: id,
                address: address.to_string(),
            });
        }
        replicas.push(ReplicaSpec {
            id,
            domain: domain as DomainIndex,
            address: entry.address.clone(),
            public_key: entry.public_key.clone(),
            client_address: entry.client_address.clone(),
            control_address: entry.control_address.clone(),
        });
        let spec = replicas.last().expect("just pushed");
        spec.client_addr()?;
        if spec.control_address.is_some() {
            spec.control_addr()?;
        }
    }
    replicas.sort_by_key(|r| r.id);
    // One rule everywhere: ids are dense from 0, so id i is committee member i and bit i of
    // every signer bitmap; an id of 256 or more is then refused by the size check.
    if let Some(missing) = (0..replicas.len() as ReplicaId).find(|&i| replicas[i as usize].id != i)
    {
        return Err(TopologyError::SparseReplicaIds { missing });
    }
    Ok(replicas)
}

fn parse_fault_model(
    entry: Option<&FaultModelEntry>,
    n: usize,
) -> Result<FaultModel, TopologyError> {
    let Some(entry) = entry else {
        return Ok(FaultModel::Byzantine);
    };
    match entry.kind.as_str() {
        "byzantine" => Ok(FaultModel::Byzantine),
        "hybrid" => {
            let byzantine = bounded_int("fault_model.byzantine", entry.byzantine, 0, 0, n as i64)?;
            let crash = bounded_int("fault_model.crash", entry.crash, 0, 0, n as i64)?;
            let (byzantine, crash) = (byzantine as u32, crash as u32);
            if (n as u32) < 2 * crash + byzantine + 1 {
                return Err(TopologyError::HybridTooSmall {
                    n,
                    byzantine,
                    crash,
                });
            }
            Ok(FaultModel::Hybrid { byzantine, crash })
        }
        other => Err(TopologyError::BadNumber {
            field: "fault_model.kind".into(),
            reason: format!("{other:?} is neither \"byzantine\" nor \"hybrid\""),
        }),
    }
}

fn parse_links(
    cluster: &ClusterSection,
    links: &[LinkEntry],
    domains: &[Domain],
) -> Result<Vec<Vec<u32>>, TopologyError> {
    let intra = rtt_us(
        "cluster.intra_domain_rtt_ms",
        cluster.intra_domain_rtt_ms,
        DEFAULT_INTRA_DOMAIN_RTT_MS,
    )?;
    let inter = rtt_us(
        "cluster.default_inter_domain_rtt_ms",
        cluster.default_inter_domain_rtt_ms,
        DEFAULT_INTER_DOMAIN_RTT_MS,
    )?;
    let count = domains.len();
    let mut matrix: Vec<Vec<u32>> = (0..count)
        .map(|a| {
            (0..count)
                .map(|b| if a == b { intra } else { inter })
                .collect()
        })
        .collect();
    let index = |name: &str| {
        domains
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| TopologyError::UnknownLinkDomain(name.to_string()))
    };
    let mut given = BTreeMap::new();
    for link in links {
        let (a, b) = (index(&link.a)?, index(&link.b)?);
        let field = format!("links[{} <-> {}].rtt_ms", link.a, link.b);
        let rtt = rtt_us(&field, Some(link.rtt_ms), 0.0)?;
        if a == b {
            return Err(TopologyError::SelfLink(link.a.clone()));
        }
        if given.insert((a.min(b), a.max(b)), rtt).is_some() {
            return Err(TopologyError::BadNumber {
                field,
                reason: "link listed twice".into(),
            });
        }
        matrix[a][b] = rtt;
        matrix[b][a] = rtt;
    }
    Ok(matrix)
}

fn rtt_us(field: &str, value: Option<f64>, default: f64) -> Result<u32, TopologyError> {
    let ms = value.unwrap_or(default);
    if !ms.is_finite() || ms <= 0.0 || ms > RTT_MS_MAX {
        return Err(TopologyError::BadNumber {
            field: field.to_string(),
            reason: format!("{ms} ms is not in (0, {RTT_MS_MAX}]"),
        });
    }
    Ok((ms * 1000.0).round().max(1.0) as u32)
}

fn bounded_int(
    field: &str,
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, TopologyError> {
    let value = value.unwrap_or(default);
    if value < min || value > max {
        return Err(TopologyError::BadNumber {
            field: field.to_string(),
            reason: format!("{value} is not in [{min}, {max}]"),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
