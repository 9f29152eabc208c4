//! Envelopes this node verified in full before proposing or forwarding them
//! (signature, board rules, ballot proofs), kept until the state machine applies
//! them, so that apply does not verify the same bytes again: every signature and
//! ballot proof is verified once per node. Keyed by the envelope's signer and
//! signature and matched on every byte ([`SignedEnvelope::is_encoded_as`]), so an
//! envelope with the same body but another signature is verified in full.
//!
//! Bounded by count and bytes (oldest dropped first): what is dropped is simply
//! verified again on apply, which gives the same outcome.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use bboard_core::election::KnownEnvelope;
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;

/// Most envelopes kept.
const MAX_ENTRIES: usize = 16_384;
/// Most body bytes kept.
const MAX_BYTES: usize = 64 * 1024 * 1024;

type Key = ([u8; 32], [u8; 64]);

fn key_of(signer: &[u8], signature: &[u8]) -> Option<Key> {
    Some((signer.try_into().ok()?, signature.try_into().ok()?))
}

#[derive(Default)]
struct Inner {
    envelopes: HashMap<Key, SignedEnvelope>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// The envelopes verified and not yet applied (see the module docs).
#[derive(Default)]
pub struct VerifiedEnvelopes {
    inner: Mutex<Inner>,
}

impl VerifiedEnvelopes {
    /// Records that `envelope` passed every check of the board rules on this node.
    pub fn insert(&self, envelope: &SignedEnvelope) {
        let key = (
            *envelope.signer().as_bytes(),
            envelope.signature().to_bytes(),
        );
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.envelopes.contains_key(&key) {
            return;
        }
        inner.bytes += envelope.body_bytes().len();
        inner.envelopes.insert(key, envelope.clone());
        inner.order.push_back(key);
        while inner.order.len() > MAX_ENTRIES || inner.bytes > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(dropped) = inner.envelopes.remove(&oldest) {
                inner.bytes -= dropped.body_bytes().len();
            }
        }
    }

    /// Takes the verified envelope that `proto` may be (the caller matches the bytes).
    pub fn take(&self, proto: &pb::Envelope) -> Option<KnownEnvelope> {
        let key = key_of(&proto.signer, &proto.signature)?;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let envelope = inner.envelopes.remove(&key)?;
        inner.bytes -= envelope.body_bytes().len();
        // The key stays in `order` until it ages out; removing it there is O(n).
        Some(KnownEnvelope {
            envelope,
            proofs_verified: true,
        })
    }

    /// Envelopes kept (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .envelopes
            .len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn note(seed: u8, text: &str) -> SignedEnvelope {
        let body = pb::EntryBody {
            election_id: String::new(),
            created_unix_ms: 0,
            kind: Some(pb::entry_body::Kind::Note(pb::Note { text: text.into() })),
        };
        SignedEnvelope::sign_body(&body, &ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn an_envelope_is_taken_once_and_only_by_its_signature() {
        let cache = VerifiedEnvelopes::default();
        let envelope = note(1, "a");
        cache.insert(&envelope);
        let mut forged = envelope.to_proto();
        forged.signature[0] ^= 1;
        assert!(
            cache.take(&forged).is_none(),
            "another signature is not known"
        );
        let known = cache.take(&envelope.to_proto()).unwrap();
        assert_eq!(known.envelope, envelope);
        assert!(cache.take(&envelope.to_proto()).is_none(), "taken once");
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = VerifiedEnvelopes::default();
        for i in 0..(MAX_ENTRIES + 10) {
            cache.insert(&note(2, &i.to_string()));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // The oldest went first.
        assert!(cache.take(&note(2, "0").to_proto()).is_none());
        let newest = (MAX_ENTRIES + 9).to_string();
        assert!(cache.take(&note(2, &newest).to_proto()).is_some());
    }
}
