//! A cluster of `ccbft node` processes on this host (the demo and the end-to-end tests): its
//! keys, a cluster file rewritten onto free local ports, one process per replica with its log
//! file, SIGKILL and restart, and what the replicas' logs say (executed heights and roots,
//! leaders, view changes, evidence). Every process is killed when the cluster is dropped, and
//! dies with its parent (PR_SET_PDEATHSIG), so an interrupted run leaves no replica behind.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::ports::{self, PortReservation};

pub struct LocalCluster {
    /// The `ccbft` executable.
    program: PathBuf,
    dir: PathBuf,
    replicas: u32,
    /// Each replica's control-plane address.
    control: Vec<String>,
    emulate_wan: bool,
    nodes: BTreeMap<u32, Child>,
    /// How many times each replica was started (its log files count them).
    starts: BTreeMap<u32, u32>,
    /// Options some replicas are started with besides the usual ones.
    extra_args: BTreeMap<u32, Vec<String>>,
    /// Keeps every port the cluster file and the control planes name free for this cluster.
    _ports: PortReservation,
}

/// What one replica's process used, from /proc, while it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
}

impl LocalCluster {
    /// Writes keys (`keys/`, with `clients` genesis clients) and `cluster.toml` into `dir`:
    /// the cluster file `template` with every replica moved to a free port on 127.0.0.1.
    pub fn create(
        program: &Path,
        dir: &Path,
        template: &str,
        clients: u32,
        emulate_wan: bool,
    ) -> Result<LocalCluster, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let replicas = replica_count(template)?;
        let ports = ports::reserve(3 * replicas as usize)?;
        let toml = relocate(template, ports.ports())?;
        let control = ports
            .ports()
            .chunks(3)
            .map(|ports| format!("127.0.0.1:{}", ports[2]))
            .collect();
        fs::write(dir.join("cluster.toml"), toml).map_err(|e| e.to_string())?;
        keygen(program, &dir.join("keys"), replicas, clients)?;
        Ok(LocalCluster {
            program: program.to_path_buf(),
            dir: dir.to_path_buf(),
            replicas,
            control,
            emulate_wan,
            nodes: BTreeMap::new(),
            starts: BTreeMap::new(),
            extra_args: BTreeMap::new(),
            _ports: ports,
        })
    }

    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.dir.join("cluster.toml")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    /// Where replica `id` serves `/metrics`, `/health` and `/events`.
    pub fn control_addr(&self, id: u32) -> &str {
        &self.control[id as usize]
    }

    /// `GET path` on replica `id`'s control plane: (status code, body).
    pub fn control_get(&self, id: u32, path: &str) -> Result<(u16, String), String> {
        self.control_request(id, "GET", path, None)
    }

    /// `POST path` on replica `id`'s admin API, with the admin token from its data
    /// directory: (status code, body).
    pub fn admin_post(&self, id: u32, path: &str) -> Result<(u16, String), String> {
        let file = self.data_dir(id).join(crate::admin::ADMIN_TOKEN_FILE);
        let token = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        self.control_request(id, "POST", path, Some(token.trim()))
    }

    fn control_request(
        &self,
        id: u32,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, String), String> {
        crate::control::request(self.control_addr(id), method, path, token)
    }

    pub fn is_running(&self, id: u32) -> bool {
        self.nodes.contains_key(&id)
    }

    /// Replica `id` runs the Byzantine strategy `strategy` from its next start (needs a
    /// `ccbft` built with the `adversary` feature).
    pub fn set_adversary(&mut self, id: u32, strategy: &str) {
        self.add_args(id, &["--adversary", strategy]);
    }

    /// Replica `id` gets `args` too from its next start (`ccbft node` options).
    pub fn add_args(&mut self, id: u32, args: &[&str]) {
        assert!(id < self.replicas);
        let extra = self.extra_args.entry(id).or_default();
        extra.extend(args.iter().map(|a| a.to_string()));
    }

    /// Where replica `id` keeps its log and its evidence.
    pub fn data_dir(&self, id: u32) -> PathBuf {
        self.dir.join(format!("data-{id}"))
    }

    pub fn start_all(&mut self) -> Result<(), String> {
        (0..self.replicas).try_for_each(|id| self.start(id))
    }

    /// Starts replica `id` on its data directory (restored from its log if it ran before).
    pub fn start(&mut self, id: u32) -> Result<(), String> {
        assert!(id < self.replicas && !self.nodes.contains_key(&id));
        let start = *self.starts.entry(id).and_modify(|n| *n += 1).or_insert(1);
        let log = fs::File::create(self.log_path(id, start)).map_err(|e| e.to_string())?;
        let mut extra = self.extra_args.get(&id).cloned().unwrap_or_default();
        if start == 1 {
            // The cluster is new: an empty log is genesis. Later starts on an empty data
            // directory (a lost disk) rejoin.
            extra.push("--genesis".into());
        }
        let mut command = node_command(&NodeCommand {
            program: &self.program,
            cluster_file: &self.cluster_file(),
            keys: &self.keys_dir(),
            id,
            data: &self.data_dir(id),
            emulate_wan: self.emulate_wan,
            extra: &extra,
        });
        command.stdout(Stdio::null()).stderr(log);
        let child = command
            .spawn()
            .map_err(|e| format!("starting replica {id}: {e}"))?;
        self.nodes.insert(id, child);
        Ok(())
    }

    /// SIGKILL: the process gets no chance to flush or clean up. Returns what it used.
    pub fn kill(&mut self, id: u32) -> Usage {
        let mut child = self.nodes.remove(&id).expect("replica running");
        let usage = usage(child.id());
        let _ = child.kill();
        let _ = child.wait();
        usage
    }

    fn signal(&self, id: u32, signal: libc::c_int) {
        let child = self.nodes.get(&id).expect("replica running");
        // Linux pids fit: pid_max is at most 2^22.
        let pid = child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGTERM, and waits for the process to stop by itself (it makes its log durable
    /// first). Its exit status, or an error if it did not stop within `patience` (it is
    /// then killed).
    pub fn terminate(
        &mut self,
        id: u32,
        patience: std::time::Duration,
    ) -> Result<std::process::ExitStatus, String> {
        self.signal(id, libc::SIGTERM);
        let mut child = self.nodes.remove(&id).expect("replica running");
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "replica {id} did not stop within {patience:?} of SIGTERM"
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops every replica with SIGTERM (killed if it does not stop within `patience`);
    /// the replicas that did not stop cleanly, with why.
    pub fn stop_all(&mut self, patience: std::time::Duration) -> Vec<(u32, String)> {
        let ids: Vec<u32> = self.nodes.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| match self.terminate(id, patience) {
                Ok(status) if status.success() => None,
                Ok(status) => Some((id, status.to_string())),
                Err(e) => Some((id, e)),
            })
            .collect()
    }

    /// What replica `id` has used so far (zero when it is not running).
    pub fn usage(&self, id: u32) -> Usage {
        self.nodes
            .get(&id)
            .map_or(Usage::default(), |c| usage(c.id()))
    }

    pub fn log_path(&self, id: u32, start: u32) -> PathBuf {
        self.dir.join(format!("replica-{id}.{start}.log"))
    }

    fn logs(&self, id: u32) -> impl Iterator<Item = String> + '_ {
        let starts = self.starts.get(&id).copied().unwrap_or(0);
        (1..=starts)
            .map(move |start| fs::read_to_string(self.log_path(id, start)).unwrap_or_default())
    }

    /// The current run's log of replica `id`.
    pub fn current_log(&self, id: u32) -> String {
        self.logs(id).last().unwrap_or_default()
    }

    /// Waits until the current run's log of replica `id` has a line containing `marker`;
    /// returns that line.
    pub fn await_line(
        &self,
        id: u32,
        marker: &str,
        patience: std::time::Duration,
    ) -> Result<String, String> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let log = self.current_log(id);
            if let Some(line) = log.lines().find(|l| l.contains(marker)) {
                return Ok(line.to_string());
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!("replica {id} never logged {marker:?}:\n{log}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Every executed height of replica `id` (over all its runs) with its state root.
    pub fn executed(&self, id: u32) -> BTreeMap<u64, String> {
        let mut roots = BTreeMap::new();
        for log in self.logs(id) {
            roots.extend(log.lines().filter_map(parse_executed));
        }
        roots
    }

    pub fn executed_height(&self, id: u32) -> u64 {
        self.executed(id).keys().last().copied().unwrap_or(0)
    }

    /// The first height two replicas executed to different roots, with both.
    pub fn root_disagreement(&self) -> Option<String> {
        let mut seen: BTreeMap<u64, (u32, String)> = BTreeMap::new();
        for id in 0..self.replicas {
            for (height, root) in self.executed(id) {
                let (first, expected) = seen.entry(height).or_insert((id, root.clone()));
                if *expected != root {
                    return Some(format!(
                        "height {height}: replica {first} executed root {expected}, replica {id} {root}"
                    ));
                }
            }
        }
        None
    }

    /// The replica named by the last line of `id`'s current log that has `marker` followed
    /// by "rN" (e.g. "global leader r3 from round 40").
    pub fn last_named(&self, id: u32, marker: &str) -> Option<u32> {
        self.current_log(id).lines().rev().find_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            rest.trim_start()
                .strip_prefix('r')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    /// Lines with `marker` in all of replica `id`'s logs.
    pub fn count_lines(&self, id: u32, marker: &str) -> usize {
        self.logs(id)
            .map(|log| log.lines().filter(|l| l.contains(marker)).count())
            .sum()
    }

    /// The last lines of every replica's current log (for error messages).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut all = String::new();
        for (&id, &start) in &self.starts {
            let log = fs::read_to_string(self.log_path(id, start)).unwrap_or_default();
            let kept: Vec<&str> = log.lines().collect();
            let tail = &kept[kept.len().saturating_sub(lines)..];
            all += &format!("--- replica {id} (run {start})\n{}\n", tail.join("\n"));
        }
        all
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.nodes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// "... executed height=H transactions=T root=R" → (H, R).
pub fn parse_executed(line: &str) -> Option<(u64, String)> {
    let rest = &line[line.find("executed height=")? + "executed height=".len()..];
    let height = rest.split_whitespace().next()?.parse().ok()?;
    let root = &rest[rest.find("root=")? + "root=".len()..];
    Some((height, root.split_whitespace().next()?.to_string()))
}

/// How many `[[replicas]]` the cluster file lists.
fn replica_count(template: &str) -> Result<u32, String> {
    let file: toml::Table = template.parse().map_err(|e| format!("cluster file: {e}"))?;
    let replicas = file
        .get("replicas")
        .and_then(|r| r.as_array())
        .ok_or("cluster file: no [[replicas]]")?;
    Ok(replicas.len() as u32)
}

/// `program keygen`: replica keys for `replicas` replicas and `clients` genesis clients in
/// `out`.
pub fn keygen(program: &Path, out: &Path, replicas: u32, clients: u32) -> Result<(), String> {
    let done = Command::new(program)
        .arg("keygen")
        .arg("--out")
        .arg(out)
        .args(["--replicas", &replicas.to_string()])
        .args(["--clients", &clients.to_string()])
        .output()
        .map_err(|e| format!("running {} keygen: {e}", program.display()))?;
    if !done.status.success() {
        return Err(format!(
            "keygen: {}",
            String::from_utf8_lossy(&done.stderr).trim()
        ));
    }
    Ok(())
}

/// What a replica process is started with.
pub struct NodeCommand<'a> {
    pub program: &'a Path,
    pub cluster_file: &'a Path,
    pub keys: &'a Path,
    pub id: u32,
    pub data: &'a Path,
    pub emulate_wan: bool,
    /// More `ccbft node` options.
    pub extra: &'a [String],
}

/// `ccbft node` for one replica, logging at `info`, with no stdin, that dies with its parent
/// (PR_SET_PDEATHSIG): a replica never outlives what started it. The caller sets stdout and
/// stderr.
pub fn node_command(node: &NodeCommand) -> Command {
    let mut command = Command::new(node.program);
    command.arg("node");
    if node.emulate_wan {
        command.arg("--emulate-wan");
    }
    command
        .args(node.extra)
        .arg("--config")
        .arg(node.cluster_file)
        .arg("--keys")
        .arg(node.keys)
        .args(["--id", &node.id.to_string()])
        .arg("--data")
        .arg(node.data)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe; it only asks for SIGKILL when the parent dies.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
}

/// The cluster file with every replica on 127.0.0.1: replica `i` listens for peers on
/// `ports[3i]`, for clients on `ports[3i + 1]` and serves its control plane on `ports[3i + 2]`.
fn relocate(template: &str, ports: &[u16]) -> Result<String, String> {
    let mut file: toml::Table = template.parse().map_err(|e| format!("cluster file: {e}"))?;
    let replicas = file
        .get_mut("replicas")
        .and_then(|r| r.as_array_mut())
        .ok_or("cluster file: no [[replicas]]")?;
    assert_eq!(ports.len(), 3 * replicas.len(), "three ports a replica");
    for (replica, ports) in replicas.iter_mut().zip(ports.chunks(3)) {
        let table = replica
            .as_table_mut()
            .ok_or("cluster file: a [[replicas]] entry is not a table")?;
        for (field, port) in ["address", "client_address", "control_address"]
            .into_iter()
            .zip(ports)
        {
            table.insert(field.into(), format!("127.0.0.1:{port}").into());
        }
        table.remove("public_key");
    }
    let text = toml::to_string(&file).map_err(|e| e.to_string())?;
    ccbft_core::topology::Topology::from_toml_str(&text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// CPU seconds (user + system) and peak resident set of process `pid`.
fn usage(pid: u32) -> Usage {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime 13th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Usage {
        cpu_s: ticks as f64 / hz,
        peak_rss_kib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executed_lines_parse_and_others_do_not() {
        let line = "INFO ccbft_node::host: executed height=12 transactions=3 root=ab01";
        assert_eq!(parse_executed(line), Some((12, "ab01".to_string())));
        assert_eq!(parse_executed("INFO restored from x records=3"), None);
        assert_eq!(parse_executed("executed height=x root=ab"), None);
    }

    #[test]
    fn relocation_moves_every_replica_to_its_own_local_ports() {
        let template = ccbft_core::topology::THREE_CLOUDS_TOML;
        assert_eq!(replica_count(template).unwrap(), 7);
        let ports: Vec<u16> = (20_000..20_021).collect();
        let text = relocate(template, &ports).unwrap();
        let topology = ccbft_core::topology::Topology::from_toml_str(&text).unwrap();
        let original = ccbft_core::topology::Topology::three_clouds();
        assert_eq!(topology.rtt_us, original.rtt_us);
        for (i, spec) in topology.replicas.iter().enumerate() {
            assert_eq!(spec.address, format!("127.0.0.1:{}", ports[3 * i]));
            let client = format!("127.0.0.1:{}", ports[3 * i + 1]);
            assert_eq!(spec.client_addr().unwrap().to_string(), client);
            let control = format!("127.0.0.1:{}", ports[3 * i + 2]);
            assert_eq!(spec.control_addr().unwrap().to_string(), control);
        }
        assert!(replica_count("[cluster]\nname = \"x\"\n").is_err());
    }
}
