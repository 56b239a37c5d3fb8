//! Transport benchmarks; results go to perf/results/net.md.
//!
//! ```text
//! cargo run --release -p ccbft-bench --bin ccbft-net-bench -- throughput [--seconds S]
//! cargo run --release -p ccbft-bench --bin ccbft-net-bench -- shaper [--samples N] [--spin-us U]
//! ```
//!
//! throughput: one link over 127.0.0.1, sender and receiver each on one glommio executor
//! pinned to its own core, frames written with the transport's coalescing writer and read
//! with its zero-copy decoder; plain TCP and TLS 1.3 (X25519MLKEM768, AES-256-GCM or
//! whatever rustls negotiates, RPK-pinned Ed25519 keys: the replica-link configuration).
//! Reports frames/s, MB/s (10^6 bytes of frame bodies and headers) and CPU seconds per GB
//! (10^9 bytes) for each side, from getrusage(RUSAGE_THREAD).
//!
//! shaper: two endpoints on two executors; A sends timestamped frames to B through a shaped
//! link and B records arrival minus departure minus the configured one-way delay. The same
//! run with no shaping gives the link's own latency, reported beside it.

use bytes::{Bytes, BytesMut};
use ccbft_net::frame::{write_segments, WriteBatch};
use ccbft_net::tls::{link_server_name, LinkTls};
use ccbft_net::{
    Endpoint, EndpointConfig, Frame, FrameDecoder, FrameKind, LinkLimits, LinkSecretKey, LinkShape,
    PeerEntry, PeerId, PeerTable,
};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass; RUSAGE_THREAD is valid on Linux.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    assert_eq!(rc, 0, "getrusage");
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Busy-poll time before an idle executor parks (`--spin-us`; 0 parks at once).
static SPIN: OnceLock<Duration> = OnceLock::new();

fn builder(name: &str, cpu: usize) -> LocalExecutorBuilder {
    let b = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(name)
        .io_memory(ccbft_net::EXECUTOR_IO_MEMORY_BYTES);
    match SPIN.get() {
        Some(d) if !d.is_zero() => b.spin_before_park(*d),
        _ => b,
    }
}

fn keys_and_table(port_base: u16) -> (Vec<LinkSecretKey>, PeerTable) {
    let keys: Vec<_> = (0..2u8)
        .map(|i| LinkSecretKey::from_seed(&[i + 1; 32]))
        .collect();
    let table = PeerTable::new(
        (0..2u32)
            .map(|i| PeerEntry {
                id: PeerId(i),
                addr: SocketAddr::from(([127, 0, 0, 1], port_base + i as u16)),
                link_key: keys[i as usize].public_key(),
            })
            .collect(),
    )
    .expect("table");
    (keys, table)
}

