//! Leaves of the board's Merkle tree.
//!
//! Leaf `i` is `leaf_data = encode(Leaf { timestamp_unix_ms, envelope })`, built once by
//! the leader and carried verbatim through Raft; every node, client and auditor hashes
//! the bytes it holds (`leaf_hash = BLAKE3(0x00 || leaf_data)`), never a re-encoding.
//!
//! Because the leader is bboard code, the leaf encoding is required to be canonical
//! (prost's encoding: fields in number order, defaults omitted, no unknown fields).
//! [`decode_leaf`] rejects any other byte string, so a leader cannot make two
//! different leaves out of the same entry. Envelope *bodies* come from submitters and
//! are not required to be canonical: they are signed as they are.

use bboard_merkle::{Blake3Hasher, Hash, TreeHasher};
use prost::Message as _;

use crate::envelope::{SignedEnvelope, MAX_BODY_BYTES};
use crate::{pb, Error, Result};

/// Largest leaf accepted anywhere: the largest envelope body plus room for the
/// signer's key, the signature, the timestamp and the encoding's tags.
pub const MAX_LEAF_BYTES: usize = MAX_BODY_BYTES + 256;

/// A decoded and checked leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRecord {
    /// Leader's clock when the entry was ordered.
    pub timestamp_unix_ms: u64,
    /// The entry.
    pub envelope: SignedEnvelope,
}

impl LeafRecord {
    /// Encodes the leaf: the exact bytes that go into the tree.
    pub fn encode(&self) -> Vec<u8> {
        encode_leaf(self.timestamp_unix_ms, &self.envelope)
    }
}

/// Encodes a leaf canonically.
pub fn encode_leaf(timestamp_unix_ms: u64, envelope: &SignedEnvelope) -> Vec<u8> {
    pb::Leaf {
        timestamp_unix_ms,
        envelope: Some(envelope.to_proto()),
    }
    .encode_to_vec()
}

/// Decodes leaf bytes from an untrusted source: checks the encoding is canonical, the
/// envelope is present and its signature verifies (strictly).
pub fn decode_leaf(leaf_data: &[u8]) -> Result<LeafRecord> {
    let limit = MAX_LEAF_BYTES;
    if leaf_data.len() > limit {
        return Err(Error::TooLarge {
            what: "leaf",
            actual: leaf_data.len(),
            limit,
        });
    }
    let leaf = pb::Leaf::decode(leaf_data).map_err(|e| Error::malformed("leaf", e))?;
    if leaf.encode_to_vec() != leaf_data {
        return Err(Error::malformed("leaf", "not canonically encoded"));
    }
    let envelope = leaf
        .envelope
        .ok_or_else(|| Error::malformed("leaf", "no envelope"))?;
    let envelope = SignedEnvelope::verify(&envelope, MAX_BODY_BYTES)?;
    Ok(LeafRecord {
        timestamp_unix_ms: leaf.timestamp_unix_ms,
        envelope,
    })
}

/// The board's leaf hash: `BLAKE3(0x00 || leaf_data)`.
pub fn leaf_hash(leaf_data: &[u8]) -> Hash {
    Blake3Hasher.hash_leaf(leaf_data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn envelope(text: &str) -> SignedEnvelope {
        let body = pb::EntryBody {
            election_id: "e".into(),
            created_unix_ms: 0,
            kind: Some(pb::entry_body::Kind::Note(pb::Note { text: text.into() })),
        };
        SignedEnvelope::sign_body(&body, &SigningKey::from_bytes(&[9; 32]))
    }

    #[test]
    fn leaf_round_trips() {
        let record = LeafRecord {
            timestamp_unix_ms: 1_700_000_000_000,
            envelope: envelope("x"),
        };
        let bytes = record.encode();
        assert_eq!(decode_leaf(&bytes).unwrap(), record);
    }

    #[test]
    fn non_canonical_leaf_is_rejected() {
        let mut bytes = LeafRecord {
            timestamp_unix_ms: 5,
            envelope: envelope("x"),
        }
        .encode();
        // Append an unknown field (number 15, varint 1): valid protobuf, not canonical.
        bytes.extend_from_slice(&[0x78, 0x01]);
        assert!(matches!(
            decode_leaf(&bytes),
            Err(Error::Malformed { what: "leaf", .. })
        ));
    }

    #[test]
    fn leaf_without_envelope_is_rejected() {
        let bytes = pb::Leaf {
            timestamp_unix_ms: 3,
            envelope: None,
        }
        .encode_to_vec();
        assert!(decode_leaf(&bytes).is_err());
    }

    #[test]
    fn leaf_hash_is_domain_separated_blake3() {
        let data = b"leaf";
        let mut prefixed = vec![0u8];
        prefixed.extend_from_slice(data);
        assert_eq!(leaf_hash(data).0, *blake3::hash(&prefixed).as_bytes());
    }

    proptest! {
        #[test]
        fn leaf_encoding_round_trips(ts in any::<u64>(), text in ".{0,64}") {
            let record = LeafRecord { timestamp_unix_ms: ts, envelope: envelope(&text) };
            prop_assert_eq!(decode_leaf(&record.encode()).unwrap(), record);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_leaf(&bytes);
        }

        #[test]
        fn any_single_bit_flip_is_detected(ts in any::<u64>(), bit in 0usize..4096) {
            let bytes = LeafRecord { timestamp_unix_ms: ts, envelope: envelope("flip") }.encode();
            let bit = bit % (bytes.len() * 8);
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            // Either the leaf no longer decodes, or it decodes to a different record
            // (e.g. another timestamp); it never decodes to the same record with the
            // same hash.
            prop_assert_ne!(leaf_hash(&flipped), leaf_hash(&bytes));
            if let Ok(record) = decode_leaf(&flipped) {
                prop_assert_ne!(record.encode(), bytes);
            }
        }
    }
}
