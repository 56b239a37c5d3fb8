//! Register of information (DORA Art. 28(3); templates of Commission Implementing Regulation
//! (EU) 2024/2956) and concentration risk (DORA Art. 29) from the cluster topology.
//!
//! The cloud providers of the topology are rows of B_05.01 (ICT third-party service
//! providers); the consensus service is a function of B_06.01 supported by all of them; each
//! provider's service to that function is assessed in B_07.01. Identifiers (LEIs, contract
//! references, legal names, countries) are operator-supplied ([`RegisterConfig`]); what is
//! missing is listed, never invented.
//!
//! Column codes are those of the xBRL-CSV package's template table
//! ([`crate::xbrl_csv::TEMPLATES`], from transcriptions of the EBA DPM 4.0; a test keeps the
//! two in step); a column of this view that is not a column of its template carries no code.
//! Annex I Part 2 of 2024/2956 (the official column table) could not be retrieved (last
//! checked 2026-11-27, see "Sources checked" in the crate README; verify before filing). The
//! B_06.01 columns here carry names only (`code` empty). The ICT
//! service types S01-S19 are those of Annex III (checked).
//!
//! Concentration is not a formula in the regulation: the view shows replica shares per
//! provider and region, the Herfindahl-Hirschman index of those shares, the quorum
//! arithmetic of losing each provider (from `ccbft_core::topology`), and the placement with
//! the fewest replica changes that survives the loss of any one provider.

use ccbft_core::topology::{Domain, FaultModel, Quorum, ReplicaSpec, Topology};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most replicas added when searching a surviving placement.
pub const PLACEMENT_ADDITIONS_MAX: u32 = 16;
/// Most new providers considered when searching a surviving placement.
pub const PLACEMENT_NEW_PROVIDERS_MAX: u32 = 2;
/// Placeholder shown where an operator-supplied identifier is missing.
pub const NOT_SUPPLIED: &str = "NOT SUPPLIED";

/// Operator-supplied facts about one provider.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderInfo {
    pub identification_code: Option<String>,
    /// LEI or EUID, or a country-specific code type.
    pub code_type: Option<String>,
    pub legal_name: Option<String>,
    /// Legal person or natural person.
    pub person_type: Option<String>,
    /// ISO 3166-1 alpha-2 country of the headquarters.
    pub headquarters_country: Option<String>,
    pub ultimate_parent_code: Option<String>,
    pub contract_reference: Option<String>,
    /// Type of ICT services, an identifier of Annex III of 2024/2956 (S01-S19).
    pub ict_service_type: Option<String>,
    /// Substitutability assessment of B_07.01.
    pub substitutability: Option<String>,
    pub alternative_providers_identified: Option<bool>,
}

/// The function the cluster supports (B_06.01).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionInfo {
    pub identifier: String,
    pub name: String,
    pub critical_or_important: bool,
    pub rto_hours: Option<f64>,
    pub rpo_hours: Option<f64>,
    pub impact_of_discontinuing: Option<String>,
}

impl Default for FunctionInfo {
    fn default() -> Self {
        FunctionInfo {
            identifier: "F-CCBFT-ORDERING".into(),
            name: "Payment transaction ordering and settlement (CC-BFT consensus service)".into(),
            critical_or_important: true,
            rto_hours: None,
            rpo_hours: Some(0.0),
            impact_of_discontinuing: None,
        }
    }
}

/// Operator configuration of the register.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegisterConfig {
    pub entity_lei: Option<String>,
    pub entity_name: Option<String>,
    /// Keyed by provider name as in the topology (`aws`, `azure`, ...).
    pub providers: BTreeMap<String, ProviderInfo>,
    pub function: FunctionInfo,
    /// Package facts for the xBRL-CSV register ([`crate::xbrl_csv`]).
    pub xbrl: Option<crate::xbrl_csv::XbrlConfig>,
}

/// One column of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub code: String,
    pub name: String,
}

/// One template of 2024/2956 as a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub template: String,
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
}

impl Template {
    /// RFC 4180 CSV: a header of column codes (names where no code is known), then rows.
    pub fn to_csv(&self) -> String {
        let header: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                if c.code.is_empty() {
                    c.name.clone()
                } else {
                    c.code.clone()
                }
            })
            .collect();
        let mut out = csv_line(&header);
        for row in &self.rows {
            out.push_str(&csv_line(row));
        }
        out
    }
}

