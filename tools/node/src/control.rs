//! The replica's control plane: `GET /metrics` (Prometheus text), `GET /health` (live and
//! ready), `GET /events` (recent health events as JSON lines, `?after=N` for those after
//! sequence N), and the token-guarded admin API ([`crate::admin`]). Served by [`ccbft_http`] on a thread of its own, off the consensus path: the
//! host only stores into atomics and, for a health event (rare), a bounded queue.

use crate::admin::Admin;
use crate::latency::LatencyRow;
use ccbft_http::hyper::{Method, StatusCode};
use ccbft_http::{reply, text, Reply};
use ccbft_net::metrics::EndpointMetrics;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Health events kept for `/events`; older ones are dropped (the sequence numbers show it).
pub const EVENTS_KEPT_MAX: usize = 1024;

/// What the host reports; read by the control thread.
#[derive(Default)]
pub struct NodeMetrics {
    pub replica: AtomicU64,
    pub executed_height: AtomicU64,
    pub executed_txs: AtomicU64,
    pub global_round: AtomicU64,
    pub global_leader: AtomicU64,
    pub local_view_changes: AtomicU64,
    pub global_timeouts: AtomicU64,
    pub evidence: AtomicU64,
    pub durable_record: AtomicU64,
    pub held_sends: AtomicU64,
    pub waiting_clients: AtomicU64,
    pub client_requests: AtomicU64,
    /// Adversary mode only: messages the strategy kept from being sent.
    pub adversary_withheld: AtomicU64,
    /// 1 once the replica restored its log and started its transport.
    pub ready: AtomicU64,
    /// 1 while the replica rejoins after losing its log: it signs nothing and counts against
    /// the fault bound.
    pub rejoining: AtomicU64,
    /// Submission here to globally final receipt, milliseconds, a moving average over about
    /// the last 8 transactions (its weight 1/8): what clients of this replica see now.
    pub global_latency_ms: AtomicU64,
    /// Submission here to locally final (the home lane committed it) and to globally final
    /// (executed), every client transaction.
    pub local_latency: LatencyHistogram,
    pub global_latency: LatencyHistogram,
    /// The transport's link statistics, once the links are up.
    pub links: OnceLock<Arc<EndpointMetrics>>,
    /// The latency monitor's row of the matrix, once it runs.
    pub latency: OnceLock<Arc<LatencyRow>>,
    events: Mutex<Events>,
}

#[derive(Default)]
struct Events {
    next_seq: u64,
    kept: VecDeque<(u64, String)>,
}

fn set(gauge: &AtomicU64, value: u64) {
    gauge.store(value, Ordering::Relaxed);
}

impl NodeMetrics {
    pub fn set(&self, gauge: impl Fn(&NodeMetrics) -> &AtomicU64, value: u64) {
        set(gauge(self), value);
    }

    /// Folds one globally final latency into [`NodeMetrics::global_latency_ms`] and the
    /// histogram.
    pub fn record_global_latency(&self, latency: std::time::Duration) {
        self.global_latency.record(latency);
        let ms = latency.as_millis().min(u128::from(u32::MAX)) as u64;
        let old = self.global_latency_ms.load(Ordering::Relaxed);
        let new = if old == 0 { ms } else { (old * 7 + ms) / 8 };
        set(&self.global_latency_ms, new);
    }

    pub fn add(&self, counter: impl Fn(&NodeMetrics) -> &AtomicU64, n: u64) {
        counter(self).fetch_add(n, Ordering::Relaxed);
    }

