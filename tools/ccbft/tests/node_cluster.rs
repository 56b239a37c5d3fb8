//! Real clusters: `ccbft node` processes on 127.0.0.1 (TLS links, each with its own
//! write-ahead log on disk), driven by `ccbft submit` processes with signed transfers.
//! Replicas are killed with SIGKILL and restarted from their logs; they must catch up to the
//! same state roots as the others, and a resubmission of the same keys must move nothing.
//!
//! What is asserted is behaviour, never timing: every transfer answered, none run twice,
//! every height that two replicas executed has one state root, restarted replicas catch up.

use ccbft_node::local_cluster::LocalCluster;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a cluster on a loaded 2-core machine may take to do what a test asks.
const PATIENCE: Duration = Duration::from_secs(180);

fn ccbft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ccbft"))
}

/// Where the replicas sit: (domain, replicas in it), and the round trips between domains.
struct Layout {
    domains: &'static [(&'static str, u32)],
    links: &'static [(&'static str, &'static str, f64)],
    /// Delay links by the round trips (`ccbft node --emulate-wan`).
    wan: bool,
}

const ONE_DOMAIN: Layout = Layout {
    domains: &[("aws/eu-central-1", 4)],
    links: &[],
    wan: false,
};

/// examples/three-clouds.toml: AWS 3, Azure 2, GCP 2, with its round trips.
const THREE_CLOUDS: Layout = Layout {
    domains: &[
        ("aws/eu-central-1", 3),
        ("azure/westeurope", 2),
        ("gcp/europe-west3", 2),
    ],
    links: &[
        ("aws/eu-central-1", "azure/westeurope", 22.0),
        ("aws/eu-central-1", "gcp/europe-west3", 28.0),
        ("azure/westeurope", "gcp/europe-west3", 64.0),
    ],
    wan: true,
};

impl Layout {
    /// The replicas of domain `index`, in id order.
    fn members(&self, index: usize) -> Vec<u32> {
        let first: u32 = self.domains[..index].iter().map(|(_, n)| n).sum();
        (first..first + self.domains[index].1).collect()
    }

    /// A cluster file (addresses are placeholders: `LocalCluster` moves them to free ports).
    fn toml(&self) -> String {
        let mut text =
            String::from("[cluster]\nname = \"e2e\"\nshards = 1\nleader_rotation_blocks = 10\n");
        for (name, _) in self.domains {
            text += &format!("\n[[domains]]\nname = \"{name}\"\n");
        }
        let mut id = 0;
        for (domain, count) in self.domains {
            for _ in 0..*count {
                text += &format!(
                    "\n[[replicas]]\nid = {id}\ndomain = \"{domain}\"\naddress = \"127.0.0.1:{}\"\n",
                    7100 + id
                );
                id += 1;
            }
        }
        for (a, b, rtt) in self.links {
            text += &format!("\n[[links]]\na = \"{a}\"\nb = \"{b}\"\nrtt_ms = {rtt}\n");
        }
        text
    }
}

