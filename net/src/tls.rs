//! TLS 1.3 for replica links and the client listener (rustls on aws-lc-rs).
//!
//! Replica links:
//! - TLS 1.3 only, key exchange restricted to the X25519MLKEM768 hybrid: a peer that offers
//!   only classical groups fails the handshake (`no_common_kx`).
//! - Mutual authentication with RFC 7250 raw public keys: each side presents its Ed25519 link
//!   key as a SubjectPublicKeyInfo, and the other side accepts it only if it is the key pinned
//!   in the peer table for that peer. No CA, no names, no expiry.
//! - The dialer pins the one key it expects (`wrong_key` otherwise); the acceptor accepts
//!   any key of a peer that is supposed to dial it (`unknown_key` otherwise) and learns the
//!   peer's id from that key alone.
//!
//! The client listener presents the replica's link key the same way; clients are not asked
//! for a key (their transactions carry Ed25519 signatures). Clients may fall back to X25519.

use crate::keys::{LinkPublicKey, LinkSecretKey};
use crate::peers::{PeerId, PeerTable};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error,
    PeerIncompatible, ServerConfig, SignatureScheme,
};
use std::sync::Arc;

/// The only key exchange group on replica links.
pub fn replica_kx_groups() -> Vec<&'static dyn SupportedKxGroup> {
    vec![aws_lc_rs::kx_group::X25519MLKEM768]
}

/// Client links prefer the hybrid and accept X25519 from clients that lack it.
pub fn client_kx_groups() -> Vec<&'static dyn SupportedKxGroup> {
    vec![
        aws_lc_rs::kx_group::X25519MLKEM768,
        aws_lc_rs::kx_group::X25519,
    ]
}

fn provider(groups: Vec<&'static dyn SupportedKxGroup>) -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.kx_groups = groups;
    Arc::new(p)
}

/// The server name handed to rustls when dialing; raw public keys ignore it.
pub fn link_server_name() -> ServerName<'static> {
    ServerName::try_from("ccbft-replica").expect("a valid DNS name")
}

fn certified_key(key: &LinkSecretKey, p: &CryptoProvider) -> Result<Arc<CertifiedKey>, Error> {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_pkcs8_der().to_vec()));
    let signer = p.key_provider.load_private_key(der)?;
    let spki = CertificateDer::from(key.public_key().to_spki_der().to_vec());
    Ok(Arc::new(CertifiedKey::new(vec![spki], signer)))
}

/// Reads the Ed25519 key out of a peer's raw public key (SubjectPublicKeyInfo DER).
pub fn peer_link_key(cert: &CertificateDer<'_>) -> Option<LinkPublicKey> {
    LinkPublicKey::from_spki_der(cert.as_ref())
}

/// Why a handshake failed; stable labels for metrics.
pub fn handshake_failure_reason(err: &std::io::Error) -> &'static str {
    if err.kind() == std::io::ErrorKind::TimedOut {
        return "timeout";
    }
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return "io";
    };
    tls_error_reason(tls)
}

/// The metrics label of a rustls error.
pub fn tls_error_reason(err: &Error) -> &'static str {
    match err {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown_key",
        Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => "wrong_key",
        Error::InvalidCertificate(CertificateError::BadEncoding) => "bad_key_encoding",
        Error::InvalidCertificate(CertificateError::BadSignature) => "bad_signature",
        Error::InvalidCertificate(_) => "invalid_key",
        Error::NoCertificatesPresented => "no_key_presented",
        Error::PeerIncompatible(PeerIncompatible::NoKxGroupsInCommon) => "no_common_kx",
        Error::PeerIncompatible(_) => "peer_incompatible",
        Error::AlertReceived(_) => "alert_received",
        Error::PeerMisbehaved(_) => "peer_misbehaved",
        _ => "tls_other",
    }
}

fn verify_ed25519(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(Error::InvalidCertificate(CertificateError::BadSignature));
    }
    let spki = SubjectPublicKeyInfoDer::from(cert.as_ref());
    rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, algs)
}

