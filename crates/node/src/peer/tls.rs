//! The rustls side of the peer port: certificate verifiers that accept exactly the
//! pinned certificates of configured peers, and the server and client configurations
//! built on them (TLS 1.3 only, ALPN `h2`, client certificates mandatory).
//!
//! rustls's stock verifiers check chains to CA roots; no crate verifies a pinned
//! self-signed certificate, so the two small verifiers here do: the pin replaces the
//! chain, and rustls's own [`verify_tls13_signature`] still proves that the other end
//! holds the certificate's private key.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::directory::PeerDirectory;
use super::identity::{Fingerprint, TlsIdentity};

/// ALPN protocol of the peer port: gRPC's HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("peer TLS configuration: {0}")]
pub struct TlsConfigError(#[from] rustls::Error);

/// The crypto provider of the peer port (ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks a TLS 1.3 handshake signature against the certificate's key.
fn verify_signature(
    provider: &CryptoProvider,
    message: &[u8],
    certificate: &CertificateDer<'_>,
    signature: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls13_signature(
        message,
        certificate,
        signature,
        &provider.signature_verification_algorithms,
    )
}

/// The error for a certificate that is not pinned.
fn not_pinned() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// The handshake-signature half of a verifier, the same for both ends: TLS 1.3
/// signatures checked by rustls against the certificate's key (the pin decides which
/// certificate; the signature proves the other end holds its key).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            // Only TLS 1.3 is offered; a 1.2 signature never reaches a verifier.
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls12NotOffered,
            ))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_signature(&self.provider, message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// The server's verifier: a client certificate must be pinned in the [`PeerDirectory`].
#[derive(Debug)]
struct PinnedClients {
    peers: Arc<PeerDirectory>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.peers.ids_of(&Fingerprint::of(end_entity)).is_empty() {
            Err(not_pinned())
        } else {
            Ok(ClientCertVerified::assertion())
        }
    }

    handshake_signatures!();
}

/// A client's verifier: the server must present the one certificate pinned for the
/// node being dialled.
#[derive(Debug)]
struct PinnedServer {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Fingerprint::of(end_entity) == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(not_pinned())
        }
    }

    handshake_signatures!();
}

/// The peer port's server configuration: presents `identity`, demands a client
/// certificate pinned in `peers`.
pub fn server_config(
    identity: &TlsIdentity,
    peers: Arc<PeerDirectory>,
) -> Result<rustls::ServerConfig, TlsConfigError> {
    let provider = provider();
    let verifier = PinnedClients {
        peers,
        provider: provider.clone(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![identity.certificate.clone()], identity.key.clone_key())?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// The configuration for dialling the peer whose certificate is `expected`,
/// presenting `identity`.
pub fn client_config(
    identity: &TlsIdentity,
    expected: Fingerprint,
) -> Result<rustls::ClientConfig, TlsConfigError> {
    let provider = provider();
    let verifier = PinnedServer {
        expected,
        provider: provider.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![identity.certificate.clone()], identity.key.clone_key())?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}
