//! Replica links over real sockets on 127.0.x.y.

mod common;

use bytes::{Bytes, BytesMut};
use ccbft_net::frame::{encode_header, encode_into, FRAME_HEADER_BYTES};
use ccbft_net::tls::{link_server_name, LinkTls};
use ccbft_net::{Frame, FrameKind, LinkShape, PeerId, PeerTable, SendClass, SendError};
use common::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

const A: PeerId = PeerId(0);
const B: PeerId = PeerId(1);
const C: PeerId = PeerId(2);

fn seq_frame(kind: FrameKind, seq: u64, pad: usize) -> Frame {
    let mut b = BytesMut::with_capacity(8 + pad);
    b.extend_from_slice(&seq.to_le_bytes());
    b.resize(8 + pad, (seq % 251) as u8);
    Frame::new(kind, b.freeze())
}

fn seq_of(f: &Frame) -> u64 {
    u64::from_le_bytes(f.body[..8].try_into().unwrap())
}

#[test]
fn hundred_thousand_frames_each_way_in_order() {
    run("net-100k", || async {
        let (keys, table) = cluster(11, 2, 1);
        let a = endpoint(&keys, &table, 0);
        let b = endpoint(&keys, &table, 1);
        const N: u64 = 100_000;
        let (ra, rb) = futures_lite::future::zip(
            async {
                // a -> b, and a receives b's frames
                let send = async {
                    for seq in 0..N {
                        let pad = [0usize, 40, 300, 3_000][(seq % 4) as usize];
                        a.send_wait(B, seq_frame(FrameKind::Consensus, seq, pad))
                            .await
                            .unwrap();
                    }
                };
                let recv = async {
                    let mut next = 0u64;
                    while next < N {
                        let (from, f) = a.recv().await.unwrap();
                        assert_eq!(from, B);
                        assert_eq!(seq_of(&f), next, "in order");
                        next += 1;
                    }
                    next
                };
                futures_lite::future::zip(send, recv).await.1
            },
            async {
                let send = async {
                    for seq in 0..N {
                        let pad = [0usize, 40, 300, 3_000][(seq % 4) as usize];
                        b.send_wait(A, seq_frame(FrameKind::Consensus, seq, pad))
                            .await
                            .unwrap();
                    }
                };
                let recv = async {
                    let mut next = 0u64;
                    while next < N {
                        let (from, f) = b.recv().await.unwrap();
                        assert_eq!(from, A);
                        assert_eq!(seq_of(&f), next, "in order");
                        next += 1;
                    }
                    next
                };
                futures_lite::future::zip(send, recv).await.1
            },
        )
        .await;
        assert_eq!((ra, rb), (N, N));
        let ma = a.metrics();
        let la = ma.link(B).unwrap();
        assert_eq!(la.frames_out.get(), N);
        assert_eq!(la.frames_in.get(), N);
        assert_eq!(la.drops_for(SendClass::Consensus), 0);
        assert_eq!(la.connects.get(), 1);
    });
}

/// Dials `to` as replica `as_id` (holding `key`, with its own view of the table) over TLS
/// and returns the stream, or the handshake error.
async fn dial_as(
    as_id: u32,
    key: ccbft_net::LinkSecretKey,
    table: PeerTable,
    to: PeerId,
    classical_only: bool,
) -> std::io::Result<futures_rustls::client::TlsStream<glommio::net::TcpStream>> {
    let expected = table.get(to).unwrap().link_key;
    let addr = table.get(to).unwrap().addr;
    let tls = LinkTls::new(PeerId(as_id), key, Arc::new(table)).unwrap();
    let config = if classical_only {
        tls.client_config_with_kx(expected, vec![rustls::crypto::aws_lc_rs::kx_group::X25519])
            .unwrap()
    } else {
        tls.client_config(expected).unwrap()
    };
    let tcp = glommio::net::TcpStream::connect(addr).await?;
    futures_rustls::TlsConnector::from(config)
        .connect(link_server_name(), tcp)
        .await
}

