//! The DORA dashboard: one HTML page rendered from the state directory (health per domain,
//! open incidents with classification and report deadlines, concentration view, last
//! resilience tests), and the same data as JSON. [`crate::server`] serves it over HTTP.

use crate::html::{escape, page, table};
use crate::incident::{Incident, Status};
use crate::register::{concentration, Concentration};
use crate::state::{Engine, StateError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;

pub use crate::server::{Server, ServerConfig};

/// Health of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainHealth {
    pub domain: String,
    pub provider: String,
    pub replicas: u32,
    pub local_quorum: u32,
    pub status: String,
    pub active_conditions: Vec<String>,
}

/// One incident row.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    pub id: String,
    pub status: Status,
    pub detected_at: String,
    pub kinds: Vec<String>,
    pub domains: Vec<String>,
    pub major: Option<bool>,
    pub criteria_met: Vec<String>,
    pub provisional_missing_facts: Vec<String>,
    pub initial_due: Option<String>,
    pub intermediate_due: Option<String>,
    pub final_due: Option<String>,
    pub alerts: Vec<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardState {
    pub generated_at: String,
    pub cluster: Option<String>,
    pub domains: Vec<DomainHealth>,
    pub incidents: Vec<IncidentRow>,
    pub recurring: Vec<String>,
    pub concentration: Option<Concentration>,
    pub tests: Vec<TestRow>,
}

/// One resilience test. A run on the deterministic simulator happens in simulated time: its
/// detection and recovery are offsets from the injection in simulated seconds, not moments
/// in UTC, so for it only the wall-clock time the run started is given as UTC (the simulator
/// maps its time 0, the injection, to that moment) and the absolute times are left out.
#[derive(Debug, Clone, Serialize)]
pub struct TestRow {
    pub target: String,
    /// Ran on the simulator: the durations are simulated seconds.
    pub simulated: bool,
    pub scenario: String,
    /// Wall-clock start of the run (the injection), UTC.
    pub started_at: String,
    /// Absolute detection and recovery times, UTC; only for tests on a live cluster.
    pub detected_at: Option<String>,
    pub recovered_at: Option<String>,
    pub time_to_detect_seconds: Option<f64>,
    pub time_to_recover_seconds: Option<f64>,
    pub transactions_submitted: u64,
    pub transactions_committed: u64,
    pub transactions_lost: u64,
    pub passed: bool,
    pub findings: Vec<String>,
}

/// Was the evidence produced by the simulator? Its target description says so (the
/// simulator target's always starts "deterministic simulator"); records are immutable, so
/// the description is the one mark every stored record carries.
pub fn is_simulated(evidence: &crate::resilience::Evidence) -> bool {
    evidence.target.contains("simulator")
}

fn test_row(e: &crate::resilience::Evidence) -> TestRow {
    let simulated = is_simulated(e);
    let wall = |t: Option<DateTime<Utc>>| t.filter(|_| !simulated).map(crate::deadlines::rfc3339);
    TestRow {
        target: e.target.clone(),
        simulated,
        scenario: e.injection.description.clone(),
        started_at: crate::deadlines::rfc3339(e.injection.injected_at),
        detected_at: wall(e.detected_at),
        recovered_at: wall(e.recovered_at),
        time_to_detect_seconds: e.time_to_detect_seconds,
        time_to_recover_seconds: e.time_to_recover_seconds,
        transactions_submitted: e.transactions_submitted,
        transactions_committed: e.transactions_committed,
        transactions_lost: e.transactions_lost,
        passed: e.passed,
        findings: e.findings.clone(),
    }
}

fn active_conditions(incidents: &[&Incident], domain: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in incidents {
        for c in i.conditions.iter().filter(|c| c.recovered_at.is_none()) {
            if c.domain.as_deref() == Some(domain) || (c.domain.is_none() && c.replica.is_none()) {
                let who = c
                    .replica
                    .map(|r| format!(" (replica {r})"))
                    .unwrap_or_default();
                out.push(format!(
                    "{}{who} since {} [{}]",
                    c.kind.name(),
                    crate::deadlines::rfc3339(c.since),
                    i.id
                ));
            }
        }
    }
    out
}

