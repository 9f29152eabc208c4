//! Receipts: what a submitter keeps to prove, offline and to anyone, that its entry is
//! on the board.
//!
//! A receipt holds the leaf bytes, the leaf's index, a cosigned checkpoint and the
//! inclusion proof of the leaf in that checkpoint's tree. [`Receipt::verify`] needs
//! nothing but the receipt and a [`CosignaturePolicy`] (the trusted node keys): it
//! recomputes the leaf hash, checks the envelope's signature, the checkpoint's k-of-n
//! signatures, and the inclusion proof against the checkpoint's root.

use bboard_merkle::{verify_inclusion, Blake3Hasher, Hash, LeafIndex};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CosignaturePolicy, VerifiedCheckpoint};
use crate::leaf::{decode_leaf_known, leaf_hash, LeafRecord};
use crate::{pb, Error, Result};

/// Most hashes an inclusion proof can have (a tree of 2^64 leaves).
pub const MAX_PROOF_HASHES: usize = 64;

/// A receipt, in the form clients store (JSON with hex fields) and send (protobuf).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Index of the leaf.
    pub leaf_index: u64,
    /// Hex of the leaf hash.
    pub leaf_hash: String,
    /// Hex of the leaf bytes.
    pub leaf_data: String,
    /// Signed checkpoint note.
    pub checkpoint: String,
    /// Hex of each inclusion proof hash, leaf to root.
    pub inclusion_proof: Vec<String>,
    /// Hex of the ballot's tracking code (see [`crate::election::tracking_code`]),
    /// empty for other entries.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tracking_code: String,
}

/// What a valid receipt proves.
#[derive(Clone, Debug)]
pub struct VerifiedReceipt {
    /// The entry, with its verified envelope.
    pub leaf: LeafRecord,
    /// Its index on the board.
    pub leaf_index: LeafIndex,
    /// The checkpoint it is included in, with the keys that signed it.
    pub checkpoint: VerifiedCheckpoint,
}

fn decode_hex(what: &'static str, text: &str) -> Result<Vec<u8>> {
    hex::decode(text).map_err(|e| Error::malformed(what, e))
}

fn decode_hash(what: &'static str, bytes: &[u8]) -> Result<Hash> {
    Hash::from_slice(bytes)
        .map_err(|_| Error::malformed(what, format!("{} bytes, expected 32", bytes.len())))
}

