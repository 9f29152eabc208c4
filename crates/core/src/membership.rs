//! Membership authorisations: the admins of a majority of the board's organisations
//! (named by its genesis) sign one change of the cluster's membership, and the
//! signed change is posted on the board as a `MembershipAuthorisation` entry.
//!
//! This module owns the signed message, building and countersigning an authorisation,
//! and reading which change it covers. Whether the signers are admins of enough
//! distinct organisations is a board rule ([`crate::board`]), because only the board
//! knows who the admins are.
//!
//! The signed message is `"bboard/v1/membership-authorisation\n" || command`, where
//! `command` is the encoded `bboard.v1.AdminCommand` exactly as carried in the entry: a
//! signature covers bytes, never a re-encoding.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;

use crate::pb;

/// Domain separation of a membership-authorisation signature.
pub const MEMBERSHIP_AUTHORISATION_DOMAIN: &[u8] = b"bboard/v1/membership-authorisation\n";

/// Why an authorisation is malformed or a signature does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    /// `command` does not decode as an `AdminCommand`.
    #[error("the authorised command does not decode: {0}")]
    Undecodable(String),
    /// The command is not a membership change.
    #[error("a membership authorisation covers AddLearner or ChangeMembership, not {0}")]
    NotAMembershipChange(&'static str),
    /// A public key is not 32 bytes of a valid Ed25519 point.
    #[error("signature {position}: the public key is not a valid Ed25519 key")]
    BadKey {
        /// Position of the signature in the entry.
        position: usize,
    },
    /// A signature is not 64 bytes or does not verify.
    #[error("signature {position} by {key} does not verify")]
    BadSignature {
        /// Position of the signature in the entry.
        position: usize,
        /// The key, hex.
        key: String,
    },
    /// The same key signed twice.
    #[error("key {0} signed twice")]
    DuplicateSigner(String),
}

/// A membership change an authorisation covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a learner (with its addresses and pin).
    AddLearner(pb::AddLearnerCommand),
    /// Replace the voters.
    ChangeMembership(pb::ChangeMembershipCommand),
}

/// The message an admin signs for `command` (the encoded `AdminCommand`).
pub fn authorisation_message(command: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(MEMBERSHIP_AUTHORISATION_DOMAIN.len() + command.len());
    message.extend_from_slice(MEMBERSHIP_AUTHORISATION_DOMAIN);
    message.extend_from_slice(command);
    message
}

/// An authorisation of `command`, signed by `key` (the first organisation's admin).
pub fn authorise(command: &pb::AdminCommand, key: &SigningKey) -> pb::MembershipAuthorisation {
    let mut authorisation = pb::MembershipAuthorisation {
        command: command.encode_to_vec(),
        signatures: Vec::new(),
    };
    countersign(&mut authorisation, key);
    authorisation
}

/// Adds `key`'s signature to `authorisation` (replacing an earlier one by the same key).
pub fn countersign(authorisation: &mut pb::MembershipAuthorisation, key: &SigningKey) {
    let public_key = key.verifying_key().as_bytes().to_vec();
    let signature = key
        .sign(&authorisation_message(&authorisation.command))
        .to_bytes()
        .to_vec();
    authorisation
        .signatures
        .retain(|s| s.public_key != public_key);
    authorisation.signatures.push(pb::AdminSignature {
        public_key,
        signature,
    });
}

/// The change `authorisation` covers, with its command.
pub fn change_of(
    authorisation: &pb::MembershipAuthorisation,
) -> Result<(pb::AdminCommand, MembershipChange), MembershipError> {
    use pb::admin_command::Command;
    let command = pb::AdminCommand::decode(authorisation.command.as_slice())
        .map_err(|e| MembershipError::Undecodable(e.to_string()))?;
    let change = match &command.command {
        Some(Command::AddLearner(add)) => MembershipChange::AddLearner(add.clone()),
        Some(Command::ChangeMembership(change)) => {
            MembershipChange::ChangeMembership(change.clone())
        }
        Some(Command::TriggerSnapshot(_)) => {
            return Err(MembershipError::NotAMembershipChange("TriggerSnapshot"))
        }
        Some(Command::Campaign(_)) => {
            return Err(MembershipError::NotAMembershipChange("Campaign"))
        }
        None => return Err(MembershipError::NotAMembershipChange("an empty command")),
    };
    Ok((command, change))
}