#[test]
fn unknown_wrong_and_classical_keys_are_refused_and_counted() {
    run("net-refuse", || async {
        let (keys, table) = cluster(12, 3, 2);
        let b = endpoint(&keys, &table, 1);

        // Unknown key: someone claiming to be replica 0 with a key not in B's table.
        let (fake_keys, fake_table) = {
            let mut entries: Vec<_> = table.iter().cloned().collect();
            let impostor = key(0, 99);
            entries[0].link_key = impostor.public_key();
            (impostor, PeerTable::new(entries).unwrap())
        };
        let r = dial_as(0, fake_keys, fake_table, B, false).await;
        // TLS 1.3: the client's certificate is checked after the client finishes, so the
        // refusal may surface on the first read rather than in connect.
        if let Ok(mut s) = r {
            let mut buf = [0u8; 1];
            assert!(!matches!(s.read(&mut buf).await, Ok(n) if n > 0));
        }
        let m = b.metrics();
        assert!(
            eventually(Duration::from_secs(2), || m
                .handshake_failures_for("unknown_key")
                == 1)
            .await
        );

        // Classical-only key exchange from a genuine key: refused before any key is shown.
        let r = dial_as(0, keys[0].clone(), table.clone(), B, true).await;
        assert!(r.is_err(), "classical-only handshake must fail");
        assert!(
            eventually(Duration::from_secs(2), || m
                .handshake_failures_for("no_common_kx")
                == 1)
            .await
        );

        // A higher id dialing B with its genuine key: it is not a link B expects.
        if let Ok(mut s) = dial_as(2, keys[2].clone(), table.clone(), B, false).await {
            let mut buf = [0u8; 1];
            assert!(!matches!(s.read(&mut buf).await, Ok(n) if n > 0));
        }
        assert!(
            eventually(Duration::from_secs(2), || m
                .handshake_failures_for("wrong_key")
                == 1)
            .await
        );

        // Wrong key at an address: A dials "B" but finds C's key there.
        drop(b);
        glommio::timer::sleep(Duration::from_millis(50)).await;
        let mut moved: Vec<_> = table.iter().cloned().collect();
        moved[2].addr = moved[1].addr; // C listens where B should be
        let moved = PeerTable::new(moved).unwrap();
        let c = ccbft_net::Endpoint::start(ccbft_net::EndpointConfig {
            me: C,
            key: keys[2].clone(),
            peers: moved,
            listen: table.get(B).unwrap().addr,
            limits: limits(),
            shaper: None,
        })
        .unwrap();
        let a = endpoint(&keys, &table, 0);
        let ma = a.metrics();
        assert!(
            eventually(Duration::from_secs(3), || ma
                .handshake_failures_for("wrong_key")
                >= 1)
            .await
        );
        assert!(!a.is_connected(B));
        assert_eq!(ma.link(B).unwrap().connects.get(), 0);
        drop(c);
    });
}

