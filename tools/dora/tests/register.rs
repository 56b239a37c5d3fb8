//! Register of information and concentration risk from cluster files.

use ccbft_core::topology::Topology;
use ccbft_dora::register::{build, concentration, propose_placement, RegisterConfig};
use std::collections::BTreeMap;
use std::path::Path;

fn example(name: &str) -> Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    Topology::load(&path).expect("example cluster loads")
}

/// An independent cluster file with the given replicas per provider, one domain each.
fn cluster_with(counts: &BTreeMap<String, u32>) -> Topology {
    let mut text = String::from("[cluster]\nname = \"check\"\n");
    for p in counts.keys() {
        text += &format!("[[domains]]\nname = \"{p}/r1\"\n");
    }
    let mut id = 0;
    for (p, c) in counts {
        for _ in 0..*c {
            text += &format!(
                "[[replicas]]\nid = {id}\ndomain = \"{p}/r1\"\naddress = \"127.0.0.1:{}\"\n",
                7000 + id
            );
            id += 1;
        }
    }
    Topology::from_toml_str(&text).expect("valid")
}

#[test]
fn three_clouds_losing_aws_stops_the_global_tier() {
    let topology = example("three-clouds.toml");
    let c = concentration(&topology);
    assert!(!c.survives_any_provider_loss);
    let aws = c.losses.iter().find(|l| l.provider == "aws").unwrap();
    assert_eq!((aws.replicas, aws.remaining, aws.quorum), (3, 4, 5));
    assert!(!aws.global_live);
    assert!(
        aws.arithmetic.contains("7 - 3 = 4") && aws.arithmetic.contains("4 < quorum q = 5"),
        "{}",
        aws.arithmetic
    );
    // Said plainly, first.
    assert!(
        c.summary[0].starts_with("Losing aws (3 of 7 replicas) stops the global tier"),
        "{}",
        c.summary[0]
    );
    for other in ["azure", "gcp"] {
        let l = c.losses.iter().find(|l| l.provider == other).unwrap();
        assert!(l.global_live, "{other} loss keeps liveness");
    }
    // HHI from the shares 3/7, 2/7, 2/7.
    let expected: f64 = [3.0f64, 2.0, 2.0]
        .iter()
        .map(|r| (100.0 * r / 7.0).powi(2))
        .sum();
    assert!(
        (c.hhi_providers - expected).abs() < 0.01,
        "{} vs {expected}",
        c.hhi_providers
    );
    // Local tiers of two replicas tolerate nothing: warned.
    assert!(c
        .summary
        .iter()
        .any(|s| s.contains("azure/westeurope") && s.contains("tolerates no failure")));
}

#[test]
fn three_clouds_proposal_is_minimal_and_survives() {
    let topology = example("three-clouds.toml");
    let c = concentration(&topology);
    let best = c.proposal.expect("a proposal");
    // No placement of 7 replicas over these 3 providers survives (3 x (n - q) = 6 < 7), and
    // one relocation to a fourth provider is enough.
    assert_eq!(best.changes, 1, "{}", best.explanation);
    assert_eq!(best.moves.len(), 1);
    assert_eq!(best.moves[0].from_domain, "aws/eu-central-1");
    assert!(
        cluster_with(&best.replicas_per_provider).survives_any_provider_loss(),
        "{:?}",
        best.replicas_per_provider
    );
    let same = c.proposal_same_providers.expect("a same-provider proposal");
    assert_eq!(same.new_providers.len(), 0);
    assert_eq!(same.changes, 2, "{}", same.explanation);
    assert_eq!(same.quorum.n, 9);
    assert!(cluster_with(&same.replicas_per_provider).survives_any_provider_loss());
    // Nothing with fewer changes survives: every single relocation among the existing
    // providers, and the placement as is, fail.
    assert!(!topology.survives_any_provider_loss());
    let providers = ["aws", "azure", "gcp"];
    for from in providers {
        for to in providers {
            let mut counts: BTreeMap<String, u32> =
                BTreeMap::from([("aws".into(), 3), ("azure".into(), 2), ("gcp".into(), 2)]);
            if from == to || counts[from] == 0 {
                continue;
            }
            *counts.get_mut(from).unwrap() -= 1;
            *counts.get_mut(to).unwrap() += 1;
            assert!(
                !cluster_with(&counts).survives_any_provider_loss(),
                "{from}->{to}"
            );
        }
    }
}