    /// Records a health event (`kind`, and its details as JSON).
    pub fn event(&self, kind: &str, details: serde_json::Value) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let seq = events.next_seq;
        events.next_seq += 1;
        let line = serde_json::json!({
            "seq": seq,
            "at": unix_now(),
            "replica": self.replica.load(Ordering::Relaxed),
            "kind": kind,
            "details": details,
        })
        .to_string();
        if events.kept.len() == EVENTS_KEPT_MAX {
            events.kept.pop_front();
        }
        events.kept.push_back((seq, line));
    }

    fn events_after(&self, after: Option<u64>) -> String {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (seq, line) in &events.kept {
            if after.is_none_or(|a| *seq > a) {
                out += line;
                out.push('\n');
            }
        }
        out
    }

    /// The Prometheus text exposition of every gauge and counter.
    pub fn prometheus(&self) -> String {
        let get = |g: &AtomicU64| g.load(Ordering::Relaxed);
        let replica = get(&self.replica);
        let rows: [(&str, &str, &str, u64); 15] = [
            (
                "ccbft_executed_height",
                "gauge",
                "highest executed global block",
                get(&self.executed_height),
            ),
            (
                "ccbft_executed_transactions_total",
                "counter",
                "transactions executed",
                get(&self.executed_txs),
            ),
            (
                "ccbft_global_round",
                "gauge",
                "current global round",
                get(&self.global_round),
            ),
            (
                "ccbft_global_leader",
                "gauge",
                "leader of the current global round",
                get(&self.global_leader),
            ),
            (
                "ccbft_local_view_changes_total",
                "counter",
                "local (PBFT) view changes",
                get(&self.local_view_changes),
            ),
            (
                "ccbft_global_timeouts_total",
                "counter",
                "global rounds that timed out",
                get(&self.global_timeouts),
            ),
            (
                "ccbft_evidence_total",
                "counter",
                "misbehaviour evidence recorded",
                get(&self.evidence),
            ),
            (
                "ccbft_wal_durable_record",
                "gauge",
                "last record durable in the write-ahead log",
                get(&self.durable_record),
            ),
            (
                "ccbft_held_sends",
                "gauge",
                "messages waiting for their record to be durable",
                get(&self.held_sends),
            ),
            (
                "ccbft_waiting_clients",
                "gauge",
                "client transactions waiting for a receipt",
                get(&self.waiting_clients),
            ),
            (
                "ccbft_client_requests_total",
                "counter",
                "client requests received",
                get(&self.client_requests),
            ),
            (
                "ccbft_adversary_withheld_total",
                "counter",
                "messages an adversary-mode strategy kept from being sent",
                get(&self.adversary_withheld),
            ),
            (
                "ccbft_ready",
                "gauge",
                "1 once the log is restored and the links are up",
                get(&self.ready),
            ),
            (
                "ccbft_global_latency_ms",
                "gauge",
                "submission to globally final receipt at this replica, ms (moving average of about the last 8)",
                get(&self.global_latency_ms),
            ),
            (
                "ccbft_rejoining",
                "gauge",
                "1 while the replica rejoins after losing its log (it signs nothing yet)",
                get(&self.rejoining),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            out += &format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{replica=\"{replica}\"}} {value}\n"
            );
        }
        out += &self.local_latency.prometheus(
            "ccbft_local_latency_seconds",
            "submission at this replica to locally final receipt",
            replica,
        );
        out += &self.global_latency.prometheus(
            "ccbft_global_latency_seconds",
            "submission at this replica to globally final receipt",
            replica,
        );
        if let Some(latency) = self.latency.get() {
            out += &latency.prometheus();
        }
        if let Some(links) = self.links.get() {
            out += &links.render_prometheus(ccbft_net::PeerId(replica as u32));
        }
        out
    }
}

/// Upper bounds of the latency histograms' buckets, milliseconds (the last bucket, `+Inf`,
/// takes the rest): the local tier's few milliseconds to a stalled global tier's seconds.
pub const LATENCY_BUCKETS_MS: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// A Prometheus histogram of latencies: counts per bucket, their sum and count.
#[derive(Default)]
pub struct LatencyHistogram {
    /// Not cumulative: `buckets[i]` counts latencies in (bound i-1, bound i]; the last one
    /// those above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    pub fn record(&self, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&ms| us <= ms * 1000)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The histogram as Prometheus text, in seconds.
    pub fn prometheus(&self, name: &str, help: &str, replica: u64) -> String {
        let mut out = format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut cumulative = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS_MS
                .get(i)
                .map_or("+Inf".to_string(), |ms| format!("{}", *ms as f64 / 1000.0));
            out += &format!("{name}_bucket{{replica=\"{replica}\",le=\"{le}\"}} {cumulative}\n");
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        out += &format!("{name}_sum{{replica=\"{replica}\"}} {sum}\n");
        out += &format!("{name}_count{{replica=\"{replica}\"}} {cumulative}\n");
        out
    }
}

/// Seconds since the Unix epoch, with milliseconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |t| t.as_secs_f64())
}

fn route(metrics: &NodeMetrics, method: &Method, path: &str, query: Option<&str>) -> Reply {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET here");
    }
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.prometheus(),
        ),
        "/health" => {
            let ready = metrics.ready.load(Ordering::Relaxed) == 1;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::json!({"live": true, "ready": ready}).to_string();
            reply(status, "application/json", body)
        }
        "/events" => {
            let after = query
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("after=")))
                .map(str::parse::<u64>);
            match after.transpose() {
                Ok(after) => reply(
                    StatusCode::OK,
                    "application/x-ndjson",
                    metrics.events_after(after),
                ),
                Err(_) => text(StatusCode::BAD_REQUEST, "after= takes a sequence number"),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found (try /metrics, /health, /events)",
        ),
    }
}