/// Collect the dashboard data at `now`.
pub fn collect(engine: &Engine, now: DateTime<Utc>) -> DashboardState {
    let open: Vec<&Incident> = engine.tracker.open_incidents().collect();
    let domains = engine
        .topology
        .as_ref()
        .map(|t| {
            (0..t.domains.len())
                .map(|i| {
                    let d = &t.domains[i];
                    let conditions = active_conditions(&open, &d.name);
                    let partitioned = open.iter().any(|i| {
                        i.conditions.iter().any(|c| {
                            c.recovered_at.is_none()
                                && c.kind == crate::health::EventKind::DomainPartition
                                && c.domain.as_deref() == Some(d.name.as_str())
                        })
                    });
                    let status = if partitioned {
                        "down"
                    } else if conditions.is_empty() {
                        "healthy"
                    } else {
                        "degraded"
                    };
                    DomainHealth {
                        domain: d.name.clone(),
                        provider: d.provider.clone(),
                        replicas: t.domain_members(i as u32).len() as u32,
                        local_quorum: t.domain_quorum(i as u32).q,
                        status: status.into(),
                        active_conditions: conditions,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let incidents = open.iter().map(|i| incident_row(engine, i, now)).collect();
    let recurring = engine
        .recurring(now)
        .into_iter()
        .filter(|g| g.major)
        .map(|g| g.explanation)
        .collect();
    DashboardState {
        generated_at: crate::deadlines::rfc3339(now),
        cluster: engine.topology.as_ref().map(|t| t.name.clone()),
        domains,
        incidents,
        recurring,
        concentration: engine.topology.as_ref().map(concentration),
        tests: engine.tests().iter().map(test_row).collect(),
    }
}

fn incident_row(engine: &Engine, i: &Incident, now: DateTime<Utc>) -> IncidentRow {
    let deadlines = engine.deadlines(i).and_then(Result::ok);
    IncidentRow {
        id: i.id.clone(),
        status: i.status,
        detected_at: crate::deadlines::rfc3339(i.detected_at),
        kinds: i.kinds.iter().map(|k| k.name()).collect(),
        domains: i.domains.iter().cloned().collect(),
        major: i.classification.as_ref().map(|c| c.major),
        criteria_met: i
            .classification
            .as_ref()
            .map(|c| {
                c.criteria_met
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        provisional_missing_facts: i.missing_facts.clone(),
        initial_due: deadlines.as_ref().map(|d| d.initial_due.clone()),
        intermediate_due: deadlines.as_ref().map(|d| d.intermediate_due.clone()),
        final_due: deadlines.as_ref().map(|d| d.final_due.clone()),
        alerts: engine
            .overdue(i, now)
            .into_iter()
            .map(|a| {
                let late = crate::deadlines::span(a.overdue_by_minutes);
                if a.message.contains("was sent") {
                    format!("{} sent {late} late", a.report)
                } else {
                    format!("{} OVERDUE by {late}", a.report)
                }
            })
            .collect(),
    }
}

fn due_cell(due: &Option<String>, sent: bool) -> String {
    match (due, sent) {
        (Some(d), true) => format!(
            "<span class=\"ok\">sent</span> <span class=\"muted\">(due {})</span>",
            escape(d)
        ),
        (Some(d), false) => format!("<time>{}</time>", escape(d)),
        (None, _) => "<span class=\"muted\">n/a</span>".into(),
    }
}

/// Render the page.
pub fn render(state: &DashboardState, engine: &Engine) -> String {
    let mut body = String::new();
    body.push_str(&health_section(state));
    body.push_str(&incident_section(state, engine));
    body.push_str(&concentration_section(state));
    body.push_str(&tests_section(state));
    page(
        &format!("CC-BFT DORA dashboard{}", state.cluster.as_ref().map(|c| format!(" - {c}")).unwrap_or_default()),
        &format!("Generated {} UTC. Classification per Delegated Regulation (EU) 2024/1772; deadlines per Delegated Regulation (EU) 2025/301 Art. 5; concentration per DORA Art. 29.", state.generated_at),
        &body,
    )
}

fn health_section(state: &DashboardState) -> String {
    let rows: Vec<Vec<String>> = state
        .domains
        .iter()
        .map(|d| {
            let class = match d.status.as_str() {
                "healthy" => "ok",
                "degraded" => "warn",
                _ => "bad",
            };
            vec![
                escape(&d.domain),
                escape(&d.provider),
                d.replicas.to_string(),
                d.local_quorum.to_string(),
                format!("<span class=\"{class}\">{}</span>", escape(&d.status)),
                escape(&d.active_conditions.join("; ")),
            ]
        })
        .collect();
    let content = if rows.is_empty() {
        "<p class=\"muted\">No cluster file in the state directory.</p>".to_string()
    } else {
        table(
            &[
                "Domain",
                "Provider",
                "Replicas",
                "Local quorum",
                "Health",
                "Active conditions",
            ],
            &rows,
        )
    };
    format!("<section id=\"health\"><h2>Cluster health per domain</h2>{content}</section>")
}

fn incident_section(state: &DashboardState, engine: &Engine) -> String {
    let rows: Vec<Vec<String>> = state
        .incidents
        .iter()
        .map(|r| {
            let sent = engine
                .tracker
                .get(&r.id)
                .map(|i| i.reports_sent.clone())
                .unwrap_or_default();
            let class = match r.major {
                Some(true) => "<span class=\"pill major\">MAJOR</span>".to_string(),
                Some(false) => "<span class=\"pill minor\">not major</span>".to_string(),
                None => "<span class=\"muted\">not classified</span>".to_string(),
            };
            let mut crit = escape(&r.criteria_met.join(", "));
            if !r.provisional_missing_facts.is_empty() {
                crit.push_str(&format!(
                    "<br><span class=\"muted\">provisional, missing: {}</span>",
                    escape(&r.provisional_missing_facts.join(", "))
                ));
            }
            let alerts = if r.alerts.is_empty() {
                String::new()
            } else {
                format!(
                    "<span class=\"bad\">{}</span><br><span class=\"muted\">inform the competent authority with the reasons (Art. 5 of 2025/301)</span>",
                    escape(&r.alerts.join("; "))
                )
            };
            vec![
                format!("<strong>{}</strong>", escape(&r.id)),
                escape(&format!("{:?}", r.status).to_lowercase()),
                escape(&r.detected_at),
                escape(&r.kinds.join(", ")),
                escape(&r.domains.join(", ")),
                class,
                crit,
                due_cell(&r.initial_due, sent.initial.is_some()),
                due_cell(&r.intermediate_due, sent.intermediate.is_some()),
                due_cell(&r.final_due, sent.final_report.is_some()),
                alerts,
            ]
        })
        .collect();
    let mut content = if rows.is_empty() {
        "<p class=\"ok\">No open incidents.</p>".to_string()
    } else {
        table(
            &[
                "Incident",
                "Status",
                "Detected (UTC)",
                "Events",
                "Domains",
                "Classification",
                "Criteria met",
                "Initial due",
                "Intermediate due",
                "Final due",
                "Alerts",
            ],
            &rows,
        )
    };
    for r in &state.recurring {
        content.push_str(&format!("<p class=\"bad\">Recurring: {}</p>", escape(r)));
    }
    format!(
        "<section id=\"incidents\"><h2>Open incidents and report deadlines</h2>{content}</section>"
    )
}

fn concentration_section(state: &DashboardState) -> String {
    let Some(c) = &state.concentration else {
        return "<section id=\"concentration\"><h2>Concentration risk</h2><p class=\"muted\">No cluster file.</p></section>".into();
    };
    let shares: Vec<Vec<String>> = c
        .providers
        .iter()
        .map(|s| {
            vec![
                escape(&s.name),
                s.replicas.to_string(),
                format!("{:.2}%", s.share_percent),
            ]
        })
        .collect();
    let losses: Vec<Vec<String>> = c
        .losses
        .iter()
        .map(|l| {
            let class = if l.global_live { "ok" } else { "bad" };
            vec![
                escape(&l.provider),
                format!("{} of {}", l.replicas, c.quorum.n),
                format!("<span class=\"{class}\">{}</span>", escape(&l.verdict)),
                escape(&l.arithmetic),
            ]
        })
        .collect();
    let summary: String = c
        .summary
        .iter()
        .map(|s| format!("<li>{}</li>", escape(s)))
        .collect();
    format!(
        "<section id=\"concentration\"><h2>Concentration risk (DORA Art. 29)</h2>{}<p>HHI of provider shares: <strong>{:.0}</strong>; of region shares: {:.0}. {}</p>{}<ul>{summary}</ul></section>",
        table(&["Provider", "Replicas", "Share"], &shares),
        c.hhi_providers,
        c.hhi_regions,
        escape(&c.quorum_rule),
        table(&["Provider lost", "Replicas", "Global tier", "Quorum arithmetic"], &losses),
    )
}

fn tests_section(state: &DashboardState) -> String {
    let rows: Vec<Vec<String>> = state.tests.iter().map(test_cells).collect();
    let content = if rows.is_empty() {
        "<p class=\"muted\">No resilience test recorded yet.</p>".to_string()
    } else {
        table(
            &[
                "Run started (UTC)",
                "Target",
                "Scenario",
                "Time to detect",
                "Time to recover",
                "Submitted / committed / lost",
                "Result",
            ],
            &rows,
        )
    };
    let note = if state.tests.iter().any(|t| t.simulated) {
        "<p class=\"muted\">Tests marked <span class=\"pill sim\">simulator</span> ran on the deterministic simulator, not on the production cluster: their times to detect and to recover are simulated seconds from the injection (exact for the seed), and only the start of the run is a real time.</p>"
    } else {
        ""
    };
    format!(
        "<section id=\"tests\"><h2>Last resilience tests (DORA Art. 24-25)</h2>{note}{content}</section>"
    )
}

fn test_cells(t: &TestRow) -> Vec<String> {
    let verdict = if t.passed {
        "<span class=\"ok\">passed</span>"
    } else {
        "<span class=\"bad\">failed</span>"
    };
    let unit = if t.simulated { " s simulated" } else { " s" };
    let seconds = |s: Option<f64>| s.map(|s| format!("{s:.1}{unit}")).unwrap_or("-".into());
    let target = if t.simulated {
        format!(
            "<span class=\"pill sim\">simulator</span> {}",
            escape(&t.target)
        )
    } else {
        escape(&t.target)
    };
    vec![
        escape(&t.started_at),
        target,
        escape(&t.scenario),
        seconds(t.time_to_detect_seconds),
        seconds(t.time_to_recover_seconds),
        format!(
            "{} / {} / {}",
            t.transactions_submitted, t.transactions_committed, t.transactions_lost
        ),
        verdict.to_string(),
    ]
}

/// Render the page for a state directory at `now`.
pub fn render_dir(dir: &Path, now: DateTime<Utc>) -> Result<(String, DashboardState), StateError> {
    let engine = Engine::open(dir)?;
    let state = collect(&engine, now);
    Ok((render(&state, &engine), state))
}
