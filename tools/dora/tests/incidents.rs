//! Incidents from health events: merging, recovery, downtime, recurring incidents
//! (Art. 8(2) of Delegated Regulation (EU) 2024/1772), and the health-event schema.

mod common;
use ccbft_dora::chrono::{Duration, Months};
use ccbft_dora::classify::{Affected, Reputational};
use ccbft_dora::health::{parse_stream, EventKind, HealthError};
use ccbft_dora::incident::{
    recurring_groups, IncidentTracker, Ingested, MergePolicy, OperatorFacts, Status,
};
use common::{at, event, t0};

#[test]
fn related_events_merge_and_unrelated_ones_do_not() {
    let topology = ccbft_core::topology::Topology::three_clouds();
    let mut tr = IncidentTracker::new(MergePolicy::default()).with_topology(&topology);
    let a = tr
        .ingest(&event("e1", 0, EventKind::ReplicaDown, Some(0), None))
        .unwrap();
    let Ingested::Opened(id) = a else {
        panic!("{a:?}")
    };
    // Same domain (replica 1 is in aws), 5 minutes later: merged.
    assert_eq!(
        tr.ingest(&event("e2", 5, EventKind::ReplicaDown, Some(1), None))
            .unwrap(),
        Ingested::Merged(id.clone())
    );
    // A different domain, no cluster-wide condition: a new incident.
    let b = tr
        .ingest(&event("e3", 6, EventKind::SlaBreach, Some(5), None))
        .unwrap();
    assert!(
        matches!(b, Ingested::Opened(ref other) if *other != id),
        "{b:?}"
    );
    // A cluster-wide commit stall joins the latest related open incident.
    assert!(matches!(
        tr.ingest(&event("e4", 7, EventKind::CommitStall, None, None))
            .unwrap(),
        Ingested::Merged(_)
    ));
    // Same domain but outside the merge window: new incident.
    let c = tr
        .ingest(&event("e5", 120, EventKind::ReplicaDown, Some(2), None))
        .unwrap();
    assert!(matches!(c, Ingested::Opened(_)), "{c:?}");
    assert_eq!(tr.incidents.len(), 3);
    let first = tr.get(&id).unwrap();
    assert_eq!(
        first.domains.iter().cloned().collect::<Vec<_>>(),
        vec!["aws/eu-central-1".to_string()]
    );
    assert_eq!(first.event_count, 2);
}

