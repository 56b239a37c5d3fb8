//! SIEM/SOAR export against local receivers: every event arrives exactly once, also when
//! the receiver is down for a while and comes back, and across a restart of the exporter.

use ccbft_dora::export::{
    cef, ExportConfig, ExportEvent, Outbox, Sink, SyslogSink, TcpSyslog, Webhook, WebhookSink,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn events(from: u32, to: u32) -> Vec<ExportEvent> {
    (from..to)
        .map(|i| ExportEvent {
            id: format!("audit-{i}"),
            at: "2026-03-03T08:00:00Z".into(),
            kind: "classification".into(),
            subject: "INC-20260303-0001".into(),
            severity: 9,
            summary: format!("classification {i}"),
            data: Value::Null,
        })
        .collect()
}

fn config() -> ExportConfig {
    ExportConfig {
        syslog: None,
        cef: None,
        webhook: None,
        backoff_initial_ms: 1_000,
        backoff_max_ms: 8_000,
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Seen = Arc<Mutex<Vec<String>>>;

/// An octet-counting syslog receiver; records each frame's message.
fn syslog_receiver(port: u16) -> Seen {
    let seen: Seen = Arc::default();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let out = out.clone();
            std::thread::spawn(move || read_frames(conn, &out));
        }
    });
    seen
}

fn read_frames(conn: TcpStream, out: &Seen) {
    let mut r = BufReader::new(conn);
    loop {
        let mut len = Vec::new();
        if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
            return;
        }
        let Ok(n) = String::from_utf8_lossy(&len).trim().parse::<usize>() else {
            return;
        };
        let mut msg = vec![0; n];
        if r.read_exact(&mut msg).is_err() {
            return;
        }
        out.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&msg).into());
    }
}

/// An HTTP receiver answering `status` to the first `fail_first` requests, then 200;
/// records the Idempotency-Key of each request it accepted.
fn http_receiver(port: u16, fail_first: usize) -> Seen {
    let seen: Seen = Arc::default();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = seen.clone();
    std::thread::spawn(move || {
        let mut served = 0;
        for mut conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut headers = BTreeMap::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.to_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers["content-length"].parse().unwrap();
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let ev: ExportEvent = serde_json::from_slice(&body).unwrap();
            assert_eq!(headers["idempotency-key"], ev.id);
            served += 1;
            let status = if served <= fail_first {
                "503 Service Unavailable"
            } else {
                out.lock().unwrap().push(ev.id);
                "200 OK"
            };
            let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        }
    });
    seen
}

fn wait_for(seen: &Seen, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    seen.lock().unwrap().clone()
}