/// Dialer side: the server must present exactly `expected`.
#[derive(Debug)]
struct PinnedServerKey {
    expected: LinkPublicKey,
    table: Arc<PeerTable>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if !intermediates.is_empty() {
            return Err(Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        let key = peer_link_key(end_entity)
            .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if key == self.expected {
            Ok(ServerCertVerified::assertion())
        } else if self.table.by_key(&key).is_some() {
            // Another replica's key at this replica's address.
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        } else {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::General("TLS 1.2 is disabled on CC-BFT links".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_ed25519(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Acceptor side: the client must present the key of a peer allowed to dial us.
#[derive(Debug)]
struct PinnedClientKeys {
    me: PeerId,
    table: Arc<PeerTable>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientKeys {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if !intermediates.is_empty() {
            return Err(Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        let key = peer_link_key(end_entity)
            .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        match self.table.by_key(&key) {
            // The lower id dials: a higher or equal id presenting its key here is not a
            // link we expect, whatever it claims.
            Some(peer) if peer.id < self.me => Ok(ClientCertVerified::assertion()),
            Some(_) => Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            None => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::General("TLS 1.2 is disabled on CC-BFT links".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_ed25519(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Client-side verifier for clients of the client listener: the replica's pinned key.
#[derive(Debug)]
struct ClientPinsReplica {
    expected: LinkPublicKey,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ClientPinsReplica {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match peer_link_key(end_entity) {
            Some(k) if k == self.expected => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            None => Err(Error::InvalidCertificate(CertificateError::BadEncoding)),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::General("TLS 1.2 is disabled on CC-BFT links".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_ed25519(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// The TLS configurations of one replica.
#[derive(Clone, Debug)]
pub struct LinkTls {
    me: PeerId,
    key: LinkSecretKey,
    table: Arc<PeerTable>,
    server: Arc<ServerConfig>,
}

impl LinkTls {
    pub fn new(me: PeerId, key: LinkSecretKey, table: Arc<PeerTable>) -> Result<LinkTls, Error> {
        let p = provider(replica_kx_groups());
        let verifier = Arc::new(PinnedClientKeys {
            me,
            table: table.clone(),
            algs: p.signature_verification_algorithms,
        });
        let mut server = ServerConfig::builder_with_provider(p.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(
                rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified_key(&key, &p)?),
            ));
        // Replica links never resume sessions (every connection re-authenticates the
        // pinned key), so session tickets would only be bytes the dialer must read.
        server.send_tls13_tickets = 0;
        Ok(LinkTls {
            me,
            key,
            table,
            server: Arc::new(server),
        })
    }

    pub fn me(&self) -> PeerId {
        self.me
    }

    pub fn table(&self) -> &Arc<PeerTable> {
        &self.table
    }

    /// The acceptor's configuration.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The dialer's configuration for a link to the replica with key `expected`.
    pub fn client_config(&self, expected: LinkPublicKey) -> Result<Arc<ClientConfig>, Error> {
        self.client_config_with_kx(expected, replica_kx_groups())
    }

    /// As `client_config` with other key exchange groups. Only tests use other groups (to
    /// check that a classical-only peer is refused).
    #[doc(hidden)]
    pub fn client_config_with_kx(
        &self,
        expected: LinkPublicKey,
        groups: Vec<&'static dyn SupportedKxGroup>,
    ) -> Result<Arc<ClientConfig>, Error> {
        let p = provider(groups);
        let verifier = Arc::new(PinnedServerKey {
            expected,
            table: self.table.clone(),
            algs: p.signature_verification_algorithms,
        });
        let config = ClientConfig::builder_with_provider(p.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(
                rustls::client::AlwaysResolvesClientRawPublicKeys::new(certified_key(
                    &self.key, &p,
                )?),
            ));
        Ok(Arc::new(config))
    }
}

/// Server configuration of the client listener: the replica's link key, no client key.
pub fn client_listener_config(key: &LinkSecretKey) -> Result<Arc<ServerConfig>, Error> {
    let p = provider(client_kx_groups());
    let config = ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified_key(key, &p)?),
        ));
    Ok(Arc::new(config))
}

/// Configuration for a client of the client listener, pinning the replica's link key.
pub fn client_connect_config(replica: LinkPublicKey) -> Result<Arc<ClientConfig>, Error> {
    let p = provider(client_kx_groups());
    let verifier = Arc::new(ClientPinsReplica {
        expected: replica,
        algs: p.signature_verification_algorithms,
    });
    let config = ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
