//! The control plane's admin API: cutting and healing this replica's links to peers (the
//! link shaper, for resilience tests and drills) and a graceful stop.
//!
//! Every admin request carries the node's admin token (`Authorization: Bearer TOKEN`). The
//! node creates the token at its first start in `DATA/admin.token`, mode 0600, and refuses to
//! start with a token file that group or others can read. The control plane listens on
//! 127.0.0.1 unless the operator names another address. The read-only endpoints (`/metrics`,
//! `/health`, `/events`) need no token: scrapers read them.
//!
//! - `POST /admin/cut?peers=5,6`: frames to those peers are dropped (both directions need a
//!   cut on each side: a replica shapes only what it sends).
//! - `POST /admin/heal?peers=5,6`, or `POST /admin/heal` for every peer.
//! - `POST /admin/delay?peers=5,6&extra_ms=200`: that much more one-way delay on the links
//!   to those peers (every peer without `peers=`), on top of their own (the emulated WAN);
//!   `extra_ms=0` takes it off again.
//! - `GET /admin/links`: which peers are cut, and the extra delay on each delayed link.
//! - `POST /admin/stop`: stop as on SIGTERM (the log is made durable first).

use ccbft_http::hyper::{Method, StatusCode};
use ccbft_http::{reply, text, Reply};
use ccbft_net::shaper::ShaperControl;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The token's file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Random bytes in a token (written as hex).
const TOKEN_BYTES: usize = 32;

pub struct Admin {
    token: String,
    shaper: Arc<ShaperControl>,
    peers: Vec<u32>,
    /// Each peer's link delay when the node started (what `extra_ms` adds to).
    base_delay: Vec<Duration>,
}

impl Admin {
    pub fn new(token: String, shaper: Arc<ShaperControl>, peers: Vec<u32>) -> Admin {
        let base_delay = peers
            .iter()
            .map(|&p| shaper.get(p).map_or(Duration::ZERO, |s| s.delay))
            .collect();
        Admin {
            token,
            shaper,
            peers,
            base_delay,
        }
    }

    /// Answers an admin request (`path` under `/admin/`).
    pub fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        authorization: Option<&str>,
    ) -> Reply {
        let presented = authorization.and_then(|a| a.strip_prefix("Bearer "));
        if !presented.is_some_and(|t| same_token(t.trim(), &self.token)) {
            return text(
                StatusCode::UNAUTHORIZED,
                "admin requests need the admin token",
            );
        }
        match (method, path) {
            (&Method::POST, "/admin/cut") => self.set_cut(query, true),
            (&Method::POST, "/admin/heal") => self.set_cut(query, false),
            (&Method::POST, "/admin/delay") => self.set_delay(query),
            (&Method::GET, "/admin/links") => self.links(),
            (&Method::POST, "/admin/stop") => {
                crate::node::request_stop();
                text(StatusCode::ACCEPTED, "stopping once the log is durable")
            }
            (_, "/admin/cut" | "/admin/heal" | "/admin/delay" | "/admin/stop" | "/admin/links") => {
                text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "see the admin API's methods",
                )
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found (try /admin/cut, /admin/heal, /admin/delay, /admin/links, /admin/stop)",
            ),
        }
    }

    fn set_cut(&self, query: Option<&str>, cut: bool) -> Reply {
        let peers = match requested_peers(query, &self.peers) {
            Ok(peers) => peers,
            Err(why) => return text(StatusCode::BAD_REQUEST, why),
        };
        for &peer in &peers {
            if let Err(e) = self.shaper.set_cut(peer, cut) {
                return text(StatusCode::BAD_REQUEST, format!("peer {peer}: {e}"));
            }
        }
        let verb = if cut { "cut" } else { "healed" };
        tracing::warn!("admin: links to {peers:?} {verb}");
        self.links()
    }

    fn set_delay(&self, query: Option<&str>) -> Reply {
        let extra = query
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("extra_ms=")))
            .map(str::parse::<u64>);
        let extra = match extra {
            Some(Ok(ms)) => Duration::from_millis(ms),
            _ => return text(StatusCode::BAD_REQUEST, "extra_ms= takes milliseconds"),
        };
        let peers = match requested_peers(query, &self.peers) {
            Ok(peers) => peers,
            Err(why) => return text(StatusCode::BAD_REQUEST, why),
        };
        for &peer in &peers {
            let mut shape = self.shaper.get(peer).expect("a peer has a link");
            shape.delay = self.base(peer) + extra;
            if let Err(e) = self.shaper.set(peer, shape) {
                return text(StatusCode::BAD_REQUEST, format!("peer {peer}: {e}"));
            }
        }
        tracing::warn!("admin: links to {peers:?} delayed by {extra:?} more");
        self.links()
    }

    fn base(&self, peer: u32) -> Duration {
        let i = self.peers.iter().position(|&p| p == peer);
        i.map_or(Duration::ZERO, |i| self.base_delay[i])
    }

    fn links(&self) -> Reply {
        let mut cut = Vec::new();
        let mut delayed = serde_json::Map::new();
        for &peer in &self.peers {
            let shape = self.shaper.get(peer).expect("a peer has a link");
            if shape.cut {
                cut.push(peer);
            }
            let extra = shape.delay.saturating_sub(self.base(peer));
            if !extra.is_zero() {
                delayed.insert(peer.to_string(), (extra.as_millis() as u64).into());
            }
        }
        let body = serde_json::json!({ "cut": cut, "extra_delay_ms": delayed }).to_string();
        reply(StatusCode::OK, "application/json", body)
    }
}