/// Sends, then waits for the receiver to close (so no unread byte makes the kernel reset
/// the connection under data the receiver has not read yet).
async fn send_then_drain<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, size: usize, count: u64) {
    send_frames(&mut s, size, count).await;
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn send_frames<W: AsyncWrite + Unpin>(mut w: W, size: usize, count: u64) {
    let body = Bytes::from(vec![0x5au8; size]);
    let frame = Frame::new(FrameKind::Bulk, body);
    let mut batch = WriteBatch::new();
    let mut sent = 0u64;
    while sent < count {
        while sent < count && batch.bytes() < 256 * 1024 {
            batch.push(&frame);
            sent += 1;
        }
        write_segments(&mut w, &batch.take_segments())
            .await
            .expect("write");
    }
    w.flush().await.expect("flush");
}

async fn recv_frames<R: AsyncRead + Unpin>(mut r: R, count: u64) -> u64 {
    let mut dec = FrameDecoder::new(ccbft_net::frame::FRAME_BODY_BYTES_MAX);
    let mut got = 0u64;
    let mut bytes = 0u64;
    while got < count {
        while let Some(f) = dec.decode().expect("valid frames") {
            got += 1;
            bytes += f.wire_len() as u64;
        }
        if got == count {
            break;
        }
        let buf = dec.read_buf();
        let n = r.read(buf).await.expect("read");
        dec.commit_read(n);
        assert!(n > 0, "stream ended after {got} of {count} frames");
    }
    bytes
}

struct Run {
    secs: f64,
    bytes: u64,
    frames: u64,
    cpu_send: f64,
    cpu_recv: f64,
}

fn throughput_once(size: usize, count: u64, tls: bool) -> Run {
    let (keys, table) = keys_and_table(0);
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let table2 = table.clone();
    let key1 = keys[1].clone();
    let recv = builder("bench-recv", 1)
        .spawn(move || async move {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let tcp = listener.accept().await.expect("accept");
            let cpu0 = thread_cpu_seconds();
            let t0 = Instant::now();
            let bytes = if tls {
                let cfg = LinkTls::new(PeerId(1), key1, Arc::new(table2))
                    .expect("tls")
                    .server_config();
                let s = futures_rustls::TlsAcceptor::from(cfg)
                    .accept(tcp)
                    .await
                    .expect("handshake");
                let mut s = s;
                let b = recv_frames(&mut s, count).await;
                let _ = s.close().await;
                b
            } else {
                let mut tcp = tcp;
                let b = recv_frames(&mut tcp, count).await;
                let _ = tcp.close().await;
                b
            };
            (
                t0.elapsed().as_secs_f64(),
                bytes,
                thread_cpu_seconds() - cpu0,
            )
        })
        .expect("recv executor");
    let addr = addr_rx.recv().unwrap();
    let key0 = keys[0].clone();
    let expected = keys[1].public_key();
    let send = builder("bench-send", 0)
        .spawn(move || async move {
            let tcp = glommio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            tcp.set_nodelay(true).unwrap();
            let cpu0 = thread_cpu_seconds();
            if tls {
                let cfg = LinkTls::new(PeerId(0), key0, Arc::new(table))
                    .expect("tls")
                    .client_config(expected)
                    .expect("client config");
                let s = futures_rustls::TlsConnector::from(cfg)
                    .connect(link_server_name(), tcp)
                    .await
                    .expect("handshake");
                send_then_drain(s, size, count).await;
            } else {
                send_then_drain(tcp, size, count).await;
            }
            thread_cpu_seconds() - cpu0
        })
        .expect("send executor");
    let cpu_send = send.join().expect("sender");
    let (secs, bytes, cpu_recv) = recv.join().expect("receiver");
    Run {
        secs,
        bytes,
        frames: count,
        cpu_send,
        cpu_recv,
    }
}

fn throughput(seconds: f64) {
    println!("| frame body | link | frames/s | MB/s | sender CPU s/GB | receiver CPU s/GB |");
    println!("|---|---|---:|---:|---:|---:|");
    for size in [256usize, 16 * 1024, 1024 * 1024] {
        for tls in [false, true] {
            // Calibrate: a short run, then one sized to about `seconds`.
            let probe = throughput_once(size, (4_000_000 / (size as u64 + 20)).max(50), tls);
            let rate = probe.frames as f64 / probe.secs;
            let count = ((rate * seconds) as u64).max(100);
            let r = throughput_once(size, count, tls);
            let gb = r.bytes as f64 / 1e9;
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.3} | {:.3} |",
                if size >= 1024 * 1024 {
                    format!("{} MiB", size >> 20)
                } else if size >= 1024 {
                    format!("{} KiB", size >> 10)
                } else {
                    format!("{size} B")
                },
                if tls { "TLS 1.3" } else { "plain" },
                r.frames as f64 / r.secs,
                r.bytes as f64 / r.secs / 1e6,
                r.cpu_send / gb,
                r.cpu_recv / gb,
            );
        }
    }
}

static BASE: OnceLock<Instant> = OnceLock::new();
/// Histogram offset (100 ms) so an early delivery (negative error) is still recorded; with 5
/// significant digits the resolution near the offset is 1 µs.
const OFFSET_NS: u64 = 100_000_000;

fn now_ns() -> u64 {
    BASE.get().expect("base set").elapsed().as_nanos() as u64
}

