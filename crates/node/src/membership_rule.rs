//! The membership rule, as a node applies it to Raft: a change of the cluster's
//! membership takes effect only when the board's **latest** admitted
//! `MembershipAuthorisation` covers it. The board admits an authorisation only with
//! the signatures of admins of a majority of organisations ([`bboard_core::membership`]),
//! so no single organisation (the leader's included) can add, remove or re-pin a node.
//!
//! Two places apply it:
//! - the leader's Admin service, before it proposes the change ([`crate::admin`]);
//! - every follower's Raft service, before it appends a replicated membership entry
//!   ([`crate::network::RaftService`]): a check on the leader alone would be useless
//!   against the leader's own organisation.
//!
//! Only the latest authorisation counts, so each one is used for one change: a later
//! authorisation supersedes it, and an old one cannot be replayed after the membership
//! moved on. The check is made against the board as applied just before the entry,
//! which is the same on every node, so a node replaying the log from scratch judges each
//! historical change by the authorisation that was latest at that point of the log.
//!
//! What it does not cover: the membership inside a snapshot (a learner installing one
//! takes it with the board the other nodes vouched for), and the bootstrap membership
//! at log index 0 (written by `node run --init` before any board exists).

use bboard_core::board::{BoardView, LATEST_AUTHORISATION_STATE};
use bboard_core::membership::MembershipChange;
use bboard_core::pb;
use openraft::Membership;

use crate::peer::Fingerprint;
use crate::types::{BoardNode, NodeId};

/// Why the latest authorisation could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MembershipRuleError {
    /// The board store failed.
    #[error("reading the board's latest membership authorisation: {0}")]
    Store(#[from] crate::board_store::StoreError),
    /// The stored command does not decode (the board admitted it, so the store is
    /// corrupt).
    #[error("the board's latest membership authorisation does not decode: {0}")]
    Corrupt(String),
}

/// The change the board's latest admitted authorisation covers, if any.
pub fn latest_authorised<B>(board: &B) -> Result<Option<MembershipChange>, MembershipRuleError>
where
    B: BoardView<Error = crate::board_store::StoreError>,
{
    let Some(command) = board.state(LATEST_AUTHORISATION_STATE)? else {
        return Ok(None);
    };
    let authorisation = pb::MembershipAuthorisation {
        command,
        signatures: Vec::new(),
    };
    bboard_core::membership::change_of(&authorisation)
        .map(|(_, change)| Some(change))
        .map_err(|e| MembershipRuleError::Corrupt(e.to_string()))
}

/// The member an authorised `AddLearner` names, as a Raft membership records it
/// (fingerprint in its canonical spelling); `None` when the pin is malformed.
pub fn member_of(add: &pb::AddLearnerCommand) -> Option<BoardNode> {
    let fingerprint = Fingerprint::parse(&add.tls_fingerprint).ok()?;
    Some(BoardNode {
        addr: add.address.clone(),
        peer_addr: add.peer_address.clone(),
        tls_fingerprint: fingerprint.to_string(),
    })
}

/// Whether `change` turns the membership `before` into `after`, as openraft writes it:
/// - `AddLearner`: the same voter configs, and the same nodes but for the new one,
///   which is exactly the authorised member (addresses and pin);
/// - `ChangeMembership`: the authorised voters as the last config (after a joint
///   config whose first part is one of `before`'s), and no node added or re-pinned.
pub fn covers(
    change: &MembershipChange,
    before: &Membership<NodeId, BoardNode>,
    after: &Membership<NodeId, BoardNode>,
) -> bool {
    let others_unchanged = |except: Option<NodeId>| {
        let others = |m: &Membership<NodeId, BoardNode>| {
            m.nodes()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(id, node)| (*id, node.clone()))
                .collect::<Vec<_>>()
        };
        others(before) == others(after)
    };
    match change {
        MembershipChange::AddLearner(add) => {
            let Some(member) = member_of(add) else {
                return false;
            };
            after.get_joint_config() == before.get_joint_config()
                && after.get_node(&add.node_id) == Some(&member)
                && others_unchanged(Some(add.node_id))
        }
        MembershipChange::ChangeMembership(voters) => {
            let wanted: std::collections::BTreeSet<NodeId> =
                voters.voter_ids.iter().copied().collect();
            let configs = after.get_joint_config();
            let joint_ok = match configs.len() {
                1 => true,
                2 => before.get_joint_config().contains(&configs[0]),
                _ => false,
            };
            let no_new_node = after
                .nodes()
                .all(|(id, node)| before.get_node(id) == Some(node));
            joint_ok && configs.last() == Some(&wanted) && no_new_node
        }
    }
}

