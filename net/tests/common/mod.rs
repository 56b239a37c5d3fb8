#![allow(dead_code)]

use ccbft_net::{
    Endpoint, EndpointConfig, LinkLimits, LinkSecretKey, PeerEntry, PeerId, PeerTable,
};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Runs `f` on a fresh glommio executor thread and returns its result.
pub fn run<T: Send + 'static, F: Future<Output = T> + 'static>(
    name: &str,
    f: impl FnOnce() -> F + Send + 'static,
) -> T {
    ccbft_net::executor_builder(name)
        .spawn(f)
        .expect("executor starts")
        .join()
        .expect("executor joins")
}

pub fn key(i: u32, salt: u8) -> LinkSecretKey {
    let mut seed = [salt; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    LinkSecretKey::from_seed(&seed)
}

/// `n` replicas on 127.0.<net>.<id+1>, port 7100; keys from `salt`.
pub fn cluster(net: u8, n: u32, salt: u8) -> (Vec<LinkSecretKey>, PeerTable) {
    let keys: Vec<_> = (0..n).map(|i| key(i, salt)).collect();
    let table = PeerTable::new(
        (0..n)
            .map(|i| PeerEntry {
                id: PeerId(i),
                addr: addr(net, i),
                link_key: keys[i as usize].public_key(),
            })
            .collect(),
    )
    .unwrap();
    (keys, table)
}

pub fn addr(net: u8, id: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, net, id as u8 + 1], 7100))
}

pub fn limits() -> LinkLimits {
    LinkLimits {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        handshake_timeout: Duration::from_secs(3),
        ..LinkLimits::default()
    }
}

pub fn endpoint(keys: &[LinkSecretKey], table: &PeerTable, id: u32) -> Endpoint {
    Endpoint::start(EndpointConfig {
        me: PeerId(id),
        key: keys[id as usize].clone(),
        peers: table.clone(),
        listen: table.get(PeerId(id)).unwrap().addr,
        limits: limits(),
        shaper: None,
    })
    .expect("endpoint starts")
}

/// Polls `cond` every millisecond until it holds or `within` passes.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    cond()
}

/// `f` or `None` after `d`.
pub async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        glommio::timer::sleep(d).await;
        None
    })
    .await
}
