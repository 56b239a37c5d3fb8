//! `ccbft cluster up`: one `ccbft node` process per replica of a cluster file on this host,
//! supervised, in one directory; `cluster status` and `cluster down` find it there.
//!
//! The directory ([`ClusterDir`]):
//!
//! - `cluster.toml`: the cluster file the replicas run (copied from `--config` at `up`).
//! - `keys/`: generated at the first `up` when missing (`keygen`, with genesis clients).
//! - `data-N/`: replica N's data directory (log, admin token, evidence).
//! - `logs/replica-N.log`: replica N's log, appended over its runs, each run headed by a
//!   supervisor line.
//! - `run/supervisor.lock` (held while a supervisor runs: a second `up` is refused),
//!   `run/supervisor.pid`, `run/replica-N.pid` (while N runs).
//! - `run/replica-N.hold`: while it exists, N is not restarted (maintenance, fault drills:
//!   hold, then kill).
//! - `run/replica-N.started`: N has been started once; from then on an empty data directory
//!   is a lost disk (the replica rejoins), not a new cluster's genesis.
//! - `run/replica-N.args`: more `ccbft node` options for N's next start, one a line (drills
//!   that restart a replica differently, such as adversary mode in test builds).
//!
//! Restart policy: a replica that exits on a signal or with an error is started again after
//! a back-off (doubling from [`RESTART_BACKOFF_MIN`] up to [`RESTART_BACKOFF_MAX`] while it
//! keeps failing within [`HEALTHY_RUN`] of its start); one that exits cleanly (its admin
//! API's stop) stays down until the next `up`. SIGTERM or SIGINT stops every replica with
//! SIGTERM (their logs durable first; SIGKILL after [`STOP_PATIENCE`]) and then the
//! supervisor. Replicas die with the supervisor (PR_SET_PDEATHSIG), so none is orphaned.

use crate::local_cluster::{keygen, node_command, NodeCommand};
use ccbft_core::topology::Topology;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A run this long resets the back-off.
pub const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How long a replica may take to stop on SIGTERM before it is killed.
pub const STOP_PATIENCE: Duration = Duration::from_secs(15);
/// How often the supervisor looks at its replicas.
const POLL: Duration = Duration::from_millis(50);

/// Where a supervised cluster keeps everything.
#[derive(Debug, Clone)]
pub struct ClusterDir {
    root: PathBuf,
}

impl ClusterDir {
    pub fn new(root: &Path) -> ClusterDir {
        ClusterDir {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.root.join("cluster.toml")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn data_dir(&self, id: u32) -> PathBuf {
        self.root.join(format!("data-{id}"))
    }

    pub fn log_path(&self, id: u32) -> PathBuf {
        self.root.join("logs").join(format!("replica-{id}.log"))
    }

    fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    pub fn supervisor_pid_path(&self) -> PathBuf {
        self.run_dir().join("supervisor.pid")
    }

    fn lock_path(&self) -> PathBuf {
        self.run_dir().join("supervisor.lock")
    }

    pub fn pid_path(&self, id: u32) -> PathBuf {
        self.run_dir().join(format!("replica-{id}.pid"))
    }

    pub fn hold_path(&self, id: u32) -> PathBuf {
        self.run_dir().join(format!("replica-{id}.hold"))
    }

    /// Exists once replica `id` has been started: later starts on an empty data directory
    /// are a lost disk, not genesis.
    fn started_path(&self, id: u32) -> PathBuf {
        self.run_dir().join(format!("replica-{id}.started"))
    }

    pub fn args_path(&self, id: u32) -> PathBuf {
        self.run_dir().join(format!("replica-{id}.args"))
    }

    pub fn topology(&self) -> Result<Topology, String> {
        Topology::load(&self.cluster_file()).map_err(|e| e.to_string())
    }

    /// The pid of replica `id` if its process runs.
    pub fn replica_pid(&self, id: u32) -> Option<i32> {
        read_pid(&self.pid_path(id)).filter(|&pid| alive(pid))
    }

    /// The supervisor's pid if it runs.
    pub fn supervisor_pid(&self) -> Option<i32> {
        read_pid(&self.supervisor_pid_path()).filter(|&pid| alive(pid))
    }

    /// Keeps replica `id` from being restarted until [`ClusterDir::release`].
    pub fn hold(&self, id: u32) -> Result<(), String> {
        fs::write(self.hold_path(id), b"").map_err(|e| format!("holding replica {id}: {e}"))
    }

    pub fn release(&self, id: u32) -> Result<(), String> {
        match fs::remove_file(self.hold_path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("releasing replica {id}: {e}"))
            }
            _ => Ok(()),
        }
    }

