//! The dashboard's HTTP server under hostile clients: real sockets on 127.0.0.1 (port 0),
//! real state directories and token files. Timeouts are configured short (well under a
//! second or two) so each test takes at most a few seconds; each bound asserted is far
//! below the timeout that would apply if the behaviour under test were missing.

use ccbft_dora::server::{Server, ServerConfig};
use ccbft_dora::state::Engine;
use ccbft_dora::token::{Token, TOKEN_FILE};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest a test client waits for any answer (a hang guard, far above what is asserted).
const CLIENT_WAIT_SECONDS: u64 = 8;

const EVENT: &str = r#"{"schema":"ccbft.health-event/v1","event_id":"s:1","at":"2026-03-03T08:00:00Z","kind":"commit_stall","severity":"critical"}"#;

/// A fresh state directory (with its token file) and the token text.
fn state() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    Engine::init(&state).unwrap();
    let token = std::fs::read_to_string(state.join(TOKEN_FILE)).unwrap();
    (dir, token.trim().to_string())
}

fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(1_000),
        body_bytes_max: 1024,
        connections_max: 16,
        token: Some(Token::load(&dir.join("state").join(TOKEN_FILE)).unwrap()),
    }
}

fn start(dir: &Path, config: ServerConfig) -> Server {
    Server::start_with(&dir.join("state"), "127.0.0.1:0", config).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(CLIENT_WAIT_SECONDS)))
        .unwrap();
    s
}

/// Send `request` whole and read the answer until the server closes.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = connect(addr);
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn post_events(addr: SocketAddr, authorization: Option<&str>, body: &str) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    exchange(
        addr,
        &format!(
            "POST /api/events HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

fn open_incidents(addr: SocketAddr) -> usize {
    let answer = get(addr, "/api/state");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let state: serde_json::Value = serde_json::from_str(body).unwrap();
    state["incidents"].as_array().unwrap().len()
}

/// Wait until the server closes `s` (EOF or reset); how long it took from `since`.
fn closed_after(s: &mut TcpStream, since: Instant) -> (Duration, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (since.elapsed(), seen),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("the server kept the connection open for {CLIENT_WAIT_SECONDS} s")
            }
            Err(_) => return (since.elapsed(), seen),
        }
    }
}

