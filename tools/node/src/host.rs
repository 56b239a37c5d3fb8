//! The replica host: one glommio executor that drives the sans-IO [`Replica`] with what
//! arrives (peer frames, client requests, clock ticks, durable watermarks) and carries out
//! what it asks (send, persist, verify, answer clients). No protocol logic lives here.
//!
//! Every source is a task feeding one bounded event queue, so the replica sees one input at
//! a time, in arrival order. A `Send` is released only once the record it names is durable
//! (the WAL's watermark), so no vote leaves that a crash could make the replica forget.

use crate::adversary::NodeAdversary;
use crate::client_proto::{decode_request, encode_response, Response, Wait};
use crate::control::NodeMetrics;
use crate::evidence_log::{self, EvidenceLog};
use crate::latency::LatencyMonitor;
use crate::log::{ReplicaLog, Restored};
use ccbft_core::bls::{BlsSigner, BlsVerifier};
use ccbft_core::crypto::Verifier;
use ccbft_core::durable::RecordSeq;
use ccbft_core::messages::Message;
use ccbft_core::replica::{
    Action, HealthEvent, Input, Receipt, ReceiptStatus, Replica, ReplicaConfig,
};
use ccbft_core::topology::ReplicaId;
use ccbft_core::transaction::Transaction;
use ccbft_core::wire::{decode_message_shared, encode_message};
use ccbft_net::client::{ClientConnId, ClientListener, ClientRequest};
use ccbft_net::{Endpoint, Frame, FrameKind, PeerId};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// One tick of the replica's clock.
pub const TICK: Duration = Duration::from_millis(1);
/// Events waiting for the replica, all sources together.
const EVENTS_MAX: usize = 16 * 1024;
/// Largest message (encoded) an evidence event on `/events` carries; the evidence file has
/// every one. Bounds what the event queue holds: [`crate::control::EVENTS_KEPT_MAX`] × 2 ×
/// this, hex-encoded, at most.
const EVENT_MESSAGE_BYTES_MAX: usize = 4096;
/// Client transactions waiting for a receipt on this replica.
const WAITING_CLIENTS_MAX: usize = 64 * 1024;

enum Event {
    Peer(PeerId, Frame),
    Client(ClientRequest),
    Tick,
    Durable(RecordSeq),
}

struct Waiter {
    conn: ClientConnId,
    client_key: u128,
    wait: Wait,
    since: std::time::Instant,
}

/// What the host owns besides the replica.
pub struct Host {
    replica: Replica,
    signer: BlsSigner,
    verifier: BlsVerifier,
    endpoint: Rc<Endpoint>,
    clients: Rc<ClientListener>,
    log: ReplicaLog,
    durable: RecordSeq,
    /// Sends waiting for the record they depend on to be durable.
    held: BTreeMap<RecordSeq, Vec<(Vec<ReplicaId>, Message)>>,
    waiting: HashMap<u128, Vec<Waiter>>,
    executed_height: u64,
    /// The global leader and lane primaries last logged (operators and tests follow them).
    leader: Option<ReplicaId>,
    primaries: Vec<ReplicaId>,
    metrics: Arc<NodeMetrics>,
    evidence: EvidenceLog,
    /// Adversary mode (test builds): a Byzantine strategy between the replica and its links.
    adversary: Option<NodeAdversary>,
    /// It started rejoining (its end is worth a line).
    rejoin_started: bool,
    /// Until [`Host::run`] starts it on the executor.
    latency: Option<LatencyMonitor>,
}

/// The I/O a host drives: links, client listener, log, and what it reports.
pub struct HostIo {
    pub endpoint: Endpoint,
    pub clients: ClientListener,
    pub log: ReplicaLog,
    pub metrics: Arc<NodeMetrics>,
    pub evidence: EvidenceLog,
    pub adversary: Option<NodeAdversary>,
}

/// How the replica comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From its log (empty for a new cluster's replica, which has never signed anything).
    Restore,
    /// Its log is gone or was quarantined: it may have signed anything before, so it signs
    /// nothing until its peers bound what that was (`Replica::rejoin`, with this nonce).
    Rejoin { nonce: u64 },
}