    /// More `ccbft node` options for replica `id` from its next start (none: remove them).
    pub fn set_extra_args(&self, id: u32, args: &[&str]) -> Result<(), String> {
        let path = self.args_path(id);
        let result = if args.is_empty() {
            fs::remove_file(&path).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
        } else {
            fs::write(&path, args.join("\n") + "\n")
        };
        result.map_err(|e| format!("{}: {e}", path.display()))
    }

    fn extra_args(&self, id: u32) -> Result<Vec<String>, String> {
        match fs::read_to_string(self.args_path(id)) {
            Ok(text) => Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("{}: {e}", self.args_path(id).display())),
        }
    }

    /// SIGKILL to replica `id`'s process (the supervisor restarts it unless it is held).
    pub fn kill(&self, id: u32) -> Result<i32, String> {
        let pid = self
            .replica_pid(id)
            .ok_or_else(|| format!("replica {id} is not running"))?;
        signal(pid, libc::SIGKILL);
        Ok(pid)
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // A zombie still answers signal 0; its /proc state says it has exited.
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && !zombie && unsafe { libc::kill(pid, 0) } == 0
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// What `cluster up` is given.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The `ccbft` executable the replicas run.
    pub program: PathBuf,
    pub config: PathBuf,
    pub dir: PathBuf,
    /// Genesis clients generated with missing keys.
    pub clients: u32,
    pub emulate_wan: bool,
}

/// One replica under supervision.
struct Supervised {
    id: u32,
    child: Option<Child>,
    started: Instant,
    /// When to start it next (a crashed replica waits out its back-off).
    next_start: Option<Instant>,
    backoff: Duration,
    /// Exited cleanly: stays down.
    stopped: bool,
}

/// Prepares the directory and supervises the cluster until SIGTERM or SIGINT; returns once
/// every replica stopped. Progress goes to stdout, one line per start and exit.
pub fn up(options: &UpOptions) -> Result<(), String> {
    let dir = ClusterDir::new(&options.dir);
    let run_dir = dir.run_dir();
    fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    // Locked before anything in the directory changes: a second `up` is refused untouched.
    let _lock = lock(&dir)?;
    let topology = prepare(options, &dir)?;
    write_pid(&dir.supervisor_pid_path(), std::process::id() as i32)?;
    crate::node::catch_stop_signals();
    let mut replicas: Vec<Supervised> = (0..topology.n())
        .map(|id| Supervised {
            id,
            child: None,
            started: Instant::now(),
            next_start: Some(Instant::now()),
            backoff: RESTART_BACKOFF_MIN,
            stopped: false,
        })
        .collect();
    say(&format!(
        "cluster {:?}: {} replicas in {}",
        topology.name,
        topology.n(),
        dir.root().display()
    ));
    let result = supervise(options, &dir, &mut replicas);
    stop_all(&dir, &mut replicas);
    let _ = fs::remove_file(dir.supervisor_pid_path());
    say("cluster stopped");
    result
}

/// The directory's cluster file, keys and folders; the topology.
fn prepare(options: &UpOptions, dir: &ClusterDir) -> Result<Topology, String> {
    let topology = Topology::load(&options.config).map_err(|e| e.to_string())?;
    let logs = dir.root().join("logs");
    fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    if dir.cluster_file() != options.config {
        fs::copy(&options.config, dir.cluster_file())
            .map_err(|e| format!("copying {}: {e}", options.config.display()))?;
    }
    if !dir.keys_dir().exists() {
        say(&format!(
            "generating keys for {} replicas and {} clients in {}",
            topology.n(),
            options.clients,
            dir.keys_dir().display()
        ));
        keygen(
            &options.program,
            &dir.keys_dir(),
            topology.n(),
            options.clients,
        )?;
    }
    Ok(topology)
}

