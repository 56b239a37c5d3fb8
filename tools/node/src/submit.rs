//! `ccbft submit`: one genesis client pays between its own accounts through a replica of the
//! debited account's home domain, keeping a window of transfers in flight, and reports what
//! came back and how long it took. Used by operators to check a cluster and by the end-to-end
//! tests; the benchmark suite has its own load generator.

use crate::client::{sign_transfer, Client, ClientError};
use crate::client_proto::{Response, Wait};
use crate::genesis;
use ccbft_core::client::{home_domain, ClientId};
use ccbft_core::ledger::{AccountId, Outcome, Transfer};
use ccbft_core::replica::{Receipt, ReceiptStatus};
use ccbft_core::topology::Topology;
use ccbft_crypto::client::ClientSigningKey;
use ccbft_net::keys::read_link_public_key;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an overloaded answer holds back its resend.
const OVERLOADED_BACKOFF: Duration = Duration::from_millis(10);
/// How long a replica may leave every request in flight unanswered before the client tries
/// the next replica of the home domain, by default: well above a globally final answer's
/// latency on WAN links under load (seconds), far below a client's whole deadline.
pub const SILENCE_FAILOVER: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct SubmitOptions {
    pub cluster: PathBuf,
    /// The directory `ccbft keygen --clients K` wrote.
    pub keys: PathBuf,
    pub client: ClientId,
    pub count: u64,
    /// Transfers in flight at once.
    pub window: usize,
    pub wait: Wait,
    pub amount: u64,
    /// Idempotency key of the first transfer; the others follow it. A rerun with the same
    /// keys is answered `Duplicate` (nothing moves twice).
    pub first_key: u128,
    /// Give up when the last answer has not come by then.
    pub timeout: Duration,
    /// A replica silent this long with transfers in flight is failed over like a lost
    /// connection ([`SILENCE_FAILOVER`] by default).
    pub silence_failover: Duration,
    /// Counts transfers as they get their last answer (for progress output).
    pub progress: Option<Arc<AtomicU64>>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct SubmitReport {
    pub replica: Option<SocketAddr>,
    pub applied: u64,
    pub duplicate: u64,
    /// Executed, but rejected by the ledger (e.g. insufficient funds).
    pub ledger_rejected: u64,
    /// Transfers whose last answer was locally final (with `Wait::Local`).
    pub locally_final: u64,
    /// Refused at submission (bad signature, not home, wrong kind): a client error.
    pub refused: u64,
    /// Overloaded answers; each was resent.
    pub retries: u64,
    /// Connections lost and replaced by one to another replica of the home domain.
    pub failovers: u64,
    pub highest_height: u64,
    /// Submission to locally final receipt, microseconds (`Wait::Local` and `Wait::Both`).
    pub local_latency_us: Histogram<u64>,
    /// Submission to the last answer (globally final with `Wait::Global` and `Wait::Both`).
    pub final_latency_us: Histogram<u64>,
    pub elapsed: Duration,
}

/// Latencies up to an hour, so that recording saturates instead of resizing.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl SubmitReport {
    fn new() -> SubmitReport {
        SubmitReport {
            replica: None,
            applied: 0,
            duplicate: 0,
            ledger_rejected: 0,
            locally_final: 0,
            refused: 0,
            retries: 0,
            failovers: 0,
            highest_height: 0,
            local_latency_us: latency_histogram(),
            final_latency_us: latency_histogram(),
            elapsed: Duration::ZERO,
        }
    }

    /// Transfers that got their last answer.
    pub fn answered(&self) -> u64 {
        self.applied + self.duplicate + self.ledger_rejected + self.locally_final + self.refused
    }
}

impl std::fmt::Display for SubmitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let (local, last) = (&self.local_latency_us, &self.final_latency_us);
        write!(
            f,
            "answered={} applied={} duplicate={} ledger_rejected={} locally_final={} refused={} \
             retries={} failovers={} height={} local_us_p50={} local_us_p99={} final_us_p50={} \
             final_us_p99={} final_us_max={} elapsed_ms={} tps={:.0}",
            self.answered(),
            self.applied,
            self.duplicate,
            self.ledger_rejected,
            self.locally_final,
            self.refused,
            self.retries,
            self.failovers,
            self.highest_height,
            local.value_at_quantile(0.5),
            local.value_at_quantile(0.99),
            last.value_at_quantile(0.5),
            last.value_at_quantile(0.99),
            last.max(),
            self.elapsed.as_millis(),
            self.answered() as f64 / secs,
        )
    }
}

