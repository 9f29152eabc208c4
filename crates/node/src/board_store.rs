//! The board's persistent state in sled: leaves, Merkle node hashes, the content and
//! leaf-hash indexes, the key registry, the node's own signed checkpoints, and the Raft
//! bookkeeping of the state machine (last applied log id, membership).
//!
//! Everything lives in ONE sled tree with key prefixes, so applying a Raft entry is a
//! single `apply_batch`: atomic even across a crash, and never half a batch. The
//! Merkle tree's nodes are written through [`SledNodes`], an overlay that collects the
//! nodes an append creates so they join the same batch.
//!
//! Key layout (all integers big-endian so that keys sort numerically):
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `l` | leaf index u64 | leaf bytes, verbatim |
//! | `n` | level u8, index u64 | 32-byte node hash (complete subtree) |
//! | `e` | 32-byte envelope id | leaf index u64 |
//! | `h` | 32-byte leaf hash | leaf index u64 |
//! | `k` | 32-byte public key | MessagePack `KeyGrant` |
//! | `x` | rules' state key (see `bboard_core::election`) | its value |
//! | `c` | tree size u64 | this node's signed checkpoint note at that size |
//! | `m` | name | metadata (size, last applied, membership, counters) |

use std::collections::HashMap;

use bboard_core::board::{Admitted, BoardView, Effect, KeyGrant, PublicKeyBytes};
use bboard_core::checkpoint::{Checkpoint, NoteSigner, SignedCheckpoint};
use bboard_core::envelope::EnvelopeId;
use bboard_core::leaf::leaf_hash;
use bboard_merkle::{
    Blake3Hasher, Hash, MemoryStoreError, MerkleError, MerkleTree, NodeId, NodeStore, TreeSize,
};
use serde::{de::DeserializeOwned, Serialize};

/// How the stored board contradicts itself or this node's own signatures.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    /// The rules admitted a leaf at another index than the board's next one.
    #[error("admitted leaf has index {index}, the board expects {expected}")]
    LeafOutOfOrder {
        /// Index the admitted leaf carries.
        index: u64,
        /// The board's next index.
        expected: u64,
    },
    /// Signing would shrink what this node signed before.
    #[error("refusing to sign size {new_size}: this node already signed size {signed_size}")]
    WouldShrink {
        /// Size about to be signed.
        new_size: u64,
        /// Size of this node's last signed checkpoint.
        signed_size: u64,
    },
    /// Signing would rewrite history this node signed before.
    #[error("refusing to sign: this node signed root {signed_root} at size {size}, the board now has root {board_root} there")]
    WouldRewrite {
        /// Size of this node's last signed checkpoint.
        size: u64,
        /// The root it signed.
        signed_root: Hash,
        /// The board's root at that size now.
        board_root: Hash,
    },
    /// A leaf is missing from the store.
    #[error("leaf {missing} is missing (next stored leaf is {next})")]
    MissingLeaf {
        /// The missing index.
        missing: u64,
        /// The next index stored.
        next: u64,
    },
    /// The number of stored leaves differs from the recorded size.
    #[error("the store holds {stored} leaves but records size {recorded}")]
    LeafCount {
        /// Leaves found.
        stored: u64,
        /// Size recorded in the metadata.
        recorded: u64,
    },
    /// The leaves hash to another root than the stored tree nodes give.
    #[error(
        "leaf bytes hash to root {recomputed}, stored tree nodes give {stored}: leaves were edited"
    )]
    EditedLeaves {
        /// Root recomputed from the leaf bytes.
        recomputed: Hash,
        /// Root of the stored tree nodes.
        stored: Hash,
    },
    /// The store differs from this node's last signed checkpoint.
    #[error("this node signed size {signed_size} root {signed_root}, but its store now holds size {size} root {root}")]
    NotWhatWasSigned {
        /// Size signed.
        signed_size: u64,
        /// Root signed.
        signed_root: Hash,
        /// Size stored.
        size: u64,
        /// Root recomputed from the store.
        root: Hash,
    },
}

