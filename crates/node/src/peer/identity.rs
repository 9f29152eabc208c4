//! A node's TLS identity on the peer port: a self-signed certificate made by
//! `bboard node init`, and the fingerprint other organisations pin it by.
//!
//! There is no CA: each organisation publishes its node's fingerprint beside its
//! checkpoint verifier key, and every node lists the peers' fingerprints in its config.
//! A pin binds one certificate to one node id exactly, where a CA bundle would let any
//! organisation's CA issue a certificate naming another organisation's node.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::types::NodeId;

/// Prefix of a [`Fingerprint`]'s text form.
const FINGERPRINT_PREFIX: &str = "sha256:";

/// Why a TLS identity could not be made, read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file does not hold a PEM certificate or private key.
    #[error("{path} does not hold a PEM {what}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// The private key file could not be written.
    #[error(transparent)]
    KeyFile(#[from] bboard_util::key_file::KeyFileError),
    /// The certificate could not be generated.
    #[error("generating the peer certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A fingerprint is not `sha256:` and 64 hex digits.
    #[error("tls fingerprint {0:?} is not \"sha256:\" followed by 64 hex digits")]
    BadFingerprint(String),
}

/// The SHA-256 of a certificate's DER bytes: what a peer is pinned by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `certificate` (DER).
    pub fn of(certificate: &[u8]) -> Self {
        Fingerprint(Sha256::digest(certificate).into())
    }

    /// Parses the text form `sha256:<64 hex digits>` (the form `openssl x509
    /// -fingerprint -sha256` prints, without colons, lower or upper case).
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::BadFingerprint(text.to_owned());
        let hex_part = text.strip_prefix(FINGERPRINT_PREFIX).ok_or_else(bad)?;
        let bytes = hex::decode(hex_part).map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Fingerprint(bytes))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{FINGERPRINT_PREFIX}{}", hex::encode(self.0))
    }
}

/// The DNS name in a node's certificate. Nothing checks it (the pin does the binding);
/// it makes the certificate readable for people.
pub fn certificate_name(node_id: NodeId) -> String {
    format!("node-{node_id}.peer.bboard")
}

/// A node's certificate and private key, loaded.
pub struct TlsIdentity {
    /// The certificate (DER).
    pub certificate: CertificateDer<'static>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint().to_string())
            .finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            certificate: self.certificate.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// A new self-signed ECDSA P-256 certificate for `node_id`. Its validity runs to
    /// the year 4096: peers pin it, so expiry would only add an outage, and rotation
    /// is a config change.
    pub fn generate(node_id: NodeId) -> Result<Self, IdentityError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![certificate_name(node_id)])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, certificate_name(node_id));
        let certificate = params.self_signed(&key)?;
        Ok(TlsIdentity {
            certificate: certificate.der().clone(),
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        })
    }

    /// Reads a PEM certificate and a PEM private key.
    pub fn load(certificate_file: &Path, key_file: &Path) -> Result<Self, IdentityError> {
        let pem_error = |path: &Path, what: &'static str| {
            let path = path.to_path_buf();
            move |e: rustls::pki_types::pem::Error| match e {
                rustls::pki_types::pem::Error::Io(source) => IdentityError::Io { path, source },
                other => IdentityError::Pem {
                    path,
                    what,
                    reason: other.to_string(),
                },
            }
        };
        let certificate = CertificateDer::from_pem_file(certificate_file)
            .map_err(pem_error(certificate_file, "certificate"))?;
        let key =
            PrivateKeyDer::from_pem_file(key_file).map_err(pem_error(key_file, "private key"))?;
        Ok(TlsIdentity { certificate, key })
    }

    /// Writes the certificate (mode 0644) and the key (a secret file, mode 0600),
    /// refusing to overwrite either.
    pub fn write(&self, certificate_file: &Path, key_file: &Path) -> Result<(), IdentityError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IdentityError::Io { path, source }
        };
        let certificate_pem = pem_text("CERTIFICATE", &self.certificate);
        let key_pem = pem_text("PRIVATE KEY", self.key.secret_der());
        bboard_util::key_file::write_secret_file(key_file, key_pem.as_bytes())?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(certificate_file)
            .and_then(|mut file| {
                use std::io::Write;
                file.write_all(certificate_pem.as_bytes())?;
                file.sync_all()
            })
            .map_err(io(certificate_file))
    }

    /// The fingerprint peers pin this identity by.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.certificate)
    }
}

/// `der` as a PEM block labelled `label`.
fn pem_text(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_and_reject_malformed_text() {
        let fingerprint = Fingerprint::of(b"certificate");
        assert_eq!(
            Fingerprint::parse(&fingerprint.to_string()).unwrap(),
            fingerprint
        );
        let upper = fingerprint
            .to_string()
            .replace("sha256:", "")
            .to_uppercase();
        assert_eq!(
            Fingerprint::parse(&format!("sha256:{upper}")).unwrap(),
            fingerprint
        );
        for bad in [
            "",
            "sha256:",
            "sha256:abcd",
            "md5:00",
            &hex::encode([0u8; 32]),
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_written_identity_loads_back_with_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let identity = TlsIdentity::generate(3).unwrap();
        identity.write(&certificate, &key).unwrap();
        let loaded = TlsIdentity::load(&certificate, &key).unwrap();
        assert_eq!(loaded.fingerprint(), identity.fingerprint());
        assert_eq!(loaded.key.secret_der(), identity.key.secret_der());
        assert!(
            identity.write(&certificate, &key).is_err(),
            "an identity was overwritten"
        );
        assert_ne!(
            TlsIdentity::generate(3).unwrap().fingerprint(),
            identity.fingerprint(),
            "two generated identities share a certificate"
        );
    }

    #[test]
    fn a_file_without_pem_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls.crt");
        std::fs::write(&path, "not a certificate").unwrap();
        let error = TlsIdentity::load(&path, &path).unwrap_err().to_string();
        assert!(error.contains("tls.crt"), "{error}");
    }
}
