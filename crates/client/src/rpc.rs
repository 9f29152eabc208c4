//! The RPC wrappers of [`BoardClient`]: one method per call of the `Board` service
//! (`proto/bboard/v1/board.proto`), each sent through the retry engine (`retry`) and
//! each answer checked (`checks`, and with a policy against k-of-n checkpoints)
//! before it is returned.

use std::time::Duration;

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint, VerifiedCheckpoint};
use bboard_core::envelope::{EnvelopeId, SignedEnvelope};
use bboard_core::pb;
use bboard_core::receipt::Receipt;
use bboard_merkle::{
    verify_consistency, verify_inclusion, Blake3Hasher, Hash, LeafIndex, TreeHasher, TreeSize,
};
use tokio_stream::StreamExt;

use crate::checks::{
    check_receipt_memo, checkpoint_from_proto, consistency_from_proto, entry_from_proto,
    entry_of_index, event_from_proto, invalid, parse_hashes,
};
use crate::retry::{request, Grpc};
use crate::{
    AppendResult, BoardClient, CheckpointInfo, ClientError, Entry, EnvelopeOnBoard,
    VerifiedConsistency, VerifiedInclusion, WatchStream,
};

impl BoardClient {
    fn policy(&self) -> Result<&CosignaturePolicy, ClientError> {
        self.options().policy.as_ref().ok_or(ClientError::NoPolicy)
    }

    /// Status of one node (`endpoint` may be any address, configured or not). Not
    /// retried.
    pub async fn status(&self, endpoint: &str) -> Result<pb::StatusResponse, ClientError> {
        self.call_once(endpoint, |mut client, timeout| async move {
            client.status(request(pb::StatusRequest {}, timeout)).await
        })
        .await
    }