#[test]
fn resilient_example_survives_without_proposal() {
    let topology = example("three-clouds-resilient.toml");
    let c = concentration(&topology);
    assert!(c.survives_any_provider_loss);
    assert!(c.proposal.is_none());
    assert!(c.losses.iter().all(|l| l.global_live));
    assert!(c
        .summary
        .iter()
        .any(|s| s.contains("survives the loss of any one provider")));
    assert!(propose_placement(&topology, 2).is_some_and(|p| p.changes == 0));
}

#[test]
fn hybrid_fault_model_changes_the_verdict() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/three-clouds.toml"),
    )
    .unwrap();
    let hybrid = format!("{text}\n[fault_model]\nkind = \"hybrid\"\nbyzantine = 0\ncrash = 3\n");
    let topology = Topology::from_toml_str(&hybrid).unwrap();
    let c = concentration(&topology);
    assert!(
        c.survives_any_provider_loss,
        "q = n - u = 4 and aws holds 3"
    );
    assert!(c.quorum_rule.contains("hybrid"));
}

#[test]
fn templates_and_csv() {
    let topology = example("three-clouds.toml");
    let mut config = RegisterConfig {
        entity_lei: Some("5493001KJTIIGC8Y1R12".into()),
        ..Default::default()
    };
    config.providers.insert(
        "aws".into(),
        ccbft_dora::register::ProviderInfo {
            identification_code: Some("AWSLEI00000000000001".into()),
            legal_name: Some("Example Cloud, S.a r.l.".into()),
            headquarters_country: Some("LU".into()),
            ..Default::default()
        },
    );
    let reg = build(&topology, &config);
    let b0501 = reg
        .templates
        .iter()
        .find(|t| t.template == "B_05.01")
        .unwrap();
    assert_eq!(b0501.rows.len(), 3, "one row per provider");
    assert_eq!(b0501.rows[0][0], "AWSLEI00000000000001");
    let csv = b0501.to_csv();
    assert!(csv.starts_with("c0010,c0020,c0050"));
    assert!(
        csv.contains("\"Example Cloud, S.a r.l.\""),
        "commas quoted: {csv}"
    );
    let b0601 = reg
        .templates
        .iter()
        .find(|t| t.template == "B_06.01")
        .unwrap();
    assert_eq!(b0601.rows.len(), 1, "the consensus service is one function");
    assert!(b0601.rows[0][7].contains("aws") && b0601.rows[0][7].contains("gcp"));
    assert!(reg
        .missing_identifiers
        .iter()
        .any(|m| m.starts_with("azure:")));
    assert!(!reg
        .missing_identifiers
        .iter()
        .any(|m| m == "aws: legal name"));
}

/// The register view and the xBRL-CSV package name the same columns with the same codes: a
/// coded column of the view is the package's column of that code (the view once gave
/// B_07.01's c0020 to the function identifier, the package to the provider's code).
#[test]
fn register_view_column_codes_match_the_package() {
    let reg = build(&example("three-clouds.toml"), &RegisterConfig::default());
    for template in &reg.templates {
        let Some((_, package)) = ccbft_dora::xbrl_csv::TEMPLATES
            .iter()
            .find(|(name, _)| *name == template.template)
        else {
            continue;
        };
        for column in template.columns.iter().filter(|c| !c.code.is_empty()) {
            let same = package.iter().find(|c| c.0 == column.code);
            assert_eq!(
                same.map(|c| c.1),
                Some(column.name.as_str()),
                "{} {} in the register view",
                template.template,
                column.code
            );
        }
    }
}
