//! Transport encryption of DKG secret shares (key ceremony round 3).
//!
//! A secret share of trustee `from`'s polynomial for trustee `to` is posted on the public
//! board, so it is sealed to `to`'s X25519 `encryption_key` from the manifest with a
//! libsodium-compatible **sealed box** (`crypto_box`: ephemeral X25519 + XSalsa20-Poly1305).
//!
//! A sealed box is anonymous: it authenticates neither the sender nor any context. The
//! sender is authenticated by the board (the entry's Ed25519 signature and the board
//! rule that `from_trustee` is the signer); the context is bound *inside* the plaintext:
//!
//! ```text
//! "bboard/v1/dkg-share\n" || u32be(len(election_id)) || election_id
//!                         || u32be(from) || u32be(to) || share (32-byte scalar)
//! ```
//!
//! [`open_share`] rejects a box whose context differs from the one expected, so a share
//! sealed for another election or another pair of trustees cannot be replayed.
//! The sealed bytes are `32 (ephemeral key) || 16 (tag) || plaintext`
//! ([`sealed_share_len`]).

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{dkg::SecretShare, pb, BallotError};

/// Domain tag that starts every share plaintext.
const SHARE_DOMAIN: &[u8] = b"bboard/v1/dkg-share\n";
/// Size of a share scalar.
const SHARE_LEN: usize = 32;

/// A trustee's X25519 secret key for receiving DKG shares. **Secret.**
///
/// Serialises as a lowercase hex string so a trustee tool can store it in a key file.
#[derive(Clone)]
pub struct TransportSecret(crypto_box::SecretKey);

impl std::fmt::Debug for TransportSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, only the public half.
        f.debug_struct("TransportSecret")
            .field("public_key", &hex::encode(self.public_key_bytes()))
            .finish_non_exhaustive()
    }
}

impl TransportSecret {
    /// Draws a new secret key.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        let mut bytes = [0_u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(crypto_box::SecretKey::from_bytes(bytes))
    }

    /// The public key to publish as the manifest's `Trustee.encryption_key`.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.0.public_key().to_bytes()
    }

    /// Parses a stored secret key.
    ///
    /// # Errors
    ///
    /// [`BallotError::BadTransportSecret`] if not 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BallotError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| BallotError::BadTransportSecret)?;
        Ok(Self(crypto_box::SecretKey::from_bytes(array)))
    }

    /// The 32 secret bytes, to store. **Secret.**
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl Serialize for TransportSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for TransportSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// The plaintext of a sealed share: context, then the share.
fn plaintext(election_id: &str, from: u32, to: u32, share: &[u8; SHARE_LEN]) -> Vec<u8> {
    let mut out = context(election_id, from, to);
    out.extend_from_slice(share);
    out
}

fn context(election_id: &str, from: u32, to: u32) -> Vec<u8> {
    let id = election_id.as_bytes();
    let mut out = Vec::with_capacity(SHARE_DOMAIN.len() + 12 + id.len() + SHARE_LEN);
    out.extend_from_slice(SHARE_DOMAIN);
    // Election ids are short strings; saturating keeps this total even for absurd input
    // (the id bytes that follow still make the context exact).
    out.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&from.to_be_bytes());
    out.extend_from_slice(&to.to_be_bytes());
    out
}

/// Length of a sealed share for `election_id`; board rules can reject other lengths
/// without any key.
pub fn sealed_share_len(election_id: &str) -> usize {
    crypto_box::SEALBYTES + context(election_id, 0, 0).len() + SHARE_LEN
}

/// Seals `share` (from `share.from` to `share.to`) to the recipient's X25519 key.
///
/// # Errors
///
/// [`BallotError::BadEncryptionKey`] if the key is not 32 bytes;
/// [`BallotError::Internal`] if the cipher fails (it does not for these sizes).
pub fn seal_share<R: CryptoRng + RngCore>(
    recipient_encryption_key: &[u8],
    election_id: &str,
    share: &SecretShare,
    rng: &mut R,
) -> Result<Vec<u8>, BallotError> {
    let key = crypto_box::PublicKey::from_slice(recipient_encryption_key).map_err(|_| {
        BallotError::BadEncryptionKey {
            to: share.to,
            len: recipient_encryption_key.len(),
        }
    })?;
    let message = plaintext(election_id, share.from, share.to, &share.to_bytes());
    key.seal(rng, &message)
        .map_err(|_| BallotError::Internal("sealed box encryption failed"))
}

/// Opens a share sealed by [`seal_share`] and checks that it was sealed for
/// `election_id`, from `from` to `to`.
///
/// The caller still checks the share against the sender's public polynomial
/// ([`crate::dkg::TrusteeSharing::insert_share`]).
///
/// # Errors
///
/// [`BallotError::ShareDecryption`] (wrong key, truncated, tampered),
/// [`BallotError::ShareContextMismatch`], [`BallotError::MalformedDkgMessage`] (not a
/// canonical scalar).
pub fn open_share(
    secret: &TransportSecret,
    election_id: &str,
    from: u32,
    to: u32,
    sealed: &[u8],
) -> Result<SecretShare, BallotError> {
    let message = secret
        .0
        .unseal(sealed)
        .map_err(|_| BallotError::ShareDecryption { from, to })?;
    let expected = context(election_id, from, to);
    let share = message
        .strip_prefix(expected.as_slice())
        .filter(|share| share.len() == SHARE_LEN)
        .ok_or(BallotError::ShareContextMismatch { from, to })?;
    SecretShare::from_bytes(from, to, share)
}