fn ids_once(got: &[String], extract: impl Fn(&str) -> String, want: u32) {
    let mut ids: Vec<String> = got.iter().map(|m| extract(m)).collect();
    ids.sort();
    let mut expected: Vec<String> = (0..want).map(|i| format!("audit-{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "every event exactly once");
}

fn syslog_id(msg: &str) -> String {
    msg.split_whitespace()
        .nth(5)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn syslog_events_arrive_exactly_once_across_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config();
    let sink_cfg = SyslogSink {
        address: format!("127.0.0.1:{port}"),
        tls: false,
        ca_file: None,
        server_name: None,
        hostname: "test".into(),
    };
    let mut outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(outbox.enqueue(&events(0, 5)).unwrap(), 5);
    // Receiver down: nothing delivered, the sink backs off.
    let mut sink = TcpSyslog::new(sink_cfg.clone(), false).unwrap();
    assert_eq!(outbox.deliver("syslog", &mut sink, 0, &cfg).unwrap(), 0);
    let state = outbox.sink("syslog");
    assert_eq!((state.failures, state.retry_after_ms), (1, 1_000));
    assert_eq!(
        outbox.deliver("syslog", &mut sink, 999, &cfg).unwrap(),
        0,
        "backing off"
    );
    assert_eq!(outbox.deliver("syslog", &mut sink, 1_000, &cfg).unwrap(), 0);
    assert_eq!(outbox.sink("syslog").retry_after_ms, 3_000, "doubled");
    // Receiver up: the backlog goes out in order.
    let seen = syslog_receiver(port);
    assert_eq!(outbox.deliver("syslog", &mut sink, 3_000, &cfg).unwrap(), 5);
    // Duplicates of the same ids are not enqueued again; new ones are.
    assert_eq!(outbox.enqueue(&events(0, 7)).unwrap(), 2);
    assert_eq!(outbox.deliver("syslog", &mut sink, 3_001, &cfg).unwrap(), 2);
    drop(outbox);
    // Restart: the outbox and delivery state come back from disk; nothing is resent.
    let mut outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(outbox.events().len(), 7);
    let mut sink = TcpSyslog::new(sink_cfg, false).unwrap();
    assert_eq!(outbox.deliver("syslog", &mut sink, 4_000, &cfg).unwrap(), 0);
    let got = wait_for(&seen, 7);
    std::thread::sleep(Duration::from_millis(50));
    let got_now = seen.lock().unwrap().clone();
    assert_eq!(got, got_now, "nothing more arrives");
    ids_once(&got, syslog_id, 7);
    assert!(
        got[0].starts_with(
            "<106>1 2026-03-03T08:00:00Z test ccbft-dora - audit-0 [ccbft@32473 id=\"audit-0\""
        ),
        "{}",
        got[0]
    );
}

#[test]
fn cef_lines_arrive_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let seen = syslog_receiver(port);
    let mut outbox = Outbox::open(dir.path()).unwrap();
    outbox.enqueue(&events(0, 3)).unwrap();
    let sink_cfg = SyslogSink {
        address: format!("127.0.0.1:{port}"),
        tls: false,
        ca_file: None,
        server_name: None,
        hostname: "test".into(),
    };
    let mut sink = TcpSyslog::new(sink_cfg, true).unwrap();
    assert_eq!(outbox.deliver("cef", &mut sink, 0, &config()).unwrap(), 3);
    let got = wait_for(&seen, 3);
    assert_eq!(got[0], cef(&events(0, 1)[0]));
    let ext = |m: &str| {
        m.split("externalId=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    ids_once(&got, ext, 3);
}

#[test]
fn webhook_events_arrive_exactly_once_when_the_receiver_fails_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config();
    let hook = WebhookSink {
        url: format!("http://127.0.0.1:{port}/dora/events"),
        ca_file: None,
        token_file: None,
    };
    let mut outbox = Outbox::open(dir.path()).unwrap();
    outbox.enqueue(&events(0, 4)).unwrap();
    let mut sink = Webhook::new(&hook).unwrap();
    // Down: connection refused.
    assert_eq!(outbox.deliver("webhook", &mut sink, 0, &cfg).unwrap(), 0);
    // Up but answering 503 twice: each is a failure with a longer back-off.
    let seen = http_receiver(port, 2);
    assert_eq!(
        outbox.deliver("webhook", &mut sink, 1_000, &cfg).unwrap(),
        0
    );
    assert_eq!(
        outbox.deliver("webhook", &mut sink, 3_000, &cfg).unwrap(),
        0
    );
    let s = outbox.sink("webhook");
    assert_eq!(s.failures, 3);
    assert!(
        s.last_error.as_deref().unwrap_or("").contains("HTTP 503"),
        "{s:?}"
    );
    assert_eq!(
        outbox.deliver("webhook", &mut sink, 7_000, &cfg).unwrap(),
        4
    );
    assert_eq!(
        outbox.deliver("webhook", &mut sink, 8_000, &cfg).unwrap(),
        0
    );
    ids_once(&wait_for(&seen, 4), |id| id.to_string(), 4);
}

#[test]
fn a_token_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "secret\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let hook = WebhookSink {
            url: "http://127.0.0.1:1/x".into(),
            ca_file: None,
            token_file: Some(token.clone()),
        };
        let err = Webhook::new(&hook).err().unwrap().to_string();
        assert!(err.contains("0600"), "{err}");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Webhook::new(&hook).is_ok());
    }
    let tls = SyslogSink {
        address: "127.0.0.1:6514".into(),
        tls: true,
        ca_file: None,
        server_name: None,
        hostname: "h".into(),
    };
    let err = TcpSyslog::new(tls, false).err().unwrap().to_string();
    assert!(err.contains("tls needs ca_file"), "{err}");
    let _: Option<&mut dyn Sink> = None;
}

