//! The client listener over real sockets.

mod common;

use bytes::{Bytes, BytesMut};
use ccbft_net::client::{ClientListener, ClientListenerConfig, RespondError};
use ccbft_net::frame::encode_into;
use ccbft_net::tls::{client_connect_config, link_server_name};
use ccbft_net::{Frame, FrameDecoder, FrameKind, LinkPublicKey};
use common::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::net::SocketAddr;
use std::time::Duration;

type Stream = futures_rustls::client::TlsStream<glommio::net::TcpStream>;

async fn connect(addr: SocketAddr, replica: LinkPublicKey) -> std::io::Result<Stream> {
    let tcp = glommio::net::TcpStream::connect(addr).await?;
    futures_rustls::TlsConnector::from(client_connect_config(replica).unwrap())
        .connect(link_server_name(), tcp)
        .await
}

async fn send(s: &mut Stream, kind: FrameKind, body: &'static [u8]) {
    let mut w = BytesMut::new();
    encode_into(&Frame::new(kind, Bytes::from_static(body)), &mut w);
    s.write_all(&w).await.unwrap();
    s.flush().await.unwrap();
}

async fn read_frame(s: &mut Stream, dec: &mut FrameDecoder) -> Option<Frame> {
    loop {
        if let Some(f) = dec.decode().unwrap() {
            return Some(f);
        }
        let buf = dec.read_buf();
        let n = s.read(buf).await.unwrap_or(0);
        dec.commit_read(n);
        if n == 0 {
            return None;
        }
    }
}

#[test]
fn requests_answers_and_bounds() {
    run("net-client", || async {
        let replica = key(0, 40);
        let mut config = ClientListenerConfig::new(addr(21, 0), replica.clone());
        config.connections_max = 2;
        config.in_flight_max = 2;
        let listener = ClientListener::start(config).unwrap();
        let at = listener.local_addr();
        let pk = replica.public_key();

        // A client pinning another key refuses the replica.
        assert!(connect(at, key(9, 40).public_key()).await.is_err());

        let mut c1 = connect(at, pk).await.unwrap();
        for _ in 0..5 {
            send(&mut c1, FrameKind::ClientRequest, b"tx").await;
        }
        // Only in_flight_max requests reach the runtime until it answers.
        let r1 = timeout(Duration::from_secs(5), listener.recv())
            .await
            .unwrap()
            .unwrap();
        let r2 = timeout(Duration::from_secs(5), listener.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&r1.body[..], b"tx");
        assert!(timeout(Duration::from_millis(200), listener.recv())
            .await
            .is_none());
        listener
            .respond(r1.conn, Bytes::from_static(b"ok1"))
            .unwrap();
        let r3 = timeout(Duration::from_secs(5), listener.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r3.conn, r1.conn);
        let mut dec = FrameDecoder::new(ccbft_net::frame::CLIENT_FRAME_BODY_BYTES_MAX);
        let f = read_frame(&mut c1, &mut dec).await.unwrap();
        assert_eq!(
            (f.kind, &f.body[..]),
            (FrameKind::ClientResponse, &b"ok1"[..])
        );
        listener
            .respond(r2.conn, Bytes::from_static(b"ok2"))
            .unwrap();
        listener
            .respond(r3.conn, Bytes::from_static(b"ok3"))
            .unwrap();
        // No unsolicited answers: nothing else is in flight once the rest is answered.
        for _ in 0..2 {
            let r = timeout(Duration::from_secs(5), listener.recv())
                .await
                .unwrap()
                .unwrap();
            listener.respond(r.conn, Bytes::from_static(b"ok")).unwrap();
        }
        assert_eq!(
            listener.respond(r1.conn, Bytes::from_static(b"x")),
            Err(RespondError::NotInFlight(r1.conn))
        );

        // Connection limit: a second client fits, a third is closed and counted.
        let _c2 = connect(at, pk).await.unwrap();
        let m = listener.metrics();
        assert!(eventually(Duration::from_secs(2), || m.connections_open.get() == 2).await);
        let third = connect(at, pk).await;
        assert!(third.is_err());
        assert_eq!(m.connections_rejected_limit.get(), 1);

        // A replica frame kind from a client closes that connection, counted.
        send(&mut c1, FrameKind::Consensus, b"vote").await;
        assert!(timeout(Duration::from_secs(5), async {
            while read_frame(&mut c1, &mut dec).await.is_some() {}
        })
        .await
        .is_some());
        assert!(
            eventually(Duration::from_secs(2), || m
                .frame_errors_for("unexpected_kind")
                == 1)
            .await
        );
        assert!(eventually(Duration::from_secs(2), || m.connections_open.get() == 1).await);
        assert_eq!(m.requests.get(), 5);
    });
}
