//! Export to a security team's SIEM and SOAR tools: audit entries (incidents, classification
//! changes, reports, resilience tests, register), missed deadlines, as syslog (RFC 5424 with
//! structured data, octet-counted over TCP per RFC 6587), as CEF lines, and as JSON webhooks.
//!
//! Delivery is through a persistent outbox: events are appended once per id (fsynced), each
//! sink remembers which ids it delivered (write-temp-fsync-rename), so nothing is lost while a
//! receiver is down and nothing is sent twice under one id; a failing sink backs off
//! exponentially. Every message carries the event id (RFC 5424 MSGID and structured data,
//! CEF `externalId`, the webhook `Idempotency-Key` header) so a receiver can drop a repeat
//! after a crash between sending and recording. Syslog runs over TLS (RFC 5425) and
//! webhooks over HTTPS with rustls, trusting the CA certificates of a configured PEM file.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Outbox file in the export directory.
pub const OUTBOX_FILE: &str = "outbox.jsonl";
/// Per-sink delivery state.
pub const SINKS_FILE: &str = "sinks.json";
/// Longest wait for a receiver.
pub const IO_TIMEOUT_MS: u64 = 5_000;
/// Most events delivered per sink in one pass (bounded work per run).
pub const BATCH_MAX: usize = 10_000;
/// Largest HTTP response head read from a webhook receiver.
pub const RESPONSE_BYTES_MAX: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("export configuration: {0}")]
    Config(String),
}

fn io(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The `export` section of the engine configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// RFC 5424 over TCP to `host:port`.
    pub syslog: Option<SyslogSink>,
    /// CEF lines over TCP to `host:port` (a CEF syslog collector).
    pub cef: Option<SyslogSink>,
    pub webhook: Option<WebhookSink>,
    #[serde(default = "backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "backoff_max")]
    pub backoff_max_ms: u64,
}

fn backoff_initial() -> u64 {
    1_000
}
fn backoff_max() -> u64 {
    300_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSink {
    pub address: String,
    /// TLS (RFC 5425); needs `ca_file`.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA certificates trusted for the receiver.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name the receiver's certificate must carry (default: the host of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default = "hostname")]
    pub hostname: String,
}

fn hostname() -> String {
    "ccbft-dora".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSink {
    /// `http://host:port/path` or `https://host:port/path` (needs `ca_file`).
    pub url: String,
    /// PEM file of the CA certificates trusted for an https receiver.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A file (mode 0600 or stricter) holding a bearer token.
    pub token_file: Option<PathBuf>,
}

/// One event as the SIEM sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportEvent {
    /// Stable id: `audit-<seq>` or `deadline-<incident>-<report>`.
    pub id: String,
    pub at: String,
    pub kind: String,
    pub subject: String,
    /// 0 (lowest) to 10 (highest), CEF scale.
    pub severity: u8,
    pub summary: String,
    pub data: Value,
}

/// An audit entry as an event.
pub fn from_audit(entry: &crate::audit::Entry) -> ExportEvent {
    let severity = match entry.kind.as_str() {
        "classification" if entry.payload["major"] == json!(true) => 9,
        "classification" | "report" => 6,
        "test" => 4,
        _ => 3,
    };
    ExportEvent {
        id: format!("audit-{}", entry.seq),
        at: entry.at.clone(),
        kind: entry.kind.clone(),
        subject: entry.subject.clone(),
        severity,
        summary: format!("{} {}", entry.kind, entry.subject),
        data: json!({"hash": entry.hash, "payload": entry.payload}),
    }
}

/// Every entry of the engine's audit trail (`<state>/audit/audit.jsonl`) as an event, read
/// line by line (the trail can be large).
pub fn audit_events(state_dir: &Path) -> Result<Vec<ExportEvent>, ExportError> {
    let path = state_dir
        .join(crate::state::AUDIT_DIR)
        .join(crate::audit::LOG_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| io(&path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: crate::audit::Entry =
            serde_json::from_str(&line).map_err(|e| ExportError::Malformed {
                path: format!("{} line {}", path.display(), i + 1),
                reason: e.to_string(),
            })?;
        out.push(from_audit(&entry));
    }
    Ok(out)
}

/// Deliver the outbox to every configured sink once; returns (sink, delivered, error).
pub fn deliver_all(
    outbox: &mut Outbox,
    cfg: &ExportConfig,
    now_ms: u64,
) -> Result<Vec<(String, usize, Option<String>)>, ExportError> {
    let mut sinks: Vec<(&str, Box<dyn Sink>)> = Vec::new();
    if let Some(s) = &cfg.syslog {
        sinks.push(("syslog", Box::new(TcpSyslog::new(s.clone(), false)?)));
    }
    if let Some(s) = &cfg.cef {
        sinks.push(("cef", Box::new(TcpSyslog::new(s.clone(), true)?)));
    }
    if let Some(w) = &cfg.webhook {
        sinks.push(("webhook", Box::new(Webhook::new(w)?)));
    }
    if sinks.is_empty() {
        return Err(ExportError::Config(
            "no sink configured (export.syslog, export.cef or export.webhook)".into(),
        ));
    }
    let mut report = Vec::new();
    for (name, mut sink) in sinks {
        let n = outbox.deliver(name, sink.as_mut(), now_ms, cfg)?;
        report.push((name.to_string(), n, outbox.sink(name).last_error));
    }
    Ok(report)
}

/// A missed reporting deadline as an event (one id per incident and report).
pub fn from_overdue(incident: &str, alert: &crate::deadlines::OverdueAlert) -> ExportEvent {
    ExportEvent {
        id: format!("deadline-{incident}-{}", alert.report.replace(' ', "_")),
        at: alert.due.clone(),
        kind: "deadline_missed".into(),
        subject: incident.into(),
        severity: 10,
        summary: alert.message.clone(),
        data: serde_json::to_value(alert).unwrap_or(Value::Null),
    }
}

/// RFC 5424 structured-data parameter value escaping (`"`, `\` and `]`).
fn sd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// One RFC 5424 message: facility 13 (log audit), severity from the event.
pub fn rfc5424(ev: &ExportEvent, hostname: &str) -> String {
    let sev = match ev.severity {
        9.. => 2,
        6..=8 => 4,
        4..=5 => 5,
        _ => 6,
    };
    let pri = 13 * 8 + sev;
    let msgid: String = ev
        .id
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    format!(
        "<{pri}>1 {} {hostname} ccbft-dora - {msgid} [ccbft@32473 id=\"{}\" kind=\"{}\" subject=\"{}\" severity=\"{}\"] {}",
        ev.at,
        sd_escape(&ev.id),
        sd_escape(&ev.kind),
        sd_escape(&ev.subject),
        ev.severity,
        ev.summary
    )
}

fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|")
}

fn cef_ext(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
}

/// One CEF line (CEF:0, ArcSight format).
pub fn cef(ev: &ExportEvent) -> String {
    format!(
        "CEF:0|CC-BFT|ccbft-dora|{}|{}|{}|{}|externalId={} rt={} suid={} msg={}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&ev.kind),
        cef_header(&ev.summary),
        ev.severity.min(10),
        cef_ext(&ev.id),
        cef_ext(&ev.at),
        cef_ext(&ev.subject),
        cef_ext(&ev.summary)
    )
}

/// Delivery state of one sink.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SinkState {
    pub delivered: BTreeSet<String>,
    pub failures: u32,
    /// Unix milliseconds before which the sink is not retried.
    pub retry_after_ms: u64,
    pub last_error: Option<String>,
}

