//! Bad input to every command: a non-zero exit (never the 101 of a panic), a message that
//! names the problem, and no panic; and output into a pipe that closes early.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn ccbft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccbft"))
        .args(args)
        .output()
        .expect("ccbft runs")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .display()
        .to_string()
}

fn doc_example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dora/docs/example")
        .join(name)
        .display()
        .to_string()
}

/// A cluster file: the three-clouds example with `edit` applied to its text.
fn cluster_variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(example("three-clouds.toml")).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path.display().to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn incident_json() -> serde_json::Value {
    serde_json::json!({
        "critical_services_affected": true,
        "clients": {"affected": 120000, "total": 2000000},
        "financial_counterparts": {"affected": 0, "total": 50},
        "transactions": {"affected": 10, "daily_average": 100000,
                         "value_affected_eur": 5000.0, "daily_average_value_eur": 9000000.0},
        "reputational": ["media_attention"],
        "duration_hours": 5.0, "service_downtime_hours": 1.0,
        "member_states_affected": 1,
        "data_losses": {"availability": false, "authenticity": false, "integrity": false, "confidentiality": false},
        "malicious_unauthorised_access": false,
        "economic_impact_eur": 1000.0,
        "detected_at": "2026-03-03T08:00:00Z",
        "classified_at": "2026-03-03T09:00:00Z"
    })
}

struct Fixtures {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// A state directory with the example cluster and events (incident INC-20260303-0001,
    /// detected 2026-03-03T08:00:00Z).
    state: String,
}

fn fixtures() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let state = root.join("state").display().to_string();
    for args in [
        vec!["dora", "init", "--state", &state],
        vec![
            "dora",
            "set-cluster",
            "--state",
            &state,
            &example("three-clouds.toml"),
        ],
        vec![
            "dora",
            "ingest",
            "--state",
            &state,
            &doc_example("events.jsonl"),
        ],
    ] {
        let out = ccbft(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Fixtures {
        _dir: dir,
        root,
        state,
    }
}

/// One bad input: the command line and words its error message must contain.
struct Case {
    args: Vec<String>,
    names: &'static str,
}

fn case(args: &[&str], names: &'static str) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        names,
    }
}

fn cluster_cases(f: &Fixtures) -> Vec<Case> {
    let d = &f.root;
    let sparse = cluster_variant(d, "sparse.toml", |t| t.replacen("id = 2\n", "id = 9\n", 1));
    let bad_address = cluster_variant(d, "addr.toml", |t| {
        t.replacen("127.0.0.1:7100", "not-an-address", 1)
    });
    let duplicate_address = cluster_variant(d, "dup.toml", |t| {
        t.replacen("127.0.0.1:7101", "127.0.0.1:7100", 1)
    });
    let self_link = cluster_variant(d, "self.toml", |t| {
        t + "\n[[links]]\na = \"gcp/europe-west3\"\nb = \"gcp/europe-west3\"\nrtt_ms = 1.0\n"
    });
    let unknown_field = cluster_variant(d, "unknown.toml", |t| {
        t.replacen("[cluster]\n", "[cluster]\nleader_rotation = 5\n", 1)
    });
    let not_toml = write(d, "garbage.toml", "this is [not toml");
    let mut cases = Vec::new();
    for (file, names) in [
        (&sparse, "missing id 2"),
        (&bad_address, "not-an-address"),
        (&duplicate_address, "same address"),
        (&self_link, "to itself"),
        (&unknown_field, "leader_rotation"),
        (&not_toml, "TOML"),
    ] {
        cases.push(case(&["demo", "--cluster", file], names));
        cases.push(case(
            &["sim", "--cluster", file, "--seed", "1", "--fault-ms", "10"],
            names,
        ));
        cases.push(case(&["dora", "register", "--cluster", file], names));
        cases.push(case(
            &[
                "dora",
                "test",
                "--scenario",
                "provider-outage",
                "--cluster",
                file,
                "--state",
                &f.state,
            ],
            names,
        ));
        cases.push(case(
            &["dora", "set-cluster", "--state", &f.state, file],
            names,
        ));
    }
    cases
}

