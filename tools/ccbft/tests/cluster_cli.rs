//! `ccbft cluster up|status|down` with real replica processes on 127.0.0.1.

mod cluster;

use cluster::{ccbft, field, report_fields, text, PATIENCE};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Four replicas in one domain on ports reserved for this test.
fn cluster_file(dir: &Path, ports: &[u16]) -> std::path::PathBuf {
    let mut toml = String::from(
        "[cluster]\nname = \"up\"\nshards = 1\nleader_rotation_blocks = 10\n\n[[domains]]\nname = \"aws/eu-central-1\"\n",
    );
    for (id, p) in ports.chunks(3).enumerate() {
        toml += &format!(
            "\n[[replicas]]\nid = {id}\ndomain = \"aws/eu-central-1\"\naddress = \"127.0.0.1:{}\"\nclient_address = \"127.0.0.1:{}\"\ncontrol_address = \"127.0.0.1:{}\"\n",
            p[0], p[1], p[2]
        );
    }
    let path = dir.join("four.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// `cluster status --json`: its exit code and report (an error, before the supervisor has
/// written the directory, is code 2 and its message).
fn status(data: &Path) -> (Option<i32>, serde_json::Value) {
    let out = ccbft()
        .args(["cluster", "status", "--json", "--data"])
        .arg(data)
        .output()
        .unwrap();
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| serde_json::Value::String(text(&out.stderr)));
    (out.status.code(), value)
}

/// Waits until `cluster status` exits 0 (every replica running and ready); its report.
fn await_ready(data: &Path, up: &mut Child) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(up.try_wait().unwrap().is_none(), "the supervisor exited");
        let (code, value) = status(data);
        if code == Some(0) {
            return value;
        }
        assert!(Instant::now() < deadline, "never ready: {value:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pid(report: &serde_json::Value, id: usize) -> i64 {
    report["replicas"][id]["pid"].as_i64().expect("a pid")
}

#[test]
fn a_supervised_cluster_commits_restarts_a_killed_replica_and_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = ccbft_node::ports::reserve(12).unwrap();
    let config = cluster_file(tmp.path(), ports.ports());
    let data = tmp.path().join("cluster");
    let mut up = ccbft()
        .args(["cluster", "up", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = await_ready(&data, &mut up);
    assert!(data.join("keys").is_dir(), "keys generated");

    // A second supervisor on the same directory is refused, naming the first.
    let second = ccbft()
        .args(["cluster", "up", "--config"])
        .arg(&config)
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
        let report = await_ready(&data, &mut up);
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

    let down = ccbft()
        .args(["cluster", "down", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", text(&down.stderr));
    let out = up.wait_with_output().unwrap();
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
    let (code, after) = status(&data);
    assert_eq!(code, Some(1), "nothing runs: {after:#}");
    assert!(after["supervisor_pid"].is_null());
}