/// The outbox: events in arrival order, and what each sink has delivered.
pub struct Outbox {
    dir: PathBuf,
    events: Vec<ExportEvent>,
    ids: BTreeSet<String>,
    sinks: BTreeMap<String, SinkState>,
}

impl Outbox {
    pub fn open(dir: &Path) -> Result<Outbox, ExportError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(OUTBOX_FILE);
        let mut events = Vec::new();
        if path.exists() {
            let text = crate::read_bounded(&path).map_err(|e| io(&path, e))?;
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let ev: ExportEvent =
                    serde_json::from_str(line).map_err(|e| ExportError::Malformed {
                        path: format!("{} line {}", path.display(), i + 1),
                        reason: e.to_string(),
                    })?;
                events.push(ev);
            }
        }
        let spath = dir.join(SINKS_FILE);
        let sinks = if spath.exists() {
            let text = crate::read_bounded(&spath).map_err(|e| io(&spath, e))?;
            serde_json::from_str(&text).map_err(|e| ExportError::Malformed {
                path: spath.display().to_string(),
                reason: e.to_string(),
            })?
        } else {
            BTreeMap::new()
        };
        let ids = events.iter().map(|e| e.id.clone()).collect();
        Ok(Outbox {
            dir: dir.into(),
            events,
            ids,
            sinks,
        })
    }

    /// Append events not seen before (by id); returns how many were new. Durable on return.
    pub fn enqueue(&mut self, events: &[ExportEvent]) -> Result<usize, ExportError> {
        let new: Vec<&ExportEvent> = events
            .iter()
            .filter(|e| !self.ids.contains(&e.id))
            .collect();
        if new.is_empty() {
            return Ok(0);
        }
        let path = self.dir.join(OUTBOX_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let mut text = String::new();
        for ev in &new {
            text.push_str(&serde_json::to_string(ev).unwrap_or_default());
            text.push('\n');
        }
        file.write_all(text.as_bytes()).map_err(|e| io(&path, e))?;
        file.sync_all().map_err(|e| io(&path, e))?;
        for ev in new.iter() {
            self.ids.insert(ev.id.clone());
            self.events.push((*ev).clone());
        }
        Ok(new.len())
    }

    pub fn events(&self) -> &[ExportEvent] {
        &self.events
    }

    pub fn sink(&self, name: &str) -> SinkState {
        self.sinks.get(name).cloned().unwrap_or_default()
    }

    fn save_sinks(&self) -> Result<(), ExportError> {
        let path = self.dir.join(SINKS_FILE);
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(&self.sinks).unwrap_or_default();
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(text.as_bytes()).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    /// Deliver pending events to one sink in order; on the first failure stop (order is
    /// kept) and back off. Returns how many were delivered.
    pub fn deliver(
        &mut self,
        name: &str,
        sink: &mut dyn Sink,
        now_ms: u64,
        cfg: &ExportConfig,
    ) -> Result<usize, ExportError> {
        let mut state = self.sink(name);
        if now_ms < state.retry_after_ms {
            return Ok(0);
        }
        let mut sent = 0;
        let pending: Vec<ExportEvent> = self
            .events
            .iter()
            .filter(|e| !state.delivered.contains(&e.id))
            .take(BATCH_MAX)
            .cloned()
            .collect();
        for ev in &pending {
            match sink.send(ev) {
                Ok(()) => {
                    state.delivered.insert(ev.id.clone());
                    state.failures = 0;
                    state.last_error = None;
                    sent += 1;
                    // Record each delivery before the next send: a crash resends at most one.
                    self.sinks.insert(name.into(), state.clone());
                    self.save_sinks()?;
                }
                Err(e) => {
                    state.failures = state.failures.saturating_add(1);
                    let shift = state.failures.saturating_sub(1).min(20);
                    let wait = cfg
                        .backoff_initial_ms
                        .saturating_mul(1 << shift)
                        .min(cfg.backoff_max_ms);
                    state.retry_after_ms = now_ms.saturating_add(wait);
                    state.last_error = Some(e);
                    break;
                }
            }
        }
        self.sinks.insert(name.into(), state);
        self.save_sinks()?;
        Ok(sent)
    }
}

/// Something events are delivered to. `send` returns only once the receiver has the event
/// (TCP write flushed; HTTP 2xx).
pub trait Sink {
    fn send(&mut self, ev: &ExportEvent) -> Result<(), String>;
}

fn connect(address: &str) -> Result<TcpStream, String> {
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address}: no address"))?;
    let timeout = Duration::from_millis(IO_TIMEOUT_MS);
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{address}: {e}"))?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// TLS client settings for one receiver.
#[derive(Clone)]
pub struct TlsTarget {
    config: std::sync::Arc<rustls::ClientConfig>,
    name: rustls_pki_types::ServerName<'static>,
}

impl TlsTarget {
    /// Trust the CA certificates of `ca_file` for a receiver called `name`.
    pub fn new(ca_file: &Path, name: &str) -> Result<TlsTarget, ExportError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| ExportError::Config(format!("{}: {e}", ca_file.display())))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| ExportError::Config(format!("{}: {e}", ca_file.display())))?;
            roots
                .add(cert)
                .map_err(|e| ExportError::Config(format!("{}: {e}", ca_file.display())))?;
        }
        if roots.is_empty() {
            return Err(ExportError::Config(format!(
                "{} holds no certificate",
                ca_file.display()
            )));
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ExportError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| ExportError::Config(format!("server name {name:?}: {e}")))?;
        Ok(TlsTarget {
            config: std::sync::Arc::new(config),
            name,
        })
    }
}

