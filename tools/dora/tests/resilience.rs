//! Resilience-test evidence through the ResilienceTarget trait. The target here is a
//! scripted test double (it replays a fixed observation): it checks the evidence logic, not
//! a cluster. Real targets (simulator, live cluster) are implemented in core.

mod common;
use ccbft_dora::chrono::NaiveDate;
use ccbft_dora::health::EventKind;
use ccbft_dora::resilience::*;
use common::{at, event};

struct Scripted {
    lost: u64,
    recovers: bool,
    detects: bool,
}

impl ResilienceTarget for Scripted {
    fn describe(&self) -> String {
        "scripted test double".into()
    }
    fn inject(&mut self, scenario: &Scenario) -> Result<Injection, TargetError> {
        Ok(Injection {
            scenario: scenario.clone(),
            description: "stop every aws replica".into(),
            injected_at: at(0),
        })
    }
    fn observe(
        &mut self,
        _: &Injection,
        _: std::time::Duration,
        _: std::time::Duration,
    ) -> Result<Observation, TargetError> {
        // The injector's own record of stopping the replica, at the injection.
        let injected_events = vec![event(
            "inj",
            0,
            EventKind::ReplicaDown,
            Some(0),
            Some("aws/eu-central-1"),
        )];
        let mut events = vec![];
        if self.detects {
            events.push(event(
                "a",
                1,
                EventKind::ReplicaDown,
                Some(0),
                Some("aws/eu-central-1"),
            ));
            events.push(event("b", 2, EventKind::CommitStall, None, None));
            events.push(event("c", 9, EventKind::CommitResumed, None, None));
        }
        Ok(Observation {
            transactions_submitted: 1000,
            transactions_committed: 1000 - self.lost,
            transactions_lost: self.lost,
            health_events: events,
            injected_events,
            healed_at: Some(at(8)),
            recovered_at: self.recovers.then(|| at(10)),
            observed_until: at(20),
        })
    }
}

fn run(target: &mut Scripted) -> Evidence {
    let s = Scenario::parse("provider-outage").unwrap();
    run_scenario(
        target,
        &s,
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(600),
    )
    .unwrap()
}

#[test]
fn evidence_records_detection_recovery_and_incident() {
    let e = run(&mut Scripted {
        lost: 0,
        recovers: true,
        detects: true,
    });
    assert!(e.passed, "{:?}", e.findings);
    assert_eq!(e.time_to_detect_seconds, Some(60.0));
    assert_eq!(e.time_to_recover_seconds, Some(600.0));
    assert_eq!(
        e.incidents_opened.len(),
        1,
        "replica down and stall merge into one incident"
    );
    assert_eq!(e.health_events.len(), 3);
    assert_eq!(e.injected_events.len(), 1);
}

fn observation(health_events: Vec<ccbft_dora::health::HealthEvent>) -> Observation {
    Observation {
        transactions_submitted: 10,
        transactions_committed: 10,
        transactions_lost: 0,
        health_events,
        injected_events: vec![
            event("inj-down", 0, EventKind::ReplicaDown, Some(1), Some("aws")),
            event(
                "inj-partition",
                0,
                EventKind::DomainPartition,
                None,
                Some("aws"),
            ),
            event("inj-up", 3, EventKind::ReplicaUp, Some(1), Some("aws")),
        ],
        healed_at: Some(at(3)),
        recovered_at: Some(at(4)),
        observed_until: at(20),
    }
}

fn injection() -> Injection {
    Injection {
        scenario: Scenario::ReplicaCrashLoop { replica: Some(1) },
        description: "r1 crash loop".into(),
        injected_at: at(0),
    }
}

