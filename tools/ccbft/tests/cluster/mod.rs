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

/// The same three clouds with the links undelayed: each replica's catch-up and the load run
/// at local speed (a replica that lost its log catches up in seconds, not minutes).
pub const THREE_CLOUDS_LOCAL: Layout = Layout {
    wan: false,
    ..THREE_CLOUDS
};

impl Layout {
    /// The replicas of domain `index`, in id order.
    pub fn members(&self, index: usize) -> Vec<u32> {
        let first: u32 = self.domains[..index].iter().map(|(_, n)| n).sum();
        (first..first + self.domains[index].1).collect()
    }

    /// A cluster file (addresses are placeholders: `LocalCluster` moves them to free ports).
    pub fn toml(&self) -> String {
        self.toml_with(|id| format!("address = \"127.0.0.1:{}\"\n", 7100 + id))
    }

    /// A cluster file with replica `i` on `ports[3i]` (links), `ports[3i + 1]` (clients) and
    /// `ports[3i + 2]` (control plane).
    pub fn toml_on(&self, ports: &[u16]) -> String {
        self.toml_with(|id| {
            let p = &ports[3 * id as usize..];
            format!(
                "address = \"127.0.0.1:{}\"\nclient_address = \"127.0.0.1:{}\"\ncontrol_address = \"127.0.0.1:{}\"\n",
                p[0], p[1], p[2]
            )
        })
    }

    fn toml_with(&self, addresses: impl Fn(u32) -> String) -> String {
        let mut text =
            String::from("[cluster]\nname = \"e2e\"\nshards = 1\nleader_rotation_blocks = 10\n");
        for (name, _) in self.domains {
            text += &format!("\n[[domains]]\nname = \"{name}\"\n");
        }
        let mut id = 0;
        for (domain, count) in self.domains {
            for _ in 0..*count {
                text += &format!(
                    "\n[[replicas]]\nid = {id}\ndomain = \"{domain}\"\n{}",
                    addresses(id)
                );
                id += 1;
            }
        }
        for (a, b, rtt) in self.links {
            text += &format!("\n[[links]]\na = \"{a}\"\nb = \"{b}\"\nrtt_ms = {rtt}\n");
        }
        text
    }

    pub fn replicas(&self) -> u32 {
        self.domains.iter().map(|(_, n)| n).sum()
    }
}

/// A cluster `ccbft cluster up` supervises, on ports reserved for it, in a temporary
/// directory. Dropping it kills the supervisor (and with it every replica).
pub struct Supervised {
    pub up: Option<Child>,
    /// The cluster's directory (`--data`).
    pub data: std::path::PathBuf,
    pub dir: tempfile::TempDir,
    _ports: ccbft_node::ports::PortReservation,
}

impl Supervised {
    pub fn up(layout: &Layout) -> Supervised {
        let dir = tempfile::tempdir().unwrap();
        let ports = ccbft_node::ports::reserve(3 * layout.replicas() as usize).unwrap();
        let config = dir.path().join("cluster-in.toml");
        std::fs::write(&config, layout.toml_on(ports.ports())).unwrap();
        let data = dir.path().join("cluster");
        let mut command = ccbft();
        command
            .args(["cluster", "up", "--config"])
            .arg(&config)
            .arg("--data")
            .arg(&data);
        if layout.wan {
            command.arg("--emulate-wan");
        }
        let up = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Supervised {
            up: Some(up),
            data,
            dir,
            _ports: ports,
        }
    }

    pub fn cluster_file(&self) -> std::path::PathBuf {
        self.data.join("cluster.toml")
    }

    /// `cluster status --json`: its exit code and report (an error, before the supervisor
    /// has written the directory, is code 2 and its message).
    pub fn status(&self) -> (Option<i32>, serde_json::Value) {
        let out = ccbft()
            .args(["cluster", "status", "--json", "--data"])
            .arg(&self.data)
            .output()
            .unwrap();
        let value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| serde_json::Value::String(text(&out.stderr)));
        (out.status.code(), value)
    }

    /// Waits until `cluster status` exits 0 (every replica running and ready); its report.
    pub fn await_ready(&mut self) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let up = self.up.as_mut().expect("supervisor running");
            assert!(up.try_wait().unwrap().is_none(), "the supervisor exited");
            let (code, value) = self.status();
            if code == Some(0) {
                return value;
            }
            assert!(Instant::now() < deadline, "never ready: {value:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `cluster down`, and the supervisor's output.
    pub fn down(&mut self) -> Output {
        let down = ccbft()
            .args(["cluster", "down", "--data"])
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(down.status.success(), "{}", text(&down.stderr));
        self.up.take().unwrap().wait_with_output().unwrap()
    }

    /// The last `lines` lines of every replica's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut all = String::new();
        for id in 0.. {
            let Ok(log) = std::fs::read_to_string(self.data.join(format!("logs/replica-{id}.log")))
            else {
                break;
            };
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            all += &format!("--- replica {id}\n{}\n", tail.join("\n"));
        }
        all
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(mut up) = self.up.take() {
            let _ = up.kill(); // its replicas die with it (PR_SET_PDEATHSIG)
            let _ = up.wait();
        }
        keep_on_failure(&mut self.dir);
    }
}

/// With `CCBFT_KEEP_FAILED=1`, a failing test leaves its directory (logs, data) behind and
/// says where.
fn keep_on_failure(dir: &mut tempfile::TempDir) {
    if std::thread::panicking() && std::env::var_os("CCBFT_KEEP_FAILED").is_some() {
        dir.disable_cleanup(true);
        eprintln!("kept the failed test's directory: {}", dir.path().display());
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
        self.local.await_line(id, "rejoining", PATIENCE).unwrap();
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

/// A new DORA state directory (`dora init`) in `dir`; its path.
pub fn dora_init(dir: &Path) -> std::path::PathBuf {
    let state = dir.join("dora");
    let init = ccbft()
        .args(["dora", "init", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init.stderr));
    state
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
