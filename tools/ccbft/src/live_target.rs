//! A running cluster as a DORA resilience target (`ccbft dora test --live`): the cluster
//! `ccbft cluster up` supervises in a directory.
//!
//! [`LiveTarget::inject`] starts a client load (signed payments, globally final receipts)
//! and injects the scenario with the cluster's own hooks: the admin API's link cuts and
//! delays, SIGKILL of replica processes with the supervisor's hold files keeping them down,
//! a replica restarted in adversary mode through its args file (builds with the `adversary`
//! feature only), bytes flipped in a stopped replica's write-ahead log. [`LiveTarget::observe`]
//! polls every replica's control plane (the `dora watch` watcher: the health events come
//! from the replicas' signals), heals the fault after `fault_for`, and ends at recovery:
//! every replica answering, ready and past the height the cluster had at the heal (all but
//! the one that was Byzantine, see [`LiveTarget::recovered`]). Then the
//! load stops and every payment that got a globally final receipt is sent again under its
//! idempotency key: the ledger must answer `duplicate` for each; one it executes instead was
//! lost. Times are wall-clock times.

use crate::dora_watch::{Limits, Watcher, SLA_MS};
use crate::sim_target::largest_provider;
use ccbft_core::topology::Topology;
use ccbft_dora::chrono::{DateTime, Utc};
use ccbft_dora::health::{EventKind, HealthEvent};
use ccbft_dora::resilience::{Injection, Observation, ResilienceTarget, Scenario, TargetError};
use ccbft_node::client_proto::Wait;
use ccbft_node::submit::SubmitOptions;
use ccbft_node::supervisor::ClusterDir;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Payments per batch of the load; each batch is acknowledged whole or not at all.
const BATCH: u64 = 25;
/// Payments each load thread keeps in flight.
const WINDOW: usize = 4;
/// Clients driving the load (one thread each).
const LOAD_CLIENTS: u32 = 2;
/// Between a load thread's batches: a steady load, not a flood to re-check afterwards.
const LOAD_PAUSE: Duration = Duration::from_millis(200);
/// How long a batch may wait for its receipts (a cut-off home domain answers after the heal).
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Height still while clients wait for this long: a commit stall.
const STALL: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(200);
/// A crash loop kills its replica again once it has been up this long.
const CRASH_LOOP_UPTIME: Duration = Duration::from_secs(2);

pub struct LiveTarget {
    dir: ClusterDir,
    topology: Topology,
    fault: Option<Fault>,
    load: Option<Load>,
    injected: Vec<HealthEvent>,
}

#[derive(Debug, Clone)]
enum Fault {
    Byzantine { replica: u32 },
    Partition { members: Vec<u32>, others: Vec<u32> },
    Outage { replicas: Vec<u32> },
    Corruption { replica: u32 },
    Latency { extra_ms: u32 },
    CrashLoop { replica: u32 },
}

/// Acknowledged batches: (client, first key).
type Acknowledged = Arc<Mutex<Vec<(u32, u128)>>>;

struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
    acknowledged: Acknowledged,
}

impl LiveTarget {
    /// The cluster `ccbft cluster up` runs in `dir`; fails if it does not run.
    pub fn new(dir: ClusterDir) -> Result<LiveTarget, TargetError> {
        let topology = dir.topology().map_err(TargetError::Unavailable)?;
        if dir.supervisor_pid().is_none() {
            return Err(TargetError::Unavailable(format!(
                "no cluster runs in {} (start it with `ccbft cluster up --data {}`)",
                dir.root().display(),
                dir.root().display()
            )));
        }
        Ok(LiveTarget {
            dir,
            topology,
            fault: None,
            load: None,
            injected: Vec::new(),
        })
    }

    fn failed(e: impl std::fmt::Display) -> TargetError {
        TargetError::Failed(e.to_string())
    }

    fn gauge(&self, id: u32, name: &str) -> Option<u64> {
        let control = self.topology.replica(id)?.control_addr().ok()?.to_string();
        let (code, body) = ccbft_node::control::request(&control, "GET", "/metrics", None).ok()?;
        (code == 200).then(|| ccbft_node::control::gauge(&body, name))?
    }

    fn ready(&self, id: u32) -> bool {
        let Some(control) = self
            .topology
            .replica(id)
            .and_then(|r| r.control_addr().ok())
        else {
            return false;
        };
        ccbft_node::control::request(&control.to_string(), "GET", "/health", None)
            .is_ok_and(|(code, _)| code == 200)
    }

