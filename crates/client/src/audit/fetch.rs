//! Everything the audit asks the nodes: latest checkpoints, each node's own
//! checkpoints of chosen sizes, consistency proofs and roots, every entry (`--full`),
//! and the censorship alarms with the facts about their envelopes.
//!
//! Nothing here decides anything: what a node answers, or why it did not, goes into an
//! [`Observation`] or a [`ProofBook`] for the judge. A node that does not answer costs
//! its timeout and nothing else; the next node is asked.

use std::collections::BTreeMap;
use std::time::Duration;

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint};
use bboard_merkle::{Blake3Hasher, MemoryNodeStore, MerkleTree};

use super::judge::{Needs, Observation, OwnCheckpoint, ProofBook, Tree};
use crate::censorship::{check_alarms, collect, list_alarms, AlarmFacts, CheckedAlarm};
use crate::{BoardClient, CheckpointInfo, ClientError, ClientOptions};

/// One client per endpoint, each talking to that node alone.
pub(super) type Clients = BTreeMap<String, BoardClient>;

/// How long the audit waits for each node.
pub(super) fn audit_options() -> ClientOptions {
    ClientOptions {
        per_request_timeout: Duration::from_secs(5),
        // One node per client: retrying the same unreachable node is pointless.
        total_timeout: Duration::from_secs(10),
        policy: None,
        ..ClientOptions::default()
    }
}

/// A checkpoint answer as an observation records it.
fn note_of(answer: Result<CheckpointInfo, ClientError>) -> Result<String, String> {
    answer
        .map(|info| info.signed.to_note())
        .map_err(|e| e.to_string())
}

/// Every endpoint's latest checkpoint, and a client for each endpoint that could be
/// connected to. `options` must carry no policy: a node's own signature alone is
/// what the judge needs to see.
pub(super) async fn latest(
    endpoints: &[String],
    options: &ClientOptions,
) -> (Vec<Observation>, Clients) {
    let mut observations = Vec::new();
    let mut clients = Clients::new();
    for endpoint in endpoints {
        let note = match BoardClient::connect(vec![endpoint.clone()], options.clone()).await {
            Ok(client) => {
                let note = note_of(client.checkpoint(None).await);
                clients.insert(endpoint.clone(), client);
                note
            }
            Err(e) => Err(e.to_string()),
        };
        observations.push(Observation {
            endpoint: endpoint.clone(),
            note,
            own: Vec::new(),
        });
    }
    (observations, clients)
}

/// Fills [`Observation::own`] of every endpoint that could be connected to.
pub(super) async fn own_checkpoints(
    observations: &mut [Observation],
    clients: &Clients,
    reference_size: Option<u64>,
) {
    for observation in observations {
        if let Some(client) = clients.get(&observation.endpoint) {
            observation.own = own(client, &observation.endpoint, reference_size).await;
        }
    }
}

/// The checkpoints of `endpoint` that show what its own key signs now: of the
/// reference size (when it has applied that far) and of the size it has applied (from
/// its `Status`). A node that cannot tell its size is asked for the reference size
/// only; a node that has not applied the reference size is not asked for it.
async fn own(
    client: &BoardClient,
    endpoint: &str,
    reference_size: Option<u64>,
) -> Vec<OwnCheckpoint> {
    let applied = client.status(endpoint).await.ok().map(|s| s.tree_size);
    let mut sizes = Vec::new();
    if let Some(n) = reference_size.filter(|&n| n > 0) {
        if applied.is_none_or(|applied| applied >= n) {
            sizes.push(n);
        }
    }
    if let Some(applied) = applied.filter(|&a| a > 0 && Some(a) != reference_size) {
        sizes.push(applied);
    }
    let mut own = Vec::new();
    for size in sizes {
        let note = note_of(client.checkpoint(Some(size)).await);
        own.push(OwnCheckpoint { size, note });
    }
    own
}

/// The clients of the endpoints in `ask`, in order, skipping those not connected.
fn asked<'c>(
    ask: &'c [String],
    clients: &'c Clients,
) -> impl Iterator<Item = (&'c str, &'c BoardClient)> {
    ask.iter()
        .filter_map(|endpoint| Some((endpoint.as_str(), clients.get(endpoint)?)))
}

