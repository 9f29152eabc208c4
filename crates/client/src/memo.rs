//! A memo of checkpoint notes this process has verified, so a fleet of clients in one
//! process (terminals behind one gateway, or `bboard bench`) that receives the same
//! cosigned checkpoint in many receipts checks its signatures once.
//!
//! Why it is sound: a note's verdict under a policy depends only on the note's bytes
//! and the policy, both of which are compared exactly; nothing from the network is
//! believed without having been verified by this process under the same policy.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint, VerifiedCheckpoint};

/// How many verified notes are remembered; a receipt carries the latest checkpoint,
/// so only the most recent few ever repeat.
const REMEMBERED_NOTES: usize = 256;

/// Checkpoint notes verified by this process, shared by every clone (so by every
/// client built from clones of one [`ClientOptions`](crate::ClientOptions)).
#[derive(Clone, Debug, Default)]
pub struct CheckpointMemo {
    inner: Arc<Mutex<Remembered>>,
}

#[derive(Debug, Default)]
struct Remembered {
    /// The policy the remembered notes passed: a memo used with another policy is
    /// cleared first, so a verdict never crosses policies.
    policy: Option<CosignaturePolicy>,
    verdicts: HashMap<String, VerifiedCheckpoint>,
    order: VecDeque<String>,
}

impl CheckpointMemo {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// `policy.verify(signed)`, remembered by the note's text. Only passing verdicts
    /// are remembered: a failing note is checked again each time.
    ///
    /// # Errors
    ///
    /// The policy's error for a note that does not pass.
    pub fn verify(
        &self,
        policy: &CosignaturePolicy,
        signed: &SignedCheckpoint,
    ) -> Result<VerifiedCheckpoint, bboard_core::Error> {
        self.verify_text(policy, &signed.to_note(), || Ok(signed.clone()))
    }

    /// The verdict on a note received as `note` (a receipt's checkpoint text): a text
    /// seen before is answered from the memo without even being parsed; any other
    /// is parsed and verified under `policy`.
    ///
    /// # Errors
    ///
    /// The parse error or the policy's error for a note that does not pass.
    pub fn verify_note(
        &self,
        policy: &CosignaturePolicy,
        note: &str,
    ) -> Result<VerifiedCheckpoint, bboard_core::Error> {
        self.verify_text(policy, note, || SignedCheckpoint::parse(note))
    }

    fn verify_text(
        &self,
        policy: &CosignaturePolicy,
        note: &str,
        parse: impl FnOnce() -> Result<SignedCheckpoint, bboard_core::Error>,
    ) -> Result<VerifiedCheckpoint, bboard_core::Error> {
        if let Some(known) = self.lookup(policy, note) {
            return Ok(known);
        }
        let verified = policy.verify(&parse()?)?;
        self.remember(policy, note.to_owned(), verified.clone());
        Ok(verified)
    }

    fn lookup(&self, policy: &CosignaturePolicy, note: &str) -> Option<VerifiedCheckpoint> {
        // A poisoned lock only means another thread panicked mid-update; the memo is
        // an optimisation, so it is skipped rather than trusted.
        let remembered = self.inner.lock().ok()?;
        if remembered.policy.as_ref() != Some(policy) {
            return None;
        }
        remembered.verdicts.get(note).cloned()
    }

    fn remember(&self, policy: &CosignaturePolicy, note: String, verified: VerifiedCheckpoint) {
        let Ok(mut remembered) = self.inner.lock() else {
            return;
        };
        if remembered.policy.as_ref() != Some(policy) {
            *remembered = Remembered {
                policy: Some(policy.clone()),
                ..Remembered::default()
            };
        }
        if remembered.verdicts.insert(note.clone(), verified).is_none() {
            remembered.order.push_back(note);
        }
        while remembered.order.len() > REMEMBERED_NOTES {
            if let Some(oldest) = remembered.order.pop_front() {
                remembered.verdicts.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bboard_core::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
    use bboard_merkle::{Hash, TreeSize};

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn signed(size: u64, signers: &[&NoteSigner]) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            origin: "memo.test/board".into(),
            size: TreeSize(size),
            root: Hash([size as u8; 32]),
        };
        let mut note = SignedCheckpoint::sign(checkpoint.clone(), signers[0]).unwrap();
        for s in &signers[1..] {
            note.merge(&SignedCheckpoint::sign(checkpoint.clone(), s).unwrap())
                .unwrap();
        }
        note
    }

    fn policy(keys: &[&NoteSigner], threshold: usize) -> CosignaturePolicy {
        let verifiers: Vec<NoteVerifier> = keys.iter().map(|s| s.verifier()).collect();
        CosignaturePolicy::new("memo.test/board", verifiers, threshold).unwrap()
    }

    #[test]
    fn a_remembered_verdict_is_the_policys_and_never_crosses_policies() {
        let (a, b, c) = (signer("a", 1), signer("b", 2), signer("c", 3));
        let memo = CheckpointMemo::new();
        let two_of_three = policy(&[&a, &b, &c], 2);
        let note = signed(5, &[&a, &b]);
        let first = memo.verify(&two_of_three, &note).unwrap();
        assert_eq!(first, two_of_three.verify(&note).unwrap());
        assert_eq!(memo.verify(&two_of_three, &note).unwrap(), first);

        // The same note under a stricter policy is judged afresh, and fails.
        let three_of_three = policy(&[&a, &b, &c], 3);
        assert!(memo.verify(&three_of_three, &note).is_err());
        // A note that fails is not remembered as passing under any policy.
        let lone = signed(6, &[&a]);
        assert!(memo.verify(&two_of_three, &lone).is_err());
        assert!(memo.verify(&two_of_three, &lone).is_err());
    }

    #[test]
    fn a_received_text_is_judged_as_the_policy_judges_it() {
        let (a, b, c) = (signer("a", 1), signer("b", 2), signer("c", 3));
        let memo = CheckpointMemo::new();
        let two_of_three = policy(&[&a, &b, &c], 2);
        let text = signed(7, &[&a, &c]).to_note();
        let first = memo.verify_note(&two_of_three, &text).unwrap();
        assert_eq!(first, two_of_three.verify_note(&text).unwrap());
        assert_eq!(memo.verify_note(&two_of_three, &text).unwrap(), first);
        // A text that differs by one byte is a different note: parsed and refused.
        let mut forged = text.clone();
        forged.insert(0, 'x');
        assert!(memo.verify_note(&two_of_three, &forged).is_err());
        assert!(memo.verify_note(&two_of_three, "not a note").is_err());
        let lone = signed(8, &[&b]).to_note();
        assert!(memo.verify_note(&two_of_three, &lone).is_err());
    }

    #[test]
    fn the_memo_stays_bounded() {
        let (a, b) = (signer("a", 1), signer("b", 2));
        let memo = CheckpointMemo::new();
        let policy = policy(&[&a, &b], 2);
        for size in 1..=(REMEMBERED_NOTES as u64 + 20) {
            memo.verify(&policy, &signed(size, &[&a, &b])).unwrap();
        }
        let remembered = memo.inner.lock().unwrap();
        assert_eq!(remembered.verdicts.len(), REMEMBERED_NOTES);
        assert_eq!(remembered.order.len(), REMEMBERED_NOTES);
    }
}
