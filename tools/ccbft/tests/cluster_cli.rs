//! `ccbft cluster up|status|down` with real replica processes on 127.0.0.1.

mod cluster;

use cluster::{ccbft, field, report_fields, text, Supervised, ONE_DOMAIN, PATIENCE};
use std::time::{Duration, Instant};

fn pid(report: &serde_json::Value, id: usize) -> i64 {
    report["replicas"][id]["pid"].as_i64().expect("a pid")
}

#[test]
fn a_supervised_cluster_commits_restarts_a_killed_replica_and_stops_cleanly() {
    let mut cluster = Supervised::up(&ONE_DOMAIN);
    let first = cluster.await_ready();
    let data = cluster.data.clone();
    assert!(data.join("keys").is_dir(), "keys generated");

    // A second supervisor on the same directory is refused, naming the first, and changes
    // nothing there.
    let running = std::fs::read_to_string(cluster.cluster_file()).unwrap();
    let other = cluster.dir.path().join("other.toml");
    std::fs::write(
        &other,
        running.replace("name = \"e2e\"", "name = \"other\""),
    )
    .unwrap();
    let second = ccbft()
        .args(["cluster", "up", "--config"])
        .arg(&other)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(
        text(&second.stderr).contains("already runs"),
        "{}",
        text(&second.stderr)
    );

    let submit = |first_key: &str| {
        let out = ccbft()
            .args([
                "submit",
                "--count",
                "50",
                "--first-key",
                first_key,
                "--config",
            ])
            .arg(data.join("cluster.toml"))
            .arg("--keys")
            .arg(data.join("keys"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        report_fields(&text(&out.stdout))
    };
    assert_eq!(field(&submit("1"), "applied"), 50);

    // SIGKILL replica 2: the supervisor starts it again, from its log.
    let killed = pid(&first, 2);
    // SAFETY: a signal to a replica process this test's supervisor started.
    unsafe { libc::kill(killed as i32, libc::SIGKILL) };
    let deadline = Instant::now() + PATIENCE;
    let again = loop {
        let report = cluster.await_ready();
        if pid(&report, 2) != killed {
            break report;
        }
        assert!(Instant::now() < deadline, "replica 2 was not restarted");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        pid(&again, 0),
        pid(&first, 0),
        "only the killed replica restarted"
    );
    let log = std::fs::read_to_string(data.join("logs/replica-2.log")).unwrap();
    assert_eq!(
        log.matches("--- supervisor: starting replica 2").count(),
        2,
        "{log}"
    );
    assert!(
        !log.contains("rejoining"),
        "it restarted from its own log:\n{log}"
    );
    assert_eq!(field(&submit("1000"), "applied"), 50);

    let out = cluster.down();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let progress = text(&out.stdout);
    assert!(
        progress.contains("replica 2 exited (signal 9)"),
        "{progress}"
    );
    for id in 0..4 {
        assert!(
            progress.contains(&format!("replica {id} stopped\n")),
            "replica {id} did not stop cleanly:\n{progress}"
        );
    }
    let (code, after) = cluster.status();
    assert_eq!(code, Some(1), "nothing runs: {after:#}");
    assert!(after["supervisor_pid"].is_null());
}