/// The proofs and roots of `needs`, each from the first node in its list that serves
/// it, and with `full` the tree of every entry up to [`Needs::max_size`].
pub(super) async fn proof_book(
    needs: &Needs,
    clients: &Clients,
    endpoints: &[String],
    full: bool,
    options: &ClientOptions,
) -> ProofBook {
    let mut book = ProofBook::default();
    for (old_size, new_size, ask) in &needs.proofs {
        for (endpoint, client) in asked(ask, clients) {
            // Unverified here: the judge checks it against signed roots.
            let proof = client
                .unverified_consistency_proof_on(endpoint, *old_size, *new_size)
                .await;
            if let Ok(proof) = proof {
                book.proofs.insert((*old_size, *new_size), proof);
                break;
            }
        }
    }
    for (size, ask) in &needs.roots {
        for (_, client) in asked(ask, clients) {
            if let Ok(info) = client.checkpoint(Some(*size)).await {
                book.roots.insert(*size, info.signed.checkpoint().root);
                break;
            }
        }
    }
    if full && needs.max_size > 0 {
        book.tree = download_tree(needs, endpoints, options).await;
    }
    book
}

/// The tree of every entry up to `needs.max_size`, as far as the nodes serve them;
/// `None` when no client could be built.
async fn download_tree(
    needs: &Needs,
    endpoints: &[String],
    options: &ClientOptions,
) -> Option<Tree> {
    // Prefer nodes serving the cosigned checkpoint; any node will do, since the
    // recomputed roots are compared with signed ones.
    let mut order: Vec<String> = Vec::new();
    let preferred = needs.proofs.iter().flat_map(|(_, _, ask)| ask.iter());
    for endpoint in preferred.chain(endpoints) {
        if !order.contains(endpoint) {
            order.push(endpoint.clone());
        }
    }
    let client = BoardClient::connect(order, options.clone()).await.ok()?;
    let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
    // Entries come in pages; get_entries checks each entry's hash and signature.
    const CHUNK: u64 = 4096;
    let mut next = 0;
    while next < needs.max_size {
        let want = CHUNK.min(needs.max_size - next);
        let Ok(entries) = client.get_entries(next, want).await else {
            break;
        };
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            if tree.append(entry.leaf_hash).is_err() {
                return Some(tree);
            }
            next += 1;
        }
    }
    Some(tree)
}

/// What the nodes said about censorship.
pub(super) struct Alarms {
    /// Nodes that could not be asked, in the order met.
    pub warnings: Vec<String>,
    /// The checked alarms and the facts about their envelopes; `None` when there is
    /// nothing to judge (no alarm, or no client).
    pub found: Option<(Vec<CheckedAlarm>, AlarmFacts)>,
}

/// Every node's censorship alarms, checked, and for those alarms what the board
/// says about their envelopes (see [`crate::censorship::collect`]), read against the
/// cosigned `reference` note when there is one.
pub(super) async fn alarms(
    endpoints: &[String],
    policy: &CosignaturePolicy,
    options: &ClientOptions,
    reference: Option<&str>,
) -> Alarms {
    let mut warnings = Vec::new();
    let options = ClientOptions {
        policy: Some(policy.clone()),
        ..options.clone()
    };
    let client = match BoardClient::connect(endpoints.to_vec(), options).await {
        Ok(client) => client,
        Err(e) => {
            warnings.push(format!("censorship alarms not checked: {e}"));
            return Alarms {
                warnings,
                found: None,
            };
        }
    };
    let served = list_alarms(&client, endpoints, false).await;
    for node in &served {
        if let Err(reason) = &node.alarms {
            warnings.push(format!(
                "{}: could not list its censorship alarms: {reason}",
                node.endpoint
            ));
        }
    }
    let checked = check_alarms(policy, &served);
    if checked.is_empty() {
        return Alarms {
            warnings,
            found: None,
        };
    }
    let reference = reference
        .and_then(|note| SignedCheckpoint::parse(note).ok())
        .map(|signed| (signed.checkpoint().size.0, signed.checkpoint().root));
    let facts = collect(&client, &checked, reference).await;
    Alarms {
        warnings,
        found: Some((checked, facts)),
    }
}
