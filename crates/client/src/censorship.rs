//! Censorship, as an auditor sees it: every node's signed alarms (`ListAlarms`),
//! checked, and for each missing envelope the board's own answer to "is it there?".
//!
//! Used by `bboard audit` (through [`crate::audit::audit_with_options`], which adds the
//! findings to its report), by `bboard alarms`, and by `bboard verify-evidence
//! --endpoint` ([`check_censorship_evidence`]).
//!
//! As in the rest of the audit, the judgement is pure and testable without a network:
//! [`collect`] fetches the alarms and the facts about their envelopes (on the board or
//! not, on each node; the signer's registration), [`judge`] turns them into findings,
//! evidence files and warnings. Nothing a node serves is trusted: alarms are verified
//! with [`verify_alarm`], presence on the board only counts with an inclusion proof
//! verified against a k-of-n checkpoint, registrations only when the entries read hash
//! to the cosigned root.

use std::collections::BTreeMap;

use bboard_core::alarm::{verify_alarm, AlarmCheck};
use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::envelope::EnvelopeId;
use bboard_core::evidence::{verify_evidence, Evidence, EvidenceError, Verdict};
use bboard_core::pb;
use bboard_merkle::{Blake3Hasher, Hash, MemoryNodeStore, MerkleTree, TreeSize};

use crate::audit::Finding;
use crate::retry::request;
use crate::{BoardClient, ClientError};

/// The alarms one node served, or why they could not be fetched.
#[derive(Clone, Debug)]
pub struct ServedAlarms {
    /// The node's address.
    pub endpoint: String,
    /// Its alarm records.
    pub alarms: Result<Vec<pb::AlarmRecord>, String>,
}

/// The alarms of every node given (`include_cleared`: also those that cleared), one
/// `ListAlarms` call per node, no retry.
pub async fn list_alarms(
    client: &BoardClient,
    endpoints: &[String],
    include_cleared: bool,
) -> Vec<ServedAlarms> {
    let mut served = Vec::new();
    for endpoint in endpoints {
        let alarms = client
            .call_once(endpoint, |mut grpc, timeout| async move {
                let message = pb::ListAlarmsRequest { include_cleared };
                grpc.list_alarms(request(message, timeout)).await
            })
            .await
            .map(|response| response.alarms)
            .map_err(|e| e.to_string());
        served.push(ServedAlarms {
            endpoint: endpoint.clone(),
            alarms,
        });
    }
    served
}

/// One alarm record, checked.
#[derive(Clone, Debug)]
pub struct CheckedAlarm {
    /// The node that served it.
    pub endpoint: String,
    /// The record as served.
    pub record: pb::AlarmRecord,
    /// The verified alarm, or why it does not verify.
    pub check: Result<AlarmCheck, String>,
}

/// Verifies every alarm record with [`verify_alarm`].
pub fn check_alarms(policy: &CosignaturePolicy, served: &[ServedAlarms]) -> Vec<CheckedAlarm> {
    let mut checked = Vec::new();
    for node in served {
        let Ok(records) = &node.alarms else { continue };
        for record in records {
            let check = match &record.alarm {
                None => Err("record without an alarm".to_string()),
                Some(alarm) => verify_alarm(alarm, policy).map_err(|e| e.to_string()),
            };
            checked.push(CheckedAlarm {
                endpoint: node.endpoint.clone(),
                record: record.clone(),
                check,
            });
        }
    }
    checked
}

/// Whether a key was registered on the cosigned board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// A `RegisterKey` for it is on the board (and no `RevokeKey`).
    Registered {
        /// Index of the `RegisterKey` entry.
        index: u64,
        /// Its role (`ROLE_TERMINAL`, …).
        role: String,
    },
    /// Registered at `registered`, revoked at `revoked`.
    Revoked {
        /// Index of the `RegisterKey`.
        registered: u64,
        /// Index of the `RevokeKey`.
        revoked: u64,
    },
    /// No `RegisterKey` for it in the cosigned board.
    NotRegistered,
}

/// What the board says about the alarms' envelopes (see [`collect`]).
#[derive(Clone, Debug)]
pub struct AlarmFacts {
    /// Envelopes proven on the board: index, tree size of the proof, node.
    pub on_board: BTreeMap<EnvelopeId, (u64, u64, String)>,
    /// Nodes that said the envelope is not on their board.
    pub absent_on: BTreeMap<EnvelopeId, Vec<String>>,
    /// Registrations of the signers, when the board could be read and checked.
    pub registrations: Result<BTreeMap<[u8; 32], Registration>, String>,
}