/// Serves `metrics` and the admin API on `addr` until the returned server is dropped.
pub fn serve(
    addr: &str,
    metrics: Arc<NodeMetrics>,
    admin: Arc<Admin>,
) -> std::io::Result<ccbft_http::Server> {
    let name = format!("control-r{}", metrics.replica.load(Ordering::Relaxed));
    let handler = ccbft_http::handler(move |request, _deadline| {
        let (method, uri) = (request.method(), request.uri());
        let answer = if uri.path().starts_with("/admin/") {
            let authorization = request
                .headers()
                .get(ccbft_http::hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            admin.route(method, uri.path(), uri.query(), authorization)
        } else {
            route(&metrics, method, uri.path(), uri.query())
        };
        async move { answer }
    });
    ccbft_http::Server::start(&name, addr, ccbft_http::Limits::default(), handler)
}

/// The value of the gauge or counter `name` (exactly that name, with labels) in Prometheus
/// text from a control plane.
pub fn gauge(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b'{'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// One request to a control plane at `addr` (`token`: the admin token, for `/admin/`),
/// with a 10 s read timeout: (status code, body). For tools and tests on the operator's side.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    use std::time::Duration;
    let socket: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("control address {addr:?} is not host:port"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&socket, Duration::from_secs(2))
        .map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Content-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("{addr}: {e}"))?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}: not an HTTP answer: {answer:?}"))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_the_replica_label() {
        let m = NodeMetrics::default();
        m.set(|m| &m.replica, 3);
        m.set(|m| &m.executed_height, 42);
        m.add(|m| &m.global_timeouts, 2);
        let text = m.prometheus();
        assert!(
            text.contains("ccbft_executed_height{replica=\"3\"} 42\n"),
            "{text}"
        );
        assert!(
            text.contains("ccbft_global_timeouts_total{replica=\"3\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE ccbft_global_timeouts_total counter\n"));
    }

    #[test]
    fn latency_histograms_are_cumulative_prometheus_buckets_in_seconds() {
        let m = NodeMetrics::default();
        m.set(|m| &m.replica, 1);
        let ms = std::time::Duration::from_millis;
        m.local_latency.record(ms(3));
        for latency in [ms(1), ms(150), ms(200), ms(60_000)] {
            m.record_global_latency(latency);
        }
        let text = m.prometheus();
        let has = |line: &str| assert!(text.contains(&format!("{line}\n")), "{line} in\n{text}");
        has("# TYPE ccbft_global_latency_seconds histogram");
        has("ccbft_global_latency_seconds_bucket{replica=\"1\",le=\"0.001\"} 1");
        has("ccbft_global_latency_seconds_bucket{replica=\"1\",le=\"0.1\"} 1");
        has("ccbft_global_latency_seconds_bucket{replica=\"1\",le=\"0.2\"} 3");
        has("ccbft_global_latency_seconds_bucket{replica=\"1\",le=\"30\"} 3");
        has("ccbft_global_latency_seconds_bucket{replica=\"1\",le=\"+Inf\"} 4");
        has("ccbft_global_latency_seconds_sum{replica=\"1\"} 60.351");
        has("ccbft_global_latency_seconds_count{replica=\"1\"} 4");
        has("ccbft_local_latency_seconds_bucket{replica=\"1\",le=\"0.002\"} 0");
        has("ccbft_local_latency_seconds_bucket{replica=\"1\",le=\"0.005\"} 1");
    }

    #[test]
    fn events_are_bounded_and_listed_after_a_sequence() {
        let m = NodeMetrics::default();
        for i in 0..EVENTS_KEPT_MAX as u64 + 5 {
            m.event("GlobalTimeout", serde_json::json!({"round": i}));
        }
        let all = m.events_after(None);
        assert_eq!(all.lines().count(), EVENTS_KEPT_MAX);
        let oldest: serde_json::Value = serde_json::from_str(all.lines().next().unwrap()).unwrap();
        assert_eq!(oldest["seq"], 5, "the five oldest dropped");
        let tail = m.events_after(Some(EVENTS_KEPT_MAX as u64 + 2));
        assert_eq!(tail.lines().count(), 2);
        let line: serde_json::Value = serde_json::from_str(tail.lines().next().unwrap()).unwrap();
        assert_eq!(line["kind"], "GlobalTimeout");
    }

    #[test]
    fn routes_answer_and_refuse() {
        let m = NodeMetrics::default();
        assert_eq!(
            route(&m, &Method::GET, "/health", None).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        m.set(|m| &m.ready, 1);
        assert_eq!(
            route(&m, &Method::GET, "/health", None).status(),
            StatusCode::OK
        );
        assert_eq!(
            route(&m, &Method::POST, "/metrics", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            route(&m, &Method::GET, "/nope", None).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&m, &Method::GET, "/events", Some("after=x")).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            route(&m, &Method::GET, "/events", Some("after=3")).status(),
            StatusCode::OK
        );
    }

    #[test]
    fn gauges_are_read_by_their_exact_name() {
        let text =
            "ccbft_executed_height_max{replica=\"1\"} 9\nccbft_executed_height{replica=\"1\"} 42\n";
        assert_eq!(gauge(text, "ccbft_executed_height"), Some(42));
        assert_eq!(gauge(text, "ccbft_global_leader"), None);
    }
}