fn csv_line(cells: &[String]) -> String {
    let quoted: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect();
    format!("{}\r\n", quoted.join(","))
}

fn col(code: &str, name: &str) -> Column {
    Column {
        code: code.into(),
        name: name.into(),
    }
}

/// Share of one provider or region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub name: String,
    pub replicas: u32,
    pub share_percent: f64,
}

/// Losing one provider, with the arithmetic spelled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderLossView {
    pub provider: String,
    pub replicas: u32,
    pub remaining: u32,
    pub quorum: u32,
    pub global_live: bool,
    pub global_safe_if_compromised: bool,
    pub local_tiers_lost: Vec<String>,
    pub arithmetic: String,
    pub verdict: String,
}

/// A domain's local tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalTier {
    pub domain: String,
    pub quorum: Quorum,
    pub warning: Option<String>,
}

/// One replica relocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Move {
    pub replica: u32,
    pub from_domain: String,
    pub to_domain: String,
}

/// A placement that survives the loss of any one provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementProposal {
    /// Replica relocations plus replicas added.
    pub changes: u32,
    pub moves: Vec<Move>,
    /// Domains where a new replica is added.
    pub additions: Vec<String>,
    pub new_providers: Vec<String>,
    pub replicas_per_provider: BTreeMap<String, u32>,
    pub quorum: Quorum,
    pub explanation: String,
}

/// The concentration view (DORA Art. 29).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concentration {
    pub quorum: Quorum,
    pub quorum_rule: String,
    pub providers: Vec<Share>,
    pub regions: Vec<Share>,
    /// Herfindahl-Hirschman index of provider shares (percent squared, 0-10 000).
    pub hhi_providers: f64,
    pub hhi_regions: f64,
    pub losses: Vec<ProviderLossView>,
    pub local_tiers: Vec<LocalTier>,
    pub survives_any_provider_loss: bool,
    /// Plain statements, the first ones about any provider whose loss stops the global tier.
    pub summary: Vec<String>,
    /// Fewest changes overall (may bring in a new provider).
    pub proposal: Option<PlacementProposal>,
    /// Fewest changes keeping the current providers only (may add replicas).
    pub proposal_same_providers: Option<PlacementProposal>,
}

/// The register and the concentration view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Register {
    pub cluster: String,
    pub regulation: String,
    pub templates: Vec<Template>,
    pub concentration: Concentration,
    pub missing_identifiers: Vec<String>,
}

fn quorum_rule(topology: &Topology) -> String {
    let q = topology.quorum();
    match topology.fault_model {
        FaultModel::Byzantine => format!(
            "n = {}, f = floor((n-1)/3) = {}, q = ceil((n+f+1)/2) = {}, so at most n - q = {} replicas may be lost",
            q.n, q.f, q.q, q.u
        ),
        FaultModel::Hybrid { byzantine, crash } => format!(
            "hybrid model: n = {}, safety against r = {byzantine}, liveness against u = {crash}, q = n - u = {}",
            q.n, q.q
        ),
    }
}

/// Herfindahl-Hirschman index from exact shares (percent squared), rounded to 0.01.
fn hhi(shares: &[Share], n: u32) -> f64 {
    let sum: f64 = shares
        .iter()
        .map(|s| {
            let pct = 100.0 * s.replicas as f64 / n as f64;
            pct * pct
        })
        .sum();
    (sum * 100.0).round() / 100.0
}

fn shares(counts: &BTreeMap<String, u32>, n: u32, order: &[String]) -> Vec<Share> {
    order
        .iter()
        .map(|name| {
            let replicas = counts.get(name).copied().unwrap_or(0);
            Share {
                name: name.clone(),
                replicas,
                share_percent: ((replicas as f64 / n as f64) * 10_000.0).round() / 100.0,
            }
        })
        .collect()
}

fn provider_counts(topology: &Topology) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for r in &topology.replicas {
        *counts
            .entry(topology.domains[r.domain as usize].provider.clone())
            .or_insert(0) += 1;
    }
    counts
}

