//! The board's persistent state in sled: leaves, Merkle node hashes, the content and
//! leaf-hash indexes, the key registry, the node's own signed checkpoints, and the Raft
//! bookkeeping of the state machine (last applied log id, membership, stored snapshot).
//!
//! Everything of one board lives in ONE sled tree with key prefixes, so applying a Raft
//! entry is a single `apply_batch`: atomic even across a crash, and never half a batch.
//! The Merkle tree's nodes are written through [`SledNodes`], an overlay that collects
//! the nodes an append creates so they join the same batch.
//!
//! **Generations.** A snapshot install builds a whole new board beside the live one
//! ([`BoardStore::begin_staging`]: a fresh tree `board-<n>`) and checks it complete
//! before anything of the live board changes. [`BoardStore::swap_in`] then makes it
//! the live board in one step: the staged tree is flushed, its name is recorded in the
//! small tree `board-active` and flushed (the commit point: a crash before it reopens
//! the old board, a crash after it the new one), the in-memory pointer is swapped, and
//! the old tree is dropped. Every [`BoardStore`] clone shares that pointer, and every
//! method reads under it, so a call sees the old board or the new one, never a mix;
//! a swap waits for calls in flight. Opening drops every generation but the recorded
//! one (staging trees of installs that did not finish, a replaced board whose drop a
//! crash interrupted). A node that never installed a snapshot keeps its first tree,
//! `board`.
//!
//! Key layout of a generation's tree (all integers big-endian so that keys sort
//! numerically):
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
//! | `m` | name | metadata (size, last applied, membership, snapshot, counters) |

use std::collections::HashMap;
use std::sync::Arc;