/// The distinct keys whose signatures over the authorised command verify, in order.
/// Every signature must verify: a bad one makes the whole authorisation invalid
/// rather than being skipped, so what is on the board is exactly what was signed.
pub fn verified_signers(
    authorisation: &pb::MembershipAuthorisation,
) -> Result<Vec<[u8; 32]>, MembershipError> {
    let message = authorisation_message(&authorisation.command);
    let mut signers: Vec<[u8; 32]> = Vec::new();
    for (position, entry) in authorisation.signatures.iter().enumerate() {
        let key = crate::envelope::parse_public_key(&entry.public_key)
            .map_err(|_| MembershipError::BadKey { position })?;
        let bad = || MembershipError::BadSignature {
            position,
            key: hex::encode(key.as_bytes()),
        };
        let signature = Signature::from_slice(&entry.signature).map_err(|_| bad())?;
        VerifyingKey::verify_strict(&key, &message, &signature).map_err(|_| bad())?;
        if signers.contains(key.as_bytes()) {
            return Err(MembershipError::DuplicateSigner(hex::encode(
                key.as_bytes(),
            )));
        }
        signers.push(*key.as_bytes());
    }
    Ok(signers)
}

/// How many of `organisations` must sign: a strict majority.
pub fn majority(organisations: usize) -> usize {
    organisations / 2 + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn change(voters: &[u64]) -> pb::AdminCommand {
        pb::AdminCommand {
            issued_unix_ms: 1,
            node_id: 0,
            command: Some(pb::admin_command::Command::ChangeMembership(
                pb::ChangeMembershipCommand {
                    voter_ids: voters.to_vec(),
                },
            )),
        }
    }

    #[test]
    fn countersigned_authorisations_verify_and_name_their_change() {
        let (a, b) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let mut authorisation = authorise(&change(&[1, 2]), &a);
        countersign(&mut authorisation, &b);
        countersign(&mut authorisation, &b);
        assert_eq!(authorisation.signatures.len(), 2, "a re-signature replaces");
        assert_eq!(
            verified_signers(&authorisation).unwrap(),
            vec![*a.verifying_key().as_bytes(), *b.verifying_key().as_bytes()]
        );
        let (_, covered) = change_of(&authorisation).unwrap();
        assert_eq!(
            covered,
            MembershipChange::ChangeMembership(pb::ChangeMembershipCommand {
                voter_ids: vec![1, 2]
            })
        );
    }

    #[test]
    fn altered_duplicated_or_foreign_authorisations_are_refused() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let mut altered = authorise(&change(&[1, 2]), &a);
        altered.command = change(&[1]).encode_to_vec();
        assert!(matches!(
            verified_signers(&altered),
            Err(MembershipError::BadSignature { position: 0, .. })
        ));
        let mut duplicated = authorise(&change(&[1, 2]), &a);
        duplicated.signatures.push(duplicated.signatures[0].clone());
        assert!(matches!(
            verified_signers(&duplicated),
            Err(MembershipError::DuplicateSigner(_))
        ));
        // An admin request signature is not a membership signature (other domain).
        let admin = crate::admin::sign_admin_command(&change(&[1, 2]), &a);
        let foreign = pb::MembershipAuthorisation {
            command: admin.body.clone(),
            signatures: vec![pb::AdminSignature {
                public_key: a.verifying_key().as_bytes().to_vec(),
                signature: admin.signature,
            }],
        };
        assert!(verified_signers(&foreign).is_err());
        let snapshot = pb::AdminCommand {
            command: Some(pb::admin_command::Command::TriggerSnapshot(
                pb::TriggerSnapshotCommand {},
            )),
            ..change(&[])
        };
        assert_eq!(
            change_of(&authorise(&snapshot, &a)),
            Err(MembershipError::NotAMembershipChange("TriggerSnapshot"))
        );
    }

    #[test]
    fn a_majority_is_strict() {
        assert_eq!(
            [1, 2, 3, 4, 5].map(majority),
            [1, 2, 2, 3, 3],
            "of 1..=5 organisations"
        );
    }
}