/// A plain or TLS connection to a receiver.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn open(address: &str, tls: Option<&TlsTarget>) -> Result<Conn, String> {
        let tcp = connect(address)?;
        match tls {
            None => Ok(Conn::Plain(tcp)),
            Some(t) => {
                let conn = rustls::ClientConnection::new(t.config.clone(), t.name.clone())
                    .map_err(|e| format!("{address}: {e}"))?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                // Complete the handshake now so a certificate problem is reported as such.
                while s.conn.is_handshaking() {
                    s.conn
                        .complete_io(&mut s.sock)
                        .map_err(|e| format!("{address}: TLS: {e}"))?;
                }
                Ok(Conn::Tls(Box::new(s)))
            }
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

fn host_of(address: &str) -> &str {
    address.rsplit_once(':').map(|(h, _)| h).unwrap_or(address)
}

/// Syslog over TCP with octet-counting framing (RFC 6587 3.4.1): RFC 5424 or CEF payloads.
pub struct TcpSyslog {
    sink: SyslogSink,
    cef: bool,
    tls: Option<TlsTarget>,
    stream: Option<Conn>,
}

impl TcpSyslog {
    pub fn new(sink: SyslogSink, cef: bool) -> Result<TcpSyslog, ExportError> {
        let tls = if sink.tls {
            let ca = sink.ca_file.as_ref().ok_or_else(|| {
                ExportError::Config(format!("syslog to {}: tls needs ca_file", sink.address))
            })?;
            let name = sink
                .server_name
                .clone()
                .unwrap_or_else(|| host_of(&sink.address).to_string());
            Some(TlsTarget::new(ca, &name)?)
        } else {
            None
        };
        Ok(TcpSyslog {
            sink,
            cef,
            tls,
            stream: None,
        })
    }
}

impl Sink for TcpSyslog {
    fn send(&mut self, ev: &ExportEvent) -> Result<(), String> {
        let msg = if self.cef {
            cef(ev)
        } else {
            rfc5424(ev, &self.sink.hostname)
        };
        let frame = format!("{} {msg}", msg.len());
        if self.stream.is_none() {
            self.stream = Some(Conn::open(&self.sink.address, self.tls.as_ref())?);
        }
        let result = self
            .stream
            .as_mut()
            .map(|s| s.write_all(frame.as_bytes()).and_then(|_| s.flush()))
            .unwrap_or(Ok(()));
        result.map_err(|e| {
            self.stream = None;
            format!("{}: {e}", self.sink.address)
        })
    }
}

/// JSON webhook over HTTP/1.1, one POST per event, `Idempotency-Key` = event id.
pub struct Webhook {
    host_port: String,
    path: String,
    token: Option<String>,
    tls: Option<TlsTarget>,
}

impl Webhook {
    pub fn new(sink: &WebhookSink) -> Result<Webhook, ExportError> {
        let (https, rest) = match (
            sink.url.strip_prefix("https://"),
            sink.url.strip_prefix("http://"),
        ) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            _ => {
                return Err(ExportError::Config(format!(
                    "webhook {}: the URL must start with http:// or https://",
                    sink.url
                )))
            }
        };
        let (host_port, path) = match rest.find('/') {
            Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
            None => (rest.to_string(), "/".to_string()),
        };
        let token = match &sink.token_file {
            Some(p) => Some(read_secret(p)?),
            None => None,
        };
        let tls = if https {
            let ca = sink.ca_file.as_ref().ok_or_else(|| {
                ExportError::Config(format!("webhook {}: https needs ca_file", sink.url))
            })?;
            Some(TlsTarget::new(ca, host_of(&host_port))?)
        } else {
            None
        };
        Ok(Webhook {
            host_port,
            path,
            token,
            tls,
        })
    }
}

