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
    decode_leaf_known(leaf_data, |_| None)
}

/// [`decode_leaf`] for a node that may have verified the leaf's envelope already (in
/// its service, before proposing it): `known` is asked for that verified envelope. One
/// whose body, signer and signature are byte-identical to the leaf's is taken as it
/// is, without checking the signature again — the same bytes verify the same way, so
/// the outcome is [`decode_leaf`]'s. Anything else is verified in full.
pub fn decode_leaf_known(
    leaf_data: &[u8],
    known: impl FnOnce(&pb::Envelope) -> Option<SignedEnvelope>,
) -> Result<LeafRecord> {
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
    let envelope = match known(&envelope) {
        Some(verified) if verified.is_encoded_as(&envelope) => verified,
        _ => SignedEnvelope::verify(&envelope, MAX_BODY_BYTES)?,
    };
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

    /// `record`'s leaf with its signature's byte `at` flipped (`None`: unchanged).
    fn leaf_bytes(record: &LeafRecord, flip: Option<usize>) -> Vec<u8> {
        let mut proto = record.envelope.to_proto();
        if let Some(at) = flip {
            proto.signature[at % 64] ^= 1;
        }
        pb::Leaf {
            timestamp_unix_ms: record.timestamp_unix_ms,
            envelope: Some(proto),
        }
        .encode_to_vec()
    }

    proptest! {
        /// Taking a verified envelope as known changes no outcome: byte-identical
        /// leaves decode as before, and a leaf whose signature differs from the known
        /// envelope's is verified (and refused) as if nothing were known.
        #[test]
        fn a_known_envelope_decodes_as_a_verified_one(
            ts in any::<u64>(),
            text in ".{0,32}",
            flip in proptest::option::of(0usize..64),
        ) {
            let record = LeafRecord { timestamp_unix_ms: ts, envelope: envelope(&text) };
            let bytes = leaf_bytes(&record, flip);
            let known = record.envelope.clone();
            let with_known = decode_leaf_known(&bytes, |_| Some(known));
            let alone = decode_leaf(&bytes);
            prop_assert_eq!(with_known.is_ok(), alone.is_ok());
            prop_assert_eq!(with_known.is_ok(), flip.is_none());
            if let (Ok(a), Ok(b)) = (with_known, alone) {
                prop_assert_eq!(a, b);
            }
        }
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