use bboard_core::board::{Admitted, BoardView, Effect, KeyGrant, PublicKeyBytes};
use bboard_core::checkpoint::{Checkpoint, NoteSigner, SignedCheckpoint};
use bboard_core::envelope::EnvelopeId;
use bboard_core::leaf::leaf_hash;
use bboard_merkle::{
    Blake3Hasher, Frontier, Hash, MerkleError, MerkleTree, NodeId, NodeStore, TreeSize,
};
use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
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
    /// The file is larger than a snapshot may be.
    #[error("file of {len} bytes exceeds the snapshot limit of {limit}")]
    FileTooLarge {
        /// The file's length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The header claims more leaves than the rest of the file can hold (every leaf
    /// takes at least its length prefix).
    #[error("header claims {claimed} leaves, the file has room for at most {room}")]
    TooManyLeaves {
        /// Leaves the header claims.
        claimed: u64,
        /// Most leaves the file's remaining bytes can hold.
        room: u64,
    },
    /// Bytes follow the last leaf the header announced.
    #[error("bytes follow leaf {size}, the last the header announced")]
    TrailingBytes {
        /// The size the header announced.
        size: u64,
    },
    /// The state machine was opened without saying who vouches for snapshots, so it
    /// installs none (see `BoardStateMachine::with_snapshot_vouchers`).
    #[error("no snapshot vouchers configured: installs are refused")]
    NoVouchers,
    /// The node policy needs more signatures than the other nodes can give (this
    /// node's own signature cannot vouch for a board it has not computed yet).
    #[error("the node policy needs {threshold} signatures, but only {others} other nodes could vouch: {source}")]
    CannotBeVouched {
        /// Signatures the node policy requires.
        threshold: usize,
        /// Trusted keys other than this node's.
        others: usize,
        /// Why the policy over the others' keys cannot be built (boxed: rare, and
        /// it would make every store error larger).
        #[source]
        source: Box<bboard_core::Error>,
    },
    /// Gathering the peers' signatures over the staged checkpoint failed.
    #[error("peers did not vouch for size {size} root {root}: {source}")]
    Unvouched {
        /// The staged size.
        size: u64,
        /// The staged root.
        root: Hash,
        /// Why.
        #[source]
        source: crate::state_machine::VouchError,
    },
    /// The checkpoint the peers vouched for is not the one staged.
    #[error("peers vouched for {vouched}, the staged board is size {size} root {root}")]
    VouchedOtherCheckpoint {
        /// The staged size.
        size: u64,
        /// The staged root.
        root: Hash,
        /// The checkpoint they signed (origin, size, root).
        vouched: String,
    },
    /// The peers' signatures over the staged checkpoint do not reach the node policy
    /// (this node's own key not counted).
    #[error("size {size} root {root} lacks k-of-n peer cosignatures: {source}")]
    NotVouched {
        /// The staged size.
        size: u64,
        /// The staged root.
        root: Hash,
        /// What the policy found (boxed, as above).
        #[source]
        source: Box<bboard_core::Error>,
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
    /// The record of the live board generation names no generation.
    #[error("corrupt store: the live board is recorded as {recorded:?}, not a board generation")]
    UnknownGeneration {
        /// What the record holds.
        recorded: String,
    },
    /// A swap was asked of a store that is not the live board (e.g. a staged one).
    #[error("store {store} is not the live board ({active} is): refusing to swap")]
    NotActive {
        /// The store asked to swap.
        store: String,
        /// The generation recorded as live.
        active: String,
    },
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

/// The sled tree that records which board generation is live.
const ACTIVE_TREE: &str = "board-active";
/// Key of the live generation's name in [`ACTIVE_TREE`].
const ACTIVE_KEY: &[u8] = b"active";
/// The first generation: the board of every node that never installed a snapshot.
const FIRST_GENERATION: &str = "board";
/// Later generations are `board-<n>`, `n` from sled's persistent id generator.
const GENERATION_PREFIX: &[u8] = b"board-";
/// Own signed checkpoints copied per sled batch when a staged board adopts them.
const ADOPT_CHUNK: usize = 1024;

/// Whether `name` is a board generation's tree (and not, say, [`ACTIVE_TREE`]).
fn is_generation(name: &[u8]) -> bool {
    name == FIRST_GENERATION.as_bytes()
        || name
            .strip_prefix(GENERATION_PREFIX)
            .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
}

/// One generation of the board: a sled tree and its name.
struct Generation {
    name: String,
    tree: sled::Tree,
}

/// The board state of one node.
///
/// Clones share the live generation: after [`BoardStore::swap_in`] every clone reads
/// the new board.
#[derive(Clone)]
pub struct BoardStore {
    db: sled::Db,
    active: Arc<RwLock<Generation>>,
    origin: String,
}

impl BoardView for BoardStore {
    type Error = StoreError;

    fn size(&self) -> Result<u64, StoreError> {
        match self.tree().get(META_SIZE)? {
            None => Ok(0),
            Some(bytes) => decode_u64(&bytes, "board size"),
        }
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn key(&self, key: &PublicKeyBytes) -> Result<Option<KeyGrant>, StoreError> {
        self.tree()
            .get(prefixed(b'k', key))?
            .map(|bytes| decode(&bytes, "key grant"))
            .transpose()
    }

    fn find_envelope(&self, id: &EnvelopeId) -> Result<Option<u64>, StoreError> {
        self.tree()
            .get(prefixed(b'e', &id.0))?
            .map(|bytes| decode_u64(&bytes, "envelope index"))
            .transpose()
    }

    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree()
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

/// A board being built beside the live one (a snapshot install): written through
/// [`StagedBoard::board`], invisible to every reader of the live board until
/// [`BoardStore::swap_in`]. Dropped without a swap, its tree is dropped with it, so a
/// refused install leaves nothing behind (and a crash leaves a tree the next
/// [`BoardStore::open`] drops).
pub struct StagedBoard {
    board: BoardStore,
    /// Set once the swap began: from then on the recorded generation decides.
    keep: bool,
}

impl StagedBoard {
    /// The staged board, to replay leaves into. It has its own generation pointer:
    /// swapping the live board does not move it.
    pub fn board(&self) -> &BoardStore {
        &self.board
    }

    /// The staged generation's tree name.
    pub fn name(&self) -> String {
        self.board.active.read().name.clone()
    }

    /// Checks the staged board against every checkpoint `live`'s node signed and
    /// copies them (and which one is the latest) into the staged board, so the node
    /// keeps refusing to sign anything that does not extend them after the swap.
    /// Refuses a staged board shorter than a signed size, or with another root at one.
    /// Streams the checkpoints in batches: bounded memory however many there are.
    pub fn adopt_signed_history(&self, live: &BoardStore) -> Result<(), StoreError> {
        let live_tree = live.tree();
        let size = self.board.size()?;
        let staged = self.board.tree();
        let merkle = MerkleTree::open(Blake3Hasher, SledNodes::new(&staged), TreeSize(size))?;
        let mut batch = sled::Batch::default();
        let mut pending = 0usize;
        for row in live_tree.scan_prefix([b'c']) {
            let (key, value) = row?;
            let signed_size = decode_u64(&key[1..], "checkpoint key")?;
            let note =
                std::str::from_utf8(&value).map_err(|source| StoreError::CheckpointNotUtf8 {
                    size: signed_size,
                    source,
                })?;
            let signed = SignedCheckpoint::parse(note)?.checkpoint().clone();
            if signed.size.0 > size {
                return Err(IntegrityError::WouldShrink {
                    new_size: size,
                    signed_size: signed.size.0,
                }
                .into());
            }
            let root_then = merkle.root_at(signed.size)?;
            if root_then != signed.root {
                return Err(IntegrityError::WouldRewrite {
                    size: signed.size.0,
                    signed_root: signed.root,
                    board_root: root_then,
                }
                .into());
            }
            batch.insert(key, value);
            pending += 1;
            if pending == ADOPT_CHUNK {
                staged.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        if let Some(latest) = live_tree.get(META_LATEST_CHECKPOINT)? {
            batch.insert(META_LATEST_CHECKPOINT, latest);
        }
        staged.apply_batch(batch)?;
        Ok(())
    }
}

impl Drop for StagedBoard {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let name = self.name();
        if let Err(e) = self.board.db.drop_tree(&name) {
            // The next open drops it: abandoned generations cost only disk until then.
            tracing::warn!(tree = %name, error = %e, "dropping an abandoned staged board");
        }
    }
}

/// The live generation's name as recorded in `registry` (the first one if none).
fn recorded_generation(registry: &sled::Tree) -> Result<String, StoreError> {
    match registry.get(ACTIVE_KEY)? {
        None => Ok(FIRST_GENERATION.to_string()),
        Some(bytes) if is_generation(&bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Some(bytes) => Err(StoreError::UnknownGeneration {
            recorded: String::from_utf8_lossy(&bytes).into_owned(),
        }),
    }
}

impl BoardStore {
    /// Opens (or creates) the board of `db`: the generation recorded as live. Drops
    /// every other generation (abandoned staging trees, a replaced board whose drop
    /// was interrupted), so open ONE store per database and share it by cloning.
    pub fn open(db: &sled::Db, origin: &str) -> Result<Self, StoreError> {
        let name = recorded_generation(&db.open_tree(ACTIVE_TREE)?)?;
        let tree = db.open_tree(&name)?;
        for other in db.tree_names() {
            if is_generation(&other) && other != name.as_bytes() {
                tracing::info!(tree = %String::from_utf8_lossy(&other), "dropping an abandoned board generation");
                db.drop_tree(&other)?;
            }
        }
        Ok(BoardStore {
            db: db.clone(),
            active: Arc::new(RwLock::new(Generation { name, tree })),
            origin: origin.to_string(),
        })
    }

    /// The live generation's tree, held for the guard's lifetime: a swap waits until
    /// it is released, so everything read through one guard is of one board. Reads
    /// nest (a method holding a guard may call another), hence `read_recursive`.
    fn tree(&self) -> MappedRwLockReadGuard<'_, sled::Tree> {
        RwLockReadGuard::map(self.active.read_recursive(), |g| &g.tree)
    }

    /// Runs `f` on the live generation's sled tree, for metadata the state machine
    /// keeps next to the board (so it swaps with the board) and for tests that tamper
    /// with a stopped node's store. No swap happens while `f` runs.
    pub fn with_tree<T>(&self, f: impl FnOnce(&sled::Tree) -> T) -> T {
        f(&self.tree())
    }

    /// The live generation's tree name (`board`, or `board-<n>` after an install).
    pub fn generation(&self) -> String {
        self.active.read_recursive().name.clone()
    }

    /// Starts a new, empty generation beside the live one (see [`StagedBoard`]).
    pub fn begin_staging(&self) -> Result<StagedBoard, StoreError> {
        let name = format!(
            "{}{}",
            String::from_utf8_lossy(GENERATION_PREFIX),
            self.db.generate_id()?
        );
        let tree = self.db.open_tree(&name)?;
        // The id generator never repeats an id, so the tree is new; clearing costs
        // nothing then and guards against a leftover all the same.
        tree.clear()?;
        Ok(StagedBoard {
            board: BoardStore {
                db: self.db.clone(),
                active: Arc::new(RwLock::new(Generation { name, tree })),
                origin: self.origin.clone(),
            },
            keep: false,
        })
    }

    /// Makes `staged` the live board of this store and every clone of it, atomically:
    /// flushes the staged tree, records and flushes its name (the commit point), swaps
    /// the pointer (waiting for reads in flight), then drops the old generation. On an
    /// error the old board stays live in memory; whichever generation the record names
    /// on disk is the one the next open serves, and the other is dropped then.
    pub fn swap_in(&self, mut staged: StagedBoard) -> Result<(), StoreError> {
        let registry = self.db.open_tree(ACTIVE_TREE)?;
        let current = self.generation();
        let recorded = recorded_generation(&registry)?;
        if recorded != current {
            return Err(StoreError::NotActive {
                store: current,
                active: recorded,
            });
        }
        let new_name = staged.name();
        // Everything staged is durable before the name that makes it live.
        self.db.flush()?;
        staged.keep = true;
        let record = registry
            .insert(ACTIVE_KEY, new_name.as_bytes())
            .and_then(|_| self.db.flush());
        if let Err(e) = record {
            // Best effort: the record may or may not have reached the disk; put the
            // old name back so the next open agrees with what this process serves.
            let _ = registry
                .insert(ACTIVE_KEY, current.as_bytes())
                .and_then(|_| self.db.flush());
            return Err(e.into());
        }
        let tree = staged.board.tree().clone();
        let old = std::mem::replace(
            &mut *self.active.write(),
            Generation {
                name: new_name,
                tree,
            },
        );
        if let Err(e) = self.db.drop_tree(&old.name) {
            // The next open drops it.
            tracing::warn!(tree = %old.name, error = %e, "dropping the replaced board");
        }
        Ok(())
    }

    /// Leaf bytes at `index`.
    pub fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree().get(leaf_key(index))?.map(|v| v.to_vec()))
    }

    /// Index of the leaf with this leaf hash.
    pub fn find_leaf_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.tree()
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
        for row in self.tree().scan_prefix(prefixed(b'x', prefix)).take(limit) {
            values.push(row?.1.to_vec());
        }
        Ok(values)
    }

    /// Number of committed entries rejected by the rules (a correct leader proposes none).
    pub fn rejected_count(&self) -> Result<u64, StoreError> {
        match self.tree().get(META_REJECTED)? {
            None => Ok(0),
            Some(bytes) => decode_u64(&bytes, "rejected count"),
        }
    }

    /// Runs `f` on the Merkle tree as of the stored size (read-only use). No swap
    /// happens while `f` runs.
    pub fn with_merkle<T>(
        &self,
        f: impl FnOnce(&MerkleTree<Blake3Hasher, SledNodes<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tree = self.tree();
        let size = self.size()?;
        let merkle = MerkleTree::open(Blake3Hasher, SledNodes::new(&tree), TreeSize(size))?;
        f(&merkle)
    }

    /// Root of the tree of `size` leaves (any size up to the current one).
    pub fn root_at(&self, size: u64) -> Result<Hash, StoreError> {
        self.with_merkle(|m| Ok(m.root_at(TreeSize(size))?))
    }

    /// This node's own signed checkpoint at `size`, if it signed one.
    pub fn own_checkpoint(&self, size: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.tree()
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
        let tree = self.tree();
        match tree.get(META_LATEST_CHECKPOINT)? {
            None => Ok(None),
            Some(bytes) => self.own_checkpoint(decode_u64(&bytes, "latest checkpoint size")?),
        }
    }

    /// Persists the admitted leaves of one batch with their effects, the Merkle nodes,
    /// the rejection count, extra metadata, and (with a `signer`) this node's signed
    /// checkpoint of the resulting size if it has not signed that size yet — all in one
    /// atomic sled batch. Refuses to sign a checkpoint inconsistent with the one it
    /// signed before.
    pub fn commit_batch(
        &self,
        admitted: &[Admitted],
        rejected: u64,
        extra_meta: &[(&[u8], Vec<u8>)],
        signer: Option<&NoteSigner>,
    ) -> Result<AppliedBatch, StoreError> {
        let tree = self.tree();
        let size = self.size()?;
        let mut batch = sled::Batch::default();
        let mut merkle = MerkleTree::open(Blake3Hasher, SledNodes::new(&tree), TreeSize(size))?;
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
            // On the live board the last signed size is the board's size, so this signs
            // exactly when the size grew; a staged board's tip may be unsigned.
            Some(signer)
                if previous
                    .as_ref()
                    .is_none_or(|p| p.checkpoint().size.0 != new_size) =>
            {
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
        tree.apply_batch(batch)?;
        Ok(AppliedBatch {
            size: new_size,
            root,
            checkpoint,
        })
    }

    /// Recomputes the whole tree from the stored leaf bytes and compares it with the
    /// stored node hashes and with this node's last signed checkpoint. Detects edited,
    /// missing or truncated leaves and nodes. O(n) hashing (about a second per million
    /// leaves) in O(log n) memory: the leaves stream through a [`Frontier`].
    pub fn verify_integrity(&self) -> Result<Option<Checkpoint>, StoreError> {
        let tree = self.tree();
        let size = self.size()?;
        let mut recomputed = Frontier::new(Blake3Hasher);
        let mut expected_index = 0u64;
        for row in tree.scan_prefix([b'l']) {
            let (key, value) = row?;
            let index = decode_u64(&key[1..], "leaf key")?;
            if index != expected_index {
                return Err(IntegrityError::MissingLeaf {
                    missing: expected_index,
                    next: index,
                }
                .into());
            }
            recomputed.append(leaf_hash(&value));
            expected_index += 1;
        }
        if expected_index != size {
            return Err(IntegrityError::LeafCount {
                stored: expected_index,
                recorded: size,
            }
            .into());
        }
        let recomputed_root = recomputed.root();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use bboard_core::board::BatchApplier;
    use bboard_core::envelope::SignedEnvelope;
    use bboard_core::leaf::encode_leaf;
    use bboard_core::pb;
    use bboard_merkle::LeafIndex;
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
                organisations: Vec::new(),
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
        // sled releases its file lock when its background flusher ends, a moment
        // after the last handle of a reopened store is dropped.
        let started = std::time::Instant::now();
        let db = loop {
            match sled::Config::new().path(dir).open() {
                Ok(db) => break db,
                Err(e) if started.elapsed() > std::time::Duration::from_secs(10) => {
                    panic!("opening {}: {e}", dir.display())
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        let store = BoardStore::open(&db, ORIGIN).unwrap();
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
        store.with_tree(|t| t.insert(leaf_key(1), edited)).unwrap();
        let error = store.verify_integrity().unwrap_err();
        assert!(format!("{error}").contains("leaves were edited"), "{error}");
    }

    #[test]
    fn a_truncated_store_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = three_entry_board(dir.path());
        store.with_tree(|t| t.remove(leaf_key(2))).unwrap();
        assert!(matches!(
            store.verify_integrity(),
            Err(StoreError::Integrity(IntegrityError::LeafCount {
                stored: 2,
                recorded: 3
            }))
        ));
        // Also consistent truncation (size lowered too) contradicts the signed checkpoint.
        store
            .with_tree(|t| t.insert(META_SIZE, &2u64.to_be_bytes()))
            .unwrap();
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
        store.with_tree(|tree| {
            for row in tree.iter() {
                let (key, _) = row.unwrap();
                if key.first() != Some(&b'c') && key.as_ref() != META_LATEST_CHECKPOINT {
                    tree.remove(key).unwrap();
                }
            }
        });
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

    /// Names of the board generations in `db`.
    fn generations(db: &sled::Db) -> Vec<String> {
        db.tree_names()
            .into_iter()
            .filter(|n| is_generation(n))
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .collect()
    }

    /// A staged board of genesis + notes `1..=n` (signed, so the rules admit them).
    fn staged_board(live: &BoardStore, n: u64) -> StagedBoard {
        let authority = SigningKey::from_bytes(&[1; 32]);
        let staged = live.begin_staging().unwrap();
        let leaves: Vec<Vec<u8>> = std::iter::once(genesis(&authority))
            .chain((1..=n).map(|i| note(&authority, i)))
            .collect();
        let mut applier = BatchApplier::new(staged.board()).unwrap();
        for leaf in &leaves {
            applier.apply(leaf).unwrap();
        }
        staged
            .board()
            .commit_batch(&applier.finish(), 0, &[], None)
            .unwrap();
        staged
    }

    #[test]
    fn a_staged_board_is_invisible_until_swapped_in_then_every_clone_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, live) = three_entry_board(dir.path());
            let reader = live.clone();
            let signed = live.latest_own_checkpoint().unwrap().unwrap();
            let staged = staged_board(&live, 5);
            assert_eq!(staged.board().size().unwrap(), 6);
            // The live board does not see the staged leaves.
            assert_eq!(reader.size().unwrap(), 3);
            assert!(reader.leaf(3).unwrap().is_none());
            staged.adopt_signed_history(&live).unwrap();
            let new_generation = staged.name();
            live.swap_in(staged).unwrap();
            // Every clone now reads the new board, with the signatures it adopted.
            assert_eq!(reader.size().unwrap(), 6);
            assert!(reader.leaf(5).unwrap().is_some());
            assert_eq!(reader.generation(), new_generation);
            assert_eq!(reader.own_checkpoint(3).unwrap().unwrap(), signed);
            // The replaced board is gone.
            assert_eq!(generations(&db), vec![new_generation]);
        }
        // The swap is durable: reopening serves the new board.
        let (db, store) = board(dir.path());
        assert_eq!(store.size().unwrap(), 6);
        assert_ne!(store.generation(), FIRST_GENERATION);
        assert_eq!(generations(&db).len(), 1);
        // Its tip is not signed yet (the state machine signs it when sealing), and the
        // node still refuses anything that does not extend what it signed.
        assert_eq!(
            store
                .latest_own_checkpoint()
                .unwrap()
                .unwrap()
                .checkpoint()
                .size
                .0,
            3
        );
        let sealed = store.commit_batch(&[], 0, &[], Some(&signer())).unwrap();
        assert_eq!(sealed.checkpoint.unwrap().checkpoint().size.0, 6);
        assert_eq!(store.verify_integrity().unwrap().unwrap().size.0, 6);
    }

    #[test]
    fn readers_during_a_swap_see_the_old_board_or_the_new_never_a_mix_or_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, live) = three_entry_board(dir.path());
        let old = (3, live.root_at(3).unwrap());
        let staged = staged_board(&live, 5);
        staged.adopt_signed_history(&live).unwrap();
        let new = (6, staged.board().root_at(6).unwrap());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, stop) = (live.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // Size, root and last leaf of one board, read in one call.
                        let view = store.with_merkle(|m| {
                            let size = m.size().0;
                            let last = store.leaf(size - 1)?.map(|l| leaf_hash(&l));
                            Ok((
                                size,
                                m.root()?,
                                last == Some(m.leaf_hash(LeafIndex(size - 1))?),
                            ))
                        });
                        seen.push(view.unwrap());
                    }
                    seen
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        live.swap_in(staged).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            let seen = reader.join().unwrap();
            assert!(
                seen.iter().any(|v| (v.0, v.1) == new),
                "never saw the new board"
            );
            for (size, root, leaf_matches) in seen {
                assert!(
                    (size, root) == old || (size, root) == new,
                    "a mix: {size} {root}"
                );
                assert!(leaf_matches);
            }
        }
    }

    #[test]
    fn a_crash_mid_staging_reopens_the_old_board_and_drops_the_staging_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = {
            let (db, live) = three_entry_board(dir.path());
            let mut staged = staged_board(&live, 5);
            // A crash: the process dies before the staged board is swapped in or
            // dropped.
            staged.keep = true;
            drop(staged);
            assert_eq!(generations(&db).len(), 2);
            live.root_at(3).unwrap()
        };
        let (db, store) = board(dir.path());
        assert_eq!(store.generation(), FIRST_GENERATION);
        assert_eq!(store.size().unwrap(), 3);
        assert_eq!(store.root_at(3).unwrap(), root);
        assert_eq!(store.verify_integrity().unwrap().unwrap().root, root);
        assert_eq!(generations(&db), vec![FIRST_GENERATION.to_string()]);
    }

    #[test]
    fn a_crash_after_the_swap_is_recorded_opens_the_new_board() {
        let dir = tempfile::tempdir().unwrap();
        let new_generation = {
            let (db, live) = three_entry_board(dir.path());
            let mut staged = staged_board(&live, 5);
            staged.adopt_signed_history(&live).unwrap();
            // The commit point reached the disk, then the process died before it
            // swapped the pointer or dropped the old tree.
            staged.keep = true;
            let name = staged.name();
            let registry = db.open_tree(ACTIVE_TREE).unwrap();
            registry.insert(ACTIVE_KEY, name.as_bytes()).unwrap();
            db.flush().unwrap();
            name
        };
        let (db, store) = board(dir.path());
        assert_eq!(store.generation(), new_generation);
        assert_eq!(store.size().unwrap(), 6);
        assert_eq!(generations(&db), vec![new_generation]);
    }

    #[test]
    fn a_staged_board_contradicting_a_signed_checkpoint_is_not_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, live) = three_entry_board(dir.path());
        // Shorter than the signed size 3.
        let shorter = staged_board(&live, 1);
        assert!(matches!(
            shorter.adopt_signed_history(&live),
            Err(StoreError::Integrity(IntegrityError::WouldShrink {
                new_size: 2,
                signed_size: 3
            }))
        ));
        // Longer, but another history: genesis, then notes 1 and 3 at index 1 and 2.
        let authority = SigningKey::from_bytes(&[1; 32]);
        let other = live.begin_staging().unwrap();
        let mut applier = BatchApplier::new(other.board()).unwrap();
        for leaf in [
            genesis(&authority),
            note(&authority, 1),
            note(&authority, 3),
            note(&authority, 4),
        ] {
            applier.apply(&leaf).unwrap();
        }
        other
            .board()
            .commit_batch(&applier.finish(), 0, &[], None)
            .unwrap();
        assert!(matches!(
            other.adopt_signed_history(&live),
            Err(StoreError::Integrity(IntegrityError::WouldRewrite {
                size: 3,
                ..
            }))
        ));
    }

    #[test]
    fn only_the_live_board_can_swap_and_a_dropped_staging_board_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (db, live) = three_entry_board(dir.path());
        let staged = staged_board(&live, 4);
        let other = live.begin_staging().unwrap();
        assert!(matches!(
            staged.board().swap_in(other),
            Err(StoreError::NotActive { .. })
        ));
        drop(staged);
        assert_eq!(generations(&db), vec![FIRST_GENERATION.to_string()]);
        assert_eq!(live.size().unwrap(), 3);
    }
}
