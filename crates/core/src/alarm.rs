//! Censorship alarms: a node's signed statement that an entry it forwarded to the
//! leader did not reach the board by the inclusion deadline.
//!
//! An alarm carries the whole envelope (anyone can re-submit it), when the node got it,
//! the deadline, the board size and root the node had applied when it raised the alarm,
//! and the leader it forwarded to. It is signed by the node's checkpoint key over
//! `"bboard/v1/censorship-alarm\n" || statement` (strict Ed25519), so it is evidence
//! that organisation stands behind. Whether the entry is *still* missing is a question
//! about the board, which an auditor answers from the board itself
//! ([`AlarmCheck::absent_from`]).

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;

use crate::checkpoint::{CosignaturePolicy, NoteSigner, NoteVerifier};
use crate::envelope::{SignedEnvelope, MAX_BODY_BYTES};
use crate::pb;
use crate::{Error, Result};

/// Domain separator of alarm signatures.
pub const ALARM_DOMAIN: &[u8] = b"bboard/v1/censorship-alarm\n";

/// Largest accepted statement (an envelope plus a few fields).
const MAX_STATEMENT_BYTES: usize = MAX_BODY_BYTES + 4096;

/// Signs an alarm statement with the node's checkpoint key.
pub fn sign_alarm(statement: &pb::AlarmStatement, signer: &NoteSigner) -> pb::CensorshipAlarm {
    let statement = statement.encode_to_vec();
    let signature = signer.sign_statement(ALARM_DOMAIN, &statement);
    pb::CensorshipAlarm {
        statement,
        signer: signer.verifier().public_key().as_bytes().to_vec(),
        signature: signature.to_bytes().to_vec(),
    }
}

/// A verified alarm.
#[derive(Clone, Debug)]
pub struct AlarmCheck {
    /// What it states.
    pub statement: pb::AlarmStatement,
    /// The missing entry, with a verified signature.
    pub envelope: SignedEnvelope,
    /// The node key that raised it.
    pub raised_by: NoteVerifier,
}