/// `peers=1,2` from the query; every peer when the query names none.
fn requested_peers(query: Option<&str>, all: &[u32]) -> Result<Vec<u32>, String> {
    let Some(list) = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("peers=")))
    else {
        return Ok(all.to_vec());
    };
    list.split(',')
        .map(|p| {
            let peer = p
                .parse::<u32>()
                .map_err(|_| format!("peers= takes replica ids, not {p:?}"))?;
            if all.contains(&peer) {
                Ok(peer)
            } else {
                Err(format!("replica {peer} is not a peer of this replica"))
            }
        })
        .collect()
}

/// Compares without an early exit, so the time taken does not tell how much was right.
fn same_token(presented: &str, token: &str) -> bool {
    let (a, b) = (presented.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The admin token in `data`, created (mode 0600, synced) if there is none. A token file
/// others can read, or one that is not a token, is refused.
pub fn load_or_create_token(data: &Path) -> Result<String, String> {
    let path = data.join(ADMIN_TOKEN_FILE);
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    if path.exists() {
        let mode = std::fs::metadata(&path).map_err(fail)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{}: mode {:o} lets group or others read the admin token (chmod 600)",
                path.display(),
                mode & 0o777
            ));
        }
        let token = std::fs::read_to_string(&path).map_err(fail)?;
        let token = token.trim();
        let is_token =
            token.len() == 2 * TOKEN_BYTES && token.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_token {
            return Err(format!("{}: not an admin token", path.display()));
        }
        return Ok(token.to_string());
    }
    std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    let mut random = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let token = ccbft_crypto::hex::encode(&random);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(fail)?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Admin {
        let shaper = ShaperControl::new(&[1, 2, 3]);
        Admin::new("ab".repeat(TOKEN_BYTES), shaper, vec![1, 2, 3])
    }

    fn bearer() -> String {
        format!("Bearer {}", "ab".repeat(TOKEN_BYTES))
    }

    fn body(reply: Reply) -> String {
        use http_body_util::BodyExt;
        let bytes = futures_lite::future::block_on(reply.into_body().collect())
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn without_the_token_nothing_is_done() {
        let admin = admin();
        for auth in [None, Some("Bearer nope"), Some("ab")] {
            let reply = admin.route(&Method::POST, "/admin/cut", Some("peers=1"), auth);
            assert_eq!(reply.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        }
        assert!(!admin.shaper.get(1).unwrap().cut);
    }

    #[test]
    fn cut_and_heal_shape_the_named_links() {
        let admin = admin();
        let auth = Some(bearer());
        let cut = admin.route(
            &Method::POST,
            "/admin/cut",
            Some("peers=1,3"),
            auth.as_deref(),
        );
        assert_eq!(cut.status(), StatusCode::OK);
        assert_eq!(body(cut), r#"{"cut":[1,3],"extra_delay_ms":{}}"#);
        let links = admin.route(&Method::GET, "/admin/links", None, auth.as_deref());
        assert_eq!(body(links), r#"{"cut":[1,3],"extra_delay_ms":{}}"#);
        let cut_now = |p| admin.shaper.get(p).unwrap().cut;
        assert!(cut_now(1) && !cut_now(2) && cut_now(3));
        let healed = admin.route(&Method::POST, "/admin/heal", None, auth.as_deref());
        assert_eq!(healed.status(), StatusCode::OK);
        assert!(!cut_now(1) && !cut_now(2) && !cut_now(3));
    }

    #[test]
    fn delay_adds_to_each_link_s_own_and_zero_takes_it_off() {
        let shaper = ShaperControl::new(&[1, 2]);
        shaper
            .set(1, ccbft_net::LinkShape::delay(Duration::from_millis(11)))
            .unwrap();
        let admin = Admin::new("ab".repeat(TOKEN_BYTES), shaper, vec![1, 2]);
        let auth = Some(bearer());
        let post = |q: &str| admin.route(&Method::POST, "/admin/delay", Some(q), auth.as_deref());
        let delay = |p| admin.shaper.get(p).unwrap().delay.as_millis();
        let reply = post("extra_ms=200");
        assert_eq!(reply.status(), StatusCode::OK);
        assert_eq!(
            body(reply),
            r#"{"cut":[],"extra_delay_ms":{"1":200,"2":200}}"#
        );
        assert_eq!((delay(1), delay(2)), (211, 200));
        assert_eq!(post("peers=2&extra_ms=50").status(), StatusCode::OK);
        assert_eq!((delay(1), delay(2)), (211, 50));
        assert_eq!(post("extra_ms=0").status(), StatusCode::OK);
        assert_eq!((delay(1), delay(2)), (11, 0));
        for bad in [
            "extra_ms=x",
            "peers=1",
            "extra_ms=99999999",
            "peers=7&extra_ms=1",
        ] {
            assert_eq!(post(bad).status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!((delay(1), delay(2)), (11, 0));
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let admin = admin();
        let auth = Some(bearer());
        let route = |m: &Method, path: &str, q: Option<&str>| {
            admin.route(m, path, q, auth.as_deref()).status()
        };
        assert_eq!(
            route(&Method::POST, "/admin/cut", Some("peers=9")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            route(&Method::POST, "/admin/cut", Some("peers=x")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            route(&Method::GET, "/admin/cut", None),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            route(&Method::POST, "/admin/nope", None),
            StatusCode::NOT_FOUND
        );
        assert!(!admin.shaper.get(1).unwrap().cut);
    }

    #[test]
    fn a_token_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let token = load_or_create_token(&data).unwrap();
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        let path = data.join(ADMIN_TOKEN_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(&data).unwrap(), token);
        assert_ne!(
            token,
            load_or_create_token(&dir.path().join("other")).unwrap()
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create_token(&data).unwrap_err();
        assert!(error.contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        for bad in ["ab".to_string(), "z".repeat(2 * TOKEN_BYTES)] {
            std::fs::write(&path, format!("{bad}\n")).unwrap();
            let error = load_or_create_token(&data).unwrap_err();
            assert!(error.contains("not an admin token"), "{bad}: {error}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abce", "abcd"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", "abcd"));
        // Two differences that would cancel out if they were folded with xor.
        assert!(!same_token("ba", "ab"));
    }

    #[test]
    fn stop_asks_the_node_to_stop() {
        let admin = admin();
        let auth = Some(bearer());
        assert!(!crate::node::stop_requested());
        let reply = admin.route(&Method::POST, "/admin/stop", None, auth.as_deref());
        assert_eq!(reply.status(), StatusCode::ACCEPTED);
        assert!(crate::node::stop_requested());
    }
}