/// A secret file must not be readable by group or others.
pub fn read_secret(path: &Path) -> Result<String, ExportError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(ExportError::Config(format!(
                "{} has mode {:o}; a secret file must be 0600 or stricter (chmod 600)",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let text = crate::read_bounded(path).map_err(|e| io(path, e))?;
    Ok(text.trim().to_string())
}

impl Sink for Webhook {
    fn send(&mut self, ev: &ExportEvent) -> Result<(), String> {
        let body = serde_json::to_string(ev).map_err(|e| e.to_string())?;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nIdempotency-Key: {}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.path,
            self.host_port,
            ev.id,
            body.len()
        );
        let mut s = Conn::open(&self.host_port, self.tls.as_ref())?;
        s.write_all(request.as_bytes())
            .and_then(|_| s.flush())
            .map_err(|e| format!("{}: {e}", self.host_port))?;
        let mut line = String::new();
        BufReader::new(s.take(RESPONSE_BYTES_MAX))
            .read_line(&mut line)
            .map_err(|e| format!("{}: {e}", self.host_port))?;
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{}: no HTTP status in {line:?}", self.host_port))?;
        if (200..300).contains(&code) {
            Ok(())
        } else {
            Err(format!("{}: HTTP {code}", self.host_port))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> ExportEvent {
        ExportEvent {
            id: "audit-7".into(),
            at: "2026-03-03T08:00:00Z".into(),
            kind: "classification".into(),
            subject: "INC-1 \"x\"]".into(),
            severity: 9,
            summary: "a|b=c".into(),
            data: Value::Null,
        }
    }

    #[test]
    fn formats_escape_their_special_characters() {
        let s = rfc5424(&ev(), "h");
        assert!(
            s.starts_with(
                "<106>1 2026-03-03T08:00:00Z h ccbft-dora - audit-7 [ccbft@32473 id=\"audit-7\""
            ),
            "{s}"
        );
        assert!(s.contains("subject=\"INC-1 \\\"x\\\"\\]\""), "{s}");
        let c = cef(&ev());
        assert!(
            c.contains("|classification|a\\|b=c|9|externalId=audit-7"),
            "{c}"
        );
        assert!(c.ends_with("msg=a|b\\=c"), "{c}");
    }
}