/// Asks every node whether each alarmed envelope is on its board (a verified
/// inclusion proof, or `NOT_FOUND`), and reads the cosigned board (up to
/// `reference_size`, checked against `reference_root`) for the signers'
/// registrations. `client` must have a policy and list the nodes to ask.
pub async fn collect(
    client: &BoardClient,
    alarms: &[CheckedAlarm],
    reference: Option<(u64, Hash)>,
) -> AlarmFacts {
    let mut facts = AlarmFacts {
        on_board: BTreeMap::new(),
        absent_on: BTreeMap::new(),
        registrations: Err("no cosigned checkpoint to read the board against".into()),
    };
    let mut ids: Vec<EnvelopeId> = Vec::new();
    let mut signers: Vec<[u8; 32]> = Vec::new();
    for check in alarms.iter().filter_map(|a| a.check.as_ref().ok()) {
        let id = check.envelope.id();
        if !ids.contains(&id) {
            ids.push(id);
        }
        let signer = *check.envelope.signer().as_bytes();
        if !signers.contains(&signer) {
            signers.push(signer);
        }
    }
    if ids.is_empty() {
        facts.registrations = Ok(BTreeMap::new());
        return facts;
    }
    for id in &ids {
        for endpoint in client.endpoints() {
            match client
                .inclusion_proof_by_envelope_id_on(&endpoint, id, None)
                .await
            {
                Ok(Some(found)) => {
                    facts.on_board.insert(
                        *id,
                        (
                            found.inclusion.leaf_index,
                            found.inclusion.tree_size,
                            endpoint,
                        ),
                    );
                    break;
                }
                Ok(None) => facts.absent_on.entry(*id).or_default().push(endpoint),
                Err(_) => {}
            }
        }
    }
    if let Some((size, root)) = reference {
        facts.registrations = registrations(client, &signers, size, &root).await;
    }
    facts
}

/// Reads entries `0..size`, checks they hash to `root`, and finds each key's
/// `RegisterKey` / `RevokeKey`.
async fn registrations(
    client: &BoardClient,
    keys: &[[u8; 32]],
    size: u64,
    root: &Hash,
) -> Result<BTreeMap<[u8; 32], Registration>, String> {
    use pb::entry_body::Kind;
    let mut found: BTreeMap<[u8; 32], Registration> = keys
        .iter()
        .map(|k| (*k, Registration::NotRegistered))
        .collect();
    let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
    const PAGE: u64 = 4096;
    let mut next = 0;
    while next < size {
        let entries = client
            .get_entries(next, PAGE.min(size - next))
            .await
            .map_err(|e| format!("reading the board: {e}"))?;
        if entries.is_empty() {
            return Err(format!(
                "the board ended at {next}, expected {size} entries"
            ));
        }
        for entry in entries {
            tree.append(entry.leaf_hash)
                .map_err(|e| format!("recomputing the tree: {e}"))?;
            let key_of = |bytes: &[u8]| <[u8; 32]>::try_from(bytes).ok();
            match entry.leaf.envelope.body().ok().and_then(|b| b.kind) {
                Some(Kind::RegisterKey(register)) => {
                    if let Some(slot) = key_of(&register.public_key).and_then(|k| found.get_mut(&k))
                    {
                        *slot = Registration::Registered {
                            index: entry.index,
                            role: pb::Role::try_from(register.role).map_or_else(
                                |_| register.role.to_string(),
                                |r| r.as_str_name().to_string(),
                            ),
                        };
                    }
                }
                Some(Kind::RevokeKey(revoke)) => {
                    if let Some(slot) = key_of(&revoke.public_key).and_then(|k| found.get_mut(&k)) {
                        if let Registration::Registered { index, .. } = slot {
                            *slot = Registration::Revoked {
                                registered: *index,
                                revoked: entry.index,
                            };
                        }
                    }
                }
                _ => {}
            }
            next += 1;
        }
    }
    let computed = tree
        .root_at(TreeSize(size))
        .map_err(|e| format!("recomputing the tree: {e}"))?;
    if computed != *root {
        return Err(format!(
            "the entries read hash to {computed} at size {size}, not to the cosigned root {root}"
        ));
    }
    Ok(found)
}

/// What the alarms amount to.
#[derive(Clone, Debug, Default)]
pub struct AlarmJudgement {
    /// Censored entries (one per envelope) and invalid alarms.
    pub findings: Vec<Finding>,
    /// Censorship evidence files, each accepted by [`verify_evidence`];
    /// [`Finding::evidence`] indexes into this list.
    pub evidence: Vec<Evidence>,
    /// Alarms that are not findings: stale (the entry is on the board), unchecked.
    pub warnings: Vec<String>,
}

