//! Signed entries.
//!
//! An [`Envelope`](crate::pb::Envelope) carries an encoded `EntryBody`, the signer's
//! Ed25519 public key and a signature over `"bboard/v1/entry\n" || body`. The domain
//! prefix makes a board signature useless anywhere else (checkpoint notes, admin
//! commands), and `verify_strict` rejects small-order keys and non-canonical
//! signatures, so every node accepts exactly the same set of envelopes.
//!
//! A [`SignedEnvelope`] is an envelope whose sizes, key and signature have been checked;
//! it can only be built by signing or by [`SignedEnvelope::verify`].

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use prost::Message as _;

use crate::{pb, Error, Result};

/// Domain separation prefix of entry signatures.
pub const ENTRY_SIGNATURE_DOMAIN: &[u8] = b"bboard/v1/entry\n";

/// Domain separation prefix of envelope content addresses.
pub const ENVELOPE_ID_DOMAIN: &[u8] = b"bboard/v1/envelope-id\n";

/// Default maximum size of an encoded `EntryBody`. Large enough for a ballot with
/// dozens of contests and proofs; nodes may configure a lower limit.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Content address of an envelope: `BLAKE3(ENVELOPE_ID_DOMAIN || signer || body)`.
///
/// The signature is deliberately not covered: one signer posting the same body twice
/// (e.g. a terminal retrying after a timeout) is one entry, however the signature
/// bytes came out.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvelopeId(pub [u8; 32]);

impl EnvelopeId {
    /// Content address of `body` signed by `signer`.
    pub fn compute(signer: &[u8; PUBLIC_KEY_LEN], body: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(ENVELOPE_ID_DOMAIN);
        hasher.update(signer);
        hasher.update(body);
        EnvelopeId(*hasher.finalize().as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvelopeId({})", self.to_hex())
    }
}

impl std::fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The message an entry signature covers.
pub fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(ENTRY_SIGNATURE_DOMAIN.len() + body.len());
    message.extend_from_slice(ENTRY_SIGNATURE_DOMAIN);
    message.extend_from_slice(body);
    message
}

/// Parses a 32-byte Ed25519 public key, rejecting wrong lengths and invalid points.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey> {
    let array: &[u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| {
        Error::InvalidPublicKey(format!("{} bytes, expected {PUBLIC_KEY_LEN}", bytes.len()))
    })?;
    VerifyingKey::from_bytes(array).map_err(|e| Error::InvalidPublicKey(e.to_string()))
}

/// An envelope whose size, signer key and signature have been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedEnvelope {
    body: Vec<u8>,
    signer: VerifyingKey,
    signature: Signature,
}

impl SignedEnvelope {
    /// Signs an encoded entry body.
    pub fn sign(body: Vec<u8>, key: &SigningKey) -> Self {
        let signature = key.sign(&signed_message(&body));
        SignedEnvelope {
            body,
            signer: key.verifying_key(),
            signature,
        }
    }

    /// Encodes and signs an entry body.
    pub fn sign_body(body: &pb::EntryBody, key: &SigningKey) -> Self {
        Self::sign(body.encode_to_vec(), key)
    }

    /// Checks an envelope received from outside: body within `max_body_bytes`, a valid
    /// 32-byte key, a 64-byte signature that verifies strictly.
    pub fn verify(envelope: &pb::Envelope, max_body_bytes: usize) -> Result<Self> {
        if envelope.body.len() > max_body_bytes {
            return Err(Error::TooLarge {
                what: "entry body",
                actual: envelope.body.len(),
                limit: max_body_bytes,
            });
        }
        if envelope.body.is_empty() {
            return Err(Error::malformed("envelope", "empty body"));
        }
        let signer = parse_public_key(&envelope.signer)?;
        let signature_bytes: &[u8; SIGNATURE_LEN] =
            envelope.signature.as_slice().try_into().map_err(|_| {
                Error::malformed(
                    "envelope",
                    format!(
                        "signature is {} bytes, expected {SIGNATURE_LEN}",
                        envelope.signature.len()
                    ),
                )
            })?;
        let signature = Signature::from_bytes(signature_bytes);
        signer
            .verify_strict(&signed_message(&envelope.body), &signature)
            .map_err(|_| Error::BadSignature {
                signer: hex::encode(signer.as_bytes()),
            })?;
        Ok(SignedEnvelope {
            body: envelope.body.clone(),
            signer,
            signature,
        })
    }

    /// Decodes and checks an encoded `Envelope` message.
    pub fn decode(bytes: &[u8], max_body_bytes: usize) -> Result<Self> {
        // An envelope is its body plus 32 + 64 bytes and a few bytes of framing.
        let limit = max_body_bytes.saturating_add(128);
        if bytes.len() > limit {
            return Err(Error::TooLarge {
                what: "envelope",
                actual: bytes.len(),
                limit,
            });
        }
        let envelope = pb::Envelope::decode(bytes).map_err(|e| Error::malformed("envelope", e))?;
        Self::verify(&envelope, max_body_bytes)
    }