#[test]
fn malformed_frames_close_only_that_link_and_are_counted() {
    run("net-malformed", || async {
        let (keys, table) = cluster(13, 3, 3);
        let b = endpoint(&keys, &table, 1);
        let c = endpoint(&keys, &table, 2);
        // The healthy link B -> C carries frames throughout.
        b.send(
            C,
            Frame::new(FrameKind::Consensus, Bytes::from_static(b"before")),
        )
        .unwrap();
        let (from, f) = timeout(Duration::from_secs(5), c.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from, &f.body[..]), (B, &b"before"[..]));

        let good = {
            let mut w = BytesMut::new();
            encode_into(
                &Frame::new(FrameKind::Consensus, Bytes::from_static(b"payload!")),
                &mut w,
            );
            w.to_vec()
        };
        let mut bad_checksum = good.clone();
        *bad_checksum.last_mut().unwrap() ^= 0xff;
        let mut oversized = encode_header(FrameKind::Bulk, 0, b"").to_vec();
        oversized[8..12]
            .copy_from_slice(&(ccbft_net::frame::FRAME_BODY_BYTES_MAX + 1).to_le_bytes());
        let truncated = good[..FRAME_HEADER_BYTES + 3].to_vec();
        let garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let client_kind = {
            let mut w = BytesMut::new();
            encode_into(
                &Frame::new(FrameKind::ClientRequest, Bytes::from_static(b"tx")),
                &mut w,
            );
            w.to_vec()
        };
        let cases: [(&str, Vec<u8>); 5] = [
            ("bad_magic", garbage),
            ("checksum", bad_checksum),
            ("oversized", oversized),
            ("truncated", truncated),
            ("unexpected_kind", client_kind),
        ];
        let mb = b.metrics();
        for (reason, bytes) in cases {
            // Authenticated as replica 0, then raw bytes instead of proper frames.
            let mut s = dial_as(0, keys[0].clone(), table.clone(), B, false)
                .await
                .expect("genuine key handshakes");
            s.write_all(&good).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            s.flush().await.unwrap();
            if reason == "truncated" {
                s.close().await.unwrap();
            }
            // B delivers the good frame, then closes the link.
            let (from, f) = timeout(Duration::from_secs(5), b.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((from, &f.body[..]), (PeerId(0), &b"payload!"[..]));
            let mut buf = [0u8; 64];
            let closed = timeout(Duration::from_secs(5), async {
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    }
                }
            })
            .await;
            assert!(closed.is_some(), "{reason}: link closed by B");
            let link = mb.link(PeerId(0)).unwrap();
            assert!(
                eventually(Duration::from_secs(2), || link.frame_errors_for(reason)
                    == 1)
                .await,
                "{reason} counted once"
            );
        }
        // Plain garbage without TLS: a failed handshake, counted.
        let before: u64 = mb.handshake_failures.iter().map(|c| c.get()).sum();
        let mut raw = glommio::net::TcpStream::connect(table.get(B).unwrap().addr)
            .await
            .unwrap();
        raw.write_all(&[0xffu8; 600]).await.unwrap();
        let mut buf = [0u8; 64];
        let _ = timeout(Duration::from_secs(5), raw.read(&mut buf)).await;
        assert!(
            eventually(Duration::from_secs(2), || {
                mb.handshake_failures.iter().map(|c| c.get()).sum::<u64>() == before + 1
            })
            .await
        );
        // The other link never noticed.
        b.send(
            C,
            Frame::new(FrameKind::Consensus, Bytes::from_static(b"after")),
        )
        .unwrap();
        let (from, f) = timeout(Duration::from_secs(5), c.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from, &f.body[..]), (B, &b"after"[..]));
        assert_eq!(mb.link(C).unwrap().connects.get(), 1);
        assert_eq!(mb.link(C).unwrap().reconnects.get(), 0);
    });
}

#[test]
fn killed_peer_is_reconnected_to() {
    run("net-reconnect", || async {
        let (keys, table) = cluster(14, 2, 4);
        let a = endpoint(&keys, &table, 0);
        let b = endpoint(&keys, &table, 1);
        a.send(
            B,
            Frame::new(FrameKind::Consensus, Bytes::from_static(b"one")),
        )
        .unwrap();
        let (_, f) = timeout(Duration::from_secs(5), b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&f.body[..], b"one");
        drop(b); // killed: listener and link gone
        assert!(eventually(Duration::from_secs(3), || !a.is_connected(B)).await);
        glommio::timer::sleep(Duration::from_millis(50)).await;
        let b2 = endpoint(&keys, &table, 1);
        assert!(eventually(Duration::from_secs(5), || a.is_connected(B)).await);
        a.send(
            B,
            Frame::new(FrameKind::Consensus, Bytes::from_static(b"two")),
        )
        .unwrap();
        let (from, f) = timeout(Duration::from_secs(5), b2.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from, &f.body[..]), (A, &b"two"[..]));
        let la = a.metrics();
        let link = la.link(B).unwrap();
        assert_eq!(link.connects.get(), 2);
        assert_eq!(link.reconnects.get(), 1);
    });
}

#[test]
fn consensus_overtakes_bulk_and_full_queues_count_drops() {
    run("net-classes", || async {
        let (keys, table) = cluster(15, 2, 5);
        let a = endpoint(&keys, &table, 0);
        // B is not up yet: frames wait in A's queue.
        for seq in 0..10 {
            a.send(B, seq_frame(FrameKind::Bulk, seq, 10)).unwrap();
        }
        for seq in 100..110 {
            a.send(B, seq_frame(FrameKind::Consensus, seq, 10)).unwrap();
        }
        assert_eq!(a.queued(B), Some([10, 10]));
        // Fill the bulk queue to its bound; the next bulk frame is dropped and counted.
        let bulk_max = limits().queue_frames_max[1];
        for seq in 10..bulk_max as u64 {
            a.send(B, seq_frame(FrameKind::Bulk, seq, 0)).unwrap();
        }
        let err = a.send(B, seq_frame(FrameKind::Bulk, 0, 0)).unwrap_err();
        assert_eq!(
            err,
            SendError::QueueFull {
                peer: B,
                class: SendClass::Bulk
            }
        );
        let m = a.metrics();
        assert_eq!(m.link(B).unwrap().drops_for(SendClass::Bulk), 1);
        assert_eq!(m.link(B).unwrap().drops_for(SendClass::Consensus), 0);
        let b = endpoint(&keys, &table, 1);
        let mut got = Vec::new();
        for _ in 0..20 {
            let (_, f) = timeout(Duration::from_secs(5), b.recv())
                .await
                .unwrap()
                .unwrap();
            got.push((f.kind, seq_of(&f)));
        }
        let expected: Vec<_> = (100..110)
            .map(|s| (FrameKind::Consensus, s))
            .chain((0..10).map(|s| (FrameKind::Bulk, s)))
            .collect();
        assert_eq!(got, expected);
    });
}