/// A short description of a membership, for messages.
pub fn describe(membership: &Membership<NodeId, BoardNode>) -> String {
    format!(
        "voters {:?}, nodes {:?}",
        membership.get_joint_config(),
        membership.nodes().map(|(id, _)| *id).collect::<Vec<_>>()
    )
}

/// Whether an operator's `requested` change is the `authorised` one (the leader's check).
pub fn same_change(authorised: &MembershipChange, requested: &MembershipChange) -> bool {
    match (authorised, requested) {
        (MembershipChange::AddLearner(a), MembershipChange::AddLearner(r)) => {
            a.node_id == r.node_id && member_of(a).is_some() && member_of(a) == member_of(r)
        }
        (MembershipChange::ChangeMembership(a), MembershipChange::ChangeMembership(r)) => {
            let set = |v: &[NodeId]| v.iter().copied().collect::<std::collections::BTreeSet<_>>();
            set(&a.voter_ids) == set(&r.voter_ids)
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn node(n: u64) -> BoardNode {
        BoardNode {
            addr: format!("127.0.0.1:71{n:02}"),
            peer_addr: format!("127.0.0.1:72{n:02}"),
            tls_fingerprint: format!("sha256:{}", format!("{n:02x}").repeat(32)),
        }
    }

    fn membership(configs: &[&[u64]], nodes: &[u64]) -> Membership<NodeId, BoardNode> {
        let configs: Vec<BTreeSet<u64>> = configs
            .iter()
            .map(|c| c.iter().copied().collect())
            .collect();
        let nodes: BTreeMap<u64, BoardNode> = nodes.iter().map(|n| (*n, node(*n))).collect();
        Membership::new(configs, nodes)
    }

    fn add(n: u64) -> MembershipChange {
        let node = node(n);
        MembershipChange::AddLearner(pb::AddLearnerCommand {
            node_id: n,
            address: node.addr,
            peer_address: node.peer_addr,
            tls_fingerprint: node.tls_fingerprint,
        })
    }

    fn voters(v: &[u64]) -> MembershipChange {
        MembershipChange::ChangeMembership(pb::ChangeMembershipCommand {
            voter_ids: v.to_vec(),
        })
    }

    #[test]
    fn an_authorised_learner_is_added_with_exactly_its_identity() {
        let before = membership(&[&[1, 2, 3]], &[1, 2, 3]);
        let after = membership(&[&[1, 2, 3]], &[1, 2, 3, 4]);
        assert!(covers(&add(4), &before, &after));
        // Another node, another pin, or a changed voter set is not what was signed.
        assert!(!covers(&add(5), &before, &after));
        let mut repinned = after.clone();
        let mut nodes: BTreeMap<u64, BoardNode> =
            repinned.nodes().map(|(id, n)| (*id, n.clone())).collect();
        nodes.get_mut(&4).unwrap().tls_fingerprint = node(9).tls_fingerprint;
        repinned = Membership::new(repinned.get_joint_config().clone(), nodes);
        assert!(!covers(&add(4), &before, &repinned));
        assert!(!covers(
            &add(4),
            &before,
            &membership(&[&[1, 2, 3, 4]], &[1, 2, 3, 4])
        ));
        assert!(!covers(&voters(&[1, 2, 3]), &before, &after));
    }

    #[test]
    fn an_authorised_voter_change_covers_its_joint_and_final_configs_only() {
        let before = membership(&[&[1, 2, 3]], &[1, 2, 3]);
        let joint = membership(&[&[1, 2, 3], &[1]], &[1, 2, 3]);
        let last = membership(&[&[1]], &[1]);
        assert!(covers(&voters(&[1]), &before, &joint));
        assert!(covers(&voters(&[1]), &joint, &last));
        // Cutting the voters to another set, or to the leader alone without an
        // authorisation for it, is not covered.
        assert!(!covers(&voters(&[1, 2]), &before, &joint));
        assert!(!covers(
            &voters(&[1]),
            &before,
            &membership(&[&[2, 3], &[1]], &[1, 2, 3])
        ));
        // A voter change cannot smuggle in a new node.
        assert!(!covers(
            &voters(&[1, 2, 3]),
            &before,
            &membership(&[&[1, 2, 3]], &[1, 2, 3, 4])
        ));
    }

    #[test]
    fn the_leaders_check_compares_the_signed_change_field_by_field() {
        assert!(same_change(&add(4), &add(4)));
        assert!(!same_change(&add(4), &add(5)));
        assert!(same_change(&voters(&[3, 1, 2]), &voters(&[1, 2, 3])));
        assert!(!same_change(&voters(&[1, 2]), &voters(&[1, 2, 3])));
        assert!(!same_change(&voters(&[4]), &add(4)));
    }
}
