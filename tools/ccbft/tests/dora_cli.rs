//! `ccbft dora ...` end to end.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ccbft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccbft"))
        .args(args)
        .output()
        .expect("ccbft runs")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn incident() -> Value {
    json!({
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

#[test]
fn classify_prints_major_criteria_and_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("incident.json");
    std::fs::write(&file, incident().to_string()).unwrap();
    let out = stdout_json(&ccbft(&[
        "dora",
        "classify",
        "--json",
        file.to_str().unwrap(),
    ]));
    assert_eq!(out["major"], json!(true));
    assert_eq!(
        out["criteria_met"],
        json!([
            "critical_services",
            "clients_counterparts_transactions",
            "reputational"
        ])
    );
    let explanation = out["explanation"].as_str().unwrap();
    assert!(explanation.contains("Art. 8(1)") && explanation.contains("Art. 9(1)"));
    assert_eq!(
        out["deadlines"]["initial_due"],
        json!("2026-03-03T13:00:00Z")
    );
    // Below the absolute threshold and with no reputational impact: not major.
    let mut minor = incident();
    minor["clients"]["affected"] = json!(100000);
    minor["reputational"] = json!([]);
    std::fs::write(&file, minor.to_string()).unwrap();
    let out = stdout_json(&ccbft(&[
        "dora",
        "classify",
        "--json",
        file.to_str().unwrap(),
    ]));
    assert_eq!(out["major"], json!(false));
    assert_eq!(out["criteria_met"], json!(["critical_services"]));
}

#[test]
fn classify_names_a_missing_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("incident.json");
    let mut v = incident();
    v["transactions"]
        .as_object_mut()
        .unwrap()
        .remove("daily_average");
    std::fs::write(&file, v.to_string()).unwrap();
    let out = ccbft(&["dora", "classify", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("transactions.daily_average"), "{err}");
}

#[test]
fn deadlines_json() {
    let out = stdout_json(&ccbft(&[
        "dora",
        "deadlines",
        "--detected-at",
        "2026-01-27T08:00:00Z",
        "--classified-at",
        "2026-01-27T09:00:00Z",
        "--initial-sent",
        "2026-01-27T12:00:00Z",
        "--intermediate-sent",
        "2026-01-31T10:00:00Z",
        "--json",
    ]));
    assert_eq!(out["initial_due"], json!("2026-01-27T13:00:00Z"));
    assert_eq!(out["intermediate_due"], json!("2026-01-30T12:00:00Z"));
    assert_eq!(
        out["final_due"],
        json!("2026-03-02T11:00:00Z"),
        "28 Feb 2026 is a Saturday"
    );
    // Weekend: no extension for a credit institution, extension for a payment institution.
    let args = [
        "dora",
        "deadlines",
        "--detected-at",
        "2026-03-07T08:00:00Z",
        "--classified-at",
        "2026-03-07T09:00:00Z",
        "--json",
    ];
    assert_eq!(
        stdout_json(&ccbft(&args))["initial_due"],
        json!("2026-03-07T13:00:00Z")
    );
    let mut pi = args.to_vec();
    pi.extend(["--entity-type", "payment_institution"]);
    assert_eq!(
        stdout_json(&ccbft(&pi))["initial_due"],
        json!("2026-03-09T11:00:00Z")
    );
    pi.push("--nis2");
    assert_eq!(
        stdout_json(&ccbft(&pi))["initial_due"],
        json!("2026-03-07T13:00:00Z")
    );
    let bad = ccbft(&[
        "dora",
        "deadlines",
        "--detected-at",
        "yesterday",
        "--classified-at",
        "2026-03-07T09:00:00Z",
    ]);
    assert!(!bad.status.success());
}

#[test]
fn register_says_losing_aws_stops_the_global_tier() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("csv");
    let cluster = example("three-clouds.toml");
    let out = stdout_json(&ccbft(&[
        "dora",
        "register",
        "--cluster",
        cluster.to_str().unwrap(),
        "--json",
        "--csv-dir",
        csv.to_str().unwrap(),
    ]));
    let summary = out["concentration"]["summary"][0].as_str().unwrap();
    assert!(
        summary.starts_with("Losing aws (3 of 7 replicas) stops the global tier"),
        "{summary}"
    );
    assert!(summary.contains("4 < quorum q = 5"));
    assert_eq!(out["concentration"]["proposal"]["changes"], json!(1));
    assert!(
        csv.join("b_05.01.csv").exists()
            && csv.join("b_06.01.csv").exists()
            && csv.join("b_07.01.csv").exists()
    );
    let text = ccbft(&["dora", "register", "--cluster", cluster.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout)
        .contains("Losing aws (3 of 7 replicas) stops the global tier"));
    let resilient = stdout_json(&ccbft(&[
        "dora",
        "register",
        "--cluster",
        example("three-clouds-resilient.toml").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        resilient["concentration"]["survives_any_provider_loss"],
        json!(true)
    );
}

#[test]
fn test_command_refuses_an_unknown_scenario() {
    let cluster = example("three-clouds.toml");
    let state = tempfile::tempdir().unwrap();
    let out = ccbft(&[
        "dora",
        "test",
        "--scenario",
        "meteor",
        "--cluster",
        cluster.to_str().unwrap(),
        "--state",
        state.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("byzantine-leader"));
}

/// Run `ccbft dora test` on the simulator into a fresh state directory; returns the exit
/// status, stdout and the one evidence record it stored.
fn dora_test(scenario: &str, cluster: &str) -> (bool, String, Value) {
    let cluster = example(cluster);
    let state = tempfile::tempdir().unwrap();
    let out = ccbft(&[
        "dora",
        "test",
        "--scenario",
        scenario,
        "--cluster",
        cluster.to_str().unwrap(),
        "--state",
        state.path().to_str().unwrap(),
        "--seed",
        "7",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let records: Vec<PathBuf> = std::fs::read_dir(state.path().join("tests"))
        .unwrap_or_else(|e| panic!("no evidence directory ({e}); stdout {stdout} stderr {stderr}"))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let evidence: Value =
        serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap();
    // The record is in the audit trail too, and the trail verifies.
    let audit = ccbft(&[
        "dora",
        "audit",
        "verify",
        state.path().join("audit").to_str().unwrap(),
    ]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    (out.status.success(), stdout, evidence)
}

#[test]
fn provider_outage_on_the_resilient_cluster_passes_and_loses_nothing() {
    let (ok, stdout, evidence) = dora_test("provider-outage", "three-clouds-resilient.toml");
    assert!(ok, "{stdout}");
    assert!(stdout.contains("PASSED"), "{stdout}");
    assert_eq!(evidence["passed"], json!(true), "{evidence:#}");
    assert_eq!(evidence["transactions_lost"], json!(0));
    assert_eq!(evidence["findings"], json!([]));
    let submitted = evidence["transactions_submitted"].as_u64().unwrap();
    assert!(submitted > 0);
    assert_eq!(evidence["transactions_committed"].as_u64(), Some(submitted));
    assert!(evidence["time_to_detect_seconds"].as_f64().unwrap() >= 0.0);
    assert!(evidence["time_to_recover_seconds"].as_f64().is_some());
    // The largest provider by default: every AWS replica was stopped and came back.
    let description = evidence["injection"]["description"].as_str().unwrap();
    assert!(description.contains("aws"), "{description}");
    let kinds: Vec<&str> = evidence["health_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // Stopping and restarting the AWS replicas is the simulator's own record: kept, but not
    // among the health events the engine detects from.
    let injected = kinds_of(&evidence["injected_events"]);
    assert_eq!(injected.iter().filter(|k| **k == "replica_down").count(), 3);
    assert_eq!(injected.iter().filter(|k| **k == "replica_up").count(), 3);
    assert!(!kinds.contains(&"replica_down"), "{kinds:?}");
    assert!(!evidence["incidents_opened"].as_array().unwrap().is_empty());
    // 6 of 9 replicas are a global quorum: the global tier kept committing during the outage.
    assert!(!stdout.contains("made no progress"), "{stdout}");
}

#[test]
fn provider_outage_on_three_clouds_stops_the_global_tier_until_the_heal() {
    // Losing AWS leaves 4 of 7 replicas, below the global quorum of 5.
    let (ok, stdout, evidence) = dora_test("provider-outage", "three-clouds.toml");
    assert!(
        stdout.contains("global blocks executed during the fault phase: 0"),
        "{stdout}"
    );
    // Nothing acknowledged is lost, and commits resume after the heal.
    assert_eq!(evidence["transactions_lost"], json!(0));
    assert!(evidence["time_to_recover_seconds"].as_f64().unwrap() >= 2.0);
    assert_eq!(evidence["passed"], json!(ok));
}

#[test]
fn byzantine_leader_is_injected_detected_and_survived() {
    let (ok, stdout, evidence) = dora_test("byzantine-leader", "three-clouds.toml");
    assert!(ok, "{stdout}");
    assert_eq!(evidence["passed"], json!(true), "{evidence:#}");
    assert_eq!(evidence["transactions_lost"], json!(0));
    assert_eq!(
        evidence["injection"]["scenario"]["scenario"],
        json!("byzantine_leader")
    );
    // What was injected: an equivocating global leader.
    let description = evidence["injection"]["description"].as_str().unwrap();
    assert!(description.contains("equivocates"), "{description}");
    assert!(stdout.contains("strategies=[Equivocate]"), "{stdout}");
    // A replica that receives both twins holds equivocation evidence against the leader:
    // an equivocation health event naming the offender, which opens the incident that
    // detects the fault. The honest replicas also time out its rounds (commit stall), then
    // commits resume.
    assert!(
        stdout.contains("protocol evidence {\"equivocation\""),
        "{stdout}"
    );
    let kinds = kinds_of(&evidence["health_events"]);
    assert!(kinds.contains(&"equivocation"), "{kinds:?}");
    assert!(kinds.contains(&"commit_stall"), "{kinds:?}");
    assert!(kinds.contains(&"commit_resumed"), "{kinds:?}");
    let equivocation = evidence["health_events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "equivocation")
        .unwrap();
    assert!(
        equivocation["detail"]
            .as_str()
            .unwrap()
            .contains("equivocation by r"),
        "{equivocation}"
    );
    let detected_by = &evidence["detected_by"];
    assert_eq!(detected_by["kind"], json!("equivocation"), "{evidence:#}");
    let incident = detected_by["incident"].as_str().unwrap();
    assert!(
        evidence["incidents_opened"]
            .as_array()
            .unwrap()
            .contains(&json!(incident)),
        "{evidence:#}"
    );
    assert!(evidence["time_to_detect_seconds"].as_f64().unwrap() > 0.0);
}

fn kinds_of(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

#[test]
fn crash_loop_detection_is_the_first_derived_event_not_the_injected_crash() {
    let (ok, stdout, evidence) = dora_test("crash-loop", "three-clouds.toml");
    assert!(ok, "{stdout}");
    // The simulator's own crash record, at the injection, is kept apart.
    let injected = evidence["injected_events"].as_array().unwrap();
    let crash = injected
        .iter()
        .find(|e| e["kind"] == "replica_down")
        .expect("the injected crash is recorded");
    assert_eq!(crash["metrics"]["sim_us"], json!(0.0));
    assert_eq!(crash["at"], evidence["injection"]["injected_at"]);
    // Detection: the first health event derived from the replicas' signals (all of them are;
    // none is a fault-injector record), strictly after the injection.
    let events = evidence["health_events"].as_array().unwrap();
    assert!(events.iter().all(|e| !e["detail"]
        .as_str()
        .unwrap_or("")
        .contains("fault injector")));
    let first_problem = events
        .iter()
        .find(|e| e["kind"] != "commit_resumed" && e["kind"] != "view_stable")
        .expect("a derived problem event");
    let detect = evidence["time_to_detect_seconds"].as_f64().unwrap();
    assert!(detect > 0.0, "{evidence:#}");
    let first_us = first_problem["metrics"]["sim_us"].as_f64().unwrap();
    assert_eq!(
        detect,
        (first_us / 1_000.0).floor() / 1_000.0,
        "{evidence:#}"
    );
    assert_eq!(
        evidence["detected_by"]["event_id"],
        first_problem["event_id"]
    );
    assert_eq!(evidence["detected_at"], first_problem["at"]);
}

#[test]
fn ingest_then_audit_verify_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, concat!(
        r#"{"schema":"ccbft.health-event/v1","event_id":"r0:1","at":"2026-03-03T08:00:00Z","replica":0,"kind":"replica_down","severity":"critical"}"#, "\n",
        r#"{"schema":"ccbft.health-event/v1","event_id":"r1:1","at":"2026-03-03T08:01:00Z","kind":"commit_stall","severity":"critical"}"#, "\n",
        r#"{"schema":"ccbft.health-event/v1","event_id":"r1:2","at":"2026-03-03T08:40:00Z","kind":"commit_resumed","severity":"info"}"#, "\n",
    )).unwrap();
    let s = state.to_str().unwrap();
    assert!(ccbft(&["dora", "init", "--state", s]).status.success());
    assert!(ccbft(&[
        "dora",
        "set-cluster",
        "--state",
        s,
        example("three-clouds.toml").to_str().unwrap()
    ])
    .status
    .success());
    let outcomes = stdout_json(&ccbft(&[
        "dora",
        "ingest",
        "--json",
        "--state",
        s,
        events.to_str().unwrap(),
    ]));
    assert_eq!(outcomes[0]["outcome"], json!("opened"));
    assert_eq!(outcomes[1]["outcome"], json!("merged"));
    let audit_dir = state.join("audit");
    let ok = ccbft(&["dora", "audit", "verify", audit_dir.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // Alter the third entry.
    let log = audit_dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2].replace("commit_stall", "view_change_storm");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let bad = ccbft(&["dora", "audit", "verify", audit_dir.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(said.contains("first bad entry: line 3"), "{said}");
}

fn doc_example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dora/docs/example")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// The documented flow (tools/dora/docs/example): ingest, facts, classify, reports.
#[test]
fn report_flow_refuses_a_missing_field_then_produces_json_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    assert!(ccbft(&["dora", "init", "--state", s]).status.success());
    std::fs::copy(doc_example("config.json"), state.join("config.json")).unwrap();
    let cluster = example("three-clouds.toml");
    assert!(ccbft(&[
        "dora",
        "set-cluster",
        "--state",
        s,
        cluster.to_str().unwrap()
    ])
    .status
    .success());
    let outcomes = stdout_json(&ccbft(&[
        "dora",
        "ingest",
        "--json",
        "--state",
        s,
        &doc_example("events.jsonl"),
    ]));
    let id = outcomes[0]["incident"].as_str().unwrap().to_string();
    assert_eq!(outcomes[3]["outcome"], json!("recovered"));
    assert!(ccbft(&[
        "dora",
        "incident",
        "facts",
        "--state",
        s,
        &id,
        &doc_example("facts.json")
    ])
    .status
    .success());
    let c = stdout_json(&ccbft(&[
        "dora",
        "incident",
        "classify",
        "--json",
        "--state",
        s,
        &id,
        "--at",
        "2026-03-03T11:30:00Z",
    ]));
    assert_eq!(c["major"], json!(true), "{c}");
    // No description yet: field 2.4 is missing and the report is refused, naming it.
    let refused = ccbft(&[
        "dora",
        "report",
        "--state",
        s,
        "--incident",
        &id,
        "--stage",
        "initial",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("2.4 (Description of the major ICT-related incident)"),
        "{err}"
    );
    assert!(ccbft(&[
        "dora",
        "incident",
        "facts",
        "--state",
        s,
        &id,
        &doc_example("facts-description.json")
    ])
    .status
    .success());
    let html = dir.path().join("final.html");
    let report = stdout_json(&ccbft(&[
        "dora",
        "report",
        "--json",
        "--state",
        s,
        "--incident",
        &id,
        "--stage",
        "final",
        "--inputs",
        &doc_example("inputs.json"),
        "--html",
        html.to_str().unwrap(),
    ]));
    assert_eq!(report["1.1"], json!("final_report"));
    assert_eq!(report["2.3"], json!("2026-03-03T11:30:00Z"));
    assert_eq!(report["3.3"], json!("2026-03-03T11:10:00Z"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Date and time of classification of the ICT-related incident as major"));
    let file = dir.path().join("report.json");
    std::fs::write(&file, report.to_string()).unwrap();
    assert!(ccbft(&["dora", "validate-report", file.to_str().unwrap()])
        .status
        .success());
    // Sent times move the clocks; the listing shows them.
    assert!(ccbft(&[
        "dora",
        "incident",
        "sent",
        "--state",
        s,
        &id,
        "initial",
        "--at",
        "2026-03-03T13:00:00Z"
    ])
    .status
    .success());
    let list = stdout_json(&ccbft(&[
        "dora",
        "incident",
        "list",
        "--json",
        "--now",
        "2026-03-03T14:00:00Z",
        "--state",
        s,
    ]));
    assert_eq!(
        list[0]["deadlines"]["initial_due"],
        json!("2026-03-03T15:30:00Z")
    );
    assert_eq!(
        list[0]["deadlines"]["intermediate_due"],
        json!("2026-03-06T13:00:00Z")
    );
    assert!(ccbft(&[
        "dora",
        "audit",
        "verify",
        state.join("audit").to_str().unwrap()
    ])
    .status
    .success());
}

/// One HTTP/1.1 exchange with the served dashboard (the server closes after answering).
fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// `dora serve` with the token `dora init` wrote: events posted with it are ingested,
/// without it refused; the process is ours and killed at the end.
#[test]
fn serve_takes_events_with_the_init_token_only() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    let init = ccbft(&["dora", "init", "--state", s]);
    assert!(String::from_utf8_lossy(&init.stdout).contains("dashboard.token"));
    let token = std::fs::read_to_string(state.join("keys/dashboard.token")).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_ccbft"))
            .args(["dora", "serve", "--state", s, "--listen", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = std::io::BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("address in {line:?}"))
        .to_string();
    let event = r#"{"schema":"ccbft.health-event/v1","event_id":"r1:1","at":"2026-03-03T08:01:00Z","kind":"commit_stall","severity":"critical"}"#;
    let post = |auth: &str| {
        http(
            &addr,
            &format!(
                "POST /api/events HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{event}",
                event.len()
            ),
        )
    };
    let refused = post("");
    let accepted = post(&format!("Authorization: Bearer {}\r\n", token.trim()));
    let page = http(&addr, "GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(child);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    assert!(page.contains("INC-"), "{page}");
}

/// A child process killed and reaped when the test ends, even by a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
