//! What the end-to-end tests share: cluster layouts, a local cluster in a temporary
//! directory, `ccbft submit` runs and their reports.
#![allow(dead_code)] // each test binary uses its own part

use ccbft_node::local_cluster::LocalCluster;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a cluster on a loaded 2-core machine may take to do what a test asks.
pub const PATIENCE: Duration = Duration::from_secs(180);

pub fn ccbft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ccbft"))
}

/// Where the replicas sit: (domain, replicas in it), and the round trips between domains.
pub struct Layout {
    pub domains: &'static [(&'static str, u32)],
    pub links: &'static [(&'static str, &'static str, f64)],
    /// Delay links by the round trips (`ccbft node --emulate-wan`).
    pub wan: bool,
}

pub const ONE_DOMAIN: Layout = Layout {
    domains: &[("aws/eu-central-1", 4)],
    links: &[],
    wan: false,
};

/// examples/three-clouds.toml: AWS 3, Azure 2, GCP 2, with its round trips.
pub const THREE_CLOUDS: Layout = Layout {
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
    pub fn members(&self, index: usize) -> Vec<u32> {
        let first: u32 = self.domains[..index].iter().map(|(_, n)| n).sum();
        (first..first + self.domains[index].1).collect()
    }

    /// A cluster file (addresses are placeholders: `LocalCluster` moves them to free ports).
    pub fn toml(&self) -> String {
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
pub struct Cluster {
    // Dropped first: the processes stop before their directory goes.
    pub local: LocalCluster,
    pub layout: &'static Layout,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Keys, genesis (two clients) and cluster file; no replica started.
    pub fn files(layout: &'static Layout) -> Cluster {
        Cluster::files_with_clients(layout, 2)
    }

    /// Keys, a genesis with `clients` clients, and the cluster file; no replica started.
    pub fn files_with_clients(layout: &'static Layout, clients: u32) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalCluster::create(
            Path::new(env!("CARGO_BIN_EXE_ccbft")),
            dir.path(),
            &layout.toml(),
            clients,
            layout.wan,
        )
        .unwrap();
        Cluster { local, layout, dir }
    }

    pub fn running(layout: &'static Layout) -> Cluster {
        let mut cluster = Cluster::files(layout);
        cluster.local.start_all().unwrap();
        cluster
    }

    pub fn start(&mut self, id: u32) {
        self.local.start(id).unwrap();
    }

    pub fn kill(&mut self, id: u32) {
        self.local.kill(id);
    }

    pub fn replicas(&self) -> u32 {
        self.local.replicas()
    }

    pub fn assert_one_root_per_height(&self) {
        if let Some(disagreement) = self.local.root_disagreement() {
            panic!("{disagreement}");
        }
    }

    pub fn height(&self, id: u32) -> u64 {
        self.local.executed_height(id)
    }

    /// Waits until every replica executed `height` (or fails with each one's progress).
    pub fn await_height(&self, height: u64) {
        for id in 0..self.replicas() {
            self.await_replica_height(id, height);
        }
    }

    /// Waits until replica `id` executed `height`.
    pub fn await_replica_height(&self, id: u32, height: u64) {
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

    /// `ccbft node` with this cluster's files and `args`, run to its end.
    pub fn node(&self, args: &[&str]) -> Output {
        ccbft()
            .arg("node")
            .arg("--config")
            .arg(self.local.cluster_file())
            .arg("--keys")
            .arg(self.local.keys_dir())
            .args(args)
            .output()
            .unwrap()
    }

    /// Submits batches of 200 transfers two at a time (many small blocks) until `done`;
    /// returns the next unused key. Fails with the logs if `what` does not happen.
    pub fn load_until(&self, what: &str, done: impl Fn(&Cluster) -> bool) -> u64 {
        self.load_from_until(1, what, done)
    }

    /// [`Cluster::load_until`] with keys from `first_key`.
    pub fn load_from_until(
        &self,
        mut first_key: u64,
        what: &str,
        done: impl Fn(&Cluster) -> bool,
    ) -> u64 {
        let last_key = first_key + 20_000;
        while !done(self) {
            assert!(
                first_key < last_key,
                "no {what}\n{}",
                self.local.log_tails(8)
            );
            let key = first_key.to_string();
            let report = self.submit_ok(&["--count", "200", "--window", "2", "--first-key", &key]);
            assert_eq!(field(&report, "applied"), 200, "{report:?}");
            first_key += 200;
        }
        first_key
    }

    /// Kills replica `down` and shows the others still commit: 50 transfers from key
    /// `first_key` applied, every running replica at their height, one root per height. In
    /// a 4-replica domain the quorum (3) then needs every other replica's votes.
    pub fn commits_without(&mut self, down: u32, first_key: u64) {
        self.kill(down);
        let key = first_key.to_string();
        let report = self.submit_ok(&["--count", "50", "--first-key", &key]);
        assert_eq!(field(&report, "applied"), 50, "{report:?}");
        for id in (0..self.replicas()).filter(|&id| self.local.is_running(id)) {
            self.await_replica_height(id, field(&report, "height"));
        }
        self.assert_one_root_per_height();
    }

    /// Drives load until replica `id`, rejoining after losing its log, is past its floors
    /// and votes again (keys from `first_key`).
    pub fn await_rejoined(&self, id: u32, first_key: u64) {
        let what = format!("end of replica {id}'s rejoin");
        self.load_from_until(first_key, &what, |c| c.metric(id, "ccbft_rejoining") == 0);
        let line = self
            .local
            .await_line(id, "rejoin complete", PATIENCE)
            .unwrap();
        assert!(line.contains("votes again"), "{line}");
    }

    /// The value of metric `name` on replica `id`'s control plane.
    pub fn metric(&self, id: u32, name: &str) -> u64 {
        let (_, metrics) = self.local.control_get(id, "/metrics").unwrap();
        let prefix = format!("{name}{{replica=\"{id}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    }

    pub fn submit_command(&self, args: &[&str]) -> Command {
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

    pub fn submit(&self, args: &[&str]) -> Output {
        self.submit_command(args).output().unwrap()
    }

    /// `ccbft submit` in the background.
    pub fn spawn_submit(&self, args: &[&str]) -> Child {
        self.submit_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Submits and returns the report's `name=value` fields, failing on a non-zero exit.
    pub fn submit_ok(&self, args: &[&str]) -> BTreeMap<String, String> {
        self.report(&format!("submit {args:?}"), self.submit(args))
    }

    /// A `ccbft submit`'s report fields, failing with its stderr and the replicas' logs if
    /// it failed.
    pub fn report(&self, what: &str, out: Output) -> BTreeMap<String, String> {
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            text(&out.stderr),
            self.local.log_tails(8)
        );
        report_fields(&text(&out.stdout))
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `name=value` pairs of `ccbft submit`'s report line.
pub fn report_fields(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn field(report: &BTreeMap<String, String>, name: &str) -> u64 {
    report
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {report:?}"))
        .parse()
        .unwrap()
}

/// The load's report, failing with its stderr and the replicas' logs if it failed.
pub fn finish(cluster: &Cluster, load: Child) -> BTreeMap<String, String> {
    cluster.report("load", load.wait_with_output().unwrap())
}
