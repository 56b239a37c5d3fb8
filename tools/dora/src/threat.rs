//! Significant cyber threats: Art. 10 of Delegated Regulation (EU) 2024/1772 (for DORA
//! Art. 18(2)); their notification is voluntary (DORA Art. 19(2)), with the template of
//! Annex III/IV of Implementing Regulation (EU) 2025/302 (not generated here).
//!
//! A cyber threat is significant when ALL of:
//! (a) if materialised it could affect (or could have affected) critical or important
//!     functions of the entity, or other financial entities, third-party providers, clients
//!     or financial counterparts;
//! (b) it has a high probability of materialisation, taking into account at least (i) the
//!     applicable risks including exploitable vulnerabilities, (ii) the capabilities and
//!     intent of threat actors, (iii) the persistence of the threat and accrued knowledge of
//!     incidents;
//! (c) if materialised it could meet ANY of: the criticality of services (Art. 6), the
//!     threshold of Art. 9(1), the threshold of Art. 9(4).
//!
//! An attempted malicious access that did not succeed is assessed here (it meets no
//! classification criterion).

use serde::{Deserialize, Serialize};

/// The operator's assessment of one cyber threat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreatInput {
    pub description: String,
    /// (a) could affect critical or important functions of the entity.
    pub could_affect_critical_functions: bool,
    /// (a) could affect other financial entities, third-party providers, clients or counterparts.
    pub could_affect_others: bool,
    /// (b) the entity's conclusion: high probability of materialisation.
    pub high_probability: bool,
    /// (b)(i)-(iii): what the conclusion rests on (each must be addressed when (b) is claimed).
    #[serde(default)]
    pub vulnerabilities: Option<String>,
    #[serde(default)]
    pub actor_capabilities_and_intent: Option<String>,
    #[serde(default)]
    pub persistence_and_past_incidents: Option<String>,
    /// (c)(i) could meet the criticality of services (Art. 6).
    pub could_meet_critical_services: bool,
    /// (c)(ii) could meet the threshold of Art. 9(1) (clients, counterparts, transactions).
    pub could_meet_clients_threshold: bool,
    /// (c)(iii) could meet the threshold of Art. 9(4) (two or more Member States).
    pub could_meet_geographical_threshold: bool,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatAssessment {
    pub significant: bool,
    pub condition_a: bool,
    pub condition_b: bool,
    pub condition_c: bool,
    /// Elements of (b) left unaddressed although (b) is claimed.
    pub missing_probability_elements: Vec<String>,
    pub explanation: String,
    pub notification: String,
}

/// Assess a threat under Art. 10 of Delegated Regulation (EU) 2024/1772.
pub fn assess(input: &ThreatInput) -> ThreatAssessment {
    let a = input.could_affect_critical_functions || input.could_affect_others;
    let mut missing = Vec::new();
    for (name, value) in [
        ("vulnerabilities (Art. 10(b)(i))", &input.vulnerabilities),
        (
            "actor_capabilities_and_intent (Art. 10(b)(ii))",
            &input.actor_capabilities_and_intent,
        ),
        (
            "persistence_and_past_incidents (Art. 10(b)(iii))",
            &input.persistence_and_past_incidents,
        ),
    ] {
        if value.as_ref().is_none_or(|v| v.trim().is_empty()) {
            missing.push(name.to_string());
        }
    }
    let b = input.high_probability;
    let c = input.could_meet_critical_services
        || input.could_meet_clients_threshold
        || input.could_meet_geographical_threshold;
    let significant = a && b && c;
    let yes = |x: bool| if x { "met" } else { "not met" };
    let explanation = format!(
        "Art. 10 of Delegated Regulation (EU) 2024/1772: (a) possible effect on critical functions or on others {}; (b) high probability of materialisation {}; (c) could meet Art. 6, Art. 9(1) or Art. 9(4) {}. {}",
        yes(a),
        yes(b),
        yes(c),
        if significant { "All three conditions hold: a significant cyber threat." } else { "Not all conditions hold: not a significant cyber threat; keep the record." }
    );
    let notification = if significant {
        "Notification to the competent authority is voluntary (DORA Art. 19(2)); if notified, inform potentially affected clients of protection measures (DORA Art. 19(3)).".into()
    } else {
        "No notification.".into()
    };
    ThreatAssessment {
        significant,
        condition_a: a,
        condition_b: b,
        condition_c: c,
        missing_probability_elements: if b { missing } else { Vec::new() },
        explanation,
        notification,
    }
}