/// The concentration view of a topology.
pub fn concentration(topology: &Topology) -> Concentration {
    let q = topology.quorum();
    let providers_order = topology.providers();
    let counts = provider_counts(topology);
    let providers = shares(&counts, q.n, &providers_order);
    let mut region_counts = BTreeMap::new();
    let mut region_order: Vec<String> = Vec::new();
    for r in &topology.replicas {
        let region = topology.domains[r.domain as usize].region.clone();
        if !region_order.contains(&region) {
            region_order.push(region.clone());
        }
        *region_counts.entry(region).or_insert(0) += 1;
    }
    let regions = shares(&region_counts, q.n, &region_order);
    let rule = quorum_rule(topology);
    let losses: Vec<ProviderLossView> = topology
        .provider_losses()
        .into_iter()
        .map(|loss| loss_view(loss, q))
        .collect();
    let local_tiers = local_tiers(topology);
    let survives = topology.survives_any_provider_loss();
    let mut summary = Vec::new();
    for loss in losses.iter().filter(|l| !l.global_live) {
        summary.push(format!(
            "Losing {} ({} of {} replicas) stops the global tier: {}.",
            loss.provider, loss.replicas, q.n, loss.arithmetic
        ));
    }
    for loss in losses.iter().filter(|l| l.global_live) {
        summary.push(format!(
            "Losing {} ({} of {} replicas) keeps the global tier live: {}.",
            loss.provider, loss.replicas, q.n, loss.arithmetic
        ));
    }
    summary.push(format!("Quorum arithmetic: {rule}."));
    for tier in local_tiers.iter().filter_map(|t| t.warning.as_ref()) {
        summary.push(tier.clone());
    }
    let (proposal, proposal_same_providers) = if survives {
        summary.push("This placement survives the loss of any one provider (DESIGN.md: every provider holds at most n - q replicas).".into());
        (None, None)
    } else {
        let best = propose_placement(topology, PLACEMENT_NEW_PROVIDERS_MAX);
        let same = propose_placement(topology, 0);
        if let Some(p) = &best {
            summary.push(format!(
                "Fewest changes to survive any one provider loss: {}",
                p.explanation
            ));
        }
        if let Some(p) = &same {
            if Some(p) != best.as_ref() {
                summary.push(format!(
                    "Keeping the current providers only: {}",
                    p.explanation
                ));
            }
        }
        (best, same)
    };
    Concentration {
        quorum: q,
        quorum_rule: rule,
        hhi_providers: hhi(&providers, q.n),
        hhi_regions: hhi(&regions, q.n),
        providers,
        regions,
        losses,
        local_tiers,
        survives_any_provider_loss: survives,
        summary,
        proposal,
        proposal_same_providers,
    }
}

fn loss_view(loss: ccbft_core::topology::ProviderLoss, q: Quorum) -> ProviderLossView {
    let cmp = if loss.global_live { ">=" } else { "<" };
    let live = if loss.global_live {
        "the global tier keeps liveness"
    } else {
        "no quorum can form, the global tier stops (liveness lost)"
    };
    let safe = if loss.global_safe_if_compromised {
        format!(
            "if its {} replicas turned Byzantine instead, {} <= f = {} and safety would hold",
            loss.replicas, loss.replicas, q.f
        )
    } else {
        format!("if its {} replicas turned Byzantine instead, {} > f = {} and safety would not be guaranteed", loss.replicas, loss.replicas, q.f)
    };
    let arithmetic = format!(
        "{} - {} = {} replicas remain, {} {cmp} quorum q = {}; {live}; {safe}",
        q.n, loss.replicas, loss.remaining, loss.remaining, loss.quorum
    );
    let verdict = if loss.global_live {
        "survives"
    } else {
        "GLOBAL TIER STOPS"
    }
    .to_string();
    ProviderLossView {
        provider: loss.provider,
        replicas: loss.replicas,
        remaining: loss.remaining,
        quorum: loss.quorum,
        global_live: loss.global_live,
        global_safe_if_compromised: loss.global_safe_if_compromised,
        local_tiers_lost: loss.local_tiers_lost,
        arithmetic,
        verdict,
    }
}

