//! The engine's state directory and the operations on it. Every change is appended to the
//! audit trail ([`crate::audit`]).
//!
//! Layout:
//! - `config.json`: [`EngineConfig`] (defaults when absent)
//! - `cluster.toml`: the cluster topology (optional; enables domain health and the
//!   concentration view)
//! - `incidents.json`: the incident tracker
//! - `tests/*.json`: resilience-test evidence records
//! - `audit/`: the audit trail (`ccbft dora audit verify STATE/audit`)
//! - `keys/dashboard.token`: the dashboard's bearer token (created by [`Engine::init`], mode
//!   0600; [`crate::token`])
//! - `keys/audit-hybrid.key`: the audit signing key, BLS12-381 + ML-DSA-65 (created on first
//!   use, mode 0600). A state directory whose log was created with Ed25519 (`audit/audit.pub`
//!   says `ed25519`) keeps `keys/audit-ed25519.key` for that log.

use crate::audit::{AuditError, AuditLog, AuditSigner, Ed25519Signer, HybridSigner};
use crate::deadlines::{self, DeadlineInput, Deadlines, DueAlert, OverdueAlert, ReportingConfig};
use crate::health::HealthEvent;
use crate::incident::{
    recurring_groups, Incident, IncidentError, IncidentTracker, Ingested, MergePolicy,
    OperatorFacts, RecurringGroup,
};
use crate::register::RegisterConfig;
use crate::report::{EntityProfile, Stage};
use crate::resilience::Evidence;
use ccbft_core::topology::Topology;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const CLUSTER_FILE: &str = "cluster.toml";
pub const INCIDENTS_FILE: &str = "incidents.json";
pub const TESTS_DIR: &str = "tests";
pub const AUDIT_DIR: &str = "audit";
/// The audit signing key (hybrid BLS12-381 + ML-DSA-65).
pub const KEY_FILE: &str = "keys/audit-hybrid.key";
/// The Ed25519 key of a log created before the hybrid signer.
pub const LEGACY_ED25519_KEY_FILE: &str = "keys/audit-ed25519.key";
/// Most evidence records loaded for the dashboard.
pub const TESTS_SHOWN_MAX: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path} is malformed: {reason}")]
    Malformed { path: String, reason: String },
    #[error(transparent)]
    Incident(#[from] IncidentError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("cluster file: {0}")]
    Topology(String),
    #[error("state directory {0} does not exist: create it with `ccbft dora init --state {0}`")]
    Missing(String),
    #[error("{path} is not an empty directory; `dora init` creates a new state directory only")]
    NotEmpty { path: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("event {event_id} (line {line}): {reason}")]
    Event {
        event_id: String,
        line: usize,
        reason: String,
    },
}

fn io(path: &Path, e: impl std::fmt::Display) -> StateError {
    StateError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Engine configuration (all with defaults).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub reporting: ReportingConfig,
    pub profile: Option<EntityProfile>,
    pub register: RegisterConfig,
    pub merge: MergePolicy,
    /// Microenterprise or DORA Art. 16(1) entity: Art. 8(2) recurring incidents do not apply.
    pub recurring_exempt: bool,
    /// SIEM/SOAR export sinks ([`crate::export`]).
    pub export: Option<crate::export::ExportConfig>,
}

/// An open state directory.
pub struct Engine {
    pub dir: PathBuf,
    pub config: EngineConfig,
    pub topology: Option<Topology>,
    pub tracker: IncidentTracker,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = crate::read_bounded(path).map_err(|e| io(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StateError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| io(path, e))?;
    write_atomic(path, text.as_bytes())
}

/// Write-temp, fsync, rename, fsync the directory: after a crash the file is either the old
/// or the new one, never a torn mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| io(&tmp, e))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), StateError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(parent, e))
}

/// Write a new file that must not exist yet (an evidence record is never overwritten).
fn write_new(path: &Path, bytes: &[u8]) -> Result<bool, StateError> {
    use std::io::Write;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io(path, e)),
    };
    file.write_all(bytes).map_err(|e| io(path, e))?;
    file.sync_all().map_err(|e| io(path, e))?;
    sync_parent(path)?;
    Ok(true)
}

/// Most evidence records with the same second-resolution time stamp.
pub const TESTS_PER_SECOND_MAX: u32 = 1_000;