    /// The encoded entry body, as signed.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Decodes the entry body. The body is signed but may still be nonsense; this
    /// checks only that it is a protobuf `EntryBody` with a kind.
    pub fn body(&self) -> Result<pb::EntryBody> {
        let body = pb::EntryBody::decode(self.body.as_slice())
            .map_err(|e| Error::malformed("entry body", e))?;
        if body.kind.is_none() {
            return Err(Error::malformed("entry body", "no entry kind set"));
        }
        Ok(body)
    }

    /// The signer's public key.
    pub fn signer(&self) -> &VerifyingKey {
        &self.signer
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Content address (see [`EnvelopeId`]).
    pub fn id(&self) -> EnvelopeId {
        EnvelopeId::compute(self.signer.as_bytes(), &self.body)
    }

    /// Whether `proto` is exactly this envelope: the same body, signer and signature
    /// bytes (so it verifies exactly as this one did).
    pub fn is_encoded_as(&self, proto: &pb::Envelope) -> bool {
        proto.body == self.body
            && proto.signer.as_slice() == self.signer.as_bytes()
            && proto.signature.as_slice() == self.signature.to_bytes()
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::Envelope {
        pb::Envelope {
            body: self.body.clone(),
            signer: self.signer.as_bytes().to_vec(),
            signature: self.signature.to_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn note_body(text: &str) -> pb::EntryBody {
        pb::EntryBody {
            election_id: String::new(),
            created_unix_ms: 1,
            kind: Some(pb::entry_body::Kind::Note(pb::Note { text: text.into() })),
        }
    }

    #[test]
    fn signed_envelope_verifies_and_round_trips() {
        let envelope = SignedEnvelope::sign_body(&note_body("hello"), &key(1));
        let bytes = envelope.to_proto().encode_to_vec();
        let decoded = SignedEnvelope::decode(&bytes, MAX_BODY_BYTES).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(decoded.body().unwrap(), note_body("hello"));
    }

    #[test]
    fn altered_body_fails_signature() {
        let mut proto = SignedEnvelope::sign_body(&note_body("hello"), &key(1)).to_proto();
        proto.body[3] ^= 1;
        assert!(matches!(
            SignedEnvelope::verify(&proto, MAX_BODY_BYTES),
            Err(Error::BadSignature { .. })
        ));
    }

    #[test]
    fn signature_without_domain_prefix_is_rejected() {
        let body = note_body("x").encode_to_vec();
        let signing_key = key(2);
        let proto = pb::Envelope {
            signature: signing_key.sign(&body).to_bytes().to_vec(),
            signer: signing_key.verifying_key().as_bytes().to_vec(),
            body,
        };
        assert!(matches!(
            SignedEnvelope::verify(&proto, MAX_BODY_BYTES),
            Err(Error::BadSignature { .. })
        ));
    }

    #[test]
    fn other_signer_fails() {
        let mut proto = SignedEnvelope::sign_body(&note_body("hello"), &key(1)).to_proto();
        proto.signer = key(2).verifying_key().as_bytes().to_vec();
        assert!(matches!(
            SignedEnvelope::verify(&proto, MAX_BODY_BYTES),
            Err(Error::BadSignature { .. })
        ));
    }

    #[test]
    fn wrong_lengths_are_malformed_not_panics() {
        let good = SignedEnvelope::sign_body(&note_body("hello"), &key(1)).to_proto();
        let mut short_key = good.clone();
        short_key.signer.pop();
        assert!(matches!(
            SignedEnvelope::verify(&short_key, MAX_BODY_BYTES),
            Err(Error::InvalidPublicKey(_))
        ));
        let mut long_sig = good.clone();
        long_sig.signature.push(0);
        assert!(matches!(
            SignedEnvelope::verify(&long_sig, MAX_BODY_BYTES),
            Err(Error::Malformed { .. })
        ));
        let mut empty = good;
        empty.body.clear();
        assert!(matches!(
            SignedEnvelope::verify(&empty, MAX_BODY_BYTES),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn oversized_body_is_rejected_before_verification() {
        let envelope = SignedEnvelope::sign(vec![7; 1000], &key(1)).to_proto();
        assert!(matches!(
            SignedEnvelope::verify(&envelope, 999),
            Err(Error::TooLarge {
                actual: 1000,
                limit: 999,
                ..
            })
        ));
    }

    #[test]
    fn small_order_public_key_is_rejected() {
        // The identity point encodes as 0x01 followed by zeros; verify_strict rejects
        // it (a weak key verifies many messages).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let proto = pb::Envelope {
            body: b"\x0a\x00".to_vec(),
            signer: identity.to_vec(),
            signature: vec![0; 64],
        };
        assert!(SignedEnvelope::verify(&proto, MAX_BODY_BYTES).is_err());
    }

    #[test]
    fn envelope_id_ignores_signature_but_not_signer_or_body() {
        let a = SignedEnvelope::sign_body(&note_body("a"), &key(1));
        let b = SignedEnvelope::sign_body(&note_body("b"), &key(1));
        let c = SignedEnvelope::sign_body(&note_body("a"), &key(2));
        assert_ne!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
        assert_eq!(
            a.id(),
            EnvelopeId::compute(key(1).verifying_key().as_bytes(), a.body_bytes())
        );
    }

    #[test]
    fn garbage_bytes_never_panic() {
        for len in 0..64usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let _ = SignedEnvelope::decode(&bytes, MAX_BODY_BYTES);
        }
    }
}