/// Why a snapshot file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading the file failed or it ended early.
    #[error("{part} truncated or unreadable: {source}")]
    Read {
        /// What was being read (header, leaf).
        part: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A length prefix is beyond the limit.
    #[error("{part} of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// What the length is of.
        part: &'static str,
        /// The length read.
        len: u32,
        /// The limit.
        limit: u32,
    },
    /// The header describes another snapshot than the one being installed.
    #[error("header is for log id {header}, openraft installs {installing}")]
    WrongLogId {
        /// Log id in the header.
        header: String,
        /// Log id being installed.
        installing: String,
    },
    /// The leaves hash to another root than the header's.
    #[error("leaves hash to root {leaves}, header says {header}")]
    RootMismatch {
        /// Root of the leaves.
        leaves: Hash,
        /// Root in the header.
        header: Hash,
    },
    /// A leaf is refused by the board rules on replay.
    #[error("leaf not admitted on replay: {outcome}")]
    NotAdmitted {
        /// The rules' outcome.
        outcome: String,
    },
    /// A leaf the snapshot must hold is missing from the store being snapshotted.
    #[error("leaf {index} missing from the store")]
    MissingLeaf {
        /// The index.
        index: u64,
    },
}

/// Errors of the board store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored integer (size, index, counter) does not have its fixed width.
    #[error("corrupt store: {what} is {len} bytes, expected {expected}")]
    BadValueLength {
        /// Which value (e.g. "board size", "leaf key").
        what: &'static str,
        /// Its length as stored.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
    /// A stored Merkle node hash is not 32 bytes.
    #[error("corrupt store: node hash at {id} is {len} bytes, expected 32")]
    BadNodeHash {
        /// Which node.
        id: NodeId,
        /// Its length as stored.
        len: usize,
    },
    /// A value could not be encoded with MessagePack.
    #[error("encoding a stored value: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// A stored MessagePack value does not decode.
    #[error("corrupt store: {what} does not decode: {source}")]
    Decode {
        /// Which value (e.g. "key grant", "snapshot header").
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// A stored protobuf record (e.g. a censorship alarm) does not decode.
    #[error("corrupt store: {what} does not decode: {source}")]
    DecodeProto {
        /// Which record.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// A stored checkpoint note is not UTF-8.
    #[error("corrupt store: checkpoint note at size {size} is not UTF-8")]
    CheckpointNotUtf8 {
        /// The size the note is stored under.
        size: u64,
        /// Where the bytes stop being UTF-8.
        #[source]
        source: std::str::Utf8Error,
    },
    /// Merkle tree computation over the stored nodes failed (usually a missing node:
    /// corruption). Failures of the store underneath are reported as themselves.
    #[error("merkle tree: {0}")]
    Merkle(#[source] Box<MerkleError<StoreError>>),
    /// Merkle tree computation over leaves recomputed in memory failed (integrity
    /// check, snapshot verification).
    #[error("recomputed merkle tree: {0}")]
    RecomputedTree(#[from] MerkleError<MemoryStoreError>),
    /// A file of the store (snapshot directory or file) could not be written or read.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (e.g. "writing snapshot").
        action: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking store task panicked or was cancelled.
    #[error("store task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The store's contents do not match what this node signed before, or a write
    /// would make it sign something that does not extend it.
    #[error("integrity check failed: {0}")]
    Integrity(#[from] IntegrityError),
    /// A snapshot file is damaged or does not match what it claims.
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    /// Signing a checkpoint failed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] bboard_core::Error),
}

impl From<MerkleError<StoreError>> for StoreError {
    fn from(error: MerkleError<StoreError>) -> Self {
        match error {
            // The node store is this store: report its own error, not a wrapped copy.
            MerkleError::Store(inner) => inner,
            other => StoreError::Merkle(Box::new(other)),
        }
    }
}

const META_SIZE: &[u8] = b"msize";
const META_REJECTED: &[u8] = b"mrejected";
/// Metadata key of the last applied log id (state machine).
pub const META_LAST_APPLIED: &[u8] = b"mlast_applied";
/// Metadata key of the last membership (state machine).
pub const META_MEMBERSHIP: &[u8] = b"mmembership";
const META_LATEST_CHECKPOINT: &[u8] = b"mcheckpoint";

fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
    key
}

fn leaf_key(index: u64) -> Vec<u8> {
    prefixed(b'l', &index.to_be_bytes())
}

fn node_key(id: NodeId) -> Vec<u8> {
    let mut key = vec![b'n', id.level];
    key.extend_from_slice(&id.index.to_be_bytes());
    key
}

fn checkpoint_key(size: u64) -> Vec<u8> {
    prefixed(b'c', &size.to_be_bytes())
}

fn decode_u64(bytes: &[u8], what: &'static str) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::BadValueLength {
        what,
        len: bytes.len(),
        expected: 8,
    })?;
    Ok(u64::from_be_bytes(array))
}

/// Encodes a value with MessagePack (named fields).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// Decodes a MessagePack value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|source| StoreError::Decode { what, source })
}

/// Merkle node store over the board tree, with an overlay of nodes written by the
/// current (not yet committed) batch.
pub struct SledNodes<'a> {
    tree: &'a sled::Tree,
    pending: HashMap<NodeId, Hash>,
}