/// Judges checked alarms (pure). A valid alarm whose envelope is absent from the board
/// and whose signer is registered is a censored entry, reported once per envelope
/// with the first alarm as evidence (with `reference`, the canonical k-of-n note of the
/// audit); an alarm that does not verify is a finding against the node that served
/// it; an alarm about an envelope on the board, or by an unregistered or revoked
/// signer, is a warning.
pub fn judge(
    policy: &CosignaturePolicy,
    reference: Option<&str>,
    alarms: &[CheckedAlarm],
    facts: &AlarmFacts,
) -> AlarmJudgement {
    let mut judgement = AlarmJudgement::default();
    let mut by_envelope: BTreeMap<EnvelopeId, Vec<&CheckedAlarm>> = BTreeMap::new();
    for alarm in alarms {
        match &alarm.check {
            Err(reason) => judgement.findings.push(Finding {
                message: format!(
                    "{} served a censorship alarm that does not verify: {reason}",
                    alarm.endpoint
                ),
                evidence: None,
                culprits: Vec::new(),
            }),
            Ok(check) if !alarm.record.cleared => by_envelope
                .entry(check.envelope.id())
                .or_default()
                .push(alarm),
            Ok(_) => {}
        }
    }
    for (id, raised) in by_envelope {
        let Some(first) = raised.first() else {
            continue;
        };
        let Ok(check) = &first.check else { continue };
        let nodes: Vec<&str> = {
            let mut names: Vec<&str> = raised
                .iter()
                .filter_map(|a| a.check.as_ref().ok())
                .map(|c| c.raised_by.name())
                .collect();
            names.dedup();
            names
        };
        let signer = hex::encode(check.envelope.signer().as_bytes());
        if let Some((index, size, endpoint)) = facts.on_board.get(&id) {
            judgement.warnings.push(format!(
                "alarm by {} about envelope {id} is stale: the envelope is on the board at index {index} (proven in the cosigned tree of size {size} by {endpoint})",
                nodes.join(", ")
            ));
            continue;
        }
        let registration = match &facts.registrations {
            Ok(map) => map.get(check.envelope.signer().as_bytes()).cloned(),
            Err(reason) => {
                judgement.warnings.push(format!(
                    "could not check the registration of {signer}: {reason}"
                ));
                None
            }
        };
        let registered = match &registration {
            Some(Registration::Registered { index, role }) => {
                format!("registered at index {index} as {role}")
            }
            Some(Registration::Revoked {
                registered,
                revoked,
            }) => {
                judgement.warnings.push(format!(
                    "alarm by {} about envelope {id}: its signer {signer} was registered at index {registered} but revoked at index {revoked}; leaving it out is not censorship",
                    nodes.join(", ")
                ));
                continue;
            }
            Some(Registration::NotRegistered) => {
                judgement.warnings.push(format!(
                    "alarm by {} about envelope {id}: its signer {signer} is not registered on the cosigned board; leaving it out is not censorship",
                    nodes.join(", ")
                ));
                continue;
            }
            None => "registration not checked".to_string(),
        };
        let absent_on = facts.absent_on.get(&id).cloned().unwrap_or_default();
        if absent_on.is_empty() {
            judgement.warnings.push(format!(
                "alarm by {} about envelope {id}: no node answered whether it is on the board",
                nodes.join(", ")
            ));
        }
        let statement = &check.statement;
        let message = format!(
            "CENSORED: envelope {id} signed by {signer} ({registered}) was forwarded to leader {} ({}) and is not on the board (absent on {}); alarms by {}",
            statement.forwarded_to_node,
            statement.forwarded_to_address,
            if absent_on.is_empty() {
                "no node asked".to_string()
            } else {
                absent_on.join(", ")
            },
            nodes.join(", ")
        );
        let candidate = reference
            .zip(first.record.alarm.as_ref())
            .map(|(note, alarm)| Evidence::censorship(policy.origin(), alarm, note.to_string()));
        match candidate.filter(|e| verify_evidence(e, policy).is_ok()) {
            Some(evidence) => {
                judgement.evidence.push(evidence);
                judgement.findings.push(Finding {
                    message,
                    evidence: Some(judgement.evidence.len() - 1),
                    culprits: Vec::new(),
                });
            }
            None => judgement.findings.push(Finding {
                message: format!("{message} (no transferable evidence: no cosigned checkpoint covers the board the alarm saw)"),
                evidence: None,
                culprits: Vec::new(),
            }),
        }
    }
    judgement
}