/// A local cluster in a temporary directory, and the test's view of it.
struct Cluster {
    // Dropped first: the processes stop before their directory goes.
    local: LocalCluster,
    layout: &'static Layout,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Keys, genesis (two clients) and cluster file; no replica started.
    fn files(layout: &'static Layout) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalCluster::create(
            Path::new(env!("CARGO_BIN_EXE_ccbft")),
            dir.path(),
            &layout.toml(),
            2,
            layout.wan,
        )
        .unwrap();
        Cluster { local, layout, dir }
    }

    fn running(layout: &'static Layout) -> Cluster {
        let mut cluster = Cluster::files(layout);
        cluster.local.start_all().unwrap();
        cluster
    }

    fn start(&mut self, id: u32) {
        self.local.start(id).unwrap();
    }

    fn kill(&mut self, id: u32) {
        self.local.kill(id);
    }

    fn replicas(&self) -> u32 {
        self.local.replicas()
    }

    fn assert_one_root_per_height(&self) {
        if let Some(disagreement) = self.local.root_disagreement() {
            panic!("{disagreement}");
        }
    }

    fn height(&self, id: u32) -> u64 {
        self.local.executed_height(id)
    }

    /// Waits until every replica executed `height` (or fails with each one's progress).
    fn await_height(&self, height: u64) {
        for id in 0..self.replicas() {
            self.await_replica_height(id, height);
        }
    }

    /// Waits until replica `id` executed `height`.
    fn await_replica_height(&self, id: u32, height: u64) {
        let deadline = Instant::now() + PATIENCE;
        while self.height(id) < height {
            assert!(
                Instant::now() < deadline,
                "replica {id} below {height}\n{}",
                self.local.log_tails(8)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn submit_command(&self, args: &[&str]) -> Command {
        let mut command = ccbft();
        command
            .arg("submit")
            .arg("--config")
            .arg(self.local.cluster_file())
            .arg("--keys")
            .arg(self.local.keys_dir())
            .args(["--timeout-s", &PATIENCE.as_secs().to_string()])
            .args(args);
        command
    }

    fn submit(&self, args: &[&str]) -> Output {
        self.submit_command(args).output().unwrap()
    }

    /// `ccbft submit` in the background.
    fn spawn_submit(&self, args: &[&str]) -> Child {
        self.submit_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Submits and returns the report's `name=value` fields, failing on a non-zero exit.
    fn submit_ok(&self, args: &[&str]) -> BTreeMap<String, String> {
        self.report(&format!("submit {args:?}"), self.submit(args))
    }

    /// A `ccbft submit`'s report fields, failing with its stderr and the replicas' logs if
    /// it failed.
    fn report(&self, what: &str, out: Output) -> BTreeMap<String, String> {
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            text(&out.stderr),
            self.local.log_tails(8)
        );
        report_fields(&text(&out.stdout))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `name=value` pairs of `ccbft submit`'s report line.
fn report_fields(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field(report: &BTreeMap<String, String>, name: &str) -> u64 {
    report
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {report:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_cluster_executes_signed_transfers_and_a_killed_replica_rejoins_from_its_log() {
    let mut cluster = Cluster::running(&ONE_DOMAIN);

    let first = cluster.submit_ok(&["--count", "200", "--first-key", "1000"]);
    assert_eq!(field(&first, "applied"), 200, "{first:?}");
    assert_eq!(field(&first, "answered"), 200, "{first:?}");

    // Replica 3 is never the one `submit` connects to first (replica 0 is), so the cluster
    // keeps answering with three of four while it is down.
    cluster.kill(3);
    let while_down = cluster.submit_ok(&["--count", "100", "--first-key", "2000"]);
    assert_eq!(field(&while_down, "applied"), 100, "{while_down:?}");

    cluster.start(3);
    let after = cluster.submit_ok(&["--count", "50", "--first-key", "3000"]);
    assert_eq!(field(&after, "applied"), 50, "{after:?}");
    cluster.await_height(field(&after, "height"));
    cluster.assert_one_root_per_height();
    let restored = cluster.local.current_log(3);
    assert!(
        restored.contains("restored from") && !restored.contains("records=0 "),
        "replica 3 restarted from an empty log:\n{restored}"
    );

    // SIGTERM: replica 2 makes its log durable, says so and exits 0; restarted, it has
    // every record it had.
    let status = cluster.local.terminate(2, PATIENCE).unwrap();
    assert!(status.success(), "{status:?}");
    let stopped = cluster.local.current_log(2);
    let durable = stopped
        .lines()
        .find_map(|l| l.split("stopped: log durable up to record ").nth(1))
        .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no stop line:\n{stopped}"));
    cluster.start(2);
    let restored = cluster
        .local
        .await_line(2, "restored from", PATIENCE)
        .unwrap();
    assert!(
        restored.contains(&format!("records={durable} ")),
        "stopped with {durable} records durable, restored: {restored}"
    );

    // The same keys again: answered, nothing moves twice.
    let replay = cluster.submit_ok(&["--count", "200", "--first-key", "1000"]);
    assert_eq!(field(&replay, "duplicate"), 200, "{replay:?}");
    assert_eq!(field(&replay, "applied"), 0, "{replay:?}");
    cluster.assert_one_root_per_height();
}

#[test]
fn bad_submissions_are_refused_with_a_reason() {
    let cluster = Cluster::files(&ONE_DOMAIN);
    // Client 7 is not in the genesis: no key file, an error that names it.
    let out = cluster.submit(&["--client", "7", "--count", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("client-7.key"),
        "{}",
        text(&out.stderr)
    );
    // A window of 0 is refused by the parser.
    let out = cluster.submit(&["--window", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_node_refuses_bad_start_up_input() {
    let cluster = Cluster::files(&ONE_DOMAIN);
    let out = ccbft()
        .arg("node")
        .arg("--config")
        .arg(cluster.local.cluster_file())
        .arg("--keys")
        .arg(cluster.local.keys_dir())
        .args(["--id", "9", "--data"])
        .arg(cluster.dir.path().join("data-9"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("replica 9 is not in"),
        "{}",
        text(&out.stderr)
    );
}

/// The load's report, failing with its stderr and the replicas' logs if it failed.
fn finish(cluster: &Cluster, load: Child) -> BTreeMap<String, String> {
    cluster.report("load", load.wait_with_output().unwrap())
}

#[test]
fn three_clouds_keep_committing_when_the_global_leader_and_then_a_shard_primary_are_killed() {
    let mut cluster = Cluster::running(&THREE_CLOUDS);
    // Client 0's payments enter at the first replica of its account's home domain.
    let home = ccbft_core::client::home_domain(0, 3) as usize;
    let load = cluster.spawn_submit(&["--count", "400", "--window", "16", "--first-key", "1"]);
    cluster.await_replica_height(6, 5);
    let leader = cluster
        .local
        .last_named(6, "global leader")
        .expect("replica 6 logged a leader");
    // Progress is watched on a replica that is killed neither as leader nor as primary.
    let home_members = cluster.layout.members(home);
    let observer = (0..cluster.replicas())
        .rev()
        .find(|id| *id != leader && !home_members.contains(id))
        .expect("a replica outside the home domain");
    cluster.kill(leader);
    let height = cluster.height(observer);
    cluster.await_replica_height(observer, height + 10);
    cluster.start(leader);

    // Ask a home-domain member that was not just restarted (its log is the older one).
    let member = *home_members
        .iter()
        .find(|&&id| id != leader)
        .expect("the home domain has two members");
    let primary = cluster
        .local
        .last_named(member, &format!("lane {home}/0 primary"))
        .expect("every replica logs its lanes' primaries");
    cluster.kill(primary);
    let height = cluster.height(observer);
    cluster.await_replica_height(observer, height + 10);
    cluster.start(primary);

    let report = finish(&cluster, load);
    eprintln!("killed leader r{leader}, then primary r{primary}: {report:?}");
    // The observer's control plane saw it: ready, the leader's round timed out, and its
    // executed height is exported.
    let (status, _) = cluster.local.control_get(observer, "/health").unwrap();
    assert_eq!(status, 200);
    let (_, events) = cluster.local.control_get(observer, "/events").unwrap();
    assert!(events.contains("\"kind\":\"GlobalTimeout\""), "{events}");
    let (_, metrics) = cluster.local.control_get(observer, "/metrics").unwrap();
    let exported = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("ccbft_executed_height{{replica=\"{observer}\"}} ")))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(exported >= field(&report, "height"), "{metrics}");
    // Every payment answered globally final exactly once: resent ones (after a failover) are
    // answered `duplicate`, which is the ledger refusing to run them a second time.
    assert_eq!(field(&report, "answered"), 400, "{report:?}");
    assert_eq!(
        field(&report, "applied") + field(&report, "duplicate"),
        400,
        "{report:?}"
    );
    assert_eq!(field(&report, "refused"), 0, "{report:?}");
    cluster.await_height(field(&report, "height"));
    cluster.assert_one_root_per_height();
}

/// The newest segment file of replica `id`'s log.
fn last_segment(dir: &Path, id: u32) -> std::path::PathBuf {
    let wal = dir.join(format!("data-{id}")).join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[test]
fn a_torn_log_tail_is_cut_and_a_replica_with_a_lost_disk_catches_up_and_votes_again() {
    let mut cluster = Cluster::running(&ONE_DOMAIN);
    let first = cluster.submit_ok(&["--count", "100", "--first-key", "1"]);
    assert_eq!(field(&first, "applied"), 100, "{first:?}");

    // Replica 2 dies while a group is being written: bytes past its durable watermark that
    // were never acknowledged (appended by hand here: SIGKILL keeps every completed write).
    cluster.kill(2);
    let segment = last_segment(cluster.dir.path(), 2);
    let mut torn = std::fs::read(&segment).unwrap();
    torn.extend(std::iter::repeat_n(0xa5, 1500));
    std::fs::write(&segment, torn).unwrap();
    cluster.start(2);

    // Replica 1's machine is replaced: its data directory is gone.
    cluster.kill(1);
    std::fs::remove_dir_all(cluster.dir.path().join("data-1")).unwrap();
    cluster.start(1);

    let second = cluster.submit_ok(&["--count", "100", "--first-key", "1000"]);
    assert_eq!(field(&second, "applied"), 100, "{second:?}");
    cluster.await_height(field(&second, "height"));
    let log2 = cluster.local.current_log(2);
    assert!(log2.contains("torn_tail=true"), "replica 2:\n{log2}");
    let log1 = cluster.local.current_log(1);
    assert!(log1.contains("records=0 "), "replica 1:\n{log1}");

    // With replica 3 down, a quorum (3 of 4) needs replica 1's votes again.
    cluster.kill(3);
    let third = cluster.submit_ok(&["--count", "50", "--first-key", "2000"]);
    assert_eq!(field(&third, "applied"), 50, "{third:?}");
    for id in 0..3 {
        cluster.await_replica_height(id, field(&third, "height"));
    }
    cluster.assert_one_root_per_height();
}