/// Builds the round-3 board entry: `share` sealed to the recipient's key.
///
/// # Errors
///
/// As [`seal_share`].
pub fn share_message<R: CryptoRng + RngCore>(
    recipient_encryption_key: &[u8],
    election_id: &str,
    share: &SecretShare,
    rng: &mut R,
) -> Result<pb::DkgSecretShare, BallotError> {
    Ok(pb::DkgSecretShare {
        from_trustee: share.from,
        to_trustee: share.to,
        encrypted_share: seal_share(recipient_encryption_key, election_id, share, rng)?,
    })
}

/// Opens a posted round-3 entry addressed to trustee `me`.
///
/// # Errors
///
/// [`BallotError::NotAddressedToMe`], then as [`open_share`].
pub fn open_share_message(
    secret: &TransportSecret,
    election_id: &str,
    me: u32,
    message: &pb::DkgSecretShare,
) -> Result<SecretShare, BallotError> {
    if message.to_trustee != me {
        return Err(BallotError::NotAddressedToMe {
            to: message.to_trustee,
            me,
        });
    }
    open_share(
        secret,
        election_id,
        message.from_trustee,
        message.to_trustee,
        &message.encrypted_share,
    )
}

#[cfg(test)]
mod tests {
    use rand::thread_rng;

    use super::*;
    use crate::dkg::{run_ceremony_with_transport, Threshold};

    fn some_share() -> SecretShare {
        SecretShare::from_bytes(1, 2, &[7; 32]).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips() {
        let mut rng = thread_rng();
        let secret = TransportSecret::generate(&mut rng);
        let share = some_share();
        let sealed = seal_share(&secret.public_key_bytes(), "e1", &share, &mut rng).unwrap();
        assert_eq!(sealed.len(), sealed_share_len("e1"));
        let opened = open_share(&secret, "e1", 1, 2, &sealed).unwrap();
        assert_eq!(opened.to_bytes(), share.to_bytes());
        assert_eq!((opened.from, opened.to), (1, 2));
    }

    #[test]
    fn open_rejects_wrong_key_context_and_tampering() {
        let mut rng = thread_rng();
        let secret = TransportSecret::generate(&mut rng);
        let other = TransportSecret::generate(&mut rng);
        let share = some_share();
        let sealed = seal_share(&secret.public_key_bytes(), "e1", &share, &mut rng).unwrap();
        assert_eq!(
            open_share(&other, "e1", 1, 2, &sealed).err(),
            Some(BallotError::ShareDecryption { from: 1, to: 2 })
        );
        assert_eq!(
            open_share(&secret, "e2", 1, 2, &sealed).err(),
            Some(BallotError::ShareContextMismatch { from: 1, to: 2 })
        );
        assert_eq!(
            open_share(&secret, "e1", 0, 2, &sealed).err(),
            Some(BallotError::ShareContextMismatch { from: 0, to: 2 })
        );
        assert_eq!(
            open_share(&secret, "e1", 1, 3, &sealed).err(),
            Some(BallotError::ShareContextMismatch { from: 1, to: 3 })
        );
        for i in [0, 40, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                open_share(&secret, "e1", 1, 2, &bad).err(),
                Some(BallotError::ShareDecryption { from: 1, to: 2 })
            );
        }
        for len in [0, 31, 32, 47, 48] {
            assert!(open_share(&secret, "e1", 1, 2, &sealed[..len]).is_err());
        }
        assert_eq!(
            seal_share(&[1; 31], "e1", &share, &mut rng).err(),
            Some(BallotError::BadEncryptionKey { to: 2, len: 31 })
        );
    }

    #[test]
    fn messages_check_the_addressee() {
        let mut rng = thread_rng();
        let secret = TransportSecret::generate(&mut rng);
        let message =
            share_message(&secret.public_key_bytes(), "e1", &some_share(), &mut rng).unwrap();
        assert_eq!(
            open_share_message(&secret, "e1", 1, &message).err(),
            Some(BallotError::NotAddressedToMe { to: 2, me: 1 })
        );
        open_share_message(&secret, "e1", 2, &message).unwrap();
    }

    #[test]
    fn secret_serialises_as_hex() {
        let secret = TransportSecret::generate(&mut thread_rng());
        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(json.len(), 66);
        let parsed: TransportSecret = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed.to_bytes(), secret.to_bytes());
        assert!(serde_json::from_str::<TransportSecret>("\"abcd\"").is_err());
        assert!(!format!("{secret:?}").contains(&hex::encode(secret.to_bytes())));
    }

    #[test]
    fn ceremony_over_sealed_shares_agrees() {
        let threshold = Threshold::new(3, 2).unwrap();
        let (trustees, commitments, infos) =
            run_ceremony_with_transport(threshold, "e1", &mut thread_rng()).unwrap();
        let public = crate::dkg::derive_key_set(threshold, &commitments, &infos).unwrap();
        for t in &trustees {
            assert_eq!(t.key_set().to_joint_key(), public.to_joint_key());
        }
    }
}