/// What the deadline rules need to know of an incident.
fn deadline_input(incident: &Incident) -> DeadlineInput {
    DeadlineInput {
        detected_at: incident.detected_at,
        classified_at: incident.major_since.unwrap_or(incident.detected_at),
        initial_sent: incident.reports_sent.initial,
        intermediate_sent: incident.reports_sent.intermediate,
    }
}

impl Engine {
    /// Create a new state directory (it must not exist, or be empty) and open it.
    pub fn init(dir: &Path) -> Result<Engine, StateError> {
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
            if entries.next().is_some() {
                return Err(StateError::NotEmpty {
                    path: dir.display().to_string(),
                });
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let engine = Engine::open(dir)?;
        engine.save_config()?;
        engine.save()?;
        let token = dir.join(crate::token::TOKEN_FILE);
        crate::token::create(&token).map_err(|e| io(&token, e))?;
        Ok(engine)
    }

    /// Open an existing state directory (see [`Engine::init`]).
    pub fn open(dir: &Path) -> Result<Engine, StateError> {
        if !dir.is_dir() {
            return Err(StateError::Missing(dir.display().to_string()));
        }
        let config: EngineConfig = read_json(&dir.join(CONFIG_FILE))?.unwrap_or_default();
        let cluster = dir.join(CLUSTER_FILE);
        let topology = if cluster.exists() {
            Some(Topology::load(&cluster).map_err(|e| StateError::Topology(e.to_string()))?)
        } else {
            None
        };
        let mut tracker: IncidentTracker = read_json(&dir.join(INCIDENTS_FILE))?
            .unwrap_or_else(|| IncidentTracker::new(config.merge));
        tracker.policy = config.merge;
        if let Some(t) = &topology {
            tracker = tracker.with_topology(t);
            config
                .register
                .check(t)
                .map_err(|reason| StateError::Invalid {
                    path: format!("{} (register)", dir.join(CONFIG_FILE).display()),
                    reason,
                })?;
        }
        check_profile(&config).map_err(|reason| StateError::Invalid {
            path: dir.join(CONFIG_FILE).display().to_string(),
            reason,
        })?;
        Ok(Engine {
            dir: dir.to_path_buf(),
            config,
            topology,
            tracker,
        })
    }

    pub fn save(&self) -> Result<(), StateError> {
        write_json(&self.dir.join(INCIDENTS_FILE), &self.tracker)
    }

    pub fn save_config(&self) -> Result<(), StateError> {
        write_json(&self.dir.join(CONFIG_FILE), &self.config)
    }

    /// Install a cluster file into the state directory.
    pub fn set_cluster(&mut self, topology_text: &str) -> Result<(), StateError> {
        let topology = Topology::from_toml_str(topology_text)
            .map_err(|e| StateError::Topology(e.to_string()))?;
        self.config
            .register
            .check(&topology)
            .map_err(|reason| StateError::Invalid {
                path: format!("{} (register)", self.dir.join(CONFIG_FILE).display()),
                reason,
            })?;
        let path = self.dir.join(CLUSTER_FILE);
        write_atomic(&path, topology_text.as_bytes())?;
        self.tracker = std::mem::take(&mut self.tracker).with_topology(&topology);
        self.audit(
            Utc::now(),
            "register",
            &topology.name,
            serde_json::to_value(crate::register::build(&topology, &self.config.register))
                .unwrap_or_default(),
        )?;
        self.topology = Some(topology);
        Ok(())
    }

    fn audit_log(&self) -> Result<AuditLog<Box<dyn AuditSigner>>, StateError> {
        let audit_dir = self.dir.join(AUDIT_DIR);
        let legacy = audit_dir.join(crate::audit::PUBKEY_FILE).exists()
            && crate::audit::read_header(&audit_dir)?.0 == crate::audit::ALG_ED25519;
        let signer: Box<dyn AuditSigner> = if legacy {
            Box::new(Ed25519Signer::load_or_create(
                &self.dir.join(LEGACY_ED25519_KEY_FILE),
            )?)
        } else {
            Box::new(HybridSigner::load_or_create(&self.dir.join(KEY_FILE))?)
        };
        Ok(AuditLog::open(&audit_dir, signer)?)
    }

    /// Append one audit entry.
    pub fn audit(
        &self,
        at: DateTime<Utc>,
        kind: &str,
        subject: &str,
        payload: serde_json::Value,
    ) -> Result<u64, StateError> {
        Ok(self.audit_log()?.append(at, kind, subject, payload)?)
    }

    /// Refuse events the cluster cannot have sent: a time out of range, or (with a cluster
    /// installed) a domain or replica it does not have. Checked for the whole stream before
    /// any event is applied.
    pub fn check_events(&self, events: &[HealthEvent]) -> Result<(), StateError> {
        for (i, event) in events.iter().enumerate() {
            let bad = |reason: String| StateError::Event {
                event_id: event.event_id.clone(),
                line: i + 1,
                reason,
            };
            deadlines::check_time("at", event.at).map_err(|e| bad(e.to_string()))?;
            let Some(t) = &self.topology else { continue };
            if let Some(d) = &event.domain {
                if !t.domains.iter().any(|x| &x.name == d) {
                    return Err(bad(format!("domain {d:?} is not in cluster {:?}", t.name)));
                }
            }
            if let Some(r) = event.replica {
                if r >= t.n() {
                    return Err(bad(format!(
                        "replica {r} is not in cluster {:?} (ids 0 to {})",
                        t.name,
                        t.n() - 1
                    )));
                }
            }
        }
        Ok(())
    }

    /// Feed health events; every incident change is audited; state saved. An event id seen
    /// before is reported as a duplicate and changes nothing (ingest is idempotent).
    pub fn ingest(&mut self, events: &[HealthEvent]) -> Result<Vec<Ingested>, StateError> {
        self.check_events(events)?;
        let mut log = self.audit_log()?;
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let outcome = self.tracker.ingest(event)?;
            let subject = match &outcome {
                Ingested::Opened(id)
                | Ingested::Merged(id)
                | Ingested::Recovered(id)
                | Ingested::ConditionEnded(id) => id.clone(),
                Ingested::Unmatched => "-".into(),
                Ingested::Duplicate => {
                    outcomes.push(outcome);
                    continue;
                }
            };
            log.append(
                event.at,
                "incident",
                &subject,
                serde_json::json!({"outcome": outcome, "event": event}),
            )?;
            outcomes.push(outcome);
        }
        self.save()?;
        Ok(outcomes)
    }

