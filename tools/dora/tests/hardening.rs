//! Evidence integrity of the state directory: each test is a finding of the hardening review
//! (double ingest, same-second tests, times before detection, unknown fields, facts checked
//! like `classify`, events from outside the cluster, explicit `init`).

mod common;

use ccbft_dora::classify::ClassificationInput;
use ccbft_dora::health::EventKind;
use ccbft_dora::incident::{Ingested, OperatorFacts};
use ccbft_dora::report::Stage;
use ccbft_dora::resilience::{evidence_from, Injection, Observation, Scenario};
use ccbft_dora::state::{Engine, StateError};
use common::{at, event};

const THREE_CLOUDS: &str = include_str!("../../../examples/three-clouds.toml");

fn engine(dir: &std::path::Path) -> Engine {
    let mut engine = Engine::init(dir).unwrap();
    engine.set_cluster(THREE_CLOUDS).unwrap();
    engine
}

fn audit_entries(dir: &std::path::Path) -> usize {
    ccbft_dora::audit::verify_dir(&dir.join("audit"))
        .unwrap()
        .entries
}

#[test]
fn ingesting_the_same_events_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let events = vec![
        event("a:1", 0, EventKind::CommitStall, None, None),
        event("a:2", 5, EventKind::ReplicaDown, Some(1), None),
        // The same event twice in one stream.
        event("a:2", 5, EventKind::ReplicaDown, Some(1), None),
    ];
    let first = e.ingest(&events).unwrap();
    assert_eq!(first[2], Ingested::Duplicate);
    let audited = audit_entries(dir.path());
    let again = Engine::open(dir.path()).unwrap().ingest(&events).unwrap();
    assert!(again.iter().all(|o| *o == Ingested::Duplicate), "{again:?}");
    let reopened = Engine::open(dir.path()).unwrap();
    assert_eq!(reopened.tracker.incidents.len(), 1);
    assert_eq!(reopened.tracker.incidents[0].event_count, 2);
    assert_eq!(
        audit_entries(dir.path()),
        audited,
        "duplicates are not audited"
    );
}

fn evidence(injected_minute: i64) -> ccbft_dora::resilience::Evidence {
    let injection = Injection {
        scenario: Scenario::LatencySpike { extra_ms: 200 },
        description: "add 200 ms".into(),
        injected_at: at(injected_minute),
    };
    let observation = Observation {
        transactions_submitted: 10,
        transactions_committed: 10,
        transactions_lost: 0,
        health_events: vec![event(
            "l1",
            injected_minute,
            EventKind::SlaBreach,
            None,
            None,
        )],
        injected_events: vec![],
        healed_at: Some(at(injected_minute + 1)),
        recovered_at: Some(at(injected_minute + 1)),
        observed_until: at(injected_minute + 2),
    };
    evidence_from("scripted".into(), injection, observation)
}

#[test]
fn tests_in_the_same_second_keep_one_record_each() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let before = audit_entries(dir.path());
    let names: Vec<String> = (0..6)
        .map(|_| e.record_test(&evidence(10)).unwrap())
        .collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "{names:?}");
    let files = std::fs::read_dir(dir.path().join("tests")).unwrap().count();
    assert_eq!(files, 6, "no record overwritten");
    assert_eq!(audit_entries(dir.path()), before + 6);
    assert_eq!(e.tests().len(), 6);
}

fn one_incident(dir: &std::path::Path) -> (Engine, String) {
    let mut e = engine(dir);
    let outcome = e
        .ingest(&[event("x:1", 60, EventKind::CommitStall, None, None)])
        .unwrap();
    let Ingested::Opened(id) = &outcome[0] else {
        panic!("{outcome:?}")
    };
    (e, id.clone())
}

#[test]
fn times_before_detection_are_refused_and_deadlines_stay_computable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, id) = one_incident(dir.path());
    let err = e.classify(&id, at(30)).unwrap_err();
    assert!(err.to_string().contains("precedes the detection"), "{err}");
    let err = e
        .mark_sent(&id, Stage::InitialNotification, at(0))
        .unwrap_err();
    assert!(err.to_string().contains("precedes the detection"), "{err}");
    // Facts that make it major, then a classification and reports at valid times.
    let facts: OperatorFacts = serde_json::from_str(
        r#"{"critical_services_affected": true, "clients": {"affected": 900000, "total": 1000000}, "reputational": ["media_attention"]}"#,
    )
    .unwrap();
    e.set_facts(&id, facts, at(61)).unwrap();
    assert!(e.classify(&id, at(70)).unwrap().major);
    e.mark_sent(&id, Stage::InitialNotification, at(80))
        .unwrap();
    let err = e
        .mark_sent(&id, Stage::IntermediateReport, at(75))
        .unwrap_err();
    assert!(err.to_string().contains("precedes the initial"), "{err}");
    let e = Engine::open(dir.path()).unwrap();
    let incident = e.tracker.get(&id).unwrap();
    assert!(matches!(e.deadlines(incident), Some(Ok(_))));
}

