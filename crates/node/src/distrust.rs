//! Leaders this node refuses to follow (`bboard node campaign --depose`): their
//! AppendEntries, snapshots and vote requests are turned away, so once a majority of
//! nodes distrust a leader it can no longer lead and the others elect a new one.
//!
//! A deposition is persisted (sled, flushed before the command is acknowledged) with a
//! wall-clock expiry, so it survives a restart of the deposing node, and several nodes
//! can be distrusted at once. It is bound to the deposed node's *certificate*: the Raft
//! service refuses a connection if any id its certificate stands for is distrusted, so
//! the deposed organisation cannot come back under another id it holds.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::board_store::StoreError;
use crate::node::now_unix_ms;
use crate::types::NodeId;

/// Name of the sled tree holding depositions: node id (big endian) → expiry (Unix ms,
/// big endian).
const TREE: &str = "distrusted-leaders";

/// The leaders this node refuses to follow, and until when.
#[derive(Debug, Default)]
pub struct LeaderDistrust {
    /// Where depositions persist (`None`: in memory only, for tests).
    tree: Option<sled::Tree>,
    until_unix_ms: Mutex<BTreeMap<NodeId, u64>>,
}

impl LeaderDistrust {
    /// Loads the depositions recorded in `db`, dropping expired ones.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree(TREE)?;
        let now = now_unix_ms();
        let mut until = BTreeMap::new();
        for item in tree.iter() {
            let (key, value) = item?;
            let (Ok(id), Ok(expiry)) = (
                <[u8; 8]>::try_from(key.as_ref()),
                <[u8; 8]>::try_from(value.as_ref()),
            ) else {
                // Not written by this module: ignore rather than refuse to start.
                continue;
            };
            let (id, expiry) = (u64::from_be_bytes(id), u64::from_be_bytes(expiry));
            if expiry > now {
                until.insert(id, expiry);
            } else {
                tree.remove(key)?;
            }
        }
        Ok(LeaderDistrust {
            tree: Some(tree),
            until_unix_ms: Mutex::new(until),
        })
    }

    /// Refuse to follow `leader` for `duration` from now; on disk before it returns.
    pub fn distrust(&self, leader: NodeId, duration: Duration) -> Result<(), StoreError> {
        let expiry =
            now_unix_ms().saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        if let Some(tree) = &self.tree {
            tree.insert(leader.to_be_bytes(), &expiry.to_be_bytes())?;
            tree.flush()?;
        }
        self.until_unix_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(leader, expiry);
        Ok(())
    }

    /// The first of `nodes` this node refuses to follow now, if any.
    pub fn refused(&self, nodes: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
        let now = now_unix_ms();
        let until = self
            .until_unix_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        nodes
            .into_iter()
            .find(|node| until.get(node).is_some_and(|expiry| *expiry > now))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn depositions_persist_expire_and_cover_several_nodes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let distrust = LeaderDistrust::open(&db).unwrap();
            assert_eq!(distrust.refused([1, 2, 3]), None);
            distrust.distrust(1, Duration::from_secs(600)).unwrap();
            distrust.distrust(3, Duration::from_secs(600)).unwrap();
            distrust.distrust(2, Duration::from_millis(1)).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(distrust.refused([2]), None, "expired");
            assert_eq!(distrust.refused([2, 3]), Some(3));
        }
        // A restart remembers the live depositions and forgets the expired one.
        let db = sled::open(dir.path()).unwrap();
        let distrust = LeaderDistrust::open(&db).unwrap();
        assert_eq!(distrust.refused([1]), Some(1));
        assert_eq!(distrust.refused([3]), Some(3));
        assert_eq!(distrust.refused([2, 4]), None);
        assert_eq!(db.open_tree(TREE).unwrap().len(), 2);
    }
}