impl Host {
    /// Restores the replica from `restored`, or starts its rejoin, and wires it to its
    /// transport and log.
    pub fn new(
        config: ReplicaConfig,
        signer: BlsSigner,
        verifier: BlsVerifier,
        io: HostIo,
        restored: &Restored,
        start: Start,
    ) -> Result<Host, String> {
        let latency = LatencyMonitor::new(&config.topology, config.me);
        let _ = io.metrics.latency.set(latency.row());
        let _ = io.metrics.links.set(io.endpoint.metrics());
        let (replica, first) = match start {
            Start::Restore => (
                Replica::restore(config, &signer, &restored.records, restored.last),
                Vec::new(),
            ),
            Start::Rejoin { nonce } => {
                assert_eq!(restored.last, 0, "a rejoin starts from an empty log");
                Replica::rejoin(config, &signer, nonce).map_err(|e| e.to_string())?
            }
        };
        // A rejoin just begun, or one a restart resumed from the log.
        let rejoin_started = replica.is_rejoining();
        let mut host = Host {
            replica,
            signer,
            verifier,
            endpoint: Rc::new(io.endpoint),
            clients: Rc::new(io.clients),
            log: io.log,
            durable: restored.last,
            held: BTreeMap::new(),
            waiting: HashMap::new(),
            executed_height: 0,
            leader: None,
            primaries: Vec::new(),
            metrics: io.metrics,
            evidence: io.evidence,
            adversary: io.adversary,
            rejoin_started,
            latency: Some(latency),
        };
        // The rejoin's first record and requests: persisted and sent like any step's.
        for action in first {
            if let Some(next) = host.perform(action) {
                host.step(next);
            }
        }
        Ok(host)
    }

    /// Runs until the event sources end (the endpoint closes) or the log fails.
    pub async fn run(mut self, durable: LocalReceiver<RecordSeq>) -> Result<(), String> {
        let (events, inbox) = local_channel::new_bounded(EVENTS_MAX);
        self.spawn_sources(events, durable);
        self.metrics.set(|m| &m.ready, 1);
        while let Some(event) = inbox.recv().await {
            match event {
                Event::Peer(from, frame) => self.on_frame(from, frame),
                Event::Client(request) => self.on_client(request),
                Event::Tick => {
                    if let Some(why) = self.log.failure() {
                        return Err(why);
                    }
                    if crate::node::stop_requested() {
                        return self.drain(&inbox).await;
                    }
                    self.step(Input::Tick);
                    self.inject();
                    self.report_rejoin();
                }
                Event::Durable(upto) => self.on_durable(upto),
            }
        }
        Ok(())
    }

    /// A graceful stop: no new input is taken, every record handed to the log becomes
    /// durable and the sends waiting for it are released; then the host returns.
    async fn drain(&mut self, inbox: &LocalReceiver<Event>) -> Result<(), String> {
        while self.durable < self.log.last_persisted() {
            if let Some(why) = self.log.failure() {
                return Err(why);
            }
            match inbox.recv().await {
                Some(Event::Durable(upto)) => self.on_durable(upto),
                Some(_) => {} // peers and clients retry elsewhere; ticks are moot now
                None => break,
            }
        }
        tracing::info!(
            "stopped: log durable up to record {}, executed height {}",
            self.durable,
            self.executed_height
        );
        Ok(())
    }

