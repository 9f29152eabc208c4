//! Who the peers are: each node id's peer address and pinned certificate, from the
//! node's config at start and from the Raft membership afterwards (an admin-signed
//! `AddLearner` carries the new node's peer address and fingerprint).
//!
//! One certificate may stand for several ids: an organisation's node rebuilt under a
//! new id keeps its certificate. What a certificate never does is stand for an id
//! pinned to another certificate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use super::identity::Fingerprint;
use crate::types::NodeId;

/// Where a peer's peer port is and which certificate it must present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEndpoint {
    /// `host:port` of its peer port.
    pub address: String,
    /// Its pinned certificate.
    pub fingerprint: Fingerprint,
}

/// The peers of a node, shared by its peer server (who may connect, as which ids)
/// and its outgoing channels (where to dial, whom to expect).
#[derive(Debug, Default)]
pub struct PeerDirectory {
    endpoints: RwLock<BTreeMap<NodeId, PeerEndpoint>>,
}

impl PeerDirectory {
    /// A directory of `endpoints`.
    pub fn new(endpoints: BTreeMap<NodeId, PeerEndpoint>) -> Self {
        PeerDirectory {
            endpoints: RwLock::new(endpoints),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<NodeId, PeerEndpoint>> {
        self.endpoints
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Node `id`'s endpoint, if known.
    pub fn endpoint(&self, id: NodeId) -> Option<PeerEndpoint> {
        self.read().get(&id).cloned()
    }

    /// The ids whose pinned certificate is `fingerprint` (empty: not a peer).
    pub fn ids_of(&self, fingerprint: &Fingerprint) -> BTreeSet<NodeId> {
        self.read()
            .iter()
            .filter(|(_, endpoint)| endpoint.fingerprint == *fingerprint)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Records `endpoint` for `id` (the membership's view replaces the config's).
    /// Returns whether anything changed.
    pub fn learn(&self, id: NodeId, endpoint: PeerEndpoint) -> bool {
        let mut endpoints = self
            .endpoints
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if endpoints.get(&id) == Some(&endpoint) {
            return false;
        }
        tracing::info!(node = id, address = %endpoint.address,
            fingerprint = %endpoint.fingerprint, "peer identity learned");
        endpoints.insert(id, endpoint);
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn endpoint(address: &str, certificate: &[u8]) -> PeerEndpoint {
        PeerEndpoint {
            address: address.into(),
            fingerprint: Fingerprint::of(certificate),
        }
    }

    #[test]
    fn a_certificate_stands_for_exactly_the_ids_pinned_to_it() {
        let directory = PeerDirectory::new(BTreeMap::from([
            (1, endpoint("a:1", b"org-1")),
            (2, endpoint("b:1", b"org-2")),
        ]));
        assert_eq!(
            directory.ids_of(&Fingerprint::of(b"org-1")),
            BTreeSet::from([1])
        );
        assert!(directory.ids_of(&Fingerprint::of(b"stranger")).is_empty());
        // Org 1's node rebuilt as node 4 keeps its certificate.
        assert!(directory.learn(4, endpoint("a:1", b"org-1")));
        assert!(!directory.learn(4, endpoint("a:1", b"org-1")), "no change");
        assert_eq!(
            directory.ids_of(&Fingerprint::of(b"org-1")),
            BTreeSet::from([1, 4])
        );
        assert_eq!(
            directory.ids_of(&Fingerprint::of(b"org-2")),
            BTreeSet::from([2])
        );
        assert_eq!(directory.endpoint(4).unwrap().address, "a:1");
    }
}
