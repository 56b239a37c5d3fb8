use super::*;
use proptest::prelude::*;

/// Table of (n, f, q) for classic BFT sizing (DESIGN.md: q = ceil((n+f+1)/2)).
const BYZANTINE_TABLE: &[(u32, u32, u32)] = &[
    (1, 0, 1),
    (2, 0, 2),
    (3, 0, 2),
    (4, 1, 3),
    (5, 1, 4),
    (6, 1, 4),
    (7, 2, 5),
    (9, 2, 6),
    (10, 3, 7),
    (21, 6, 14),
    (49, 16, 33),
];

#[test]
fn byzantine_quorum_table() {
    for &(n, f, q) in BYZANTINE_TABLE {
        let quorum = Quorum::byzantine(n);
        assert_eq!((quorum.f, quorum.q, quorum.u), (f, q, n - q), "n = {n}");
    }
}

#[test]
fn hybrid_quorum_is_n_minus_u() {
    let quorum = Quorum::hybrid(7, 1, 2);
    assert_eq!((quorum.q, quorum.f, quorum.u), (5, 1, 2));
    let quorum = Quorum::hybrid(7, 0, 3);
    assert_eq!(quorum.q, 4);
}

proptest! {
    #[test]
    fn quorums_intersect_in_an_honest_replica(n in 1u32..400) {
        let quorum = Quorum::byzantine(n);
        prop_assert!(n > 3 * quorum.f);
        prop_assert!(2 * quorum.q > n + quorum.f);
        // Liveness: the honest replicas alone form a quorum.
        prop_assert!(n - quorum.f >= quorum.q);
    }

    #[test]
    fn hybrid_quorums_intersect(r in 0u32..20, u in 0u32..20, extra in 0u32..10) {
        let n = 2 * u + r + 1 + extra;
        let quorum = Quorum::hybrid(n, r, u);
        prop_assert!(2 * quorum.q > n + r);
        prop_assert_eq!(quorum.q + u, n);
    }

    #[test]
    fn synthetic_topologies_are_valid(n in 4u32..60, d in 1u32..6) {
        let topology = Topology::synthetic(n, d, 1).unwrap();
        prop_assert_eq!(topology.n(), n);
        let total: usize = (0..topology.domains.len() as u32)
            .map(|i| topology.domain_members(i).len())
            .sum();
        prop_assert_eq!(total as u32, n);
        for loss in topology.provider_losses() {
            prop_assert_eq!(loss.global_live, n - loss.replicas >= topology.quorum().q);
        }
    }
}

#[test]
fn three_clouds_example_does_not_survive_losing_aws() {
    let topology = Topology::three_clouds();
    assert_eq!(topology.n(), 7);
    assert_eq!(topology.quorum().q, 5);
    let losses = topology.provider_losses();
    let aws = losses.iter().find(|l| l.provider == "aws").unwrap();
    assert_eq!(
        (aws.replicas, aws.remaining, aws.global_live),
        (3, 4, false)
    );
    let azure = losses.iter().find(|l| l.provider == "azure").unwrap();
    assert!(azure.global_live);
    assert!(!topology.survives_any_provider_loss());
    assert_eq!(topology.domain_quorum(0).q, 2);
    assert_eq!(topology.rtt_between_us(0, 3), 22_000);
}

#[test]
fn resilient_example_survives_any_provider_loss() {
    let text = include_str!("../../../examples/three-clouds-resilient.toml");
    let topology = Topology::from_toml_str(text).unwrap();
    assert!(topology.survives_any_provider_loss());
}

const HEADER: &str = "[cluster]\nname = \"t\"\n[[domains]]\nname = \"aws/r1\"\n";

fn replicas(count: u32, domain: &str) -> String {
    (0..count)
        .map(|i| {
            format!(
                "[[replicas]]\nid = {i}\ndomain = \"{domain}\"\naddress = \"127.0.0.1:{}\"\n",
                7000 + i
            )
        })
        .collect()
}