#[test]
fn an_idle_connection_does_not_stall_other_clients() {
    let (dir, _) = state();
    // The idle clients would be cut off only after 30 s: anything served before that was
    // served beside them.
    let server = start(
        dir.path(),
        ServerConfig {
            header_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            ..config(dir.path())
        },
    );
    let idle: Vec<TcpStream> = (0..4).map(|_| connect(server.addr)).collect();
    let mut half = connect(server.addr);
    half.write_all(b"GET / HTTP/1.1\r\nHost: loc").unwrap();
    let started = Instant::now();
    assert!(get(server.addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
    assert!(get(server.addr, "/").contains("CC-BFT DORA dashboard"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served in {:?}",
        started.elapsed()
    );
    for mut s in idle {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let still_open = matches!(s.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
        assert!(still_open, "an idle connection is kept until its timeout");
    }
    server.stop();
}

#[test]
fn a_slowloris_client_is_cut_off_by_the_header_timeout() {
    let (dir, _) = state();
    // Header timeout 500 ms; the whole-request timeout (10 s) must not be what ends it.
    let server = start(
        dir.path(),
        ServerConfig {
            request_timeout: Duration::from_secs(10),
            ..config(dir.path())
        },
    );
    let mut s = connect(server.addr);
    let mut writer = s.try_clone().unwrap();
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        let head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')).take(60) {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (after, answer) = closed_after(&mut s, started);
    assert!(
        after < Duration::from_secs(3),
        "closed after {after:?}: the header timeout is 500 ms"
    );
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"));
    trickle.join().unwrap();
    // The server is still there for others.
    assert!(get(server.addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
    server.stop();
}

#[test]
fn a_body_sent_too_slowly_is_cut_off_by_the_request_timeout() {
    let (dir, token) = state();
    let server = start(dir.path(), config(dir.path()));
    let mut s = connect(server.addr);
    let body = format!("{EVENT}\n");
    write!(
        s,
        "POST /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let started = Instant::now();
    let mut writer = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for byte in body.as_bytes() {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (after, answer) = closed_after(&mut s, started);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after < Duration::from_secs(4), "answered after {after:?}");
    trickle.join().unwrap();
    assert_eq!(open_incidents(server.addr), 0, "nothing was ingested");
    server.stop();
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let (dir, token) = state();
    let server = start(dir.path(), config(dir.path()));
    let auth = format!("Bearer {token}");
    // Declared too large: refused before a byte of the body is sent.
    let declared = exchange(
        server.addr,
        &format!(
            "POST /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Length: 1000000\r\n\r\n"
        ),
    );
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    // Chunked, no length declared: refused once the limit is passed.
    let line = format!("{EVENT}\n");
    let chunk = line.repeat(1 + 1024 / line.len());
    let chunked = exchange(
        server.addr,
        &format!(
            "POST /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        ),
    );
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert!(chunked.contains("larger than 1024 bytes"));
    assert_eq!(open_incidents(server.addr), 0);
    // Within the limit it is ingested.
    let ok = post_events(server.addr, Some(&auth), &line);
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert_eq!(open_incidents(server.addr), 1);
    server.stop();
}

#[test]
fn state_changes_need_the_bearer_token() {
    let (dir, token) = state();
    let server = start(dir.path(), config(dir.path()));
    let body = format!("{EVENT}\n");
    let wrong_last = format!(
        "Bearer {}{}",
        &token[..token.len() - 1],
        if token.ends_with('0') { '1' } else { '0' }
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("a wrong token", Some(format!("Bearer {}", "f".repeat(64)))),
        ("the token with its last digit changed", Some(wrong_last)),
        (
            "a prefix of the token",
            Some(format!("Bearer {}", &token[..32])),
        ),
        (
            "the token under another scheme",
            Some(format!("Basic {token}")),
        ),
        ("an empty bearer token", Some("Bearer ".into())),
    ];
    for (what, auth) in &cases {
        let answer = post_events(server.addr, auth.as_deref(), &body);
        assert!(answer.starts_with("HTTP/1.1 401"), "{what}: {answer}");
        assert!(
            answer.to_lowercase().contains("www-authenticate: bearer"),
            "{what}: {answer}"
        );
    }
    for method in ["PUT", "DELETE", "PATCH"] {
        let request =
            format!("{method} / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
        assert!(
            exchange(server.addr, &request).starts_with("HTTP/1.1 401"),
            "{method}"
        );
        let authorised = format!(
            "{method} / HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(
            exchange(server.addr, &authorised).starts_with("HTTP/1.1 405"),
            "{method} with the token reaches the router"
        );
    }
    assert_eq!(open_incidents(server.addr), 0, "nothing changed");
    // The scheme is case-insensitive (RFC 7235 section 2.1).
    let ok = post_events(server.addr, Some(&format!("bearer {token}")), &body);
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert!(ok.contains("opened"), "{ok}");
    assert_eq!(open_incidents(server.addr), 1);
    // Ingest stays idempotent through the server.
    let again = post_events(server.addr, Some(&format!("Bearer {token}")), &body);
    assert!(again.contains("duplicate"), "{again}");
    assert_eq!(open_incidents(server.addr), 1);
    server.stop();
}

#[test]
fn a_server_without_a_token_refuses_every_state_change() {
    let (dir, token) = state();
    let server = Server::start(&dir.path().join("state"), "127.0.0.1:0").unwrap();
    let answer = post_events(server.addr, Some(&format!("Bearer {token}")), EVENT);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("no token"), "{answer}");
    assert!(get(server.addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
    server.stop();
}

#[test]
fn bad_event_streams_are_refused_naming_the_line_and_field() {
    let (dir, token) = state();
    let server = start(dir.path(), config(dir.path()));
    let auth = format!("Bearer {token}");
    let typo = EVENT.replace("\"severity\"", "\"severityy\"");
    let answer = post_events(server.addr, Some(&auth), &typo);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("line 1") && answer.contains("severity"),
        "{answer}"
    );
    assert_eq!(open_incidents(server.addr), 0);
    server.stop();
}

#[test]
fn connections_beyond_the_limit_are_answered_503() {
    let (dir, _) = state();
    let server = start(
        dir.path(),
        ServerConfig {
            header_read_timeout: Duration::from_secs(30),
            connections_max: 2,
            ..config(dir.path())
        },
    );
    let idle: Vec<TcpStream> = (0..2).map(|_| connect(server.addr)).collect();
    // Let the server accept them before the third arrives.
    std::thread::sleep(Duration::from_millis(200));
    assert!(get(server.addr, "/healthz").starts_with("HTTP/1.1 503"));
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(CLIENT_WAIT_SECONDS);
    while !get(server.addr, "/healthz").starts_with("HTTP/1.1 200") {
        assert!(
            Instant::now() < deadline,
            "slots freed when the idle clients left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
}

#[test]
fn the_token_file_is_private_and_read_only_as_a_secret_file() {
    let (dir, token) = state();
    let path = dir.path().join("state").join(TOKEN_FILE);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "dora init writes the token with mode 0600");
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    let loaded = Token::load(&path).unwrap();
    assert!(loaded.verifies(token.as_bytes()));
    assert!(!loaded.verifies(b"not the token"));
    // A link to a good file is refused (O_NOFOLLOW), as is a readable file.
    let link = dir.path().join("link.token");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(Token::load(&link).is_err(), "a symbolic link is refused");
    let open = dir.path().join("open.token");
    std::fs::write(&open, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Token::load(&open).unwrap_err().to_string();
    assert!(err.contains("group or others"), "{err}");
    // An operator's own file: 0600, at least 32 characters.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Token::load(&open).unwrap().verifies(token.as_bytes()));
    let short = dir.path().join("short.token");
    std::fs::write(&short, "abc\n").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = Token::load(&short).unwrap_err().to_string();
    assert!(err.contains("32 to 512 characters"), "{err}");
}