#[test]
fn shaper_delays_cuts_and_drops_on_the_send_path() {
    run("net-shaper", || async {
        let (keys, table) = cluster(16, 2, 6);
        let a = endpoint(&keys, &table, 0);
        let b = endpoint(&keys, &table, 1);
        assert!(eventually(Duration::from_secs(5), || a.is_connected(B)).await);
        let shaper = a.shaper();
        shaper
            .set(1, LinkShape::delay(Duration::from_millis(40)))
            .unwrap();
        let t0 = Instant::now();
        a.send(B, seq_frame(FrameKind::Consensus, 1, 0)).unwrap();
        let (_, f) = timeout(Duration::from_secs(5), b.recv())
            .await
            .unwrap()
            .unwrap();
        let took = t0.elapsed();
        assert_eq!(seq_of(&f), 1);
        assert!(
            took >= Duration::from_millis(40),
            "delayed by the shaper: {took:?}"
        );
        assert!(took < Duration::from_millis(1000), "{took:?}");
        // The other direction is not shaped.
        let t0 = Instant::now();
        b.send(A, seq_frame(FrameKind::Consensus, 2, 0)).unwrap();
        timeout(Duration::from_secs(5), a.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(t0.elapsed() < Duration::from_millis(40));

        // Cut: nothing arrives, every frame is counted.
        shaper.set_cut(1, true).unwrap();
        for seq in 10..15 {
            a.send(B, seq_frame(FrameKind::Consensus, seq, 0)).unwrap();
        }
        let m = a.metrics();
        assert!(
            eventually(Duration::from_secs(2), || m
                .link(B)
                .unwrap()
                .shaper_cut
                .get()
                == 5)
            .await
        );
        // Heal and lose everything by configuration instead.
        shaper
            .set(
                1,
                LinkShape {
                    loss_ppm: 1_000_000,
                    ..LinkShape::default()
                },
            )
            .unwrap();
        a.send(B, seq_frame(FrameKind::Consensus, 20, 0)).unwrap();
        assert!(
            eventually(Duration::from_secs(2), || m
                .link(B)
                .unwrap()
                .shaper_lost
                .get()
                == 1)
            .await
        );
        // Back to normal: the next frame is the first one B sees since the 40 ms frame.
        shaper.set(1, LinkShape::default()).unwrap();
        a.send(B, seq_frame(FrameKind::Consensus, 30, 0)).unwrap();
        let (_, f) = timeout(Duration::from_secs(5), b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seq_of(&f), 30);
    });
}

#[test]
fn ping_measures_rtt() {
    run("net-ping", || async {
        let (keys, table) = cluster(17, 2, 7);
        let a = endpoint(&keys, &table, 0);
        let b = endpoint(&keys, &table, 1);
        assert!(
            eventually(Duration::from_secs(5), || a.is_connected(B)
                && b.is_connected(A))
            .await
        );
        b.shaper()
            .set(0, LinkShape::delay(Duration::from_millis(20)))
            .unwrap();
        a.ping(B).unwrap();
        let m = a.metrics();
        let link = m.link(B).unwrap();
        assert!(eventually(Duration::from_secs(3), || link.pongs.get() == 1).await);
        // The pong came back over B's shaped direction.
        assert!(
            link.rtt_last_us.get() >= 20_000,
            "rtt {}",
            link.rtt_last_us.get()
        );
        let text = m.render_prometheus(A);
        assert!(text.contains("ccbft_net_rtt_us{replica=\"0\",peer=\"1\"}"));
    });
}