#[test]
fn recovery_closes_conditions_and_downtime_is_measured() {
    let mut tr = IncidentTracker::new(MergePolicy::default());
    let Ingested::Opened(id) = tr
        .ingest(&event("s", 0, EventKind::CommitStall, None, None))
        .unwrap()
    else {
        panic!()
    };
    tr.ingest(&event(
        "p",
        10,
        EventKind::DomainPartition,
        None,
        Some("gcp/europe-west3"),
    ))
    .unwrap();
    assert_eq!(
        tr.ingest(&event(
            "r1",
            100,
            EventKind::PartitionHealed,
            None,
            Some("gcp/europe-west3")
        ))
        .unwrap(),
        Ingested::ConditionEnded(id.clone())
    );
    assert_eq!(
        tr.ingest(&event("r2", 150, EventKind::CommitResumed, None, None))
            .unwrap(),
        Ingested::Recovered(id.clone())
    );
    assert_eq!(
        tr.ingest(&event("r3", 160, EventKind::ReplicaUp, Some(4), None))
            .unwrap(),
        Ingested::Unmatched
    );
    let inc = tr.get(&id).unwrap();
    assert_eq!(inc.status, Status::Recovered);
    assert_eq!(inc.recovered_at, Some(at(150)));
    // Stall 0-150 and partition 10-100 overlap: 150 minutes of downtime.
    assert_eq!(inc.downtime(at(500)), Duration::minutes(150));
    let (input, missing) = inc.classification_input(at(500));
    assert!((input.service_downtime_hours - 2.5).abs() < 1e-9);
    assert!(
        input.critical_services_affected,
        "an outage of the ledger affects a critical function"
    );
    assert!(missing.contains(&"clients".to_string()));
    // 2.5 h of downtime plus two Member States: major.
    tr.set_facts(
        &id,
        OperatorFacts {
            member_states: Some(vec!["DE".into(), "FR".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    let c = tr.classify(&id, at(200)).unwrap();
    assert!(c.major, "{}", c.explanation);
    assert_eq!(tr.get(&id).unwrap().major_since, Some(at(200)));
}

#[test]
fn a_state_divergence_stays_open_until_an_operator_closes_it() {
    let mut tr = IncidentTracker::new(MergePolicy::default());
    let Ingested::Opened(id) = tr
        .ingest(&event("d", 0, EventKind::StateDivergence, Some(3), None))
        .unwrap()
    else {
        panic!()
    };
    tr.ingest(&event("s", 1, EventKind::CommitStall, None, None))
        .unwrap();
    assert_eq!(
        tr.ingest(&event("r", 30, EventKind::CommitResumed, None, None))
            .unwrap(),
        Ingested::ConditionEnded(id.clone()),
        "commits resuming does not end a divergence"
    );
    let inc = tr.get(&id).unwrap();
    assert_ne!(inc.status, Status::Recovered);
    let (input, _) = inc.classification_input(at(60));
    assert!(input.critical_services_affected);
}

fn minor_incident(
    tr: &mut IncidentTracker,
    name: &str,
    start: ccbft_dora::chrono::DateTime<ccbft_dora::chrono::Utc>,
    cause: &str,
) -> String {
    let mut e = event(
        name,
        0,
        EventKind::SlaBreach,
        Some(3),
        Some("azure/westeurope"),
    );
    e.at = start;
    e.root_cause_hint = Some(cause.into());
    let Ingested::Opened(id) = tr.ingest(&e).unwrap() else {
        panic!()
    };
    let mut r = event(
        &format!("{name}-ok"),
        0,
        EventKind::SlaRestored,
        Some(3),
        Some("azure/westeurope"),
    );
    r.at = start + Duration::minutes(30);
    tr.ingest(&r).unwrap();
    tr.set_facts(
        &id,
        OperatorFacts {
            critical_services_affected: Some(true),
            clients: Some(Affected {
                affected: 20_000,
                total: 500_000,
            }),
            economic_impact_eur: Some(40_000.0),
            reputational: Some(vec![]),
            ..Default::default()
        },
    )
    .unwrap();
    let c = tr.classify(&id, start + Duration::hours(1)).unwrap();
    assert!(!c.major, "individually not major: {}", c.explanation);
    id
}

#[test]
fn recurring_incidents_count_as_one_major() {
    let mut tr = IncidentTracker::new(MergePolicy::default());
    let now = t0() + Duration::days(150);
    let a = minor_incident(&mut tr, "a", t0(), "tls-cert-rotation");
    let b = minor_incident(&mut tr, "b", t0() + Duration::days(40), "tls-cert-rotation");
    let c = minor_incident(
        &mut tr,
        "c",
        t0() + Duration::days(120),
        "tls-cert-rotation",
    );
    minor_incident(&mut tr, "d", t0() + Duration::days(60), "disk-full");
    let groups = recurring_groups(&tr.incidents, now, false);
    assert_eq!(groups.len(), 1, "the single disk-full incident is no group");
    let g = &groups[0];
    assert_eq!(g.incident_ids, vec![a, b, c]);
    // 60 000 of 500 000 clients (12% > 10%) and EUR 120 000 > 100 000: two thresholds.
    assert!(g.major, "{}", g.explanation);
    assert!(g.explanation.contains("Art. 8(2)"));
    assert_eq!(g.last_detected_at, t0() + Duration::days(120));
    // Exempt entities (microenterprises, DORA Art. 16(1)): no recurring rule.
    assert!(recurring_groups(&tr.incidents, now, true).is_empty());
    // Seven months later the first one falls out of the 6-month window: 2 left, 8% and
    // EUR 80 000, not major together.
    let later = (t0() + Duration::days(40))
        .checked_add_months(Months::new(6))
        .unwrap()
        - Duration::days(1);
    let groups = recurring_groups(&tr.incidents, later, false);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].incident_ids.len(), 2);
    assert!(!groups[0].major, "{}", groups[0].explanation);
}

#[test]
fn recurring_needs_the_same_root_cause_and_excludes_majors() {
    let mut tr = IncidentTracker::new(MergePolicy::default());
    minor_incident(&mut tr, "a", t0(), "cause-a");
    minor_incident(&mut tr, "b", t0() + Duration::days(1), "cause-b");
    assert!(recurring_groups(&tr.incidents, t0() + Duration::days(2), false).is_empty());
    // The operator's reputational facts do not matter for grouping, only the cause.
    let id = minor_incident(&mut tr, "c", t0() + Duration::days(3), "cause-a");
    tr.set_facts(
        &id,
        OperatorFacts {
            reputational: Some(vec![Reputational::MediaAttention]),
            economic_impact_eur: Some(500_000.0),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(tr.classify(&id, t0() + Duration::days(3)).unwrap().major);
    assert!(
        recurring_groups(&tr.incidents, t0() + Duration::days(4), false).is_empty(),
        "a major incident is not part of a recurring group"
    );
}

#[test]
fn health_event_stream_is_checked_against_the_schema() {
    let good = r#"{"schema":"ccbft.health-event/v1","event_id":"r3:1","at":"2026-03-03T08:00:00+01:00","replica":3,"kind":"replica_down","severity":"critical","metrics":{"missed_heartbeats":5}}

{"schema":"ccbft.health-event/v1","event_id":"r3:2","at":"2026-03-03T08:05:00Z","kind":"equivocation","severity":"critical","evidence":{"offender":4,"message_a":"aa","message_b":"bb"}}"#;
    let events = parse_stream(good).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].at, t0() - Duration::hours(1));
    let bad_kind = r#"{"schema":"ccbft.health-event/v1","event_id":"x","at":"2026-03-03T08:00:00Z","kind":"meteor","severity":"info"}"#;
    let err = parse_stream(bad_kind).unwrap_err();
    assert!(
        matches!(&err, HealthError::Invalid { line: 1, field, .. } if field == "kind"),
        "{err}"
    );
    let missing = r#"{"schema":"ccbft.health-event/v1","event_id":"x","kind":"replica_down","severity":"info"}"#;
    let err = parse_stream(missing).unwrap_err();
    assert!(err.to_string().contains("`at`"), "{err}");
    let extra = r#"{"schema":"ccbft.health-event/v1","event_id":"x","at":"2026-03-03T08:00:00Z","kind":"replica_down","severity":"info","color":"red"}"#;
    assert!(parse_stream(extra)
        .unwrap_err()
        .to_string()
        .contains("color"));
}

#[test]
fn recovery_after_the_intermediate_report_asks_for_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = ccbft_dora::state::Engine::open(dir.path()).unwrap();
    let out = engine
        .ingest(&[event("s", 0, EventKind::CommitStall, None, None)])
        .unwrap();
    let Ingested::Opened(id) = &out[0] else {
        panic!()
    };
    engine
        .set_facts(
            id,
            OperatorFacts {
                member_states: Some(vec!["DE".into(), "IT".into()]),
                ..Default::default()
            },
            at(1),
        )
        .unwrap();
    assert!(engine.classify(id, at(180)).unwrap().major);
    use ccbft_dora::report::Stage;
    engine
        .mark_sent(id, Stage::InitialNotification, at(200))
        .unwrap();
    engine
        .mark_sent(id, Stage::IntermediateReport, at(400))
        .unwrap();
    let before = engine.overdue(engine.tracker.get(id).unwrap(), at(401));
    assert!(before
        .iter()
        .all(|a| a.report != "updated intermediate report"));
    engine
        .ingest(&[event("r", 500, EventKind::CommitResumed, None, None)])
        .unwrap();
    let after = engine.overdue(engine.tracker.get(id).unwrap(), at(520));
    assert!(
        after
            .iter()
            .any(|a| a.report == "updated intermediate report" && a.message.contains("Art. 5(2)")),
        "{after:?}"
    );
}