fn local_tiers(topology: &Topology) -> Vec<LocalTier> {
    (0..topology.domains.len())
        .map(|i| {
            let quorum = topology.domain_quorum(i as u32);
            let name = topology.domains[i].name.clone();
            let warning = if quorum.u == 0 {
                Some(format!(
                    "Domain {name}: n_d = {}, q_d = {}: its local tier tolerates no failure; when one replica is down its clients fail over to another domain.",
                    quorum.n, quorum.q
                ))
            } else if quorum.f == 0 {
                Some(format!(
                    "Domain {name}: n_d = {}, q_d = {}: tolerates {} crash but no Byzantine replica locally.",
                    quorum.n, quorum.q, quorum.u
                ))
            } else {
                None
            };
            LocalTier {
                domain: name,
                quorum,
                warning,
            }
        })
        .collect()
}

fn quorum_for(topology: &Topology, n: u32) -> Option<Quorum> {
    match topology.fault_model {
        FaultModel::Byzantine => Some(Quorum::byzantine(n)),
        FaultModel::Hybrid { byzantine, crash } => {
            (n > 2 * crash + byzantine).then(|| Quorum::hybrid(n, byzantine, crash))
        }
    }
}

/// The placement with the fewest changes (replica relocations plus replicas added) such that
/// every provider holds at most n - q replicas, bringing in at most `new_providers_max` new
/// providers. Ties prefer fewer new providers, then fewer additions. The result is checked
/// with `Topology::survives_any_provider_loss`.
pub fn propose_placement(topology: &Topology, new_providers_max: u32) -> Option<PlacementProposal> {
    let n = topology.n();
    let counts = provider_counts(topology);
    let m = counts.len() as u32;
    let mut best: Option<(u32, u32, u32)> = None; // (changes, new providers, additions)
    for k in 0..=new_providers_max {
        for a in 0..=PLACEMENT_ADDITIONS_MAX {
            let Some(q) = quorum_for(topology, n + a) else {
                continue;
            };
            let cap = q.u;
            if cap == 0 || (m + k) * cap < n + a {
                continue;
            }
            let moves: u32 = counts.values().map(|&c| c.saturating_sub(cap)).sum();
            let key = (moves + a, k, a);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
    }
    let (_, k, a) = best?;
    let proposal = build_placement(topology, k, a)?;
    Some(proposal)
}

fn build_placement(
    topology: &Topology,
    new_providers: u32,
    additions: u32,
) -> Option<PlacementProposal> {
    let n = topology.n() + additions;
    let q = quorum_for(topology, n)?;
    let cap = q.u;
    let mut candidate = topology.clone();
    for i in 0..new_providers {
        let name = format!("newcloud{}/eu-region", i + 1);
        candidate.domains.push(Domain {
            name,
            provider: format!("newcloud{}", i + 1),
            region: "eu-region".into(),
        });
    }
    let domain_count = candidate.domains.len();
    for row in candidate.rtt_us.iter_mut() {
        row.resize(domain_count, 40_000);
    }
    candidate
        .rtt_us
        .resize(domain_count, vec![40_000; domain_count]);
    let mut moves = Vec::new();
    let mut added = Vec::new();
    // Relocate the highest-numbered replicas of over-full providers.
    loop {
        let counts = candidate_counts(&candidate);
        let Some((over, _)) = counts
            .iter()
            .filter(|(_, &c)| c > cap)
            .max_by_key(|(_, &c)| c)
        else {
            break;
        };
        let over = over.clone();
        let to = receiving_domain(&candidate, cap)?;
        let replica = candidate
            .replicas
            .iter_mut()
            .filter(|r| candidate_provider(&topology.domains, r) == Some(over.clone()))
            .max_by_key(|r| r.id)?;
        let from = topology.domains[replica.domain as usize].name.clone();
        replica.domain = to as u32;
        moves.push(Move {
            replica: replica.id,
            from_domain: from,
            to_domain: candidate.domains[to].name.clone(),
        });
    }
    let first_new_id = candidate.replicas.iter().map(|r| r.id).max().unwrap_or(0) + 1;
    for next_id in first_new_id..first_new_id + additions {
        let to = receiving_domain(&candidate, cap)?;
        candidate.replicas.push(ReplicaSpec {
            id: next_id,
            domain: to as u32,
            address: "to be provisioned".into(),
            public_key: None,
            client_address: None,
            control_address: None,
        });
        added.push(candidate.domains[to].name.clone());
    }
    assert!(
        candidate.survives_any_provider_loss(),
        "proposed placement must survive"
    );
    let per_provider = candidate_counts(&candidate);
    let new_names: Vec<String> = (0..new_providers)
        .map(|i| format!("newcloud{}", i + 1))
        .collect();
    let cq = candidate.quorum();
    let mut parts = Vec::new();
    for mv in &moves {
        parts.push(format!(
            "move replica {} from {} to {}",
            mv.replica, mv.from_domain, mv.to_domain
        ));
    }
    for d in &added {
        parts.push(format!("add a replica in {d}"));
    }
    let spread: Vec<String> = per_provider
        .iter()
        .map(|(p, c)| format!("{p} {c}"))
        .collect();
    let explanation = format!(
        "{} ({} change(s)). Result: n = {}, q = {}, n - q = {}; replicas per provider {} (each <= {}), so losing any one provider leaves at least q replicas.{}",
        parts.join("; "),
        moves.len() as u32 + additions,
        cq.n,
        cq.q,
        cq.u,
        spread.join(", "),
        cq.u,
        if new_providers > 0 { " newcloud* stands for an additional EU cloud provider of the operator's choice." } else { "" }
    );
    Some(PlacementProposal {
        changes: moves.len() as u32 + additions,
        moves,
        additions: added,
        new_providers: new_names,
        replicas_per_provider: per_provider,
        quorum: cq,
        explanation,
    })
}

fn candidate_provider(domains: &[Domain], r: &ReplicaSpec) -> Option<String> {
    domains.get(r.domain as usize).map(|d| d.provider.clone())
}

fn candidate_counts(t: &Topology) -> BTreeMap<String, u32> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for d in &t.domains {
        counts.entry(d.provider.clone()).or_insert(0);
    }
    for r in &t.replicas {
        *counts
            .entry(t.domains[r.domain as usize].provider.clone())
            .or_insert(0) += 1;
    }
    counts
}