impl AlarmCheck {
    /// Whether the alarm's entry is absent from a board, given a lookup of envelope
    /// ids on it (`find` returns the leaf index if present).
    pub fn absent_from(
        &self,
        find: impl Fn(&crate::envelope::EnvelopeId) -> Option<u64>,
    ) -> Result<(), u64> {
        match find(&self.envelope.id()) {
            Some(index) => Err(index),
            None => Ok(()),
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidAlarm(message.into())
}

/// Verifies an alarm against the board's node keys and origin (`policy`): the signer
/// is one of the nodes, named as in the statement; the signature is strictly valid;
/// the statement is for this origin; the envelope inside is validly signed.
///
/// # Errors
///
/// [`Error::InvalidAlarm`] naming what is wrong.
pub fn verify_alarm(alarm: &pb::CensorshipAlarm, policy: &CosignaturePolicy) -> Result<AlarmCheck> {
    if alarm.statement.len() > MAX_STATEMENT_BYTES {
        return Err(invalid(format!(
            "statement is {} bytes, at most {MAX_STATEMENT_BYTES} are allowed",
            alarm.statement.len()
        )));
    }
    let statement = pb::AlarmStatement::decode(alarm.statement.as_slice())
        .map_err(|e| invalid(format!("statement does not decode: {e}")))?;
    let key: [u8; 32] = alarm
        .signer
        .as_slice()
        .try_into()
        .map_err(|_| invalid("signer must be a 32-byte Ed25519 key"))?;
    let raised_by = policy
        .keys()
        .iter()
        .find(|k| k.public_key().as_bytes() == &key)
        .ok_or_else(|| {
            invalid(format!(
                "signer {} is not a node of this board",
                hex::encode(key)
            ))
        })?
        .clone();
    if raised_by.name() != statement.node_name {
        return Err(invalid(format!(
            "statement names node {:?} but is signed by {:?}",
            statement.node_name,
            raised_by.name()
        )));
    }
    let signature = Signature::from_slice(&alarm.signature)
        .map_err(|_| invalid("signature must be 64 bytes"))?;
    let mut signed = ALARM_DOMAIN.to_vec();
    signed.extend_from_slice(&alarm.statement);
    let verifying: &VerifyingKey = raised_by.public_key();
    verifying
        .verify_strict(&signed, &signature)
        .map_err(|_| invalid(format!("signature by {} does not verify", raised_by.name())))?;
    if statement.origin != policy.origin() {
        return Err(invalid(format!(
            "alarm is for board {:?}, not {:?}",
            statement.origin,
            policy.origin()
        )));
    }
    let envelope = statement
        .envelope
        .as_ref()
        .ok_or_else(|| invalid("alarm names no envelope"))?;
    let envelope = SignedEnvelope::verify(envelope, MAX_BODY_BYTES).map_err(|e| {
        invalid(format!(
            "the envelope in the alarm is not validly signed: {e}"
        ))
    })?;
    if statement.board_root.len() != 32 {
        return Err(invalid("board_root must be 32 bytes"));
    }
    Ok(AlarmCheck {
        statement,
        envelope,
        raised_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "alarm.test";

    fn setup() -> (NoteSigner, CosignaturePolicy, pb::AlarmStatement) {
        let node = NoteSigner::new("node-1", SigningKey::from_bytes(&[3; 32])).unwrap();
        let other = NoteSigner::new("node-2", SigningKey::from_bytes(&[4; 32])).unwrap();
        let policy =
            CosignaturePolicy::majority(ORIGIN, vec![node.verifier(), other.verifier()]).unwrap();
        let terminal = SigningKey::from_bytes(&[9; 32]);
        let envelope = SignedEnvelope::sign_body(
            &pb::EntryBody {
                election_id: "e".into(),
                created_unix_ms: 1,
                kind: Some(pb::entry_body::Kind::Note(pb::Note { text: "x".into() })),
            },
            &terminal,
        );
        let statement = pb::AlarmStatement {
            origin: ORIGIN.into(),
            node_name: "node-1".into(),
            envelope: Some(envelope.to_proto()),
            received_unix_ms: 10,
            deadline_unix_ms: 20,
            raised_unix_ms: 21,
            board_size: 5,
            board_root: vec![7; 32],
            forwarded_to_node: 2,
            forwarded_to_address: "127.0.0.1:1".into(),
        };
        (node, policy, statement)
    }

    #[test]
    fn a_signed_alarm_verifies_and_names_its_node() {
        let (node, policy, statement) = setup();
        let alarm = sign_alarm(&statement, &node);
        let check = verify_alarm(&alarm, &policy).unwrap();
        assert_eq!(check.raised_by.name(), "node-1");
        assert_eq!(check.statement, statement);
        assert!(check.absent_from(|_| None).is_ok());
        assert_eq!(check.absent_from(|_| Some(4)), Err(4));
    }

    #[test]
    fn altered_forged_or_foreign_alarms_are_rejected() {
        let (node, policy, statement) = setup();
        let alarm = sign_alarm(&statement, &node);
        // Any flipped byte of the statement or signature.
        for i in 0..alarm.statement.len() {
            let mut bad = alarm.clone();
            bad.statement[i] ^= 1;
            assert!(verify_alarm(&bad, &policy).is_err(), "byte {i}");
        }
        let mut bad = alarm.clone();
        bad.signature[0] ^= 1;
        assert!(verify_alarm(&bad, &policy)
            .unwrap_err()
            .to_string()
            .contains("does not verify"));
        // Signed by a key that is not a node of the board.
        let stranger = NoteSigner::new("node-1", SigningKey::from_bytes(&[5; 32])).unwrap();
        let forged = sign_alarm(&statement, &stranger);
        assert!(verify_alarm(&forged, &policy)
            .unwrap_err()
            .to_string()
            .contains("not a node"));
        // Signed by node-1 but claiming to be node-2.
        let mut lying = statement.clone();
        lying.node_name = "node-2".into();
        assert!(verify_alarm(&sign_alarm(&lying, &node), &policy).is_err());
        // Another board.
        let mut foreign = statement.clone();
        foreign.origin = "other".into();
        assert!(verify_alarm(&sign_alarm(&foreign, &node), &policy)
            .unwrap_err()
            .to_string()
            .contains("board"));
        // Garbage never panics.
        for len in [0usize, 1, 31, 64, 100] {
            let garbage = pb::CensorshipAlarm {
                statement: vec![0xff; len],
                signer: vec![1; len],
                signature: vec![2; len],
            };
            assert!(verify_alarm(&garbage, &policy).is_err());
        }
    }
}