    /// Status of every configured node, in the configured order, queried concurrently.
    pub async fn status_all(&self) -> Vec<(String, Result<pb::StatusResponse, ClientError>)> {
        let endpoints = self.endpoints();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let client = self.clone();
            let endpoint = endpoint.clone();
            tasks.spawn(async move { (i, client.status(&endpoint).await) });
        }
        let mut results: Vec<Option<Result<pb::StatusResponse, ClientError>>> =
            endpoints.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, result)) = joined {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(result);
                }
            }
        }
        endpoints
            .into_iter()
            .zip(results)
            .map(|(endpoint, result)| {
                let result = result.unwrap_or_else(|| {
                    Err(ClientError::Rpc {
                        endpoint: endpoint.clone(),
                        code: tonic::Code::Internal,
                        message: "status task failed".into(),
                    })
                });
                (endpoint, result)
            })
            .collect()
    }

    /// Appends `envelope`, retrying the same envelope on transient failures (see the
    /// crate docs), and checks the receipt: with a policy, fully
    /// ([`Receipt::verify`]); always, that the receipt's leaf carries this envelope.
    ///
    /// Before its first post, a client with a policy checks that the board's current
    /// checkpoint verifies under it ([`ClientError::TrustConfiguration`], nothing
    /// posted). A receipt that does not verify after the node accepted the entry is
    /// [`ClientError::LandedUnverified`]: the entry is on the board. When no node
    /// confirmed the append in time, the outcome is [`ClientError::OutcomeUnknown`],
    /// which carries the envelope to re-send.
    pub async fn append(&self, envelope: &SignedEnvelope) -> Result<AppendResult, ClientError> {
        if !self.leader_checked() {
            self.discover_leader().await;
        }
        self.check_trust().await?;
        let message = pb::AppendRequest {
            envelope: Some(envelope.to_proto()),
        };
        let (endpoint, response) = self
            .call(true, |mut client, timeout| {
                let request = request(message.clone(), timeout);
                async move { client.append(request).await }
            })
            .await
            .map_err(|error| match error {
                ClientError::Timeout {
                    attempts,
                    elapsed,
                    last,
                    tried,
                } => ClientError::OutcomeUnknown {
                    envelope: Box::new(envelope.clone()),
                    attempts,
                    elapsed,
                    last,
                    tried,
                },
                other => other,
            })?;
        let proto = response
            .receipt
            .ok_or_else(|| invalid(&endpoint, "append answer without a receipt"))?;
        let receipt = Receipt::from_proto(&proto)?;
        let options = self.options();
        let verified = check_receipt_memo(
            &receipt,
            envelope,
            options.policy.as_ref(),
            &options.checkpoint_memo,
        )
        .map_err(|reason| ClientError::LandedUnverified {
            endpoint: endpoint.clone(),
            index: receipt.leaf_index,
            envelope_id: envelope.id().to_string(),
            reason: Box::new(reason),
        })?;
        Ok(AppendResult {
            receipt,
            duplicate: response.duplicate,
            verified,
            endpoint,
        })
    }

    /// Checks, once per client, that the board's current checkpoint verifies under the
    /// policy, so a wrong origin or wrong trusted keys stop a post before anything is
    /// posted. An empty board (nothing to check yet) and a board no node answers for
    /// (the post itself will say so) pass.
    async fn check_trust(&self) -> Result<(), ClientError> {
        let Some(policy) = self.options().policy.as_ref() else {
            return Ok(());
        };
        if self.trust_checked() {
            return Ok(());
        }
        let fetched = self
            .call(false, |mut client, timeout| async move {
                let message = pb::GetCheckpointRequest { size: 0 };
                client.get_checkpoint(request(message, timeout)).await
            })
            .await;
        let Ok((endpoint, response)) = fetched else {
            return Ok(());
        };
        let mut signed = checkpoint_from_proto(&endpoint, &response, 0)?;
        if signed.checkpoint().size.0 == 0 {
            return Ok(());
        }
        match self.verify_gathering(policy, &mut signed).await {
            Ok(_) => {
                self.set_trust_checked();
                Ok(())
            }
            // Some trusted keys signed, just not k of them yet (a checkpoint still
            // being cosigned): the settings are not what is wrong.
            Err(ClientError::Verification(bboard_core::Error::NotEnoughCosignatures {
                valid,
                ..
            })) if valid > 0 => Ok(()),
            // The node keys are right; witnesses may still be cosigning.
            Err(ClientError::Verification(bboard_core::Error::NotEnoughWitnessCosignatures {
                ..
            })) => Ok(()),
            Err(ClientError::Verification(reason)) => Err(ClientError::TrustConfiguration {
                origin: policy.origin().to_string(),
                keys: policy.keys().len(),
                reason: Box::new(reason),
            }),
            Err(other) => Err(other),
        }
    }

    /// Entry `index`, checked (leaf hash, canonical leaf, envelope signature).
    pub async fn get_entry(&self, index: u64) -> Result<Entry, ClientError> {
        let (endpoint, response) = self
            .call(false, |client, timeout| entry_call(client, timeout, index))
            .await?;
        entry_of_index(&endpoint, response, index)
    }

    /// Up to `limit` consecutive entries from `start`, fetched page by page; fewer when
    /// the board ends first. Each entry is checked like [`Self::get_entry`].
    pub async fn get_entries(&self, start: u64, limit: u64) -> Result<Vec<Entry>, ClientError> {
        let mut entries = Vec::new();
        let mut next = start;
        while (entries.len() as u64) < limit {
            let remaining = limit - entries.len() as u64;
            let page_limit = u32::try_from(remaining).unwrap_or(u32::MAX);
            let (endpoint, page) = self
                .call(false, |mut client, timeout| async move {
                    let message = pb::GetEntriesRequest {
                        start: next,
                        limit: page_limit,
                    };
                    client.get_entries(request(message, timeout)).await
                })
                .await?;
            if page.entries.is_empty() {
                break;
            }
            for entry in page.entries {
                if (entries.len() as u64) == limit {
                    break;
                }
                if entry.index != next {
                    return Err(invalid(
                        &endpoint,
                        format!("expected entry {next}, got entry {}", entry.index),
                    ));
                }
                entries.push(entry_from_proto(&endpoint, entry)?);
                next += 1;
            }
        }
        Ok(entries)
    }

    /// The latest checkpoint (`size = None`) or the one of tree size `size`. With a
    /// policy it must verify; signatures are gathered from the other nodes when the
    /// first node does not hold k of them.
    pub async fn checkpoint(&self, size: Option<u64>) -> Result<CheckpointInfo, ClientError> {
        let requested = size.unwrap_or(0);
        let (endpoint, response) = self
            .call(false, |mut client, timeout| async move {
                let message = pb::GetCheckpointRequest { size: requested };
                client.get_checkpoint(request(message, timeout)).await
            })
            .await?;
        let mut signed = checkpoint_from_proto(&endpoint, &response, requested)?;
        let verified = match &self.options().policy {
            Some(policy) => Some(self.verify_gathering(policy, &mut signed).await?),
            None => None,
        };
        Ok(CheckpointInfo {
            signed,
            verified,
            is_final: response.r#final,
        })
    }

    /// Verifies `signed` with `policy`; when it lacks signatures, asks every
    /// configured node for its checkpoint of the same size and merges their
    /// signature lines until the policy is met.
    async fn verify_gathering(
        &self,
        policy: &CosignaturePolicy,
        signed: &mut SignedCheckpoint,
    ) -> Result<VerifiedCheckpoint, ClientError> {
        let mut result = policy.verify(signed);
        if !matches!(
            result,
            Err(bboard_core::Error::NotEnoughCosignatures { .. })
        ) {
            return Ok(result?);
        }
        let size = signed.checkpoint().size.0;
        if size == 0 {
            // The empty tree cannot be asked for by size (0 means "latest").
            return Ok(result?);
        }
        for endpoint in self.endpoints() {
            let response = self
                .call_once(&endpoint, |mut client, timeout| async move {
                    let message = pb::GetCheckpointRequest { size };
                    client.get_checkpoint(request(message, timeout)).await
                })
                .await;
            let Ok(other) = response.and_then(|r| checkpoint_from_proto(&endpoint, &r, size))
            else {
                continue;
            };
            if signed.merge(&other).is_err() {
                // A node signed a different root for the same size: not merged; the
                // policy decides on what the honest signatures say.
                continue;
            }
            result = policy.verify(signed);
            if result.is_ok() {
                break;
            }
        }
        Ok(result?)
    }

    /// The policy-verified checkpoint of `size`, starting from a note a node sent
    /// along with a proof (if any).
    async fn verified_checkpoint_of(
        &self,
        endpoint: &str,
        size: u64,
        note: &str,
    ) -> Result<(SignedCheckpoint, VerifiedCheckpoint), ClientError> {
        let policy = self.policy()?;
        if !note.is_empty() {
            let mut signed = SignedCheckpoint::parse(note)?;
            if signed.checkpoint().size.0 != size {
                return Err(invalid(
                    endpoint,
                    format!(
                        "proof for size {size} came with a checkpoint of size {}",
                        signed.checkpoint().size.0
                    ),
                ));
            }
            let verified = self.verify_gathering(policy, &mut signed).await?;
            return Ok((signed, verified));
        }
        let info = self.checkpoint(Some(size)).await?;
        let verified = info.verified.ok_or(ClientError::NoPolicy)?;
        Ok((info.signed, verified))
    }

    /// Inclusion proof of entry `index` in the tree of `tree_size` (`None`: the
    /// node's latest checkpoint), verified against a policy-verified checkpoint of
    /// that size. The leaf hash is taken from the entry itself (read and checked).
    /// Needs a policy.
    pub async fn inclusion_proof_by_index(
        &self,
        index: u64,
        tree_size: Option<u64>,
    ) -> Result<VerifiedInclusion, ClientError> {
        self.policy()?;
        let entry = self.get_entry(index).await?;
        self.inclusion(
            pb::get_inclusion_proof_request::Leaf::Index(index),
            entry.leaf_hash,
            Some(index),
            tree_size,
        )
        .await
    }

    /// Inclusion proof of the leaf with hash `leaf_hash`, like
    /// [`Self::inclusion_proof_by_index`].
    pub async fn inclusion_proof_by_leaf_hash(
        &self,
        leaf_hash: &Hash,
        tree_size: Option<u64>,
    ) -> Result<VerifiedInclusion, ClientError> {
        self.policy()?;
        self.inclusion(
            pb::get_inclusion_proof_request::Leaf::LeafHash(leaf_hash.as_bytes().to_vec()),
            *leaf_hash,
            None,
            tree_size,
        )
        .await
    }

    async fn inclusion(
        &self,
        leaf: pb::get_inclusion_proof_request::Leaf,
        leaf_hash: Hash,
        expected_index: Option<u64>,
        tree_size: Option<u64>,
    ) -> Result<VerifiedInclusion, ClientError> {
        let requested = tree_size.unwrap_or(0);
        let (endpoint, response) = self
            .call(false, |client, timeout| {
                inclusion_call(client, timeout, leaf.clone(), requested)
            })
            .await?;
        self.verify_inclusion_response(&endpoint, response, leaf_hash, expected_index, requested)
            .await
    }

    /// Checks a node's inclusion proof of `leaf_hash` against a policy-verified
    /// checkpoint of the proof's tree size.
    async fn verify_inclusion_response(
        &self,
        endpoint: &str,
        response: pb::InclusionProofResponse,
        leaf_hash: Hash,
        expected_index: Option<u64>,
        requested: u64,
    ) -> Result<VerifiedInclusion, ClientError> {
        if requested != 0 && response.tree_size != requested {
            return Err(invalid(
                endpoint,
                format!(
                    "asked for a proof in size {requested}, got size {}",
                    response.tree_size
                ),
            ));
        }
        if let Some(index) = expected_index {
            if response.leaf_index != index {
                return Err(invalid(
                    endpoint,
                    format!(
                        "asked for a proof of entry {index}, got entry {}",
                        response.leaf_index
                    ),
                ));
            }
        }
        let proof = parse_hashes(endpoint, "inclusion proof", &response.proof)?;
        let (signed, checkpoint) = self
            .verified_checkpoint_of(endpoint, response.tree_size, &response.signed_checkpoint)
            .await?;
        verify_inclusion(
            &Blake3Hasher,
            &leaf_hash,
            LeafIndex(response.leaf_index),
            checkpoint.checkpoint.size,
            &proof,
            &checkpoint.checkpoint.root,
        )
        .map_err(bboard_core::Error::from)?;
        Ok(VerifiedInclusion {
            leaf_index: response.leaf_index,
            leaf_hash,
            tree_size: response.tree_size,
            proof,
            checkpoint,
            signed_checkpoint: signed,
        })
    }

    /// Is this envelope on the board? Asks a node (with the usual failover) for the
    /// leaf holding envelope `id` and returns it with an inclusion proof in the tree of
    /// `tree_size` (`None`: the node's latest checkpoint), both verified: the entry's
    /// envelope has this id, and the proof verifies against a policy-verified (k-of-n)
    /// checkpoint. `Ok(None)` when the node answering says `NOT_FOUND` — a claim of
    /// that node about its applied board, not a proof of absence. Needs a policy.
    pub async fn inclusion_proof_by_envelope_id(
        &self,
        id: &EnvelopeId,
        tree_size: Option<u64>,
    ) -> Result<Option<EnvelopeOnBoard>, ClientError> {
        self.envelope_lookup(None, id, tree_size).await
    }

    /// Like [`Self::inclusion_proof_by_envelope_id`], asking only the node at
    /// `endpoint` (configured or not, no retry); signatures for the checkpoint are
    /// still gathered from every configured node. Used to ask each node in turn.
    pub async fn inclusion_proof_by_envelope_id_on(
        &self,
        endpoint: &str,
        id: &EnvelopeId,
        tree_size: Option<u64>,
    ) -> Result<Option<EnvelopeOnBoard>, ClientError> {
        self.envelope_lookup(Some(endpoint), id, tree_size).await
    }

    async fn envelope_lookup(
        &self,
        target: Option<&str>,
        id: &EnvelopeId,
        tree_size: Option<u64>,
    ) -> Result<Option<EnvelopeOnBoard>, ClientError> {
        self.policy()?;
        let requested = tree_size.unwrap_or(0);
        let leaf = pb::get_inclusion_proof_request::Leaf::EnvelopeId(id.0.to_vec());
        let answer = match target {
            Some(endpoint) => self
                .call_once(endpoint, |client, timeout| {
                    inclusion_call(client, timeout, leaf, requested)
                })
                .await
                .map(|response| (endpoint.to_string(), response)),
            None => {
                self.call(false, |client, timeout| {
                    inclusion_call(client, timeout, leaf.clone(), requested)
                })
                .await
            }
        };
        let (endpoint, response) = match answer {
            Ok(answer) => answer,
            Err(e) if e.code() == Some(tonic::Code::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let index = response.leaf_index;
        let entry = self
            .call_once(&endpoint, |client, timeout| {
                entry_call(client, timeout, index)
            })
            .await?;
        let entry = entry_of_index(&endpoint, entry, index)?;
        if entry.leaf.envelope.id() != *id {
            return Err(ClientError::Verification(
                bboard_core::Error::InvalidReceipt(format!(
                    "{endpoint} says envelope {id} is entry {index}, but entry {index} holds envelope {}",
                    entry.leaf.envelope.id()
                )),
            ));
        }
        let inclusion = self
            .verify_inclusion_response(&endpoint, response, entry.leaf_hash, Some(index), requested)
            .await?;
        Ok(Some(EnvelopeOnBoard {
            entry,
            inclusion,
            endpoint,
        }))
    }

    /// Consistency proof from tree size `old_size` to `new_size` (0: the latest
    /// checkpoint), verified between two policy-verified checkpoints (none is needed
    /// for `old_size = 0`). Needs a policy.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<VerifiedConsistency, ClientError> {
        self.policy()?;
        let new_info = self
            .checkpoint(if new_size == 0 { None } else { Some(new_size) })
            .await?;
        let new_checkpoint = new_info.verified.ok_or(ClientError::NoPolicy)?;
        let new_size = new_checkpoint.checkpoint.size.0;
        let (old_root, old_checkpoint) = if old_size == 0 {
            (Blake3Hasher.empty_root(), None)
        } else {
            let old = self.checkpoint(Some(old_size)).await?;
            let old = old.verified.ok_or(ClientError::NoPolicy)?;
            (old.checkpoint.root, Some(old))
        };
        let proof = if old_size == 0 || old_size == new_size {
            // Both cases have an empty proof by definition; nothing to fetch.
            Vec::new()
        } else {
            let (endpoint, response) = self
                .call(false, |client, timeout| {
                    consistency_call(client, timeout, old_size, new_size)
                })
                .await?;
            consistency_from_proto(&endpoint, &response, old_size, new_size)?
        };
        verify_consistency(
            &Blake3Hasher,
            TreeSize(old_size),
            TreeSize(new_size),
            &old_root,
            &new_checkpoint.checkpoint.root,
            &proof,
        )
        .map_err(bboard_core::Error::from)?;
        Ok(VerifiedConsistency {
            old_size,
            old_root,
            old_checkpoint,
            new_checkpoint,
            proof,
        })
    }

    /// Entries from `from_index` on, then new entries and checkpoints as nodes apply
    /// them. The stream is opened with retries; once open it follows one node and
    /// ends (or yields an error) when that node goes away: call `watch` again from the
    /// next index to resume.
    pub async fn watch(&self, from_index: u64) -> Result<WatchStream, ClientError> {
        let (endpoint, stream) = self
            .call(false, |mut client, _timeout| async move {
                client.watch(pb::WatchRequest { from_index }).await
            })
            .await?;
        let policy = self.options().policy.clone();
        let events = stream.map(move |item| {
            let event = item.map_err(|status| ClientError::from_status(&endpoint, &status))?;
            event_from_proto(&endpoint, policy.as_ref(), event)
        });
        Ok(Box::pin(events))
    }

    /// A consistency proof from `old_size` to `new_size` as the node at `endpoint`
    /// serves it (one call, no retry), checked only for its sizes and hash lengths:
    /// the caller verifies it against roots it trusts (the auditor, against
    /// policy-verified checkpoints).
    pub(crate) async fn unverified_consistency_proof_on(
        &self,
        endpoint: &str,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, ClientError> {
        let response = self
            .call_once(endpoint, |client, timeout| {
                consistency_call(client, timeout, old_size, new_size)
            })
            .await?;
        consistency_from_proto(endpoint, &response, old_size, new_size)
    }
}

/// One `GetInclusionProof` call.
async fn inclusion_call(
    mut client: Grpc,
    timeout: Duration,
    leaf: pb::get_inclusion_proof_request::Leaf,
    tree_size: u64,
) -> Result<tonic::Response<pb::InclusionProofResponse>, tonic::Status> {
    let message = pb::GetInclusionProofRequest {
        leaf: Some(leaf),
        tree_size,
    };
    client.get_inclusion_proof(request(message, timeout)).await
}

/// One `GetEntry` call.
async fn entry_call(
    mut client: Grpc,
    timeout: Duration,
    index: u64,
) -> Result<tonic::Response<pb::EntryResponse>, tonic::Status> {
    client
        .get_entry(request(pb::GetEntryRequest { index }, timeout))
        .await
}

/// One `GetConsistencyProof` call.
async fn consistency_call(
    mut client: Grpc,
    timeout: Duration,
    old_size: u64,
    new_size: u64,
) -> Result<tonic::Response<pb::ConsistencyProofResponse>, tonic::Status> {
    let message = pb::GetConsistencyProofRequest { old_size, new_size };
    client
        .get_consistency_proof(request(message, timeout))
        .await
}