/// The domain to receive a replica: of the providers below `cap`, the least loaded (existing
/// providers first on ties); inside it, its largest domain (a larger local tier tolerates more).
fn receiving_domain(t: &Topology, cap: u32) -> Option<usize> {
    let counts = candidate_counts(t);
    let provider = t
        .domains
        .iter()
        .map(|d| d.provider.clone())
        .filter(|p| counts[p] < cap)
        .min_by_key(|p| counts[p])?;
    let size = |i: usize| t.replicas.iter().filter(|r| r.domain as usize == i).count();
    (0..t.domains.len())
        .filter(|&i| t.domains[i].provider == provider)
        .max_by_key(|&i| (size(i), std::cmp::Reverse(i)))
}

/// Build the register and the concentration view.
pub fn build(topology: &Topology, config: &RegisterConfig) -> Register {
    let mut missing = Vec::new();
    let mut get = |provider: &str, what: &str, value: &Option<String>| -> String {
        match value {
            Some(v) if !v.trim().is_empty() => v.clone(),
            _ => {
                missing.push(format!("{provider}: {what}"));
                NOT_SUPPLIED.to_string()
            }
        }
    };
    let providers = topology.providers();
    let mut b0501 = Vec::new();
    let mut b0701 = Vec::new();
    for p in &providers {
        let info = config.providers.get(p).cloned().unwrap_or_default();
        let code = get(p, "identification code (LEI)", &info.identification_code);
        let legal = get(p, "legal name", &info.legal_name);
        b0501.push(vec![
            code.clone(),
            info.code_type.clone().unwrap_or_else(|| "LEI".into()),
            legal.clone(),
            legal,
            info.person_type
                .clone()
                .unwrap_or_else(|| "legal person".into()),
            get(p, "headquarters country", &info.headquarters_country),
            info.ultimate_parent_code.clone().unwrap_or_default(),
            p.clone(),
        ]);
        b0701.push(vec![
            get(p, "contractual arrangement reference", &info.contract_reference),
            config.function.identifier.clone(),
            get(p, "type of ICT services (Annex III code)", &info.ict_service_type),
            info.substitutability.clone().unwrap_or_else(|| "substitutable with difficulty (replicas can be re-placed; see concentration view)".into()),
            match info.alternative_providers_identified {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "yes (the other providers of the cluster)".into(),
            },
            config.function.rto_hours.map(|h| h.to_string()).unwrap_or_default(),
            config.function.rpo_hours.map(|h| h.to_string()).unwrap_or_default(),
        ]);
    }
    let f = &config.function;
    let b0601 = vec![vec![
        f.identifier.clone(),
        f.name.clone(),
        if f.critical_or_important {
            "critical or important"
        } else {
            "not critical or important"
        }
        .into(),
        config.entity_lei.clone().unwrap_or_else(|| {
            missing.push("entity LEI".into());
            NOT_SUPPLIED.into()
        }),
        f.rto_hours.map(|h| h.to_string()).unwrap_or_default(),
        f.rpo_hours.map(|h| h.to_string()).unwrap_or_default(),
        f.impact_of_discontinuing
            .clone()
            .unwrap_or_else(|| "ordering of payments stops".into()),
        providers.join("; "),
    ]];
    let templates = vec![
        Template {
            template: "B_05.01".into(),
            title: "ICT third-party service providers".into(),
            columns: vec![
                col("c0010", "Identification code of the ICT third-party service provider"),
                col("c0020", "Type of code to identify the ICT third-party service provider"),
                col("c0050", "Legal name of the ICT third-party service provider"),
                col("c0060", "Name of the ICT third-party service provider in Latin alphabet"),
                col("c0070", "Type of person of the ICT third-party service provider"),
                col("c0080", "Country of the ICT third-party service provider's headquarters"),
                col("c0110", "Identification code of the ICT third-party service provider's ultimate parent undertaking"),
                col("", "Provider name in the cluster topology (not a template column)"),
            ],
            rows: b0501,
        },
        Template {
            template: "B_06.01".into(),
            title: "Functions identification".into(),
            columns: vec![
                col("", "Function identifier"),
                col("", "Function name"),
                col("", "Criticality or importance assessment"),
                col("", "LEI of the financial entity"),
                col("", "Recovery time objective of the function (hours)"),
                col("", "Recovery point objective of the function (hours)"),
                col("", "Impact of discontinuing the function"),
                col("", "ICT third-party service providers supporting it (not a template column)"),
            ],
            rows: b0601,
        },
        Template {
            template: "B_07.01".into(),
            title: "Assessment of the ICT services".into(),
            columns: vec![
                col("c0010", "Contractual arrangement reference number"),
                col("", "Function identifier (B_06.01 c0010; not a B_07.01 column)"),
                col("c0040", "Type of ICT services"),
                col("c0050", "Substitutability of the ICT third-party service provider"),
                col("c0110", "Are there alternative ICT third-party service providers identified?"),
                col("", "Recovery time objective of the function (hours; B_06.01 c0080)"),
                col("", "Recovery point objective of the function (hours; B_06.01 c0090)"),
            ],
            rows: b0701,
        },
    ];
    Register {
        cluster: topology.name.clone(),
        regulation: "Register of information, DORA Art. 28(3); templates of Commission Implementing Regulation (EU) 2024/2956; concentration risk, DORA Art. 29".into(),
        templates,
        concentration: concentration(topology),
        missing_identifiers: missing,
    }
}