impl<'a> SledNodes<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        SledNodes {
            tree,
            pending: HashMap::new(),
        }
    }
}

impl NodeStore for SledNodes<'_> {
    type Error = StoreError;

    fn get(&self, id: NodeId) -> Result<Option<Hash>, StoreError> {
        if let Some(hash) = self.pending.get(&id) {
            return Ok(Some(*hash));
        }
        match self.tree.get(node_key(id))? {
            None => Ok(None),
            Some(bytes) => {
                Hash::from_slice(&bytes)
                    .map(Some)
                    .map_err(|_| StoreError::BadNodeHash {
                        id,
                        len: bytes.len(),
                    })
            }
        }
    }

    fn put_all(&mut self, nodes: &[(NodeId, Hash)]) -> Result<(), StoreError> {
        self.pending.extend(nodes.iter().copied());
        Ok(())
    }
}

/// The board state of one node.
#[derive(Clone)]
pub struct BoardStore {
    tree: sled::Tree,
    origin: String,
}

impl BoardView for BoardStore {
    type Error = StoreError;

    fn size(&self) -> Result<u64, StoreError> {
        match self.tree.get(META_SIZE)? {
            None => Ok(0),
            Some(bytes) => decode_u64(&bytes, "board size"),
        }
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn key(&self, key: &PublicKeyBytes) -> Result<Option<KeyGrant>, StoreError> {
        self.tree
            .get(prefixed(b'k', key))?
            .map(|bytes| decode(&bytes, "key grant"))
            .transpose()
    }

    fn find_envelope(&self, id: &EnvelopeId) -> Result<Option<u64>, StoreError> {
        self.tree
            .get(prefixed(b'e', &id.0))?
            .map(|bytes| decode_u64(&bytes, "envelope index"))
            .transpose()
    }

    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree
            .get(prefixed(b'x', key))?
            .map(|value| value.to_vec()))
    }

    fn root_at(&self, size: u64) -> Result<Hash, StoreError> {
        BoardStore::root_at(self, size)
    }
}

/// What applying one batch changed.
#[derive(Debug)]
pub struct AppliedBatch {
    /// Board size after the batch.
    pub size: u64,
    /// Root after the batch.
    pub root: Hash,
    /// This node's signed checkpoint of the new size, if the size grew.
    pub checkpoint: Option<SignedCheckpoint>,
}

impl BoardStore {
    /// Opens (or creates) the board tree `name` in `db`.
    pub fn open(db: &sled::Db, name: &str, origin: &str) -> Result<Self, StoreError> {
        Ok(BoardStore {
            tree: db.open_tree(name)?,
            origin: origin.to_string(),
        })
    }

