//! A voting terminal: encrypts selections, posts ballots one after another along its
//! tracking-code chain, and spoils (opens) a ballot a voter challenges.
//!
//! The chain head is read from the board when the session opens (the tracking code of
//! the terminal's last ballot or spoiled ballot), so a restarted terminal continues
//! where the board says it is, not where a local file says.

use bboard_ballot::ballot::{encrypt_ballot, spoil, verify_spoiled};
use bboard_ballot::dkg::KeySet;
use bboard_client::BoardClient;
use bboard_core::election::{short_tracking_code, tracking_code, TRACKING_CODE_LEN};
use bboard_core::pb::{self, entry_body::Kind, Phase};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use rand::RngCore;
use std::time::Duration;

use crate::board::{sign, submit, ElectionView};
use crate::{Error, Result};

/// A terminal ready to post ballots.
pub struct TerminalSession {
    client: BoardClient,
    key: SigningKey,
    election_id: String,
    /// The manifest.
    pub manifest: pb::ElectionManifest,
    key_set: KeySet,
    /// The terminal's precinct (from its registration).
    pub precinct_id: String,
    head: [u8; TRACKING_CODE_LEN],
    /// Longest random wait before posting a ballot (zero: none).
    max_delay: Duration,
}

/// What a terminal hands the voter.
#[derive(Clone, Debug)]
pub struct CastReceipt {
    /// Leaf index of the ballot.
    pub leaf_index: u64,
    /// Full tracking code.
    pub tracking_code: [u8; TRACKING_CODE_LEN],
    /// Short tracking code for the slip.
    pub short_code: String,
    /// The posted spoiled ballot, when the voter challenged it.
    pub spoiled: Option<pb::SpoiledBallot>,
}

impl TerminalSession {
    /// Reads the board: manifest, joint key, the terminal's precinct and chain head.
    pub async fn open(
        client: &BoardClient,
        election_id: &str,
        key: SigningKey,
        min_size: u64,
    ) -> Result<Self> {
        let view = ElectionView::fetch(client, election_id, min_size).await?;
        let public_key = *key.verifying_key().as_bytes();
        let precinct_id = view.precinct_of(&public_key, pb::Role::Terminal)?;
        view.require_phase(Phase::Open, "vote")?;
        let key_set = view.require_key_set()?;
        Ok(TerminalSession {
            client: client.clone(),
            key,
            election_id: election_id.to_string(),
            head: view.chain_head(&public_key),
            manifest: view.manifest,
            key_set,
            precinct_id,
            max_delay: Duration::ZERO,
        })
    }

    /// Waits a random time up to `max_delay` before posting each ballot. Polling
    /// stations may be filmed: without the delay, a ballot's board timestamp and
    /// terminal point at the voter seen at that terminal at that second (DESIGN.md §3).
    /// The ballot stays sealed either way; the delay only blurs that link.
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Encrypts `selections` and posts the ballot, or — when `challenge` — posts it as a
    /// spoiled ballot with its opening (never counted).
    pub async fn cast(
        &mut self,
        selections: &[pb::ContestSelection],
        challenge: bool,
    ) -> Result<CastReceipt> {
        let (ballot, opening) = encrypt_ballot(
            &self.manifest,
            &self.election_id,
            self.key_set.joint_key(),
            &self.precinct_id,
            self.head,
            selections,
            &mut OsRng,
        )
        .map_err(|source| Error::Crypto {
            doing: "encrypting the ballot".to_string(),
            source: Box::new(source),
        })?;
        let (kind, spoiled) = if challenge {
            let spoiled = spoil(ballot, &opening);
            (Kind::SpoiledBallot(spoiled.clone()), Some(spoiled))
        } else {
            (Kind::Ballot(ballot), None)
        };
        let envelope = sign(&self.key, &self.election_id, kind);
        let code = tracking_code(&self.head, &envelope.id());
        let what = if challenge {
            "the spoiled ballot"
        } else {
            "the ballot"
        };
        if !self.max_delay.is_zero() {
            let wait = OsRng.next_u64() % (self.max_delay.as_millis() as u64 + 1);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let append = match submit(&self.client, &envelope, what).await {
            Ok(append) => append,
            Err(Error::Append { source, what }) => {
                if matches!(*source, bboard_client::ClientError::OutcomeUnknown { .. }) {
                    // The head stays: the next session reads it from the board.
                    return Err(Error::BallotOutcomeUnknown {
                        what,
                        short_code: short_tracking_code(&code),
                        source,
                    });
                }
                let bboard_client::ClientError::LandedUnverified { index, .. } = *source else {
                    return Err(Error::Append { source, what });
                };
                // The ballot counts: the chain goes on from it, and the voter gets its
                // code even though this terminal could not verify the receipt.
                self.head = code;
                return Err(Error::BallotLandedUnverified {
                    what,
                    index,
                    short_code: short_tracking_code(&code),
                    source,
                });
            }
            Err(other) => return Err(other),
        };
        let code_hex = hex::encode(code);
        if !append.receipt.tracking_code.is_empty() && append.receipt.tracking_code != code_hex {
            return Err(Error::TrackingCodeMismatch {
                board: append.receipt.tracking_code,
                terminal: code_hex,
            });
        }
        self.head = code;
        Ok(CastReceipt {
            leaf_index: append.receipt.leaf_index,
            tracking_code: code,
            short_code: short_tracking_code(&code),
            spoiled,
        })
    }

    /// Checks a spoiled ballot the way anyone can: its proofs, and that its published
    /// nonces re-encrypt its published selections to its ciphertexts.
    pub fn check_spoiled(&self, spoiled: &pb::SpoiledBallot) -> Result<()> {
        verify_spoiled(
            &self.manifest,
            &self.election_id,
            self.key_set.joint_key(),
            spoiled,
        )
        .map_err(|source| Error::Crypto {
            doing: "the spoiled ballot does not open to its selections".to_string(),
            source: Box::new(source),
        })
    }
}
