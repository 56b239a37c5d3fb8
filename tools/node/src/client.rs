//! A small client: one TLS connection to a replica's client listener, the replica pinned by
//! its link key; requests may be pipelined (answers come as receipts are ready, each naming
//! its key).

use crate::client_proto::{decode_response, encode_request, Response, Wait};
use bytes::BytesMut;
use ccbft_core::client::{ClientSignature, SignedTransfer};
use ccbft_core::ledger::Transfer;
use ccbft_core::transaction::Transaction;
use ccbft_crypto::client::ClientSigningKey;
use ccbft_net::frame::encode_into;
use ccbft_net::tls::{client_connect_config, link_server_name};
use ccbft_net::{Frame, FrameDecoder, FrameKind, LinkPublicKey};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::net::SocketAddr;

type Stream = futures_rustls::client::TlsStream<glommio::net::TcpStream>;

/// How long a connection and its TLS handshake may take. A hung replica process still has
/// its kernel accept the TCP connection, and then never answers the handshake.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the replica closed the connection")]
    Closed,
    #[error("bad answer from the replica: {0}")]
    Protocol(String),
}

pub struct Client {
    stream: Stream,
    decoder: FrameDecoder,
}

impl Client {
    /// Connects on the current glommio executor, within [`CONNECT_TIMEOUT`].
    pub async fn connect(addr: SocketAddr, replica: LinkPublicKey) -> Result<Client, ClientError> {
        let connect = async {
            let tcp = glommio::net::TcpStream::connect(addr).await?;
            let config = client_connect_config(replica).map_err(std::io::Error::other)?;
            futures_rustls::TlsConnector::from(config)
                .connect(link_server_name(), tcp)
                .await
        };
        let stream = glommio::timer::timeout(CONNECT_TIMEOUT, async { Ok(connect.await) })
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection and TLS handshake within {CONNECT_TIMEOUT:?}"),
                ))
            })
            .map_err(|source| ClientError::Connect { addr, source })?;
        Ok(Client {
            stream,
            decoder: FrameDecoder::new(ccbft_net::frame::CLIENT_FRAME_BODY_BYTES_MAX),
        })
    }

    /// Sends one transaction; its answer comes from [`Client::recv`].
    pub async fn send(&mut self, wait: Wait, tx: &Transaction) -> Result<(), ClientError> {
        let mut out = BytesMut::new();
        encode_into(
            &Frame::new(FrameKind::ClientRequest, encode_request(wait, tx)),
            &mut out,
        );
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// The next answer.
    pub async fn recv(&mut self) -> Result<Response, ClientError> {
        loop {
            match self.decoder.decode() {
                Ok(Some(frame)) if frame.kind == FrameKind::ClientResponse => {
                    return decode_response(&frame.body).map_err(ClientError::Protocol);
                }
                Ok(Some(frame)) => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected {:?} frame",
                        frame.kind
                    )))
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            let n = self.stream.read(self.decoder.read_buf()).await?;
            self.decoder.commit_read(n);
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}

/// `transfer` signed by `client` (the owner of the debited account).
pub fn sign_transfer(key: &ClientSigningKey, client: u32, transfer: Transfer) -> Transaction {
    let signature = key.sign(&SignedTransfer::signed_bytes(&transfer, client));
    Transaction::Transfer(SignedTransfer {
        transfer,
        client,
        signature: ClientSignature(signature.to_bytes()),
    })
}