    pub fn set_facts(
        &mut self,
        id: &str,
        facts: OperatorFacts,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.tracker.set_facts(id, facts.clone())?;
        self.audit(
            at,
            "incident",
            id,
            serde_json::json!({"operator_facts": facts}),
        )?;
        self.save()
    }

    pub fn classify(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<crate::classify::Classification, StateError> {
        deadlines::check_time("at", at).map_err(|e| StateError::Invalid {
            path: id.to_string(),
            reason: e.to_string(),
        })?;
        let c = self.tracker.classify(id, at)?;
        self.audit(
            at,
            "classification",
            id,
            serde_json::to_value(&c).unwrap_or_default(),
        )?;
        self.save()?;
        Ok(c)
    }

    /// Record that a report was submitted.
    pub fn mark_sent(
        &mut self,
        id: &str,
        stage: Stage,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let incident = self.tracker.get_mut(id)?;
        incident.check_after_detection(&format!("{} sent time", stage.name()), at)?;
        deadlines::check_time("at", at).map_err(|e| StateError::Invalid {
            path: id.to_string(),
            reason: e.to_string(),
        })?;
        if let (Stage::IntermediateReport, Some(initial)) = (stage, incident.reports_sent.initial) {
            if at < initial {
                return Err(StateError::Invalid {
                    path: id.to_string(),
                    reason: format!(
                        "intermediate report sent at {} precedes the initial notification sent at {}",
                        deadlines::rfc3339(at),
                        deadlines::rfc3339(initial)
                    ),
                });
            }
        }
        if stage == Stage::MajorIncidentReclassifiedAsNonMajor {
            crate::report::reclassification_allowed(incident)?;
        }
        match stage {
            Stage::InitialNotification => incident.reports_sent.initial = Some(at),
            Stage::IntermediateReport => incident.reports_sent.intermediate = Some(at),
            Stage::FinalReport => {
                incident.reports_sent.final_report = Some(at);
                incident.status = crate::incident::Status::Closed;
            }
            Stage::MajorIncidentReclassifiedAsNonMajor => {
                incident.status = crate::incident::Status::Closed
            }
        }
        self.audit(at, "report", id, serde_json::json!({"sent": stage.name()}))?;
        self.save()
    }

    /// The time limits of a major incident (None for a non-major one).
    pub fn deadlines(
        &self,
        incident: &Incident,
    ) -> Option<Result<Deadlines, deadlines::DeadlineError>> {
        let classified = incident.major_since?;
        let input = DeadlineInput {
            detected_at: incident.detected_at,
            classified_at: classified,
            initial_sent: incident.reports_sent.initial,
            intermediate_sent: incident.reports_sent.intermediate,
        };
        Some(deadlines::compute(&input, &self.config.reporting))
    }

    /// Reports of a major incident that fall due within `window_minutes` after `now`.
    pub fn coming_due(
        &self,
        incident: &Incident,
        now: DateTime<Utc>,
        window_minutes: i64,
    ) -> Vec<DueAlert> {
        let Some(Ok(d)) = self.deadlines(incident) else {
            return Vec::new();
        };
        let input = deadline_input(incident);
        let final_sent = incident.reports_sent.final_report;
        deadlines::coming_due(&d, &input, final_sent, now, window_minutes)
    }

    /// Overdue alerts of a major incident at `now`.
    pub fn overdue(&self, incident: &Incident, now: DateTime<Utc>) -> Vec<OverdueAlert> {
        let Some(Ok(d)) = self.deadlines(incident) else {
            return Vec::new();
        };
        let input = deadline_input(incident);
        let mut alerts = deadlines::overdue(&d, &input, incident.reports_sent.final_report, now);
        // Art. 5(2) of 2025/301: an updated intermediate report without undue delay, and in any
        // case when regular activities have been recovered.
        if let (Some(recovered), Some(sent)) =
            (incident.recovered_at, incident.reports_sent.intermediate)
        {
            if sent < recovered && incident.reports_sent.final_report.is_none() {
                alerts.push(OverdueAlert {
                    report: "updated intermediate report".into(),
                    due: deadlines::rfc3339(recovered),
                    overdue_by_minutes: (now - recovered).num_minutes().max(0),
                    message: format!(
                        "regular activities recovered at {} after the last intermediate report: send an updated intermediate report without undue delay (Art. 5(2) of 2025/301)",
                        deadlines::rfc3339(recovered)
                    ),
                });
            }
        }
        alerts
    }

    pub fn recurring(&self, now: DateTime<Utc>) -> Vec<RecurringGroup> {
        recurring_groups(&self.tracker.incidents, now, self.config.recurring_exempt)
    }

    /// Store a resilience-test evidence record under a name no other record has (time stamp
    /// and a sequence number); returns its file name. A record is never overwritten.
    pub fn record_test(&self, evidence: &Evidence) -> Result<String, StateError> {
        let dir = self.dir.join(TESTS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let stamp = evidence.injection.injected_at.format("%Y%m%dT%H%M%SZ");
        let text = serde_json::to_string_pretty(evidence).map_err(|e| io(&dir, e))?;
        let mut stored = None;
        for seq in 0..TESTS_PER_SECOND_MAX {
            let name = format!("{stamp}-{seq:03}.json");
            if write_new(&dir.join(&name), text.as_bytes())? {
                stored = Some(name);
                break;
            }
        }
        let name = stored.ok_or_else(|| StateError::Invalid {
            path: dir.display().to_string(),
            reason: format!("more than {TESTS_PER_SECOND_MAX} evidence records at {stamp}"),
        })?;
        self.audit(
            evidence.injection.injected_at,
            "test",
            &name,
            serde_json::to_value(evidence).unwrap_or_default(),
        )?;
        Ok(name)
    }

    /// The latest evidence records, newest first.
    pub fn tests(&self) -> Vec<Evidence> {
        let dir = self.dir.join(TESTS_DIR);
        let Ok(read) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names.reverse();
        names
            .into_iter()
            .take(TESTS_SHOWN_MAX)
            .filter_map(|p| read_json::<Evidence>(&p).ok().flatten())
            .collect()
    }
}

/// The entity profile's LEIs must carry valid ISO 17442 check digits.
fn check_profile(config: &EngineConfig) -> Result<(), String> {
    let Some(p) = &config.profile else {
        return Ok(());
    };
    let leis = [
        ("profile.lei", Some(&p.lei)),
        ("profile.affected_lei", p.affected_lei.as_ref()),
        ("profile.parent_lei", p.parent_lei.as_ref()),
    ];
    for (field, lei) in leis {
        if let Some(lei) = lei {
            crate::identifiers::check_lei(lei).map_err(|e| format!("{field}: {e}"))?;
        }
    }
    Ok(())
}