fn incident_cases(f: &Fixtures) -> Vec<Case> {
    let d = &f.root;
    let mut typo = incident_json();
    typo["data_losses"]["adverse_impactt"] = serde_json::json!(true);
    let mut over = incident_json();
    over["clients"] = serde_json::json!({"affected": 5, "total": 1});
    let mut far = incident_json();
    far["detected_at"] = serde_json::json!("9999-12-31T10:00:00Z");
    far["classified_at"] = serde_json::json!("9999-12-31T11:00:00Z");
    let typo = write(d, "typo.json", &typo.to_string());
    let over = write(d, "over.json", &over.to_string());
    let far = write(d, "far.json", &far.to_string());
    let not_json = write(d, "not.json", "{\"critical_services_affected\": tru");
    let threat = write(d, "threat.json", "{\"description\": \"x\", \"unknown\": 1}");
    let facts_over = write(
        d,
        "facts-over.json",
        r#"{"clients": {"affected": 5, "total": 1}}"#,
    );
    let facts_typo = write(
        d,
        "facts-typo.json",
        r#"{"data_losses": {"availability": true, "authenticity": false, "integrity": false, "confidentiality": false, "adverse_impactt": true}}"#,
    );
    let facts_country = write(d, "facts-country.json", r#"{"member_states": ["Narnia"]}"#);
    let s = f.state.as_str();
    let inc = "INC-20260303-0001";
    vec![
        case(&["dora", "classify", &typo], "adverse_impactt"),
        case(&["dora", "classify", &over], "clients.affected"),
        case(&["dora", "classify", &far], "detected_at"),
        case(&["dora", "classify", &not_json], "JSON"),
        case(
            &["dora", "classify", "/nonexistent/incident.json"],
            "reading",
        ),
        case(&["dora", "threat", &threat], "unknown"),
        case(
            &["dora", "incident", "facts", "--state", s, inc, &facts_over],
            "clients.affected",
        ),
        case(
            &["dora", "incident", "facts", "--state", s, inc, &facts_typo],
            "adverse_impactt",
        ),
        case(
            &[
                "dora",
                "incident",
                "facts",
                "--state",
                s,
                inc,
                &facts_country,
            ],
            "Narnia",
        ),
        case(
            &[
                "dora",
                "incident",
                "facts",
                "--state",
                s,
                "INC-NONE",
                &facts_country,
            ],
            "Narnia",
        ),
        case(
            &[
                "dora",
                "incident",
                "classify",
                "--state",
                s,
                inc,
                "--at",
                "2026-03-03T07:00:00Z",
            ],
            "precedes the detection",
        ),
        case(
            &[
                "dora",
                "incident",
                "sent",
                "--state",
                s,
                inc,
                "initial",
                "--at",
                "2026-03-02T00:00:00Z",
            ],
            "precedes the detection",
        ),
        case(
            &["dora", "incident", "sent", "--state", s, inc, "weekly"],
            "unknown stage",
        ),
        case(
            &["dora", "incident", "classify", "--state", s, "INC-NONE"],
            "no incident",
        ),
    ]
}

fn event_cases(f: &Fixtures) -> Vec<Case> {
    let d = &f.root;
    let event = |extra: &str, at: &str| {
        format!(
            r#"{{"schema":"ccbft.health-event/v1","event_id":"x:1","at":"{at}","kind":"commit_stall","severity":"critical"{extra}}}"#
        )
    };
    let foreign_domain = write(
        d,
        "foreign.jsonl",
        &event(r#","domain":"oracle/mars-1""#, "2026-03-04T08:00:00Z"),
    );
    let foreign_replica = write(
        d,
        "replica.jsonl",
        &event(r#","replica":99"#, "2026-03-04T08:00:00Z"),
    );
    let far = write(d, "far.jsonl", &event("", "9999-12-31T23:00:00Z"));
    let unknown = write(
        d,
        "unknown.jsonl",
        &event(r#","colour":"red""#, "2026-03-04T08:00:00Z"),
    );
    let broken = write(d, "broken.jsonl", "{\"schema\":");
    let open_token = token_file(d, "open.token", &"a".repeat(64), 0o644);
    let short_token = token_file(d, "short.token", "abc\n", 0o600);
    let missing_token = d.join("missing.token").display().to_string();
    let s = f.state.as_str();
    vec![
        case(
            &["dora", "ingest", "--state", s, &foreign_domain],
            "oracle/mars-1",
        ),
        case(
            &["dora", "ingest", "--state", s, &foreign_replica],
            "replica 99",
        ),
        case(
            &["dora", "ingest", "--state", s, &far],
            "outside the accepted range",
        ),
        case(&["dora", "ingest", "--state", s, &unknown], "colour"),
        case(&["dora", "ingest", "--state", s, &broken], "line 1"),
        case(
            &[
                "dora",
                "ingest",
                "--state",
                &format!("{s}-missing"),
                &doc_example("events.jsonl"),
            ],
            "dora init",
        ),
        case(
            &[
                "dora",
                "incident",
                "list",
                "--state",
                &format!("{s}-missing"),
            ],
            "dora init",
        ),
        case(&["dora", "init", "--state", s], "not an empty directory"),
        case(
            &["dora", "serve", "--state", s, "--token-file", &open_token],
            "group or others",
        ),
        case(
            &["dora", "serve", "--state", s, "--token-file", &short_token],
            "32 to 512 characters",
        ),
        case(
            &[
                "dora",
                "serve",
                "--state",
                s,
                "--token-file",
                &missing_token,
            ],
            "missing.token",
        ),
    ]
}

/// A token file with `text` and `mode`.
fn token_file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = write(dir, name, text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn date_and_number_cases(f: &Fixtures) -> Vec<Case> {
    let d = &f.root;
    let lei = write(d, "lei.json", r#"{"entity_lei": "X"}"#);
    let lei_digits = write(d, "lei2.json", r#"{"entity_lei": "529900T8BM49AURSDO56"}"#);
    let country = write(
        d,
        "country.json",
        r#"{"providers": {"aws": {"headquarters_country": "Narnia"}}}"#,
    );
    let provider = write(d, "provider.json", r#"{"providers": {"oracle": {}}}"#);
    let keys = d.join("keys").display().to_string();
    let cluster = example("three-clouds.toml");
    let max = u64::MAX.to_string();
    vec![
        case(
            &[
                "dora",
                "deadlines",
                "--detected-at",
                "9999-12-31T10:00:00Z",
                "--classified-at",
                "9999-12-31T11:00:00Z",
            ],
            "accepted range",
        ),
        case(
            &[
                "dora",
                "deadlines",
                "--detected-at",
                "2026-03-03T10:00:00Z",
                "--classified-at",
                "2026-03-03T09:00:00Z",
            ],
            "precedes detection",
        ),
        case(
            &[
                "dora",
                "deadlines",
                "--detected-at",
                "yesterday",
                "--classified-at",
                "2026-03-03T09:00:00Z",
            ],
            "RFC 3339",
        ),
        case(
            &[
                "dora",
                "deadlines",
                "--detected-at",
                "2026-03-03T10:00:00Z",
                "--classified-at",
                "2026-03-03T11:00:00Z",
                "--time-zone",
                "Mars/Olympus",
            ],
            "time zone",
        ),
        case(&["sim", "--start", &max, "--seeds", "2"], "--start"),
        case(&["sim", "--fault-ms", "18446744073709551"], "--fault-ms"),
        case(&["sim", "--stable-ms", &max], "--stable-ms"),
        case(&["sim", "--fault-ms", "3600001"], "3600000"),
        case(&["sim", "--seeds", "0"], "--seeds"),
        case(&["sim", "--tx-per-s", "1000001"], "--tx-per-s"),
        case(&["sim", "--seeds", "2", "--trace"], "--trace"),
        case(
            &["sim", "--strategy", "nonsense", "--seed", "1"],
            "unknown strategy",
        ),
        case(
            &[
                "dora",
                "test",
                "--scenario",
                "provider-outage",
                "--fault-ms",
                "300000",
                "--cluster",
                &cluster,
                "--state",
                &f.state,
            ],
            "--fault-ms",
        ),
        case(
            &[
                "dora",
                "test",
                "--scenario",
                "provider-outage",
                "--observe-ms",
                "60001",
                "--cluster",
                &cluster,
                "--state",
                &f.state,
            ],
            "--observe-ms",
        ),
        case(
            &[
                "dora",
                "test",
                "--scenario",
                "provider-outage",
                "--fault-ms",
                "5000",
                "--observe-ms",
                "4000",
                "--cluster",
                &cluster,
                "--state",
                &f.state,
            ],
            "must exceed",
        ),
        case(
            &["dora", "register", "--cluster", &cluster, "--config", &lei],
            "entity_lei",
        ),
        case(
            &[
                "dora",
                "register",
                "--cluster",
                &cluster,
                "--config",
                &lei_digits,
            ],
            "check digits",
        ),
        case(
            &[
                "dora",
                "register",
                "--cluster",
                &cluster,
                "--config",
                &country,
            ],
            "Narnia",
        ),
        case(
            &[
                "dora",
                "register",
                "--cluster",
                &cluster,
                "--config",
                &provider,
            ],
            "oracle",
        ),
        case(&["keygen", "--out", &keys, "--replicas", "3"], "at least 4"),
        case(
            &["keygen", "--out", &keys, "--replicas", "100000"],
            "maximum",
        ),
        case(&["log", "inspect", "/nonexistent/log"], "not a directory"),
    ]
}

#[test]
fn bad_input_to_every_command_is_a_named_error_not_a_panic() {
    let f = fixtures();
    let mut cases = cluster_cases(&f);
    cases.extend(incident_cases(&f));
    cases.extend(event_cases(&f));
    cases.extend(date_and_number_cases(&f));
    let mut failures = Vec::new();
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = ccbft(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        let named = stderr.to_lowercase().contains(&c.names.to_lowercase());
        if out.status.success() || code == Some(101) || stderr.contains("panicked") || !named {
            failures.push(format!(
                "{args:?}: exit {code:?}, expected a message naming {:?}, stderr: {stderr}",
                c.names
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // No refused input changed the state: the example's one incident is still there, once.
    let list = ccbft(&[
        "dora",
        "incident",
        "list",
        "--json",
        "--now",
        "2026-03-03T08:30:00Z",
        "--state",
        &f.state,
    ]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["incident"]["event_count"], serde_json::json!(4));
}

/// Start a command with its stdout on a pipe whose reader is gone before the command
/// writes; it must end quietly (no panic message, not the 101 of a panic).
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccbft"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ccbft starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("ccbft ends");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    let f = fixtures();
    let incident = write(&f.root, "incident.json", &incident_json().to_string());
    let cluster = example("three-clouds.toml");
    let s = f.state.as_str();
    let audit = format!("{s}/audit");
    let commands: Vec<Vec<&str>> = vec![
        vec!["sim", "--demo"],
        vec!["sim", "--demo", "--json"],
        vec![
            "sim",
            "--seed",
            "3",
            "--trace",
            "--fault-ms",
            "200",
            "--stable-ms",
            "300",
        ],
        vec![
            "sim",
            "--seeds",
            "2",
            "--fault-ms",
            "100",
            "--stable-ms",
            "200",
            "--json",
        ],
        vec!["dora", "register", "--cluster", &cluster],
        vec!["dora", "register", "--cluster", &cluster, "--json"],
        vec![
            "dora",
            "incident",
            "list",
            "--state",
            s,
            "--now",
            "2026-03-03T08:30:00Z",
        ],
        vec![
            "dora",
            "incident",
            "list",
            "--state",
            s,
            "--json",
            "--now",
            "2026-03-03T08:30:00Z",
        ],
        vec!["dora", "classify", &incident],
        vec!["dora", "classify", &incident, "--json"],
        vec![
            "dora",
            "deadlines",
            "--detected-at",
            "2026-03-03T08:00:00Z",
            "--classified-at",
            "2026-03-03T09:00:00Z",
            "--json",
        ],
        vec!["dora", "recurring", "--state", s, "--json"],
        vec!["dora", "audit", "verify", &audit, "--json"],
        vec!["sim", "--list-bugs"],
    ];
    for args in &commands {
        let (code, stderr) = into_closed_pipe(args);
        assert!(
            code != Some(101) && !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: exit {code:?}, stderr: {stderr}"
        );
    }
}

#[test]
fn provider_outage_window_the_simulator_cannot_finish_is_refused_up_front() {
    let f = fixtures();
    let out = ccbft(&[
        "dora",
        "test",
        "--scenario",
        "provider-outage",
        "--fault-ms",
        "300000",
        "--observe-ms",
        "310000",
        "--cluster",
        &example("three-clouds.toml"),
        "--state",
        &f.state,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--fault-ms") && stderr.contains("60000"),
        "{stderr}"
    );
    // Nothing ran, so nothing was recorded: no evidence, no false Art. 12 breach.
    assert!(!Path::new(&f.state).join("tests").exists());
}

#[test]
fn same_second_resilience_tests_keep_every_evidence_record() {
    let f = fixtures();
    let cluster = example("three-clouds.toml");
    let runs = 3;
    for seed in 0..runs {
        let seed = seed.to_string();
        let out = ccbft(&[
            "dora",
            "test",
            "--scenario",
            "crash-loop",
            "--cluster",
            &cluster,
            "--state",
            &f.state,
            "--seed",
            &seed,
            "--fault-ms",
            "600",
            "--observe-ms",
            "1500",
        ]);
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let records = std::fs::read_dir(Path::new(&f.state).join("tests"))
        .unwrap()
        .count();
    assert_eq!(records, runs, "one evidence file per run, none overwritten");
    let audit = ccbft(&[
        "dora",
        "audit",
        "verify",
        "--json",
        &format!("{}/audit", f.state),
    ]);
    let verdict: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(verdict["ok"], serde_json::json!(true));
}

#[test]
fn keygen_force_leaves_no_stale_keys_of_a_larger_committee() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let out_s = out.display().to_string();
    let seed = "22".repeat(32);
    for (replicas, force) in [("7", false), ("4", true)] {
        let mut args = vec![
            "keygen",
            "--out",
            &out_s,
            "--replicas",
            replicas,
            "--seed",
            &seed,
        ];
        if force {
            args.push("--force");
        }
        let o = ccbft(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("replica-"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 16, "four files per replica 0..3: {names:?}");
    assert!(names.iter().all(|n| !n.starts_with("replica-4")
        && !n.starts_with("replica-5")
        && !n.starts_with("replica-6")));
}