#[test]
fn invalid_files_give_named_errors() {
    let four = replicas(4, "aws/r1");
    let cases: Vec<(String, TopologyError)> = vec![
        (
            format!("{HEADER}{}", replicas(3, "aws/r1")),
            TopologyError::TooFewReplicas { n: 3 },
        ),
        (
            format!("{HEADER}{four}[[replicas]]\nid = 2\ndomain = \"aws/r1\"\naddress = \"x\"\n"),
            TopologyError::DuplicateReplica(2),
        ),
        (
            // Ids that skip numbers (0, 1, 3, 5): refused everywhere by one rule.
            format!(
                "{HEADER}{}[[replicas]]\nid = 3\ndomain = \"aws/r1\"\naddress = \"127.0.0.1:7003\"\n[[replicas]]\nid = 5\ndomain = \"aws/r1\"\naddress = \"127.0.0.1:7005\"\n",
                replicas(2, "aws/r1")
            ),
            TopologyError::SparseReplicaIds { missing: 2 },
        ),
        (
            // An id a signer bitmap cannot hold.
            format!(
                "{HEADER}{}[[replicas]]\nid = 256\ndomain = \"aws/r1\"\naddress = \"127.0.0.1:7256\"\n",
                replicas(4, "aws/r1")
            ),
            TopologyError::SparseReplicaIds { missing: 4 },
        ),
        (
            format!("{HEADER}{four}[[replicas]]\nid = 4\ndomain = \"aws/r1\"\naddress = \"not an address\"\n"),
            TopologyError::BadAddress {
                replica: 4,
                address: "not an address".into(),
            },
        ),
        (
            format!("{HEADER}{four}[[replicas]]\nid = 4\ndomain = \"aws/r1\"\naddress = \"127.0.0.1:7001\"\n"),
            TopologyError::DuplicateAddress {
                first: 1,
                second: 4,
                address: "127.0.0.1:7001".into(),
            },
        ),
        (
            format!("{HEADER}{four}[[replicas]]\nid = 4\ndomain = \"aws/r1\"\naddress = \"127.0.0.1:7004\"\ncontrol_address = \"localhost\"\n"),
            TopologyError::BadAddress {
                replica: 4,
                address: "localhost".into(),
            },
        ),
        (
            format!("{HEADER}{four}[[links]]\na = \"aws/r1\"\nb = \"aws/r1\"\nrtt_ms = 5.0\n"),
            TopologyError::SelfLink("aws/r1".into()),
        ),
        (
            format!("{HEADER}{}", replicas(4, "gcp/r9")),
            TopologyError::UnknownDomain {
                replica: 0,
                domain: "gcp/r9".into(),
            },
        ),
        (
            format!("{HEADER}[[domains]]\nname = \"gcp/r2\"\n{four}"),
            TopologyError::EmptyDomain("gcp/r2".into()),
        ),
        (
            format!("{HEADER}[[domains]]\nname = \"aws/r1\"\n{four}"),
            TopologyError::DuplicateDomain("aws/r1".into()),
        ),
        (
            format!("[cluster]\nname = \"t\"\n[[domains]]\nname = \"awsr1\"\n{four}"),
            TopologyError::BadDomainName("awsr1".into()),
        ),
        (
            format!("{HEADER}{four}[[links]]\na = \"aws/r1\"\nb = \"x/y\"\nrtt_ms = 3.0\n"),
            TopologyError::UnknownLinkDomain("x/y".into()),
        ),
        (
            format!("{HEADER}{four}[fault_model]\nkind = \"hybrid\"\nbyzantine = 1\ncrash = 2\n"),
            TopologyError::HybridTooSmall {
                n: 4,
                byzantine: 1,
                crash: 2,
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(Topology::from_toml_str(&text).unwrap_err(), expected);
    }
}

#[test]
fn a_control_plane_is_on_this_host_unless_the_file_names_its_address() {
    let text = format!(
        "{HEADER}{}[[replicas]]\nid = 4\ndomain = \"aws/r1\"\naddress = \"10.0.0.5:7004\"\ncontrol_address = \"10.0.0.5:9100\"\n[[replicas]]\nid = 5\ndomain = \"aws/r1\"\naddress = \"10.0.0.6:64000\"\n",
        replicas(4, "aws/r1")
    );
    let t = Topology::from_toml_str(&text).unwrap();
    let control = |id| t.replica(id).unwrap().control_addr().map(|a| a.to_string());
    assert_eq!(control(0).unwrap(), "127.0.0.1:9000");
    assert_eq!(control(4).unwrap(), "10.0.0.5:9100");
    // No port 2000 above 64000: an error naming the replica, not a wrapped port.
    assert_eq!(
        control(5).unwrap_err(),
        TopologyError::BadAddress {
            replica: 5,
            address: "10.0.0.6:64000".into(),
        }
    );
}

#[test]
fn bad_numbers_name_the_field() {
    let four = replicas(4, "aws/r1");
    for (extra, field) in [
        (
            "[[replicas]]\nid = -1\ndomain = \"aws/r1\"\naddress = \"x\"\n",
            "replicas.id",
        ),
        (
            "[[links]]\na = \"aws/r1\"\nb = \"aws/r1\"\nrtt_ms = -5.0\n",
            "links[aws/r1 <-> aws/r1].rtt_ms",
        ),
    ] {
        match Topology::from_toml_str(&format!("{HEADER}{four}{extra}")).unwrap_err() {
            TopologyError::BadNumber { field: got, .. } => assert_eq!(got, field),
            other => panic!("expected a bad number, got {other:?}"),
        }
    }
    let zero_shards = "[cluster]\nname = \"t\"\nshards = 0\n[[domains]]\nname = \"aws/r1\"\n";
    let err = Topology::from_toml_str(&format!("{zero_shards}{four}")).unwrap_err();
    assert!(err.to_string().contains("cluster.shards"), "{err}");
    // A one-round slot cannot commit on its own (leader::ROTATION_ROUNDS_MIN).
    let one_round =
        "[cluster]\nname = \"t\"\nleader_rotation_blocks = 1\n[[domains]]\nname = \"aws/r1\"\n";
    let err = Topology::from_toml_str(&format!("{one_round}{four}")).unwrap_err();
    assert!(
        err.to_string().contains("cluster.leader_rotation_blocks"),
        "{err}"
    );
    let err = Topology::from_toml_str("[cluster]\nname = 3\n").unwrap_err();
    assert!(matches!(err, TopologyError::Parse(_)));
}

#[test]
fn the_cluster_file_names_what_the_cluster_orders() {
    let four = replicas(4, "aws/r1");
    let with = |kind: &str| {
        format!("[cluster]\nname = \"t\"\ntransactions = \"{kind}\"\n[[domains]]\nname = \"aws/r1\"\n{four}")
    };
    let default = Topology::from_toml_str(&format!("{HEADER}{four}")).unwrap();
    assert_eq!(default.transactions, PayloadKind::Transfers);
    let opaque = Topology::from_toml_str(&with("opaque")).unwrap();
    assert_eq!(opaque.transactions, PayloadKind::Opaque);
    assert_eq!(
        Topology::from_toml_str(&with("bytes")).unwrap_err(),
        TopologyError::UnknownTransactions("bytes".into())
    );
}
