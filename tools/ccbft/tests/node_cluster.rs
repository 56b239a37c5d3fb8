//! A real cluster: four `ccbft node` processes on 127.0.0.1 (TLS links, each with its own
//! write-ahead log on disk), driven by `ccbft submit` processes with signed transfers. One
//! replica is killed with SIGKILL and restarted from its log; it must catch up to the same
//! state root as the others, and a resubmission of the same keys must move nothing.
//!
//! What is asserted is behaviour, never timing: every transfer answered `applied`, every
//! height that two replicas executed has one state root, the restarted replica reaches the
//! others' height.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a cluster on a loaded 2-core machine may take to do what a test asks.
const PATIENCE: Duration = Duration::from_secs(90);

fn ccbft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ccbft"))
}

/// Ports the kernel has just handed out, so that parallel tests do not collide.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
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
    fn replicas(&self) -> u32 {
        self.domains.iter().map(|(_, n)| n).sum()
    }

    /// The replicas of domain `index`, in id order.
    fn members(&self, index: usize) -> Vec<u32> {
        let first: u32 = self.domains[..index].iter().map(|(_, n)| n).sum();
        (first..first + self.domains[index].1).collect()
    }

    fn toml(&self, ports: &[u16]) -> String {
        let mut text =
            String::from("[cluster]\nname = \"e2e\"\nshards = 1\nleader_rotation_blocks = 10\n");
        for (name, _) in self.domains {
            text += &format!("\n[[domains]]\nname = \"{name}\"\n");
        }
        let mut id = 0;
        for (domain, count) in self.domains {
            for _ in 0..*count {
                text += &format!(
                    "\n[[replicas]]\nid = {id}\ndomain = \"{domain}\"\n\
                     address = \"127.0.0.1:{}\"\nclient_address = \"127.0.0.1:{}\"\n\
                     public_key = \"keys/replica-{id}.pub\"\n",
                    ports[2 * id],
                    ports[2 * id + 1]
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

/// The cluster's files and its replica processes; every process is killed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    layout: &'static Layout,
    nodes: BTreeMap<u32, Child>,
    /// How many times each replica was started (its log file names count them).
    starts: BTreeMap<u32, u32>,
}

impl Cluster {
    /// Keys, genesis and cluster file; no replica started.
    fn files(layout: &'static Layout) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let seed = "42".repeat(32);
        let replicas = layout.replicas().to_string();
        let out = ccbft()
            .args(["keygen", "--replicas", &replicas, "--clients", "2"])
            .args(["--seed", &seed])
            .arg("--out")
            .arg(dir.path().join("keys"))
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {}", text(&out.stderr));
        let ports = free_ports(2 * layout.replicas() as usize);
        fs::write(dir.path().join("cluster.toml"), layout.toml(&ports)).unwrap();
        Cluster {
            dir,
            layout,
            nodes: BTreeMap::new(),
            starts: BTreeMap::new(),
        }
    }

    fn running(layout: &'static Layout) -> Cluster {
        let mut cluster = Cluster::files(layout);
        for id in 0..layout.replicas() {
            cluster.start(id);
        }
        cluster
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&mut self, id: u32) {
        let start = *self.starts.entry(id).and_modify(|n| *n += 1).or_insert(1);
        let log = fs::File::create(self.log_path(id, start)).unwrap();
        let mut command = ccbft();
        command.arg("node");
        if self.layout.wan {
            command.arg("--emulate-wan");
        }
        let child = command
            .arg("--config")
            .arg(self.path("cluster.toml"))
            .arg("--keys")
            .arg(self.path("keys"))
            .args(["--id", &id.to_string()])
            .arg("--data")
            .arg(self.path(&format!("data-{id}")))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        assert!(self.nodes.insert(id, child).is_none());
    }

    /// SIGKILL: the process gets no chance to flush or clean up.
    fn kill(&mut self, id: u32) {
        let mut child = self.nodes.remove(&id).expect("replica running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn log_path(&self, id: u32, start: u32) -> PathBuf {
        self.path(&format!("replica-{id}.{start}.log"))
    }

    /// Every "executed height=H ... root=R" line of replica `id`, over all its starts.
    fn executed(&self, id: u32) -> BTreeMap<u64, String> {
        let mut roots = BTreeMap::new();
        for start in 1..=self.starts[&id] {
            let log = fs::read_to_string(self.log_path(id, start)).unwrap_or_default();
            for line in log.lines() {
                if let Some((height, root)) = parse_executed(line) {
                    roots.insert(height, root);
                }
            }
        }
        roots
    }

    /// Fails on the first height two replicas executed to different roots.
    fn assert_one_root_per_height(&self) {
        let mut seen: BTreeMap<u64, (u32, String)> = BTreeMap::new();
        for id in 0..self.layout.replicas() {
            for (height, root) in self.executed(id) {
                let (first, expected) = seen.entry(height).or_insert((id, root.clone()));
                assert_eq!(
                    *expected, root,
                    "height {height}: replica {first} executed root {expected}, replica {id} {root}"
                );
            }
        }
    }

    /// Waits until every replica executed `height` (or fails with each one's progress).
    fn await_height(&self, height: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let heights: Vec<u64> = (0..self.layout.replicas())
                .map(|id| self.executed(id).keys().last().copied().unwrap_or(0))
                .collect();
            if heights.iter().all(|&h| h >= height) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas did not all reach height {height}: {heights:?}\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn submit(&self, args: &[&str]) -> Output {
        ccbft()
            .arg("submit")
            .arg("--config")
            .arg(self.path("cluster.toml"))
            .arg("--keys")
            .arg(self.path("keys"))
            .args(["--timeout-s", &PATIENCE.as_secs().to_string()])
            .args(args)
            .output()
            .unwrap()
    }

    /// Submits and returns the report's `name=value` fields, failing on a non-zero exit.
    fn submit_ok(&self, args: &[&str]) -> BTreeMap<String, String> {
        let out = self.submit(args);
        assert!(
            out.status.success(),
            "submit {args:?}: {}\n{}",
            text(&out.stderr),
            self.log_tails()
        );
        report_fields(&text(&out.stdout))
    }

    /// The replica named by the last line of `id`'s current log that contains `marker`
    /// followed by "rN" (e.g. "global leader r3 from round 40").
    fn last_named(&self, id: u32, marker: &str) -> Option<u32> {
        let log = fs::read_to_string(self.log_path(id, self.starts[&id])).ok()?;
        log.lines().rev().find_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            rest.trim_start()
                .strip_prefix('r')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    /// Waits until replica `id` executed `height`.
    fn await_replica_height(&self, id: u32, height: u64) {
        let deadline = Instant::now() + PATIENCE;
        while self.executed(id).keys().last().copied().unwrap_or(0) < height {
            assert!(
                Instant::now() < deadline,
                "replica {id} below {height}\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ccbft submit` in the background.
    fn spawn_submit(&self, args: &[&str]) -> Child {
        ccbft()
            .arg("submit")
            .arg("--config")
            .arg(self.path("cluster.toml"))
            .arg("--keys")
            .arg(self.path("keys"))
            .args(["--timeout-s", &PATIENCE.as_secs().to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn log_tails(&self) -> String {
        let mut all = String::new();
        for (&id, &start) in &self.starts {
            let log = fs::read_to_string(self.log_path(id, start)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(8)..];
            all += &format!("--- replica {id} (start {start})\n{}\n", tail.join("\n"));
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.nodes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_executed(line: &str) -> Option<(u64, String)> {
    let rest = &line[line.find("executed height=")? + "executed height=".len()..];
    let height = rest.split_whitespace().next()?.parse().ok()?;
    let root = &rest[rest.find("root=")? + "root=".len()..];
    Some((height, root.split_whitespace().next()?.to_string()))
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
    let restored = fs::read_to_string(cluster.log_path(3, 2)).unwrap();
    assert!(
        restored.contains("restored from") && !restored.contains("records=0 "),
        "replica 3 restarted from an empty log:\n{restored}"
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
        .arg(cluster.path("cluster.toml"))
        .arg("--keys")
        .arg(cluster.path("keys"))
        .args(["--id", "9", "--data"])
        .arg(cluster.path("data-9"))
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
    let out = load.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "load: {}\n{}",
        text(&out.stderr),
        cluster.log_tails()
    );
    report_fields(&text(&out.stdout))
}

#[test]
fn three_clouds_keep_committing_when_the_global_leader_and_then_a_shard_primary_are_killed() {
    let mut cluster = Cluster::running(&THREE_CLOUDS);
    // Client 0's payments enter at the first replica of its account's home domain.
    let home = ccbft_core::client::home_domain(0, 3) as usize;
    let load = cluster.spawn_submit(&["--count", "800", "--window", "16", "--first-key", "1"]);
    let observer = 6; // never killed below unless it is the leader; then 5
    cluster.await_replica_height(observer, 5);

    let leader = cluster
        .last_named(observer, "global leader")
        .expect("the observer logged a leader");
    let observer = if leader == observer { 5 } else { observer };
    cluster.kill(leader);
    let height = cluster
        .executed(observer)
        .keys()
        .last()
        .copied()
        .unwrap_or(0);
    cluster.await_replica_height(observer, height + 10);
    cluster.start(leader);

    // Ask a home-domain member that was not just restarted (its log is the older one).
    let member = *cluster
        .layout
        .members(home)
        .iter()
        .find(|&&id| id != leader)
        .expect("the home domain has two members");
    let primary = cluster
        .last_named(member, &format!("lane {home}/0 primary"))
        .expect("every replica logs its lanes' primaries");
    cluster.kill(primary);
    let height = cluster
        .executed(observer)
        .keys()
        .last()
        .copied()
        .unwrap_or(0);
    cluster.await_replica_height(observer, height + 10);
    cluster.start(primary);

    let report = finish(&cluster, load);
    eprintln!("killed leader r{leader}, then primary r{primary}: {report:?}");
    // Every payment answered globally final exactly once: resent ones (after a failover) are
    // answered `duplicate`, which is the ledger refusing to run them a second time.
    assert_eq!(field(&report, "answered"), 800, "{report:?}");
    assert_eq!(
        field(&report, "applied") + field(&report, "duplicate"),
        800,
        "{report:?}"
    );
    assert_eq!(field(&report, "refused"), 0, "{report:?}");
    cluster.await_height(field(&report, "height"));
    cluster.assert_one_root_per_height();
}