    fn max_height(&self) -> u64 {
        (0..self.topology.n())
            .filter_map(|id| self.gauge(id, "ccbft_executed_height"))
            .max()
            .unwrap_or(0)
    }

    fn admin(&self, id: u32, path: &str) -> Result<(), TargetError> {
        let spec = self.topology.replica(id).expect("a replica of the cluster");
        let control = spec.control_addr().map_err(Self::failed)?.to_string();
        let token_file = self
            .dir
            .data_dir(id)
            .join(ccbft_node::admin::ADMIN_TOKEN_FILE);
        let token = std::fs::read_to_string(&token_file)
            .map_err(|e| Self::failed(format!("{}: {e}", token_file.display())))?;
        match ccbft_node::control::request(&control, "POST", path, Some(token.trim())) {
            Ok((200, _)) => Ok(()),
            Ok((code, body)) => Err(Self::failed(format!(
                "replica {id} {path}: HTTP {code} {body}"
            ))),
            Err(e) => Err(Self::failed(format!("replica {id} {path}: {e}"))),
        }
    }

    fn note(&mut self, kind: EventKind, replica: Option<u32>, detail: String) {
        let at = Utc::now();
        let id = format!(
            "live-injector-{}-{}",
            self.injected.len(),
            at.timestamp_micros()
        );
        let mut event = HealthEvent::new(&id, at, kind);
        event.replica = replica;
        event.domain = replica.map(|r| self.domain_name(r));
        event.detail = Some(format!("live fault injector: {detail}"));
        self.injected.push(event);
    }

    fn domain_name(&self, id: u32) -> String {
        self.topology.domains[self.topology.domain_of(id) as usize]
            .name
            .clone()
    }

    fn ids(ids: &[u32]) -> String {
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        ids.join(",")
    }

    /// The fault for a scenario on this cluster, and what it does in words.
    fn plan(&self, scenario: &Scenario) -> Result<(Fault, String), TargetError> {
        let t = &self.topology;
        let unknown = |what: String| TargetError::Unsupported(what);
        Ok(match scenario {
            Scenario::ByzantineLeader => {
                if !cfg!(feature = "adversary") {
                    return Err(unknown(
                        "byzantine-leader restarts the leader in adversary mode, which only a ccbft built with the `adversary` feature (tests) has".into(),
                    ));
                }
                let replica = (0..t.n())
                    .find_map(|id| self.gauge(id, "ccbft_global_leader"))
                    .unwrap_or(0) as u32;
                (
                    Fault::Byzantine { replica },
                    format!("replica {replica} (the global leader at injection) killed and restarted in adversary mode: it equivocates, sending conflicting proposals and pre-prepares signed with its key to the two halves of its recipients"),
                )
            }
            Scenario::DomainPartition { domain } => {
                let index = match domain {
                    Some(name) => t
                        .domains
                        .iter()
                        .position(|d| &d.name == name)
                        .ok_or_else(|| unknown(format!("no domain {name:?} in the cluster")))?,
                    None => smallest_domain(t),
                };
                let members = t.domain_members(index as u32);
                let others: Vec<u32> = (0..t.n()).filter(|r| !members.contains(r)).collect();
                let description = format!(
                    "domain {} (replicas {}) cut off from the others in both directions through every replica's admin API (/admin/cut)",
                    t.domains[index].name,
                    Self::ids(&members)
                );
                (Fault::Partition { members, others }, description)
            }
            Scenario::ProviderOutage { provider } => {
                let provider = provider.clone().unwrap_or_else(|| largest_provider(t));
                let replicas: Vec<u32> = (0..t.n())
                    .filter(|&r| t.domains[t.domain_of(r) as usize].provider == provider)
                    .collect();
                if replicas.is_empty() {
                    return Err(unknown(format!("no replica runs on provider {provider:?}")));
                }
                let description = format!(
                    "every replica of provider {provider} (replicas {}) killed with SIGKILL and held down by the supervisor",
                    Self::ids(&replicas)
                );
                (Fault::Outage { replicas }, description)
            }
            Scenario::DiskCorruption { replica } => {
                let replica = self.replica_or(*replica, t.n() - 1)?;
                (
                    Fault::Corruption { replica },
                    format!("replica {replica} killed and held down; four bytes of acknowledged records in the middle of its first write-ahead log segment flipped; released at the heal"),
                )
            }
            Scenario::LatencySpike { extra_ms } => (
                Fault::Latency {
                    extra_ms: *extra_ms,
                },
                format!("{extra_ms} ms more one-way delay on every link between domains (/admin/delay on every replica)"),
            ),
            Scenario::ReplicaCrashLoop { replica } => {
                let replica = self.replica_or(*replica, 1.min(t.n() - 1))?;
                (
                    Fault::CrashLoop { replica },
                    format!("replica {replica} killed with SIGKILL each time it has run for {CRASH_LOOP_UPTIME:?} after the supervisor restarted it"),
                )
            }
        })
    }

