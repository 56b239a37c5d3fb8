//! Significant cyber threats: Art. 10 of Delegated Regulation (EU) 2024/1772, all three
//! conditions required; condition (c) met by any of its three limbs.

use ccbft_dora::threat::{assess, ThreatInput};

fn input(a_critical: bool, a_others: bool, b: bool, c: [bool; 3]) -> ThreatInput {
    ThreatInput {
        description: "credential-stuffing campaign against the client API".into(),
        could_affect_critical_functions: a_critical,
        could_affect_others: a_others,
        high_probability: b,
        vulnerabilities: Some("client API rate limits per key only".into()),
        actor_capabilities_and_intent: Some("botnet observed against two peer banks".into()),
        persistence_and_past_incidents: None,
        could_meet_critical_services: c[0],
        could_meet_clients_threshold: c[1],
        could_meet_geographical_threshold: c[2],
    }
}

#[test]
fn all_conditions_table() {
    let cases = [
        // (a critical, a others, b, c limbs, significant)
        (true, false, true, [true, false, false], true),
        (false, true, true, [false, true, false], true),
        (true, false, true, [false, false, true], true),
        (false, false, true, [true, true, true], false),
        (true, true, false, [true, true, true], false),
        (true, true, true, [false, false, false], false),
    ];
    for (i, (ac, ao, b, c, significant)) in cases.into_iter().enumerate() {
        let r = assess(&input(ac, ao, b, c));
        assert_eq!(r.significant, significant, "case {i}: {}", r.explanation);
        assert!(r.explanation.contains("Art. 10"));
        if r.significant {
            assert!(r.notification.contains("voluntary"));
        }
    }
    let r = assess(&input(true, false, true, [true, false, false]));
    assert_eq!(
        r.missing_probability_elements.len(),
        1,
        "persistence not addressed"
    );
    assert!(r.missing_probability_elements[0].contains("(b)(iii)"));
}
