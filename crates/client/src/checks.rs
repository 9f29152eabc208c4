//! The checks every answer of a node passes before the client hands it out: hash
//! lists of bounded length, entries whose leaf hash, canonical encoding and signature
//! hold, checkpoint responses whose fields agree with their signed note, receipts for
//! the envelope submitted. Pure functions (no network), so a node that lies is caught
//! the same way whichever call brought the lie.

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::leaf::{decode_leaf, leaf_hash};
use bboard_core::pb;
use bboard_core::receipt::{Receipt, VerifiedReceipt, MAX_PROOF_HASHES};
use bboard_merkle::Hash;

use crate::{BoardEvent, CheckpointInfo, CheckpointMemo, ClientError, Entry};

/// An answer that is not what was asked for, from `endpoint`.
pub(crate) fn invalid(endpoint: &str, reason: impl Into<String>) -> ClientError {
    ClientError::InvalidResponse {
        endpoint: endpoint.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn parse_hashes(
    endpoint: &str,
    what: &str,
    hashes: &[Vec<u8>],
) -> Result<Vec<Hash>, ClientError> {
    if hashes.len() > MAX_PROOF_HASHES {
        return Err(invalid(
            endpoint,
            format!("{what} has {} hashes", hashes.len()),
        ));
    }
    hashes
        .iter()
        .map(|h| {
            Hash::from_slice(h)
                .map_err(|_| invalid(endpoint, format!("{what} hash of {} bytes", h.len())))
        })
        .collect()
}

/// Checks an entry read from a node.
pub(crate) fn entry_from_proto(
    endpoint: &str,
    entry: pb::EntryResponse,
) -> Result<Entry, ClientError> {
    let computed = leaf_hash(&entry.leaf_data);
    if entry.leaf_hash != computed.as_bytes() {
        return Err(ClientError::Verification(
            bboard_core::Error::InvalidReceipt(format!(
                "{endpoint} served entry {} with leaf hash {} but its leaf data hashes to {computed}",
                entry.index,
                hex::encode(&entry.leaf_hash)
            )),
        ));
    }
    let leaf = decode_leaf(&entry.leaf_data)?;
    Ok(Entry {
        index: entry.index,
        leaf_hash: computed,
        leaf_data: entry.leaf_data,
        leaf,
    })
}

/// Checks the entry a node served when asked for entry `index`.
pub(crate) fn entry_of_index(
    endpoint: &str,
    entry: pb::EntryResponse,
    index: u64,
) -> Result<Entry, ClientError> {
    if entry.index != index {
        return Err(invalid(
            endpoint,
            format!("asked for entry {index}, got entry {}", entry.index),
        ));
    }
    entry_from_proto(endpoint, entry)
}

/// Parses a checkpoint response and checks it says what the node claims.
pub(crate) fn checkpoint_from_proto(
    endpoint: &str,
    response: &pb::CheckpointResponse,
    requested_size: u64,
) -> Result<SignedCheckpoint, ClientError> {
    let signed = SignedCheckpoint::parse(&response.signed_checkpoint)?;
    let checkpoint = signed.checkpoint();
    if checkpoint.size.0 != response.size
        || (!response.root.is_empty() && response.root != checkpoint.root.as_bytes())
    {
        return Err(invalid(
            endpoint,
            format!(
                "checkpoint note (size {}, root {}) differs from the response fields (size {}, root {})",
                checkpoint.size.0,
                checkpoint.root,
                response.size,
                hex::encode(&response.root)
            ),
        ));
    }
    if requested_size != 0 && checkpoint.size.0 != requested_size {
        return Err(invalid(
            endpoint,
            format!(
                "asked for the checkpoint of size {requested_size}, got size {}",
                checkpoint.size.0
            ),
        ));
    }
    Ok(signed)
}

/// Checks that `receipt` is a receipt for `envelope`: with a policy, the full
/// [`Receipt::verify`]; without, at least that the leaf hash matches the leaf bytes
/// and the leaf is canonical and signed. In both cases the leaf must carry the same
/// envelope (same envelope id: signer and body).
pub fn check_receipt(
    receipt: &Receipt,
    envelope: &SignedEnvelope,
    policy: Option<&CosignaturePolicy>,
) -> Result<Option<VerifiedReceipt>, bboard_core::Error> {
    check_receipt_memo(receipt, envelope, policy, &CheckpointMemo::new())
}

/// [`check_receipt`] for the submitter of `envelope`: a leaf carrying exactly the
/// envelope it sent is not verified again, and a checkpoint note already in `memo`
/// (verified under the same policy) is not either. The verdict is the same.
pub fn check_receipt_memo(
    receipt: &Receipt,
    envelope: &SignedEnvelope,
    policy: Option<&CosignaturePolicy>,
    memo: &CheckpointMemo,
) -> Result<Option<VerifiedReceipt>, bboard_core::Error> {
    let (leaf, verified) = match policy {
        Some(policy) => {
            let verified =
                receipt.verify_with(Some(envelope), |note| memo.verify_note(policy, note))?;
            (verified.leaf.clone(), Some(verified))
        }
        None => {
            let data = hex::decode(&receipt.leaf_data)
                .map_err(|e| bboard_core::Error::InvalidReceipt(format!("leaf data: {e}")))?;
            let claimed = Hash::from_hex(&receipt.leaf_hash)
                .map_err(|e| bboard_core::Error::InvalidReceipt(format!("leaf hash: {e}")))?;
            if leaf_hash(&data) != claimed {
                return Err(bboard_core::Error::InvalidReceipt(
                    "leaf hash does not match the leaf data".into(),
                ));
            }
            (decode_leaf(&data)?, None)
        }
    };
    if leaf.envelope.id() != envelope.id() {
        return Err(bboard_core::Error::InvalidReceipt(format!(
            "receipt is for envelope {}, not for the submitted envelope {}",
            leaf.envelope.id(),
            envelope.id()
        )));
    }
    Ok(verified)
}

/// Checks a consistency proof answer is for the sizes asked and parses its hashes
/// (the proof itself is verified by the caller, against roots it trusts).
pub(crate) fn consistency_from_proto(
    endpoint: &str,
    response: &pb::ConsistencyProofResponse,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ClientError> {
    if response.old_size != old_size || response.new_size != new_size {
        return Err(invalid(
            endpoint,
            format!(
                "asked for a proof from {old_size} to {new_size}, got {} to {}",
                response.old_size, response.new_size
            ),
        ));
    }
    parse_hashes(endpoint, "consistency proof", &response.proof)
}

/// Checks a `Watch` event: entries like [`crate::BoardClient::get_entry`]; with a
/// policy, a checkpoint the node calls final must verify.
pub(crate) fn event_from_proto(
    endpoint: &str,
    policy: Option<&CosignaturePolicy>,
    event: pb::WatchEvent,
) -> Result<BoardEvent, ClientError> {
    use pb::watch_event::Event;
    match event.event {
        Some(Event::Entry(entry)) => Ok(BoardEvent::Entry(entry_from_proto(endpoint, entry)?)),
        Some(Event::Checkpoint(response)) => {
            let signed = checkpoint_from_proto(endpoint, &response, 0)?;
            let verified = match policy.map(|p| p.verify(&signed)) {
                None => None,
                Some(Ok(verified)) => Some(verified),
                Some(Err(bboard_core::Error::NotEnoughCosignatures { .. }))
                    if !response.r#final =>
                {
                    None
                }
                Some(Err(e)) => return Err(e.into()),
            };
            Ok(BoardEvent::Checkpoint(CheckpointInfo {
                signed,
                verified,
                is_final: response.r#final,
            }))
        }
        Some(Event::Alarm(alarm)) => Ok(BoardEvent::Alarm(Box::new(alarm))),
        None => Err(invalid(endpoint, "watch event without content")),
    }
}