#[test]
fn detection_is_the_first_derived_event_that_opens_or_updates_an_incident_never_an_injected_one() {
    // (derived events, expected detection in minutes after the injection, expected kind)
    let cases: Vec<(
        Vec<ccbft_dora::health::HealthEvent>,
        Option<i64>,
        Option<EventKind>,
    )> = vec![
        // Only the injector's records: nothing was detected, whatever they say.
        (vec![], None, None),
        // A stall 2 minutes in is the detection, not the injected replica_down at 0.
        (
            vec![event("s", 2, EventKind::CommitStall, Some(3), None)],
            Some(2),
            Some(EventKind::CommitStall),
        ),
        // A recovery opens nothing: the detection is the later problem.
        (
            vec![
                event("r", 1, EventKind::CommitResumed, None, None),
                event("e", 5, EventKind::Equivocation, Some(4), None),
            ],
            Some(5),
            Some(EventKind::Equivocation),
        ),
        // A problem before the injection is not this fault's detection; one after it that
        // updates the same incident is.
        (
            vec![
                event("old", -2, EventKind::CommitStall, Some(3), None),
                event("new", 1, EventKind::CommitStall, Some(5), None),
            ],
            Some(1),
            Some(EventKind::CommitStall),
        ),
        // Given out of order: the earliest derived problem wins.
        (
            vec![
                event("late", 7, EventKind::ViewChangeStorm, None, Some("aws")),
                event("early", 4, EventKind::CommitStall, Some(2), None),
            ],
            Some(4),
            Some(EventKind::CommitStall),
        ),
    ];
    for (i, (events, minutes, kind)) in cases.into_iter().enumerate() {
        let e = evidence_from("scripted".into(), injection(), observation(events));
        assert_eq!(
            e.time_to_detect_seconds,
            minutes.map(|m| (m * 60) as f64),
            "case {i}"
        );
        assert_eq!(e.detected_by.as_ref().map(|d| d.kind), kind, "case {i}");
        assert_eq!(e.detected_at, minutes.map(at), "case {i}");
        if let Some(d) = &e.detected_by {
            assert!(!d.event_id.starts_with("inj"), "case {i}");
            assert!(e.incidents_opened.contains(&d.incident), "case {i}");
        } else {
            assert!(
                e.findings.iter().any(|f| f.contains("detection gap")),
                "case {i}: {:?}",
                e.findings
            );
        }
        // The injector's records are kept in the evidence but open no incident.
        assert_eq!(e.injected_events.len(), 3, "case {i}");
        assert!(e
            .health_events
            .iter()
            .all(|h| !h.event_id.starts_with("inj")));
    }
}

#[test]
fn lost_transactions_fail_the_test() {
    let e = run(&mut Scripted {
        lost: 1,
        recovers: true,
        detects: true,
    });
    assert!(!e.passed);
    assert!(e.findings[0].contains("1 transactions lost"));
}

#[test]
fn no_detection_or_no_recovery_fail_the_test() {
    assert!(
        !run(&mut Scripted {
            lost: 0,
            recovers: true,
            detects: false
        })
        .passed
    );
    assert!(
        !run(&mut Scripted {
            lost: 0,
            recovers: false,
            detects: true
        })
        .passed
    );
}

#[test]
fn scenario_names_parse() {
    for name in Scenario::NAMES {
        assert!(Scenario::parse(name).is_some(), "{name}");
    }
    assert!(Scenario::parse("meteor-strike").is_none());
}

#[test]
fn plan_and_tlpt_problems() {
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    let plan = TestPlan {
        year: 2026,
        critical_functions: vec!["payments".into()],
        tests: vec![PlannedTest {
            test: "provider-outage".into(),
            scope: "payments ordering".into(),
            planned_on: d(2027, 1, 5),
            done_on: None,
            evidence: None,
        }],
    };
    let problems = plan.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("outside 2026"));
    let tlpt = TlptRecord {
        id: "TLPT-2026".into(),
        framework: "TIBER-EU".into(),
        scope: vec!["payments".into()],
        live_production: true,
        control_team: vec!["CISO".into()],
        external_testers: vec!["Red team Ltd".into()],
        threat_intelligence_provider: Some("TI GmbH".into()),
        preparation: Phase {
            start: d(2026, 1, 5),
            end: Some(d(2026, 2, 1)),
            notes: String::new(),
        },
        threat_intelligence: Some(Phase {
            start: d(2026, 2, 2),
            end: Some(d(2026, 3, 1)),
            notes: String::new(),
        }),
        red_team: Some(Phase {
            start: d(2026, 2, 15),
            end: Some(d(2026, 5, 1)),
            notes: String::new(),
        }),
        closure: None,
        findings: vec![],
        attested_on: Some(d(2026, 7, 1)),
    };
    assert_eq!(tlpt.next_due(), d(2029, 7, 1));
    let problems = tlpt.problems();
    assert_eq!(
        problems.len(),
        1,
        "red team starts before threat intelligence ended: {problems:?}"
    );
}