/// One shaper configuration: returns (p50, p99, max) of measured minus configured delay, µs.
fn shaper_once(delay: Duration, samples: u64, interval: Duration, port_base: u16) -> [f64; 4] {
    let (keys, table) = keys_and_table(port_base);
    let limits = LinkLimits::default();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (k1, t1, l1) = (keys[1].clone(), table.clone(), limits.clone());
    let recv = builder("shaper-recv", 1)
        .spawn(move || async move {
            let b = Endpoint::start(EndpointConfig {
                me: PeerId(1),
                key: k1,
                listen: t1.get(PeerId(1)).unwrap().addr,
                peers: t1,
                limits: l1,
                shaper: None,
            })
            .expect("endpoint b");
            ready_tx.send(()).unwrap();
            let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 5).unwrap();
            let mut got = 0;
            while got < samples {
                let (_, f) = b.recv().await.expect("frame");
                let arrived = now_ns();
                let sent = u64::from_le_bytes(f.body[..8].try_into().unwrap());
                if sent == u64::MAX {
                    continue; // warm-up frame
                }
                let one_way = arrived.saturating_sub(sent);
                // Offset by OFFSET_NS so negative errors fit the histogram.
                h.record((one_way + OFFSET_NS).saturating_sub(delay.as_nanos() as u64))
                    .unwrap();
                got += 1;
            }
            let us = |q: f64| (h.value_at_quantile(q) as f64 - OFFSET_NS as f64) / 1e3;
            [
                us(0.5),
                us(0.99),
                us(0.999),
                (h.max() as f64 - OFFSET_NS as f64) / 1e3,
            ]
        })
        .expect("recv executor");
    ready_rx.recv().unwrap();
    let (k0, t0) = (keys[0].clone(), table.clone());
    let send = builder("shaper-send", 0)
        .spawn(move || async move {
            let a = Endpoint::start(EndpointConfig {
                me: PeerId(0),
                key: k0,
                listen: t0.get(PeerId(0)).unwrap().addr,
                peers: t0,
                limits,
                shaper: None,
            })
            .expect("endpoint a");
            while !a.is_connected(PeerId(1)) {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            if !delay.is_zero() {
                a.shaper().set(1, LinkShape::delay(delay)).unwrap();
            }
            for _ in 0..100 {
                let f = Frame::new(
                    FrameKind::Consensus,
                    Bytes::copy_from_slice(&u64::MAX.to_le_bytes()),
                );
                a.send(PeerId(1), f).unwrap();
                glommio::timer::sleep(Duration::from_micros(200)).await;
            }
            let mut next = Instant::now();
            for _ in 0..samples {
                next += interval;
                let mut body = BytesMut::with_capacity(64);
                body.extend_from_slice(&now_ns().to_le_bytes());
                body.resize(64, 0);
                a.send(PeerId(1), Frame::new(FrameKind::Consensus, body.freeze()))
                    .unwrap();
                let wait = next.saturating_duration_since(Instant::now());
                glommio::timer::sleep(wait).await;
            }
            // Keep the link up until the receiver has everything.
            glommio::timer::sleep(delay + Duration::from_millis(500)).await;
        })
        .expect("send executor");
    let result = recv.join().expect("receiver");
    send.join().expect("sender");
    result
}

fn shaper(samples: u64) {
    println!("| configured one-way delay | samples | error p50 (ms) | error p99 (ms) | error p99.9 (ms) | error max (ms) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut port = 17_000u16;
    for delay_us in [0u64, 250, 10_000, 50_000] {
        let delay = Duration::from_micros(delay_us);
        let r = shaper_once(delay, samples, Duration::from_micros(500), port);
        port += 2;
        println!(
            "| {} | {samples} | {:.3} | {:.3} | {:.3} | {:.3} |",
            if delay_us == 0 {
                "0 (unshaped link: its own latency)".to_string()
            } else {
                format!("{} ms", delay_us as f64 / 1000.0)
            },
            r[0] / 1e3,
            r[1] / 1e3,
            r[2] / 1e3,
            r[3] / 1e3,
        );
    }
}

fn main() {
    BASE.get_or_init(Instant::now);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    SPIN.get_or_init(|| Duration::from_micros(flag("--spin-us", 0.0) as u64));
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(flag("--seconds", 2.0)),
        Some("shaper") => shaper(flag("--samples", 4000.0) as u64),
        _ => {
            eprintln!("usage: ccbft-net-bench throughput [--seconds S] | shaper [--samples N]");
            std::process::exit(2);
        }
    }
}