    /// The sled tree (for metadata the state machine keeps next to the board).
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Leaf bytes at `index`.
    pub fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(leaf_key(index))?.map(|v| v.to_vec()))
    }

    /// Index of the leaf with this leaf hash.
    pub fn find_leaf_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.tree
            .get(prefixed(b'h', hash.as_bytes()))?
            .map(|bytes| decode_u64(&bytes, "leaf hash index"))
            .transpose()
    }

    /// Values of the rules' state whose keys start with `prefix`, at most `limit`.
    pub fn state_with_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut values = Vec::new();
        for row in self.tree.scan_prefix(prefixed(b'x', prefix)).take(limit) {
            values.push(row?.1.to_vec());
        }
        Ok(values)
    }

    /// Number of committed entries rejected by the rules (a correct leader proposes none).
    pub fn rejected_count(&self) -> Result<u64, StoreError> {
        match self.tree.get(META_REJECTED)? {
            None => Ok(0),
            Some(bytes) => decode_u64(&bytes, "rejected count"),
        }
    }

    /// Runs `f` on the Merkle tree as of the stored size (read-only use).
    pub fn with_merkle<T>(
        &self,
        f: impl FnOnce(&MerkleTree<Blake3Hasher, SledNodes<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let size = self.size()?;
        let merkle = MerkleTree::open(Blake3Hasher, SledNodes::new(&self.tree), TreeSize(size))?;
        f(&merkle)
    }

    /// Root of the tree of `size` leaves (any size up to the current one).
    pub fn root_at(&self, size: u64) -> Result<Hash, StoreError> {
        self.with_merkle(|m| Ok(m.root_at(TreeSize(size))?))
    }

    /// This node's own signed checkpoint at `size`, if it signed one.
    pub fn own_checkpoint(&self, size: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.tree
            .get(checkpoint_key(size))?
            .map(|bytes| {
                let note = std::str::from_utf8(&bytes)
                    .map_err(|source| StoreError::CheckpointNotUtf8 { size, source })?;
                Ok(SignedCheckpoint::parse(note)?)
            })
            .transpose()
    }

    /// This node's latest signed checkpoint.
    pub fn latest_own_checkpoint(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        match self.tree.get(META_LATEST_CHECKPOINT)? {
            None => Ok(None),
            Some(bytes) => self.own_checkpoint(decode_u64(&bytes, "latest checkpoint size")?),
        }
    }

    /// Persists the admitted leaves of one batch with their effects, the Merkle nodes,
    /// the rejection count, extra metadata, and this node's signed checkpoint of the new
    /// size — all in one atomic sled batch. Refuses to sign a checkpoint inconsistent
    /// with the one it signed before.
    pub fn commit_batch(
        &self,
        admitted: &[Admitted],
        rejected: u64,
        extra_meta: &[(&[u8], Vec<u8>)],
        signer: Option<&NoteSigner>,
    ) -> Result<AppliedBatch, StoreError> {
        let size = self.size()?;
        let mut batch = sled::Batch::default();
        let mut merkle =
            MerkleTree::open(Blake3Hasher, SledNodes::new(&self.tree), TreeSize(size))?;
        for (offset, leaf) in admitted.iter().enumerate() {
            let expected = size + offset as u64;
            if leaf.index != expected {
                return Err(IntegrityError::LeafOutOfOrder {
                    index: leaf.index,
                    expected,
                }
                .into());
            }
            let hash = leaf_hash(&leaf.leaf_data);
            merkle.append(hash)?;
            batch.insert(leaf_key(leaf.index), leaf.leaf_data.as_slice());
            batch.insert(
                prefixed(b'e', &leaf.envelope_id.0),
                &leaf.index.to_be_bytes(),
            );
            batch.insert(prefixed(b'h', hash.as_bytes()), &leaf.index.to_be_bytes());
            for effect in &leaf.effects {
                match effect {
                    Effect::PutKey(key, grant) => {
                        batch.insert(prefixed(b'k', key), encode(grant)?);
                    }
                    Effect::PutState(key, value) => {
                        batch.insert(prefixed(b'x', key), value.as_slice());
                    }
                }
            }
        }
        let new_size = merkle.size().0;
        let root = merkle.root()?;
        let previous = self.latest_own_checkpoint()?;
        let checkpoint = match signer {
            Some(signer) if new_size > size || previous.is_none() => {
                let forge = crate::fault::active() == Some(crate::fault::Fault::ForgeRoot);
                // Self-defence: never sign a history that does not extend what this
                // node signed before.
                if let Some(previous) = previous.as_ref().filter(|_| !forge) {
                    let previous = previous.checkpoint();
                    if previous.size.0 > new_size {
                        return Err(IntegrityError::WouldShrink {
                            new_size,
                            signed_size: previous.size.0,
                        }
                        .into());
                    }
                    let root_then = merkle.root_at(previous.size)?;
                    if root_then != previous.root {
                        return Err(IntegrityError::WouldRewrite {
                            size: previous.size.0,
                            signed_root: previous.root,
                            board_root: root_then,
                        }
                        .into());
                    }
                }
                let signed_root = if forge {
                    Hash(*blake3::hash(root.as_bytes()).as_bytes())
                } else {
                    root
                };
                Some(SignedCheckpoint::sign(
                    Checkpoint {
                        origin: self.origin.clone(),
                        size: TreeSize(new_size),
                        root: signed_root,
                    },
                    signer,
                )?)
            }
            _ => None,
        };
        for (id, hash) in merkle.into_store().pending {
            batch.insert(node_key(id), hash.as_bytes());
        }
        if rejected > 0 {
            let total = self.rejected_count()? + rejected;
            batch.insert(META_REJECTED, &total.to_be_bytes());
        }
        for (key, value) in extra_meta {
            batch.insert(*key, value.as_slice());
        }
        if let Some(signed) = &checkpoint {
            batch.insert(checkpoint_key(new_size), signed.to_note().as_bytes());
            batch.insert(META_LATEST_CHECKPOINT, &new_size.to_be_bytes());
        }
        batch.insert(META_SIZE, &new_size.to_be_bytes());
        self.tree.apply_batch(batch)?;
        Ok(AppliedBatch {
            size: new_size,
            root,
            checkpoint,
        })
    }

    /// Recomputes the whole tree from the stored leaf bytes and compares it with the
    /// stored node hashes and with this node's last signed checkpoint. Detects edited,
    /// missing or truncated leaves and nodes. O(n) hashing: about a second per million
    /// leaves.
    pub fn verify_integrity(&self) -> Result<Option<Checkpoint>, StoreError> {
        let size = self.size()?;
        let mut recomputed = MerkleTree::new(Blake3Hasher, bboard_merkle::MemoryNodeStore::new());
        let mut expected_index = 0u64;
        for row in self.tree.scan_prefix([b'l']) {
            let (key, value) = row?;
            let index = decode_u64(&key[1..], "leaf key")?;
            if index != expected_index {
                return Err(IntegrityError::MissingLeaf {
                    missing: expected_index,
                    next: index,
                }
                .into());
            }
            recomputed.append(leaf_hash(&value))?;
            expected_index += 1;
        }
        if expected_index != size {
            return Err(IntegrityError::LeafCount {
                stored: expected_index,
                recorded: size,
            }
            .into());
        }
        let recomputed_root = recomputed.root()?;
        let stored_root = self.root_at(size)?;
        if stored_root != recomputed_root {
            return Err(IntegrityError::EditedLeaves {
                recomputed: recomputed_root,
                stored: stored_root,
            }
            .into());
        }
        let Some(latest) = self.latest_own_checkpoint()? else {
            return Ok(None);
        };
        let checkpoint = latest.checkpoint().clone();
        if checkpoint.size.0 != size || checkpoint.root != recomputed_root {
            return Err(IntegrityError::NotWhatWasSigned {
                signed_size: checkpoint.size.0,
                signed_root: checkpoint.root,
                size,
                root: recomputed_root,
            }
            .into());
        }
        Ok(Some(checkpoint))
    }

    /// Deletes the board state before a snapshot is installed, but keeps this node's
    /// own signed checkpoints: the re-applied history must still extend them.
    pub fn clear_for_snapshot(&self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for row in self.tree.iter() {
            let (key, _) = row?;
            let keep = key.first() == Some(&b'c') || key.as_ref() == META_LATEST_CHECKPOINT;
            if !keep {
                batch.remove(key);
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bboard_core::board::BatchApplier;
    use bboard_core::envelope::SignedEnvelope;
    use bboard_core::leaf::encode_leaf;
    use bboard_core::pb;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "store.test";

    fn signer() -> NoteSigner {
        NoteSigner::new("node-a", SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    fn genesis(authority: &SigningKey) -> Vec<u8> {
        let body = pb::EntryBody {
            election_id: String::new(),
            created_unix_ms: 0,
            kind: Some(pb::entry_body::Kind::Genesis(pb::BoardGenesis {
                origin: ORIGIN.into(),
                authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
                description: String::new(),
            })),
        };
        encode_leaf(1, &SignedEnvelope::sign_body(&body, authority))
    }

    fn note(author: &SigningKey, i: u64) -> Vec<u8> {
        let body = pb::EntryBody {
            election_id: String::new(),
            created_unix_ms: i,
            kind: Some(pb::entry_body::Kind::Note(pb::Note {
                text: format!("n{i}"),
            })),
        };
        encode_leaf(100 + i, &SignedEnvelope::sign_body(&body, author))
    }

    fn apply(store: &BoardStore, leaves: &[Vec<u8>]) -> AppliedBatch {
        let mut applier = BatchApplier::new(store).unwrap();
        for leaf in leaves {
            applier.apply(leaf).unwrap();
        }
        store
            .commit_batch(&applier.finish(), 0, &[], Some(&signer()))
            .unwrap()
    }

    fn board(dir: &std::path::Path) -> (sled::Db, BoardStore) {
        let db = sled::Config::new().path(dir).open().unwrap();
        let store = BoardStore::open(&db, "board", ORIGIN).unwrap();
        (db, store)
    }

    /// A board of genesis + two notes.
    fn three_entry_board(dir: &std::path::Path) -> (sled::Db, BoardStore) {
        let authority = SigningKey::from_bytes(&[1; 32]);
        let (db, store) = board(dir);
        apply(
            &store,
            &[
                genesis(&authority),
                note(&authority, 1),
                note(&authority, 2),
            ],
        );
        (db, store)
    }

    #[test]
    fn batches_persist_and_match_an_in_memory_tree() {
        let dir = tempfile::tempdir().unwrap();
        let authority = SigningKey::from_bytes(&[1; 32]);
        let leaves: Vec<Vec<u8>> = std::iter::once(genesis(&authority))
            .chain((0..40).map(|i| note(&authority, i)))
            .collect();
        {
            let (_db, store) = board(dir.path());
            apply(&store, &leaves[..1]);
            apply(&store, &leaves[1..17]);
            let last = apply(&store, &leaves[17..]);
            assert_eq!(last.size, 41);
            let checkpoint = last.checkpoint.unwrap();
            assert_eq!(checkpoint.checkpoint().root, last.root);
        }
        let (_db, store) = board(dir.path());
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        let expected = bboard_merkle::root_of_leaf_hashes(&Blake3Hasher, &hashes);
        assert_eq!(store.root_at(41).unwrap(), expected);
        assert_eq!(store.verify_integrity().unwrap().unwrap().root, expected);
        assert_eq!(store.find_leaf_hash(&hashes[5]).unwrap(), Some(5));
        assert_eq!(store.leaf(7).unwrap().unwrap(), leaves[7]);
        assert_eq!(
            store.root_at(17).unwrap(),
            bboard_merkle::root_of_leaf_hashes(&Blake3Hasher, &hashes[..17])
        );
        assert!(store.own_checkpoint(17).unwrap().is_some());
    }

    #[test]
    fn an_edited_leaf_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = three_entry_board(dir.path());
        let mut edited = store.leaf(1).unwrap().unwrap();
        let last = edited.len() - 1;
        edited[last] ^= 1;
        store.tree.insert(leaf_key(1), edited).unwrap();
        let error = store.verify_integrity().unwrap_err();
        assert!(format!("{error}").contains("leaves were edited"), "{error}");
    }

    #[test]
    fn a_truncated_store_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = three_entry_board(dir.path());
        store.tree.remove(leaf_key(2)).unwrap();
        assert!(matches!(
            store.verify_integrity(),
            Err(StoreError::Integrity(IntegrityError::LeafCount {
                stored: 2,
                recorded: 3
            }))
        ));
        // Also consistent truncation (size lowered too) contradicts the signed checkpoint.
        store.tree.insert(META_SIZE, &2u64.to_be_bytes()).unwrap();
        let error = store.verify_integrity().unwrap_err();
        assert!(
            format!("{error}").contains("this node signed size 3"),
            "{error}"
        );
    }

    #[test]
    fn a_node_refuses_to_sign_a_rewritten_history() {
        let dir = tempfile::tempdir().unwrap();
        let authority = SigningKey::from_bytes(&[1; 32]);
        let (_db, store) = board(dir.path());
        apply(&store, &[genesis(&authority), note(&authority, 1)]);
        // Rewrite history: wipe the board (keeping the node's signatures) and apply
        // a different second entry.
        store.clear_for_snapshot().unwrap();
        let mut applier = BatchApplier::new(&store).unwrap();
        applier.apply(&genesis(&authority)).unwrap();
        applier.apply(&note(&authority, 2)).unwrap();
        applier.apply(&note(&authority, 3)).unwrap();
        let error = store
            .commit_batch(&applier.finish(), 0, &[], Some(&signer()))
            .unwrap_err();
        assert!(format!("{error}").contains("refusing to sign"), "{error}");
        // Nothing of the refused batch was written.
        assert_eq!(store.size().unwrap(), 0);
    }
}