    fn replica_or(&self, replica: Option<u32>, default: u32) -> Result<u32, TargetError> {
        let id = replica.unwrap_or(default);
        if id >= self.topology.n() {
            return Err(TargetError::Unsupported(format!(
                "replica {id} is not in the cluster ({} replicas)",
                self.topology.n()
            )));
        }
        Ok(id)
    }

    fn kill(&mut self, id: u32, why: &str) -> Result<(), TargetError> {
        let pid = self.dir.kill(id).map_err(Self::failed)?;
        self.note(
            EventKind::ReplicaDown,
            Some(id),
            format!("SIGKILL replica {id} (pid {pid}): {why}"),
        );
        Ok(())
    }

    fn hold_and_kill(&mut self, id: u32, why: &str) -> Result<(), TargetError> {
        self.dir.hold(id).map_err(Self::failed)?;
        self.kill(id, why)?;
        // The process is gone before anything touches its files.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.dir.replica_pid(id).is_some() {
            if Instant::now() >= deadline {
                return Err(Self::failed(format!("replica {id} did not stop")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn release(&mut self, id: u32) -> Result<(), TargetError> {
        self.dir.release(id).map_err(Self::failed)?;
        self.note(
            EventKind::ReplicaUp,
            Some(id),
            format!("replica {id} released to the supervisor"),
        );
        Ok(())
    }

    fn apply(&mut self, fault: &Fault) -> Result<(), TargetError> {
        match fault {
            Fault::Byzantine { replica } => {
                self.dir
                    .set_extra_args(*replica, &["--adversary", "equivocate"])
                    .map_err(Self::failed)?;
                self.kill(*replica, "restarted in adversary mode (equivocate)")
            }
            Fault::Partition { members, others } => {
                self.cut(members, others, "cut")?;
                self.note(
                    EventKind::DomainPartition,
                    members.first().copied(),
                    format!(
                        "links between replicas {} and the rest cut",
                        Self::ids(members)
                    ),
                );
                Ok(())
            }
            Fault::Outage { replicas } => replicas
                .iter()
                .try_for_each(|&r| self.hold_and_kill(r, "provider outage")),
            Fault::Corruption { replica } => {
                self.hold_and_kill(*replica, "its disk is about to be damaged")?;
                let flipped = damage_log(&self.dir.data_dir(*replica)).map_err(Self::failed)?;
                self.note(
                    EventKind::StateDivergence,
                    Some(*replica),
                    format!("replica {replica}: {flipped}"),
                );
                Ok(())
            }
            Fault::Latency { extra_ms } => self.delay(*extra_ms),
            Fault::CrashLoop { replica } => self.kill(*replica, "crash loop"),
        }
    }

    fn heal(&mut self, fault: &Fault) -> Result<(), TargetError> {
        match fault {
            Fault::Byzantine { replica } => {
                self.dir
                    .set_extra_args(*replica, &[])
                    .map_err(Self::failed)?;
                self.kill(*replica, "restarted honest")
            }
            Fault::Partition { members, others } => {
                self.cut(members, others, "heal")?;
                self.note(
                    EventKind::PartitionHealed,
                    members.first().copied(),
                    "links healed".into(),
                );
                Ok(())
            }
            Fault::Outage { replicas } => replicas.iter().try_for_each(|&r| self.release(r)),
            Fault::Corruption { replica } => self.release(*replica),
            Fault::Latency { .. } => self.delay(0),
            Fault::CrashLoop { .. } => Ok(()),
        }
    }

    /// `verb` (cut or heal) on both sides of the links between `members` and `others`.
    fn cut(&mut self, members: &[u32], others: &[u32], verb: &str) -> Result<(), TargetError> {
        for &m in members {
            self.admin(m, &format!("/admin/{verb}?peers={}", Self::ids(others)))?;
        }
        for &o in others {
            self.admin(o, &format!("/admin/{verb}?peers={}", Self::ids(members)))?;
        }
        Ok(())
    }

    fn delay(&mut self, extra_ms: u32) -> Result<(), TargetError> {
        let t = self.topology.clone();
        for id in 0..t.n() {
            let abroad: Vec<u32> = (0..t.n())
                .filter(|&p| t.domain_of(p) != t.domain_of(id))
                .collect();
            if !abroad.is_empty() {
                let path = format!(
                    "/admin/delay?peers={}&extra_ms={extra_ms}",
                    Self::ids(&abroad)
                );
                self.admin(id, &path)?;
            }
        }
        Ok(())
    }

    fn start_load(&mut self) {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged: Acknowledged = Arc::default();
        let base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos())
            << 20;
        let threads = (0..LOAD_CLIENTS)
            .map(|client| {
                let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
                let options = self.submit_options(client, base + (u128::from(client) << 60));
                std::thread::spawn(move || drive(options, &stop, &acknowledged))
            })
            .collect();
        self.load = Some(Load {
            stop,
            threads,
            acknowledged,
        });
    }

    fn submit_options(&self, client: u32, first_key: u128) -> SubmitOptions {
        SubmitOptions {
            cluster: self.dir.cluster_file(),
            keys: self.dir.keys_dir(),
            client,
            count: BATCH,
            window: WINDOW,
            wait: Wait::Global,
            amount: 1,
            first_key,
            timeout: BATCH_TIMEOUT,
            silence_failover: ccbft_node::submit::SILENCE_FAILOVER,
            progress: None,
        }
    }

    /// Stops the load: (submitted, committed, lost). Every acknowledged batch is sent again
    /// and must be answered `duplicate` throughout.
    fn finish_load(&mut self) -> Result<(u64, u64, u64), TargetError> {
        let load = self
            .load
            .take()
            .ok_or_else(|| Self::failed("no load runs"))?;
        load.stop.store(true, Ordering::SeqCst);
        let mut submitted = 0;
        for thread in load.threads {
            submitted += thread
                .join()
                .map_err(|_| Self::failed("a load thread panicked"))?;
        }
        let acknowledged = load.acknowledged.lock().expect("no panics").clone();
        let mut lost = 0;
        for (client, first_key) in &acknowledged {
            let mut again = self.submit_options(*client, *first_key);
            again.window = BATCH as usize; // answered from the ledger: no need to pace them
            let report = ccbft_node::submit::run(again)
                .map_err(|e| Self::failed(format!("re-sending acknowledged payments: {e}")))?;
            lost += BATCH - report.duplicate;
        }
        Ok((submitted, acknowledged.len() as u64 * BATCH, lost))
    }

    /// Every replica answers, is ready and has executed past `height`; all but one that was
    /// Byzantine in this test: the protocol promises nothing about how a replica recovers
    /// from its own misbehaviour (its operator reinstalls it), only that the others go on.
    fn recovered(&self, height: u64, fault: &Fault) -> bool {
        let byzantine = match fault {
            Fault::Byzantine { replica } => Some(*replica),
            _ => None,
        };
        (0..self.topology.n())
            .filter(|&id| Some(id) != byzantine)
            .all(|id| {
                self.ready(id)
                    && self
                        .gauge(id, "ccbft_executed_height")
                        .is_some_and(|h| h > height)
            })
    }

    /// Crash loop: kills the replica again once it has been up for a while.
    fn crash_again(
        &mut self,
        replica: u32,
        up_since: &mut Option<Instant>,
    ) -> Result<(), TargetError> {
        match (self.dir.replica_pid(replica), *up_since) {
            (Some(_), None) => *up_since = Some(Instant::now()),
            (Some(_), Some(at)) if at.elapsed() >= CRASH_LOOP_UPTIME => {
                self.kill(replica, "crash loop")?;
                *up_since = None;
            }
            (None, _) => *up_since = None,
            _ => {}
        }
        Ok(())
    }
}

/// Batches of payments until `stop`; returns how many were submitted. A batch whose every
/// payment got its globally final receipt is recorded as acknowledged.
fn drive(mut options: SubmitOptions, stop: &AtomicBool, acknowledged: &Acknowledged) -> u64 {
    let mut submitted = 0;
    while !stop.load(Ordering::SeqCst) {
        submitted += options.count;
        if let Ok(report) = ccbft_node::submit::run(options.clone()) {
            if report.applied + report.duplicate == options.count {
                let mut acked = acknowledged.lock().expect("no panics");
                acked.push((options.client, options.first_key));
            }
        }
        options.first_key += u128::from(options.count);
        std::thread::sleep(LOAD_PAUSE);
    }
    submitted
}

/// The domain with the fewest replicas (the last in file order on a tie).
fn smallest_domain(t: &Topology) -> usize {
    (0..t.domains.len())
        .rev()
        .min_by_key(|&d| t.domain_members(d as u32).len())
        .unwrap_or(0)
}

/// Flips one byte at each of four 4 KiB block starts halfway through the records of the
/// first segment of the log in `data` (block starts always hold group data; the padding
/// between groups carries nothing). Says what it did.
fn damage_log(data: &std::path::Path) -> Result<String, String> {
    let wal = data.join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .map_err(|e| format!("{}: {e}", wal.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let segment = segments
        .first()
        .ok_or_else(|| format!("no log segment in {}", wal.display()))?;
    let mut bytes = std::fs::read(segment).map_err(|e| format!("{}: {e}", segment.display()))?;
    let written = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
    let middle = written / 2 / 4096 * 4096;
    if middle + 3 * 4096 >= written {
        return Err(format!(
            "{} holds too few records to damage in the middle",
            segment.display()
        ));
    }
    let offsets: Vec<usize> = (0..4).map(|b| middle + b * 4096).collect();
    for &offset in &offsets {
        bytes[offset] ^= 0x40;
    }
    std::fs::write(segment, bytes).map_err(|e| format!("{}: {e}", segment.display()))?;
    Ok(format!(
        "bytes flipped in {} at offsets {offsets:?}",
        segment.display()
    ))
}

impl ResilienceTarget for LiveTarget {
    fn describe(&self) -> String {
        format!(
            "live cluster {:?} ({} replicas, {} domains) supervised in {}; {LOAD_CLIENTS} clients of batches of {BATCH} signed payments, globally final receipts; wall-clock times",
            self.topology.name,
            self.topology.n(),
            self.topology.domains.len(),
            self.dir.root().display()
        )
    }

    fn inject(&mut self, scenario: &Scenario) -> Result<Injection, TargetError> {
        let (fault, description) = self.plan(scenario)?;
        if !(0..self.topology.n()).all(|id| self.ready(id)) {
            return Err(TargetError::Unavailable(
                "not every replica is ready (see `ccbft cluster status`)".into(),
            ));
        }
        self.start_load();
        std::thread::sleep(Duration::from_secs(1)); // the load is flowing when the fault comes
        let injected_at = Utc::now();
        self.apply(&fault)?;
        self.fault = Some(fault);
        Ok(Injection {
            scenario: scenario.clone(),
            description,
            injected_at,
        })
    }

    fn observe(
        &mut self,
        injection: &Injection,
        fault_for: Duration,
        observe_for: Duration,
    ) -> Result<Observation, TargetError> {
        let fault = self
            .fault
            .take()
            .ok_or_else(|| Self::failed("observe before inject"))?;
        let limits = Limits {
            stall: STALL,
            sla: Duration::from_millis(SLA_MS),
        };
        let mut watcher =
            Watcher::new(&self.topology, &BTreeMap::new(), limits).map_err(Self::failed)?;
        let started = Instant::now();
        let mut events = Vec::new();
        let mut healed: Option<(DateTime<Utc>, u64)> = None;
        let mut recovered_at = None;
        let mut up_since = None;
        while started.elapsed() < observe_for && recovered_at.is_none() {
            events.extend(watcher.poll());
            match healed {
                None if started.elapsed() >= fault_for => {
                    let height = self.max_height();
                    self.heal(&fault)?;
                    healed = Some((Utc::now(), height));
                }
                None => {
                    if let Fault::CrashLoop { replica } = fault {
                        self.crash_again(replica, &mut up_since)?;
                    }
                }
                Some((_, height)) => {
                    if self.recovered(height, &fault) {
                        recovered_at = Some(Utc::now());
                    }
                }
            }
            std::thread::sleep(POLL);
        }
        if healed.is_none() {
            self.heal(&fault)?;
            healed = Some((Utc::now(), 0));
        }
        let (submitted, committed, lost) = self.finish_load()?;
        events.retain(|e: &HealthEvent| e.at >= injection.injected_at);
        Ok(Observation {
            transactions_submitted: submitted,
            transactions_committed: committed,
            transactions_lost: lost,
            health_events: events,
            injected_events: std::mem::take(&mut self.injected),
            healed_at: healed.map(|(at, _)| at),
            recovered_at,
            observed_until: Utc::now(),
        })
    }
}