impl Receipt {
    /// Converts the protobuf form.
    pub fn from_proto(receipt: &pb::Receipt) -> Result<Self> {
        if receipt.inclusion_proof.len() > MAX_PROOF_HASHES {
            return Err(Error::InvalidReceipt(format!(
                "inclusion proof has {} hashes, at most {MAX_PROOF_HASHES} are possible",
                receipt.inclusion_proof.len()
            )));
        }
        let inclusion_proof = receipt
            .inclusion_proof
            .iter()
            .map(|h| decode_hash("inclusion proof hash", h).map(|h| h.to_hex()))
            .collect::<Result<_>>()?;
        Ok(Receipt {
            leaf_index: receipt.leaf_index,
            leaf_hash: decode_hash("leaf hash", &receipt.leaf_hash)?.to_hex(),
            leaf_data: hex::encode(&receipt.leaf_data),
            checkpoint: receipt.checkpoint.clone(),
            inclusion_proof,
            tracking_code: receipt.tracking_code.clone(),
        })
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> Result<pb::Receipt> {
        Ok(pb::Receipt {
            leaf_index: self.leaf_index,
            leaf_hash: decode_hex("leaf hash", &self.leaf_hash)?,
            leaf_data: decode_hex("leaf data", &self.leaf_data)?,
            checkpoint: self.checkpoint.clone(),
            inclusion_proof: self
                .inclusion_proof
                .iter()
                .map(|h| decode_hex("inclusion proof hash", h))
                .collect::<Result<_>>()?,
            tracking_code: self.tracking_code.clone(),
        })
    }

    /// Checks the receipt against the trusted node keys in `policy`.
    pub fn verify(&self, policy: &CosignaturePolicy) -> Result<VerifiedReceipt> {
        self.verify_with(None, |note| policy.verify_note(note))
    }

    /// [`Self::verify`] for a submitter that still holds what it sent and may have
    /// verified the receipt's checkpoint before:
    ///
    /// - `sent`: the envelope it signed and sent. A leaf carrying a byte-identical
    ///   envelope is not verified again (the same bytes verify the same way); any other
    ///   envelope is verified in full.
    /// - `verify_checkpoint`: judges the checkpoint note's text as received, e.g. by
    ///   [`CosignaturePolicy::verify_note`], or by looking it up in a
    ///   memo of note texts that already passed (which skips even the parse).
    ///
    /// The verdict is [`Self::verify`]'s as long as `verify_checkpoint` gives the
    /// policy's verdict; only the work differs.
    ///
    /// # Errors
    ///
    /// As [`Self::verify`].
    pub fn verify_with(
        &self,
        sent: Option<&crate::envelope::SignedEnvelope>,
        verify_checkpoint: impl FnOnce(&str) -> Result<VerifiedCheckpoint>,
    ) -> Result<VerifiedReceipt> {
        let leaf_data = decode_hex("leaf data", &self.leaf_data)?;
        let claimed_hash = decode_hash("leaf hash", &decode_hex("leaf hash", &self.leaf_hash)?)?;
        let actual_hash = leaf_hash(&leaf_data);
        if claimed_hash != actual_hash {
            return Err(Error::InvalidReceipt(format!(
                "leaf hash {claimed_hash} does not match the leaf data (hash {actual_hash})"
            )));
        }
        let leaf = decode_leaf_known(&leaf_data, |_| sent.cloned())?;
        let checkpoint = verify_checkpoint(&self.checkpoint)?;
        if self.inclusion_proof.len() > MAX_PROOF_HASHES {
            return Err(Error::InvalidReceipt("inclusion proof too long".into()));
        }
        let proof = self
            .inclusion_proof
            .iter()
            .map(|h| {
                decode_hash(
                    "inclusion proof hash",
                    &decode_hex("inclusion proof hash", h)?,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let index = LeafIndex(self.leaf_index);
        verify_inclusion(
            &Blake3Hasher,
            &actual_hash,
            index,
            checkpoint.checkpoint.size,
            &proof,
            &checkpoint.checkpoint.root,
        )?;
        let expected_code = crate::election::tracking_code_of(&leaf).map(hex::encode);
        if expected_code.as_deref().unwrap_or("") != self.tracking_code {
            return Err(Error::InvalidReceipt(format!(
                "tracking code {:?} is not the code of the entry ({:?})",
                self.tracking_code,
                expected_code.unwrap_or_default()
            )));
        }
        Ok(VerifiedReceipt {
            leaf,
            leaf_index: index,
            checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, NoteSigner, SignedCheckpoint};
    use crate::envelope::SignedEnvelope;
    use crate::leaf::encode_leaf;
    use bboard_merkle::{MemoryNodeStore, MerkleTree, TreeSize};
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "bboard.test/receipts";

    fn signers() -> Vec<NoteSigner> {
        (1..=3)
            .map(|i| {
                NoteSigner::new(&format!("org-{i}"), SigningKey::from_bytes(&[i; 32])).unwrap()
            })
            .collect()
    }

    fn policy() -> CosignaturePolicy {
        CosignaturePolicy::majority(ORIGIN, signers().iter().map(|s| s.verifier()).collect())
            .unwrap()
    }

    /// A board of `n` note entries and a 2-of-3 receipt for leaf `index`.
    fn receipt_for(n: u64, index: u64) -> Receipt {
        let author = SigningKey::from_bytes(&[42; 32]);
        let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::default());
        let mut leaves = Vec::new();
        for i in 0..n {
            let body = pb::EntryBody {
                election_id: String::new(),
                created_unix_ms: i,
                kind: Some(pb::entry_body::Kind::Note(pb::Note {
                    text: format!("entry {i}"),
                })),
            };
            let data = encode_leaf(1000 + i, &SignedEnvelope::sign_body(&body, &author));
            tree.append(leaf_hash(&data)).unwrap();
            leaves.push(data);
        }
        let size = TreeSize(n);
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: tree.root().unwrap(),
        };
        let signers = signers();
        let mut signed = SignedCheckpoint::sign(checkpoint, &signers[0]).unwrap();
        signed.add_signature(&signers[2]).unwrap();
        let proof = tree.inclusion_proof(LeafIndex(index), size).unwrap();
        let data = &leaves[index as usize];
        Receipt {
            leaf_index: index,
            leaf_hash: leaf_hash(data).to_hex(),
            leaf_data: hex::encode(data),
            checkpoint: signed.to_note(),
            inclusion_proof: proof.iter().map(|h| h.to_hex()).collect(),
            tracking_code: String::new(),
        }
    }

    #[test]
    fn valid_receipts_verify_for_every_index() {
        for n in [1u64, 2, 3, 7, 8, 13] {
            for index in 0..n {
                let verified = receipt_for(n, index).verify(&policy()).unwrap();
                assert_eq!(verified.leaf_index, LeafIndex(index));
                assert_eq!(verified.checkpoint.signers, vec!["org-1", "org-3"]);
            }
        }
    }

    #[test]
    fn receipt_round_trips_through_proto_and_json() {
        let receipt = receipt_for(5, 3);
        let proto = receipt.to_proto().unwrap();
        assert_eq!(Receipt::from_proto(&proto).unwrap(), receipt);
        let json = serde_json::to_string(&receipt).unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&json).unwrap(), receipt);
    }

    #[test]
    fn tampered_receipts_fail() {
        let good = receipt_for(6, 4);
        let mut wrong_index = good.clone();
        wrong_index.leaf_index = 5;
        assert!(matches!(
            wrong_index.verify(&policy()),
            Err(Error::Proof(_))
        ));

        let mut wrong_data = good.clone();
        wrong_data.leaf_data.replace_range(0..2, "ff");
        assert!(matches!(
            wrong_data.verify(&policy()),
            Err(Error::InvalidReceipt(_))
        ));

        let mut wrong_proof = good.clone();
        wrong_proof.inclusion_proof[0].replace_range(0..2, "00");
        assert!(wrong_proof.verify(&policy()).is_err());

        let mut short_proof = good.clone();
        short_proof.inclusion_proof.pop();
        assert!(short_proof.verify(&policy()).is_err());

        let mut one_signature = good.clone();
        let mut lines: Vec<&str> = good.checkpoint.lines().collect();
        lines.pop();
        one_signature.checkpoint = format!("{}\n", lines.join("\n"));
        assert!(matches!(
            one_signature.verify(&policy()),
            Err(Error::NotEnoughCosignatures {
                valid: 1,
                required: 2,
                ..
            })
        ));
    }

    #[test]
    fn receipt_for_another_boards_checkpoint_fails() {
        let receipt = receipt_for(4, 1);
        let other = CosignaturePolicy::majority(
            "other.origin",
            signers().iter().map(|s| s.verifier()).collect(),
        )
        .unwrap();
        assert!(matches!(
            receipt.verify(&other),
            Err(Error::WrongOrigin { .. })
        ));
    }
}