/// Where a client connects: a replica of `account`'s home domain, with its link key.
struct Target {
    addr: SocketAddr,
    key: ccbft_net::LinkPublicKey,
}

struct Plan {
    signing: ClientSigningKey,
    from: AccountId,
    to: AccountId,
    targets: Vec<Target>,
}

fn plan(options: &SubmitOptions) -> Result<Plan, String> {
    let topology = Topology::load(&options.cluster).map_err(|e| e.to_string())?;
    let genesis = genesis::load(&options.keys).map_err(|e| e.to_string())?;
    let signing =
        genesis::load_client_key(&options.keys, options.client).map_err(|e| e.to_string())?;
    let owned: Vec<AccountId> = genesis.clients.accounts_of(options.client).collect();
    let [from, to, ..] = owned[..] else {
        return Err(format!(
            "client {} owns {} accounts in the genesis; a self-transfer needs two",
            options.client,
            owned.len()
        ));
    };
    let domain = home_domain(from, topology.domains.len() as u32);
    let mut targets = Vec::new();
    for id in topology.domain_members(domain) {
        let spec = topology.replica(id).expect("a domain member is a replica");
        let path = options.keys.join(format!("replica-{id}.link.pub"));
        let (owner, key) =
            read_link_public_key(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if owner != id {
            return Err(format!("{}: key of replica {owner}", path.display()));
        }
        let addr = spec.client_addr().map_err(|e| e.to_string())?;
        targets.push(Target { addr, key });
    }
    Ok(Plan {
        signing,
        from,
        to,
        targets,
    })
}

/// Runs the submission on an executor of its own, and waits for it.
pub fn run(options: SubmitOptions) -> Result<SubmitReport, String> {
    glommio::LocalExecutorBuilder::default()
        .name("ccbft-submit")
        .spawn(move || async move { submit(&options).await })
        .map_err(|e| format!("starting the client executor: {e}"))?
        .join()
        .map_err(|e| format!("client executor: {e}"))?
}

/// Runs the submission on the current glommio executor. A lost connection fails over to
/// the next replica of the home domain and resends what was in flight under the same keys,
/// so a transfer that executed before the loss is answered `Duplicate`, never run twice.
pub async fn submit(options: &SubmitOptions) -> Result<SubmitReport, String> {
    assert!(options.window > 0, "a window holds at least one transfer");
    let plan = plan(options)?;
    let deadline = Instant::now() + options.timeout;
    let mut link = Link::connect(&plan.targets, 0, deadline).await?;
    let started = Instant::now();
    let mut report = SubmitReport::new();
    report.replica = Some(link.addr);
    // Per key: when it was first sent, what, and whether its locally final answer came.
    let mut in_flight: BTreeMap<u128, (Instant, Transfer, bool)> = BTreeMap::new();
    let mut next = 0u64;
    while report.answered() < options.count {
        let mut sent_ok = true;
        while sent_ok && in_flight.len() < options.window && next < options.count {
            let transfer = Transfer {
                key: options.first_key + u128::from(next),
                from: plan.from,
                to: plan.to,
                amount: options.amount,
            };
            next += 1;
            in_flight.insert(transfer.key, (Instant::now(), transfer, false));
            sent_ok = link.send(&plan, options, &transfer).await;
        }
        let answer = if sent_ok {
            link.recv(deadline, options.silence_failover).await?
        } else {
            None
        };
        let Some(receipt) = answer else {
            report.failovers += 1;
            link = Link::connect(&plan.targets, link.index + 1, deadline).await?;
            report.replica = Some(link.addr);
            for (_, transfer, _) in in_flight.values() {
                if !link.send(&plan, options, transfer).await {
                    break; // the next recv fails over again
                }
            }
            continue;
        };
        let Some(&mut (sent, transfer, ref mut local_seen)) = in_flight.get_mut(&receipt.key)
        else {
            return Err(format!(
                "replica {}: receipt for a key not in flight: {receipt:?}",
                link.addr
            ));
        };
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        match tally(&mut report, &receipt, &transfer, options.wait)? {
            Tally::Local => {
                if !std::mem::replace(local_seen, true) {
                    report.local_latency_us.saturating_record(micros);
                }
                if options.wait == Wait::Local {
                    in_flight.remove(&receipt.key);
                    report.final_latency_us.saturating_record(micros);
                    count_progress(options);
                }
            }
            Tally::Final => {
                in_flight.remove(&receipt.key);
                report.final_latency_us.saturating_record(micros);
                count_progress(options);
            }
            Tally::Resend => {
                glommio::timer::sleep(OVERLOADED_BACKOFF).await;
                link.send(&plan, options, &transfer).await;
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The connection to one replica of the home domain.
struct Link {
    client: Client,
    /// Which of the plan's targets it is.
    index: usize,
    addr: SocketAddr,
}

impl Link {
    /// The first replica from `targets[first]` on (round the list) that accepts a
    /// connection; replicas still starting or restarting are retried until `deadline`.
    async fn connect(targets: &[Target], first: usize, deadline: Instant) -> Result<Link, String> {
        let mut last = String::from("the home domain has no replicas");
        loop {
            for step in 0..targets.len() {
                let index = (first + step) % targets.len();
                let target = &targets[index];
                match Client::connect(target.addr, target.key).await {
                    Ok(client) => {
                        return Ok(Link {
                            client,
                            index,
                            addr: target.addr,
                        })
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no replica of the home domain answered: {last}"));
            }
            glommio::timer::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Signs and sends; false when the connection is gone or the replica took no bytes for
    /// the silence time (a hung replica's socket buffer is full).
    async fn send(&mut self, plan: &Plan, options: &SubmitOptions, transfer: &Transfer) -> bool {
        let tx = sign_transfer(&plan.signing, options.client, *transfer);
        let client = &mut self.client;
        let sent = glommio::timer::timeout(options.silence_failover, async {
            Ok(client.send(options.wait, &tx).await)
        })
        .await;
        match sent {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::info!("replica {}: {e}; failing over", self.addr);
                false
            }
            Err(_) => {
                tracing::info!(
                    "replica {}: takes nothing for {:?}; failing over",
                    self.addr,
                    options.silence_failover
                );
                false
            }
        }
    }

    /// The next receipt; `None` when the connection is gone or the replica has been silent
    /// for `silence` (a replica that accepts but does not answer, e.g. one far
    /// behind, must not hold the client until its deadline); an error past the deadline or
    /// on an answer that breaks the protocol.
    async fn recv(
        &mut self,
        deadline: Instant,
        silence: Duration,
    ) -> Result<Option<Receipt>, String> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let client = &mut self.client;
        let waited =
            glommio::timer::timeout(remaining.min(silence), async { Ok(client.recv().await) })
                .await;
        let answer = match waited {
            Ok(answer) => answer,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("replica {}: answers stopped: {e}", self.addr))
            }
            Err(_) => {
                tracing::info!(
                    "replica {}: no answer for {silence:?}; failing over",
                    self.addr
                );
                return Ok(None);
            }
        };
        match answer {
            Ok(Response::Receipt(receipt)) => {
                tracing::debug!("receipt {receipt:?}");
                Ok(Some(receipt))
            }
            Ok(Response::Malformed(why)) => Err(format!("replica {} says: {why}", self.addr)),
            Err(ClientError::Protocol(why)) => {
                Err(format!("replica {}: bad answer: {why}", self.addr))
            }
            Err(e) => {
                tracing::info!("replica {}: {e}; failing over", self.addr);
                Ok(None)
            }
        }
    }
}

fn count_progress(options: &SubmitOptions) {
    if let Some(progress) = &options.progress {
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one answer means for its transfer.
enum Tally {
    /// Locally final: the last answer only with `Wait::Local`.
    Local,
    /// The last answer.
    Final,
    /// Overloaded: send it again.
    Resend,
}

/// Counts one answer.
fn tally(
    report: &mut SubmitReport,
    receipt: &Receipt,
    sent: &Transfer,
    wait: Wait,
) -> Result<Tally, String> {
    match &receipt.status {
        ReceiptStatus::GloballyFinal {
            height,
            outcome,
            transfer,
            ..
        } => {
            if transfer != sent {
                return Err(format!(
                    "executed {transfer:?}, but the client signed {sent:?}"
                ));
            }
            report.highest_height = report.highest_height.max(*height);
            match outcome {
                Outcome::Applied => report.applied += 1,
                Outcome::Duplicate => report.duplicate += 1,
                Outcome::Rejected(_) => report.ledger_rejected += 1,
            }
            Ok(Tally::Final)
        }
        ReceiptStatus::LocallyFinal { .. } => {
            if wait == Wait::Local {
                report.locally_final += 1;
            }
            Ok(Tally::Local)
        }
        ReceiptStatus::Overloaded => {
            report.retries += 1;
            Ok(Tally::Resend)
        }
        ReceiptStatus::Rejected { reason } => {
            tracing::warn!("transfer {} refused: {reason:?}", sent.key);
            report.refused += 1;
            Ok(Tally::Final)
        }
        other => Err(format!("unexpected answer to a transfer: {other:?}")),
    }
}