/// What the online check of censorship evidence found: the evidence holds and no node
/// has the envelope.
#[derive(Clone, Debug)]
pub struct CensorshipConfirmed {
    /// The offline verdict ([`verify_evidence`]).
    pub verdict: Verdict,
    /// Nodes that answered that the envelope is not on their board.
    pub absent_on: Vec<String>,
    /// Nodes that could not be asked, with why.
    pub unanswered: Vec<(String, String)>,
}

/// Why censorship evidence does not hold online.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CensorshipCheckError {
    /// The evidence does not verify offline.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// The evidence is of another kind.
    #[error("this is {0} evidence, not censorship evidence")]
    NotCensorship(&'static str),
    /// The envelope is on the board: the alarm is stale, nothing was censored.
    #[error("rejected: envelope {envelope_id} is on the board at index {index} (inclusion proven in the cosigned tree of size {tree_size}, served by {endpoint})")]
    OnBoard {
        /// The envelope.
        envelope_id: EnvelopeId,
        /// Its leaf index.
        index: u64,
        /// Size of the k-of-n checkpoint the proof verifies against.
        tree_size: u64,
        /// The node that served the proof.
        endpoint: String,
    },
    /// No node answered the question.
    #[error("no node answered whether envelope {envelope_id} is on the board: {reasons}")]
    NoAnswer {
        /// The envelope.
        envelope_id: EnvelopeId,
        /// Each node's failure.
        reasons: String,
    },
    /// The client has no policy.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// `bboard verify-evidence --endpoint`: checks censorship evidence offline
/// ([`verify_evidence`] with the client's policy), then asks every configured node
/// whether the envelope is on the board. An inclusion proof that verifies against a
/// k-of-n checkpoint rejects the evidence ("envelope … is on the board at index N");
/// otherwise the evidence is confirmed with the nodes that said the envelope is absent.
pub async fn check_censorship_evidence(
    client: &BoardClient,
    evidence: &Evidence,
) -> Result<CensorshipConfirmed, CensorshipCheckError> {
    let policy = client
        .options()
        .policy
        .as_ref()
        .ok_or(ClientError::NoPolicy)?;
    if !matches!(evidence, Evidence::Censorship { .. }) {
        return Err(CensorshipCheckError::NotCensorship(evidence.kind()));
    }
    let verdict = verify_evidence(evidence, policy)?;
    let Verdict::Censorship { envelope_id, .. } = &verdict else {
        return Err(CensorshipCheckError::NotCensorship(evidence.kind()));
    };
    let envelope_id = *envelope_id;
    let mut absent_on = Vec::new();
    let mut unanswered = Vec::new();
    for endpoint in client.endpoints() {
        match client
            .inclusion_proof_by_envelope_id_on(&endpoint, &envelope_id, None)
            .await
        {
            Ok(Some(found)) => {
                return Err(CensorshipCheckError::OnBoard {
                    envelope_id,
                    index: found.inclusion.leaf_index,
                    tree_size: found.inclusion.tree_size,
                    endpoint,
                })
            }
            Ok(None) => absent_on.push(endpoint),
            Err(e) => unanswered.push((endpoint, e.to_string())),
        }
    }
    if absent_on.is_empty() {
        return Err(CensorshipCheckError::NoAnswer {
            envelope_id,
            reasons: unanswered
                .iter()
                .map(|(e, r)| format!("{e}: {r}"))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(CensorshipConfirmed {
        verdict,
        absent_on,
        unanswered,
    })
}

#[cfg(test)]
mod tests {
    use bboard_core::alarm::sign_alarm;
    use bboard_core::checkpoint::{Checkpoint, SignedCheckpoint};
    use bboard_core::envelope::SignedEnvelope;
    use bboard_merkle::{Blake3Hasher, TreeHasher};
    use bboard_testkit::fixture_node as node;
    use ed25519_dalek::SigningKey;

    use super::*;

    const ORIGIN: &str = "bboard.test/censorship";

    fn policy() -> CosignaturePolicy {
        bboard_testkit::fixture_policy(ORIGIN)
    }

    fn terminal() -> SigningKey {
        SigningKey::from_bytes(&[50; 32])
    }

    fn envelope() -> SignedEnvelope {
        SignedEnvelope::sign_body(
            &pb::EntryBody {
                election_id: String::new(),
                created_unix_ms: 1,
                kind: Some(pb::entry_body::Kind::Note(pb::Note {
                    text: "dropped".into(),
                })),
            },
            &terminal(),
        )
    }

    /// A cosigned note of a 3-leaf board.
    fn reference() -> String {
        let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
        for i in 0..3u8 {
            tree.append(Blake3Hasher.hash_leaf(&[i])).unwrap();
        }
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: TreeSize(3),
            root: tree.root_at(TreeSize(3)).unwrap(),
        };
        let mut signed = SignedCheckpoint::sign(checkpoint, &node(1)).unwrap();
        signed.add_signature(&node(2)).unwrap();
        signed.to_note()
    }

    fn alarm_by(i: u8) -> ServedAlarms {
        let statement = pb::AlarmStatement {
            origin: ORIGIN.into(),
            node_name: format!("node-{i}"),
            envelope: Some(envelope().to_proto()),
            received_unix_ms: 1,
            deadline_unix_ms: 2,
            raised_unix_ms: 3,
            board_size: 3,
            board_root: vec![0; 32],
            forwarded_to_node: 1,
            forwarded_to_address: "127.0.0.1:1".into(),
        };
        ServedAlarms {
            endpoint: format!("node-{i}.example:7000"),
            alarms: Ok(vec![pb::AlarmRecord {
                alarm: Some(sign_alarm(&statement, &node(i))),
                ..Default::default()
            }]),
        }
    }

    fn facts(registration: Registration) -> AlarmFacts {
        AlarmFacts {
            on_board: BTreeMap::new(),
            absent_on: BTreeMap::from([(envelope().id(), vec!["node-2.example:7000".into()])]),
            registrations: Ok(BTreeMap::from([(
                *terminal().verifying_key().as_bytes(),
                registration,
            )])),
        }
    }

    fn registered() -> Registration {
        Registration::Registered {
            index: 1,
            role: "ROLE_TERMINAL".into(),
        }
    }

    #[test]
    fn an_absent_registered_envelope_is_one_finding_with_evidence() {
        let p = policy();
        let alarms = check_alarms(&p, &[alarm_by(2), alarm_by(3)]);
        assert_eq!(alarms.len(), 2);
        let judgement = judge(&p, Some(&reference()), &alarms, &facts(registered()));
        assert_eq!(judgement.findings.len(), 1, "{judgement:?}");
        let finding = &judgement.findings[0];
        assert!(finding.message.contains("CENSORED"), "{}", finding.message);
        assert!(
            finding.message.contains("node-2, node-3"),
            "{}",
            finding.message
        );
        assert!(
            finding.message.contains("ROLE_TERMINAL"),
            "{}",
            finding.message
        );
        let evidence = &judgement.evidence[finding.evidence.unwrap()];
        assert!(matches!(
            verify_evidence(evidence, &p).unwrap(),
            Verdict::Censorship { ref raised_by, .. } if raised_by == "node-2"
        ));
        // Without a cosigned checkpoint: still a finding, without evidence.
        let judgement = judge(&p, None, &alarms, &facts(registered()));
        assert_eq!(judgement.findings[0].evidence, None);
    }

    #[test]
    fn stale_unregistered_revoked_and_cleared_alarms_are_not_censorship() {
        let p = policy();
        let alarms = check_alarms(&p, &[alarm_by(2)]);
        let mut on_board = facts(registered());
        on_board
            .on_board
            .insert(envelope().id(), (2, 3, "node-1.example:7000".into()));
        let judgement = judge(&p, Some(&reference()), &alarms, &on_board);
        assert!(judgement.findings.is_empty());
        assert!(judgement.warnings[0].contains("is on the board at index 2"));
        for registration in [
            Registration::NotRegistered,
            Registration::Revoked {
                registered: 1,
                revoked: 2,
            },
        ] {
            let judgement = judge(&p, Some(&reference()), &alarms, &facts(registration));
            assert!(judgement.findings.is_empty());
            assert!(judgement.warnings[0].contains("not censorship"));
        }
        let mut cleared = alarm_by(2);
        if let Ok(records) = &mut cleared.alarms {
            records[0].cleared = true;
        }
        let judgement = judge(
            &p,
            Some(&reference()),
            &check_alarms(&p, &[cleared]),
            &facts(registered()),
        );
        assert!(judgement.findings.is_empty() && judgement.warnings.is_empty());
    }

    #[test]
    fn a_forged_alarm_is_a_finding_against_the_node_serving_it() {
        let p = policy();
        let mut forged = alarm_by(2);
        if let Ok(records) = &mut forged.alarms {
            if let Some(alarm) = records[0].alarm.as_mut() {
                alarm.signature[0] ^= 1;
            }
        }
        let judgement = judge(
            &p,
            Some(&reference()),
            &check_alarms(&p, &[forged]),
            &facts(registered()),
        );
        assert_eq!(judgement.findings.len(), 1);
        assert!(judgement.findings[0].message.contains("does not verify"));
        assert!(judgement.evidence.is_empty());
    }
}