    fn spawn_sources(&mut self, events: LocalSender<Event>, durable: LocalReceiver<RecordSeq>) {
        if let Some(monitor) = self.latency.take() {
            let (endpoint, metrics) = (self.endpoint.clone(), self.metrics.clone());
            glommio::spawn_local(crate::latency::run(endpoint, monitor, metrics)).detach();
        }
        let events = Rc::new(events);
        let (endpoint, tx) = (self.endpoint.clone(), events.clone());
        glommio::spawn_local(async move {
            while let Some((from, frame)) = endpoint.recv().await {
                if tx.send(Event::Peer(from, frame)).await.is_err() {
                    return;
                }
            }
        })
        .detach();
        let (clients, tx) = (self.clients.clone(), events.clone());
        glommio::spawn_local(async move {
            while let Some(request) = clients.recv().await {
                if tx.send(Event::Client(request)).await.is_err() {
                    return;
                }
            }
        })
        .detach();
        let tx = events.clone();
        glommio::spawn_local(async move {
            // Never dropped: held sends wait for a watermark, and no later write may come.
            while let Some(upto) = durable.recv().await {
                if tx.send(Event::Durable(upto)).await.is_err() {
                    return;
                }
            }
        })
        .detach();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(TICK).await;
                // A full queue means the replica is behind: a tick dropped is time it
                // notices a little later, never a lost message.
                let _ = events.try_send(Event::Tick);
            }
        })
        .detach();
    }

    fn on_frame(&mut self, from: PeerId, frame: Frame) {
        if !matches!(frame.kind, FrameKind::Consensus | FrameKind::Bulk) {
            return;
        }
        match decode_message_shared(&frame.body) {
            Ok(message) => {
                if let Some(adversary) = &mut self.adversary {
                    adversary.observe(&message);
                }
                self.step(Input::Message {
                    from: from.0,
                    message,
                })
            }
            Err(e) => tracing::debug!("undecodable frame from {from}: {e}"),
        }
    }

    fn on_client(&mut self, request: ClientRequest) {
        self.metrics.add(|m| &m.client_requests, 1);
        let (wait, tx) = match decode_request(&request.body) {
            Ok(decoded) => decoded,
            Err(reason) => return self.respond(request.conn, &Response::Malformed(reason)),
        };
        if self.waiting.len() >= WAITING_CLIENTS_MAX {
            let receipt = Receipt {
                key: client_key(&tx),
                status: ReceiptStatus::Overloaded,
            };
            return self.respond(request.conn, &Response::Receipt(receipt));
        }
        self.waiting.entry(tx.key()).or_default().push(Waiter {
            conn: request.conn,
            client_key: client_key(&tx),
            wait,
            since: std::time::Instant::now(),
        });
        self.step(Input::Client(tx));
    }

    fn on_durable(&mut self, upto: RecordSeq) {
        assert!(
            upto >= self.durable,
            "the durable watermark never goes back"
        );
        self.durable = upto;
        let later = self.held.split_off(&(upto + 1));
        let ready = std::mem::replace(&mut self.held, later);
        for (to, message) in ready.into_values().flatten() {
            self.send(&to, &message);
        }
        self.metrics.set(|m| &m.durable_record, upto);
        let held = self.held.values().map(Vec::len).sum::<usize>();
        self.metrics.set(|m| &m.held_sends, held as u64);
        self.step(Input::Durable { upto });
    }

    /// One input, and every input its actions give at once (verifications).
    fn step(&mut self, input: Input) {
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            for action in self.replica.step(input, &self.signer) {
                if let Some(next) = self.perform(action) {
                    inputs.push(next);
                }
            }
        }
        self.log_leader_changes();
    }

    /// The rejoining gauge, and one line when the rejoin is over.
    fn report_rejoin(&self) {
        let rejoining = u64::from(self.replica.is_rejoining());
        let was = self
            .metrics
            .rejoining
            .swap(rejoining, std::sync::atomic::Ordering::Relaxed);
        if was == 1 && rejoining == 0 && self.rejoin_started {
            tracing::info!("rejoin complete: past the floors, this replica votes again");
        }
    }

    fn log_leader_changes(&mut self) {
        let leader = self.replica.global_leader();
        self.metrics
            .set(|m| &m.global_round, self.replica.global_round());
        self.metrics.set(|m| &m.global_leader, u64::from(leader));
        self.metrics
            .set(|m| &m.waiting_clients, self.waiting.len() as u64);
        if self.leader != Some(leader) {
            self.leader = Some(leader);
            let round = self.replica.global_round();
            tracing::info!("global leader r{leader} from round {round}");
        }
        let mut changed = false;
        for (index, (lane, primary)) in self.replica.lane_primaries().enumerate() {
            if self.primaries.get(index) != Some(&primary) {
                tracing::info!("lane {}/{} primary r{primary}", lane.domain, lane.shard);
                changed = true;
            }
        }
        if changed {
            self.primaries = self.replica.lane_primaries().map(|(_, p)| p).collect();
        }
    }

    fn perform(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Send { to, message, after } => {
                if after <= self.durable {
                    self.send(&to, &message);
                } else {
                    self.held.entry(after).or_default().push((to, message));
                }
            }
            Action::Persist { seq, record } => self.log.persist(seq, &record),
            Action::Verify { token, checks } => {
                let failed = self.verifier.failed(&checks);
                return Some(Input::Verified { token, failed });
            }
            Action::Receipt { key, status } => self.on_receipt(key, status),
            Action::Deliver {
                height,
                transactions,
            } => {
                tracing::debug!(height, transactions = transactions.len(), "delivered");
            }
            Action::Executed {
                height,
                state_root,
                transactions,
                ..
            } => {
                self.executed_height = height;
                self.metrics.set(|m| &m.executed_height, height);
                self.metrics.add(|m| &m.executed_txs, transactions);
                tracing::info!(
                    "executed height={height} transactions={transactions} root={}",
                    ccbft_crypto::hex::encode(&state_root)
                );
            }
            Action::Evidence(evidence) => {
                tracing::warn!("evidence: {} by r{}", evidence.kind(), evidence.offender());
                self.metrics.add(|m| &m.evidence, 1);
                if let Err(e) = self.evidence.record(&evidence) {
                    tracing::error!("recording evidence: {e}");
                }
                let mut details = serde_json::json!({
                    "kind": evidence.kind(),
                    "offender": evidence.offender(),
                });
                let small = evidence_log::equivocation_hex(&evidence, EVENT_MESSAGE_BYTES_MAX);
                if let Some((a, b)) = small {
                    details["message_a"] = a.into();
                    details["message_b"] = b.into();
                }
                self.metrics.event("Evidence", details);
            }
            Action::Health(event) => self.on_health(&event),
            Action::SnapshotInstalled { height, .. } => {
                tracing::info!("installed snapshot height={height}");
            }
        }
        None
    }

    fn on_health(&self, event: &HealthEvent) {
        tracing::info!("health: {event:?}");
        match event {
            HealthEvent::LocalViewChange { .. } => self.metrics.add(|m| &m.local_view_changes, 1),
            HealthEvent::GlobalTimeout { .. } => self.metrics.add(|m| &m.global_timeouts, 1),
            _ => {}
        }
        let text = format!("{event:?}");
        let kind = text.split([' ', '{', '(']).next().unwrap_or("Health");
        self.metrics
            .event(kind, serde_json::Value::String(text.clone()));
    }

    /// Sends what the replica asked for (through the adversary's strategy in adversary mode).
    fn send(&mut self, to: &[ReplicaId], message: &Message) {
        match &mut self.adversary {
            None => send_now(&self.endpoint, to, message),
            Some(adversary) => {
                let outgoing = adversary.transform(to.to_vec(), message.clone());
                if outgoing.is_empty() {
                    self.metrics.add(|m| &m.adversary_withheld, 1);
                }
                send_outgoing(&self.endpoint, outgoing);
            }
        }
    }

    /// What the adversary sends on its own (adversary mode only).
    fn inject(&mut self) {
        if let Some(adversary) = &mut self.adversary {
            send_outgoing(&self.endpoint, adversary.on_tick());
        }
    }

    fn on_receipt(&mut self, key: u128, status: ReceiptStatus) {
        let Some(waiters) = self.waiting.get_mut(&key) else {
            return;
        };
        let mut answered = Vec::new();
        let globally_final = matches!(status, ReceiptStatus::GloballyFinal { .. });
        let locally_final = matches!(status, ReceiptStatus::LocallyFinal { .. });
        waiters.retain(|w| {
            let last = w.wait.ends_with(&status);
            if w.wait.answers(&status) {
                answered.push((w.conn, w.client_key, last));
            }
            if globally_final {
                self.metrics.record_global_latency(w.since.elapsed());
            } else if locally_final {
                self.metrics.local_latency.record(w.since.elapsed());
            }
            !last
        });
        if waiters.is_empty() {
            self.waiting.remove(&key);
        }
        for (conn, client_key, last) in answered {
            let receipt = Response::Receipt(Receipt {
                key: client_key,
                status,
            });
            if last {
                self.respond(conn, &receipt);
            } else if let Err(e) = self.clients.notify(conn, encode_response(&receipt)) {
                tracing::debug!("client answer: {e}");
            }
        }
    }

    fn respond(&self, conn: ClientConnId, response: &Response) {
        if let Err(e) = self.clients.respond(conn, encode_response(response)) {
            tracing::debug!("client answer: {e}");
        }
    }
}

fn send_now(endpoint: &Endpoint, to: &[ReplicaId], message: &Message) {
    let kind = match message {
        Message::Batch { .. } => FrameKind::Bulk,
        _ => FrameKind::Consensus,
    };
    let body = bytes::Bytes::from(encode_message(message));
    for &peer in to {
        if let Err(e) = endpoint.send(PeerId(peer), Frame::new(kind, body.clone())) {
            tracing::debug!("send to r{peer}: {e}");
        }
    }
}

/// Sends each message after its delay (a delayed one from a timer task of its own).
fn send_outgoing(endpoint: &Rc<Endpoint>, outgoing: crate::adversary::Outgoing) {
    for (to, message, delay) in outgoing {
        if delay.is_zero() {
            send_now(endpoint, &to, &message);
        } else {
            let endpoint = endpoint.clone();
            glommio::spawn_local(async move {
                glommio::timer::sleep(delay).await;
                send_now(&endpoint, &to, &message);
            })
            .detach();
        }
    }
}

/// The key the client chose (receipts name it so).
fn client_key(tx: &Transaction) -> u128 {
    match tx {
        Transaction::Transfer(t) => t.transfer.key,
        Transaction::Opaque(t) => t.key,
    }
}