/// The supervisor lock: held for the supervisor's life, so a second `up` on the directory
/// is refused while one runs (and a crashed supervisor leaves nothing stale).
fn lock(dir: &ClusterDir) -> Result<File, String> {
    let path = dir.lock_path();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor that stays open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let pid = dir
            .supervisor_pid()
            .map_or(String::new(), |p| format!(" (pid {p})"));
        return Err(format!(
            "a supervisor{pid} already runs the cluster in {}; `ccbft cluster down --data {}` stops it",
            dir.root().display(),
            dir.root().display()
        ));
    }
    Ok(file)
}

fn sync_dir(path: &Path) -> Result<(), String> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("syncing {}: {e}", path.display()))
}

fn write_pid(path: &Path, pid: i32) -> Result<(), String> {
    fs::write(path, format!("{pid}\n")).map_err(|e| format!("{}: {e}", path.display()))
}

fn say(line: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let day = now.as_secs() % 86_400;
    let _ = writeln!(
        out,
        "[{:02}:{:02}:{:02}.{:03}Z] {line}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        now.subsec_millis()
    );
    let _ = out.flush();
}

fn supervise(
    options: &UpOptions,
    dir: &ClusterDir,
    replicas: &mut [Supervised],
) -> Result<(), String> {
    while !crate::node::stop_requested() {
        for replica in replicas.iter_mut() {
            reap(dir, replica);
            let due = replica.next_start.is_some_and(|at| Instant::now() >= at);
            if replica.child.is_none() && due && !dir.hold_path(replica.id).exists() {
                start(options, dir, replica)?;
            }
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Notices an exit and schedules the restart its policy asks for.
fn reap(dir: &ClusterDir, replica: &mut Supervised) {
    let Some(child) = replica.child.as_mut() else {
        return;
    };
    let Ok(Some(status)) = child.try_wait() else {
        return;
    };
    replica.child = None;
    let _ = fs::remove_file(dir.pid_path(replica.id));
    if status.success() {
        replica.stopped = true;
        replica.next_start = None;
        say(&format!(
            "replica {} stopped cleanly; it stays down until the next `cluster up`",
            replica.id
        ));
        return;
    }
    if replica.started.elapsed() >= HEALTHY_RUN {
        replica.backoff = RESTART_BACKOFF_MIN;
    }
    replica.next_start = Some(Instant::now() + replica.backoff);
    say(&format!(
        "replica {} exited ({}); restarting in {:?}{}",
        replica.id,
        describe(status),
        replica.backoff,
        if dir.hold_path(replica.id).exists() {
            " once released"
        } else {
            ""
        }
    ));
    replica.backoff = (replica.backoff * 2).min(RESTART_BACKOFF_MAX);
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}

fn start(options: &UpOptions, dir: &ClusterDir, replica: &mut Supervised) -> Result<(), String> {
    let id = replica.id;
    let mut extra = dir.extra_args(id)?;
    let first_start = !dir.started_path(id).exists();
    if first_start {
        extra.push("--genesis".into());
    }
    let log_path = dir.log_path(id);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let _ = writeln!(
        log,
        "--- supervisor: starting replica {id} {}",
        extra.join(" ")
    );
    let mut command = node_command(&NodeCommand {
        program: &options.program,
        cluster_file: &dir.cluster_file(),
        keys: &dir.keys_dir(),
        id,
        data: &dir.data_dir(id),
        emulate_wan: options.emulate_wan,
        extra: &extra,
    });
    command.stdout(Stdio::null()).stderr(log);
    let child = command
        .spawn()
        .map_err(|e| format!("starting replica {id}: {e}"))?;
    write_pid(&dir.pid_path(id), child.id() as i32)?;
    if first_start {
        fs::write(dir.started_path(id), b"").map_err(|e| format!("replica {id}: {e}"))?;
        sync_dir(&dir.run_dir())?;
    }
    say(&format!("started replica {id} (pid {})", child.id()));
    replica.child = Some(child);
    replica.started = Instant::now();
    replica.next_start = None;
    Ok(())
}

/// SIGTERM to every running replica, SIGKILL to any still running after [`STOP_PATIENCE`].
fn stop_all(dir: &ClusterDir, replicas: &mut [Supervised]) {
    for replica in replicas.iter() {
        if let Some(child) = &replica.child {
            signal(child.id() as i32, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_PATIENCE;
    for replica in replicas.iter_mut() {
        let Some(mut child) = replica.child.take() else {
            continue;
        };
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = fs::remove_file(dir.pid_path(replica.id));
        match status {
            Some(status) if status.success() => say(&format!("replica {} stopped", replica.id)),
            Some(status) => say(&format!(
                "replica {} stopped with {}",
                replica.id,
                describe(status)
            )),
            None => say(&format!(
                "replica {} did not stop within {STOP_PATIENCE:?} of SIGTERM: killed",
                replica.id
            )),
        }
    }
}

/// Stops the supervisor of `dir` (SIGTERM) and waits until it has stopped its replicas and
/// itself. Returns its pid.
pub fn down(dir: &ClusterDir, patience: Duration) -> Result<i32, String> {
    let pid = dir
        .supervisor_pid()
        .ok_or_else(|| format!("no supervisor runs the cluster in {}", dir.root().display()))?;
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + patience;
    while alive(pid) {
        if Instant::now() >= deadline {
            return Err(format!(
                "the supervisor (pid {pid}) did not stop within {patience:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pid)
}

/// One replica as `cluster status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicaStatus {
    pub id: u32,
    pub domain: String,
    pub pid: Option<i32>,
    pub held: bool,
    pub control: String,
    /// `/health` says ready.
    pub ready: bool,
    pub executed_height: Option<u64>,
    pub global_leader: Option<u64>,
}

/// What each replica of `dir` is doing now.
pub fn status(dir: &ClusterDir) -> Result<Vec<ReplicaStatus>, String> {
    let topology = dir.topology()?;
    topology
        .replicas
        .iter()
        .map(|spec| {
            let control = spec.control_addr().map_err(|e| e.to_string())?.to_string();
            let get = |path| crate::control::request(&control, "GET", path, None).ok();
            let ready = get("/health").is_some_and(|(code, _)| code == 200);
            let metrics = get("/metrics").map(|(_, body)| body).unwrap_or_default();
            Ok(ReplicaStatus {
                id: spec.id,
                domain: topology.domains[spec.domain as usize].name.clone(),
                pid: dir.replica_pid(spec.id),
                held: dir.hold_path(spec.id).exists(),
                ready,
                executed_height: crate::control::gauge(&metrics, "ccbft_executed_height"),
                global_leader: crate::control::gauge(&metrics, "ccbft_global_leader"),
                control,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_extra_args_live_in_the_run_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(tmp.path());
        fs::create_dir_all(dir.run_dir()).unwrap();
        assert!(dir.extra_args(2).unwrap().is_empty());
        dir.set_extra_args(2, &["--adversary", "equivocate"])
            .unwrap();
        assert_eq!(dir.extra_args(2).unwrap(), ["--adversary", "equivocate"]);
        dir.set_extra_args(2, &[]).unwrap();
        assert!(dir.extra_args(2).unwrap().is_empty());
        dir.set_extra_args(2, &[]).unwrap();

        dir.hold(1).unwrap();
        assert!(dir.hold_path(1).exists());
        dir.release(1).unwrap();
        dir.release(1).unwrap();
        assert!(!dir.hold_path(1).exists());
    }

    #[test]
    fn a_pid_counts_only_while_its_process_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(tmp.path());
        fs::create_dir_all(dir.run_dir()).unwrap();
        assert_eq!(dir.replica_pid(0), None);
        write_pid(&dir.pid_path(0), std::process::id() as i32).unwrap();
        assert_eq!(dir.replica_pid(0), Some(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !alive(pid),
            "an exited child not yet reaped is a zombie, not alive"
        );
        child.wait().unwrap();
        write_pid(&dir.pid_path(0), pid).unwrap();
        assert_eq!(dir.replica_pid(0), None);
    }
}