#[test]
fn facts_are_checked_like_classify() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, id) = one_incident(dir.path());
    for (text, names) in [
        (
            r#"{"clients": {"affected": 5, "total": 1}}"#,
            "clients.affected",
        ),
        (
            r#"{"financial_counterparts": {"affected": 3, "total": 2}}"#,
            "financial_counterparts.affected",
        ),
        (r#"{"economic_impact_eur": -1.0}"#, "economic_impact_eur"),
        (r#"{"member_states": ["DE", "Narnia"]}"#, "Narnia"),
        (r#"{"occurred_at": "2026-03-03T12:00:00Z"}"#, "occurred_at"),
    ] {
        let facts: OperatorFacts = serde_json::from_str(text).unwrap();
        let err = e.set_facts(&id, facts, at(61)).unwrap_err();
        assert!(err.to_string().contains(names), "{text}: {err}");
    }
    // The same population refused by classify is refused here.
    let mut v = serde_json::json!({
        "critical_services_affected": true, "clients": {"affected": 5, "total": 1},
        "financial_counterparts": {"affected": 0, "total": 1},
        "transactions": {"affected": 0, "daily_average": 1, "value_affected_eur": 0.0, "daily_average_value_eur": 1.0},
        "reputational": [], "duration_hours": 1.0, "service_downtime_hours": 0.0,
        "member_states_affected": 1,
        "data_losses": {"availability": false, "authenticity": false, "integrity": false, "confidentiality": false},
        "malicious_unauthorised_access": false, "economic_impact_eur": 0.0,
        "detected_at": "2026-03-03T08:00:00Z"
    });
    assert!(ClassificationInput::from_value(&v).is_err());
    v["clients"]["affected"] = serde_json::json!(1);
    assert!(ClassificationInput::from_value(&v).is_ok());
}

#[test]
fn unknown_fields_are_refused_in_every_input() {
    // Operator facts, nested.
    let typo = r#"{"data_losses": {"availability": true, "authenticity": false, "integrity": false, "confidentiality": false, "adverse_impactt": true}}"#;
    let err = serde_json::from_str::<OperatorFacts>(typo).unwrap_err();
    assert!(err.to_string().contains("adverse_impactt"), "{err}");
    // The engine configuration, top level and nested.
    for (config, names) in [
        (r#"{"recurring_exempted": true}"#, "recurring_exempted"),
        (
            r#"{"reporting": {"entity_type": "credit_institution", "nis2_essential_or_important": false, "authority_disapplied_extension": false, "time_zone": "Europe/Berlin", "holidays": {"name": "none", "target": false, "extra": []}, "timezone": "UTC"}}"#,
            "timezone",
        ),
        (
            r#"{"merge": {"window_minutes": 30, "window": 5}}"#,
            "window",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        Engine::init(dir.path()).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let err = Engine::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains(names), "{config}: {err}");
    }
}

#[test]
fn events_from_outside_the_cluster_are_refused_before_any_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let good = event("g:1", 0, EventKind::CommitStall, None, None);
    let foreign = event(
        "f:1",
        1,
        EventKind::DomainPartition,
        None,
        Some("oracle/mars-1"),
    );
    let err = e.ingest(&[good.clone(), foreign]).unwrap_err();
    assert!(matches!(err, StateError::Event { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("oracle/mars-1"), "{err}");
    let unknown_replica = event("f:2", 1, EventKind::ReplicaDown, Some(7), None);
    let err = e.ingest(&[unknown_replica]).unwrap_err();
    assert!(err.to_string().contains("replica 7"), "{err}");
    assert!(Engine::open(dir.path())
        .unwrap()
        .tracker
        .incidents
        .is_empty());
    // The good event alone is accepted.
    assert!(matches!(e.ingest(&[good]).unwrap()[0], Ingested::Opened(_)));
}

#[test]
fn a_state_directory_is_created_only_by_init() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("state");
    let err = Engine::open(&missing).err().expect("refused");
    assert!(err.to_string().contains("dora init"), "{err}");
    assert!(!missing.exists(), "open created nothing");
    Engine::init(&missing).unwrap();
    Engine::open(&missing).unwrap();
    // init does not reuse a directory that holds something.
    let err = Engine::init(&missing).err().expect("refused");
    assert!(err.to_string().contains("not an empty directory"), "{err}");
}

#[test]
fn register_configuration_is_checked_against_the_cluster() {
    let topology = ccbft_core::topology::Topology::from_toml_str(THREE_CLOUDS).unwrap();
    for (config, names) in [
        (r#"{"entity_lei": "X"}"#, "entity_lei"),
        (r#"{"entity_lei": "529900T8BM49AURSDO56"}"#, "check digits"),
        (
            r#"{"providers": {"aws": {"headquarters_country": "Narnia"}}}"#,
            "Narnia",
        ),
        (r#"{"providers": {"oracle": {}}}"#, "oracle"),
        (
            r#"{"providers": {"aws": {"identification_code": "12345"}}}"#,
            "providers.aws.identification_code",
        ),
    ] {
        let c: ccbft_dora::register::RegisterConfig = serde_json::from_str(config).unwrap();
        let err = c.check(&topology).unwrap_err();
        assert!(err.contains(names), "{config}: {err}");
    }
    let ok: ccbft_dora::register::RegisterConfig = serde_json::from_str(
        r#"{"entity_lei": "529900T8BM49AURSDO55", "providers": {"aws": {"headquarters_country": "US", "identification_code": "5493001KJTIIGC8Y1R12"}}}"#,
    )
    .unwrap();
    assert_eq!(ok.check(&topology), Ok(()));
}

#[test]
fn times_at_and_past_the_accepted_range() {
    use ccbft_dora::chrono::{DateTime, Utc};
    use ccbft_dora::deadlines::{compute, DeadlineError, DeadlineInput, ReportingConfig};
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let input = |d: &str, c: &str| DeadlineInput {
        detected_at: t(d),
        classified_at: t(c),
        initial_sent: None,
        intermediate_sent: None,
    };
    let config = ReportingConfig::default();
    // The last accepted second: every limit is computed and formatted.
    let last = compute(
        &input("8999-12-31T23:59:59Z", "8999-12-31T23:59:59Z"),
        &config,
    )
    .unwrap();
    assert!(last.final_due.starts_with("9000-02"), "{}", last.final_due);
    for (d, c, field) in [
        (
            "9000-01-01T00:00:00Z",
            "9000-01-01T00:00:00Z",
            "detected-at",
        ),
        (
            "9999-12-31T10:00:00Z",
            "9999-12-31T11:00:00Z",
            "detected-at",
        ),
        (
            "2026-03-03T10:00:00Z",
            "9999-12-31T11:00:00Z",
            "classified-at",
        ),
        (
            "1969-12-31T23:59:59Z",
            "2026-03-03T11:00:00Z",
            "detected-at",
        ),
    ] {
        match compute(&input(d, c), &config) {
            Err(DeadlineError::TimeOutOfRange { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{d} {c}: {other:?}"),
        }
    }
}

#[test]
fn an_idle_connection_does_not_stall_the_dashboard() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    engine(dir.path());
    let server = ccbft_dora::dashboard::Server::start(dir.path(), "127.0.0.1:0").unwrap();
    // A client that connects and sends nothing.
    let _idle = TcpStream::connect(server.addr).unwrap();
    let mut s = TcpStream::connect(server.addr).unwrap();
    // Well under the server's header timeout, which is how long the idle client could hold
    // a server that serves one connection at a time.
    let header_timeout = ccbft_dora::dashboard::ServerConfig::default().header_read_timeout;
    let bound = header_timeout / 2;
    s.set_read_timeout(Some(bound)).unwrap();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .expect("answered while another connection is idle");
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    drop(_idle);
    server.stop();
}

#[test]
fn the_dashboard_says_a_test_ran_on_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut evidence = evidence(10);
    evidence.target = "deterministic simulator, seed 7".into();
    e.record_test(&evidence).unwrap();
    let (html, _) = ccbft_dora::dashboard::render_dir(dir.path(), at(20)).unwrap();
    assert!(html.contains("deterministic simulator, seed 7"));
    assert!(html.contains("ran on the deterministic simulator, not on the production cluster"));
    assert!(html.contains("<span class=\"pill sim\">simulator</span>"));
}