impl RegisterConfig {
    /// Refuse operator identifiers that cannot be right: a LEI without valid ISO 17442 check
    /// digits, a country that is not an ISO 3166-1 alpha-2 code, a provider the cluster does
    /// not use. The error names the field.
    pub fn check(&self, topology: &Topology) -> Result<(), String> {
        let lei = |field: String, value: &Option<String>| match value {
            Some(v) => crate::identifiers::check_lei(v).map_err(|e| format!("{field}: {e}")),
            None => Ok(()),
        };
        lei("entity_lei".into(), &self.entity_lei)?;
        let providers = topology.providers();
        for (name, info) in &self.providers {
            if !providers.contains(name) {
                return Err(format!(
                    "providers.{name}: no such provider in cluster {:?} (it has {})",
                    topology.name,
                    providers.join(", ")
                ));
            }
            if info.code_type.as_deref().is_none_or(|t| t == "LEI") {
                lei(
                    format!("providers.{name}.identification_code"),
                    &info.identification_code,
                )?;
            }
            if let Some(country) = &info.headquarters_country {
                if !crate::identifiers::is_country_code(country) {
                    return Err(format!(
                        "providers.{name}.headquarters_country: {country:?} is not an ISO 3166-1 alpha-2 code such as DE or US"
                    ));
                }
            }
        }
        Ok(())
    }
}