/// A self-signed receiver certificate for localhost and 127.0.0.1, and the PEM to trust.
fn tls_server(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, std::path::PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    (Arc::new(config), ca)
}

fn tls_syslog_receiver(port: u16, config: Arc<rustls::ServerConfig>) -> Seen {
    let seen: Seen = Arc::default();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (out, config) = (out.clone(), config.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let stream = rustls::StreamOwned::new(conn, tcp);
                read_tls_frames(stream, &out);
            });
        }
    });
    seen
}

fn read_tls_frames(stream: impl Read, out: &Seen) {
    let mut r = BufReader::new(stream);
    loop {
        let mut len = Vec::new();
        if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
            return;
        }
        let Ok(n) = String::from_utf8_lossy(&len).trim().parse::<usize>() else {
            return;
        };
        let mut msg = vec![0; n];
        if r.read_exact(&mut msg).is_err() {
            return;
        }
        out.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&msg).into());
    }
}

#[test]
fn syslog_over_tls_delivers_exactly_once_and_refuses_an_untrusted_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path());
    let port = free_port();
    let sink_cfg = SyslogSink {
        address: format!("127.0.0.1:{port}"),
        tls: true,
        ca_file: Some(ca),
        server_name: Some("localhost".into()),
        hostname: "test".into(),
    };
    let cfg = config();
    let mut outbox = Outbox::open(&dir.path().join("out")).unwrap();
    outbox.enqueue(&events(0, 3)).unwrap();
    let mut sink = TcpSyslog::new(sink_cfg.clone(), false).unwrap();
    assert_eq!(
        outbox.deliver("syslog", &mut sink, 0, &cfg).unwrap(),
        0,
        "down"
    );
    let seen = tls_syslog_receiver(port, server);
    assert_eq!(outbox.deliver("syslog", &mut sink, 1_000, &cfg).unwrap(), 3);
    assert_eq!(outbox.deliver("syslog", &mut sink, 2_000, &cfg).unwrap(), 0);
    ids_once(&wait_for(&seen, 3), syslog_id, 3);
    // A receiver whose certificate is not signed by the configured CA is refused.
    let other = tempfile::tempdir().unwrap();
    let (_, wrong_ca) = tls_server(other.path());
    let mut outbox = Outbox::open(&other.path().join("out")).unwrap();
    outbox.enqueue(&events(0, 1)).unwrap();
    let mut sink = TcpSyslog::new(
        SyslogSink {
            ca_file: Some(wrong_ca),
            ..sink_cfg
        },
        false,
    )
    .unwrap();
    assert_eq!(outbox.deliver("syslog", &mut sink, 0, &cfg).unwrap(), 0);
    let err = outbox.sink("syslog").last_error.unwrap_or_default();
    assert!(err.contains("TLS"), "{err}");
}

#[test]
fn https_webhook_delivers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path());
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let seen: Seen = Arc::default();
    let out = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let conn = rustls::ServerConnection::new(server.clone()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Idempotency-Key: "))
                .unwrap_or_default()
                .to_string();
            out.lock().unwrap().push(key);
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
            let _ = s.flush();
        }
    });
    let hook = WebhookSink {
        url: format!("https://127.0.0.1:{port}/dora"),
        ca_file: Some(ca),
        token_file: None,
    };
    let mut outbox = Outbox::open(&dir.path().join("out")).unwrap();
    outbox.enqueue(&events(0, 2)).unwrap();
    let mut sink = Webhook::new(&hook).unwrap();
    assert_eq!(
        outbox.deliver("webhook", &mut sink, 0, &config()).unwrap(),
        2
    );
    ids_once(&wait_for(&seen, 2), |id| id.to_string(), 2);
}
