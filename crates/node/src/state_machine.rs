//! openraft state machine of a bboard node, over [`BoardStore`].
//!
//! Apply is deterministic: for each Raft entry carrying a batch of leaves, the
//! stateless checks (decoding, strict signature verification) run in parallel across
//! the batch, then the board rules ([`BatchApplier`]) run in order, and the result —
//! leaves, Merkle nodes, indexes, registry changes and this node's signed checkpoint of
//! the new size — is written in one atomic sled batch.
//!
//! Snapshots are files: a MessagePack header (last log id, membership, size, root)
//! followed by every leaf, length-prefixed. They are streamed from and to disk, never
//! held in memory. Installing one is **staged**: the live board keeps serving and
//! signing exactly what it did while
//!
//! 1. the file is bounded (at most [`MAX_SNAPSHOT_BYTES`], no more leaves than it can
//!    hold, each leaf within the board's leaf limit, nothing after the last) and may
//!    not be shorter than what this node signed — a node never goes back on a
//!    signature;
//! 2. every leaf is re-hashed and re-applied through the same board rules (so every
//!    signature is re-checked) into a new board generation beside the live one
//!    ([`BoardStore::begin_staging`]), in bounded chunks written to disk, never the
//!    whole tree in memory;
//! 3. the staged root must equal the header's, and the staged tree must hold the root
//!    of every checkpoint this node signed before at its size (the checkpoints are
//!    copied into the staged board, so the node keeps refusing rewrites after);
//! 4. the other nodes must vouch for the staged checkpoint: their signatures, gathered
//!    by [`SnapshotVouchers`], must reach the node policy without this node's own key
//!    (it cannot vouch for a board it has not computed from its own log).
//!
//! Only then does the node sign the staged root (into the staged board), and
//! [`BoardStore::swap_in`] makes the staged board, its signature and the state
//! machine's metadata (last applied, membership, stored snapshot) live in one step. A
//! failure at any point before leaves the old board as it was and drops the staging
//! tree; a crash leaves one that the next start drops, together with abandoned
//! `incoming-*.tmp` files.

use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bboard_core::board::{Admitted, BatchApplier, BoardView, Outcome};
use bboard_core::checkpoint::{
    Checkpoint, CosignaturePolicy, NoteSigner, NoteVerifier, SignedCheckpoint,
};
use bboard_core::election::{precheck, precheck_known};
use bboard_merkle::{Blake3Hasher, Hash, TreeSize};
use futures::future::BoxFuture;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::board_store::{
    decode, encode, AppliedBatch, BoardStore, IntegrityError, SnapshotError, StagedBoard,
    StoreError, META_LAST_APPLIED, META_MEMBERSHIP,
};
use crate::types::{BoardRequest, BoardResponse, NodeId, TypeConfig};
use crate::verified::VerifiedEnvelopes;

type Membership = StoredMembership<NodeId, crate::types::BoardNode>;
type Meta = SnapshotMeta<NodeId, crate::types::BoardNode>;

const META_SNAPSHOT: &[u8] = b"msnapshot";
/// Names of files receiving a snapshot: `incoming-<nanos>.tmp`.
const INCOMING_PREFIX: &str = "incoming-";
/// Most leaves re-applied per sled batch when staging a snapshot.
const INSTALL_CHUNK: usize = 1024;
/// Most leaf bytes re-applied per sled batch when staging a snapshot: with leaves of
/// up to [`MAX_SNAPSHOT_LEAF`], the count alone would allow a quarter GiB in memory.
const INSTALL_CHUNK_BYTES: usize = 8 << 20;
/// Largest leaf accepted from a snapshot file: the board's own leaf limit.
const MAX_SNAPSHOT_LEAF: u32 = bboard_core::leaf::MAX_LEAF_BYTES as u32;
/// Largest snapshot file installed. Tens of millions of ballots fit; a file beyond it
/// is refused before it is read, so a peer cannot make this node stage without end.
pub const MAX_SNAPSHOT_BYTES: u64 = 64 << 30;
/// Largest snapshot header.
const MAX_SNAPSHOT_HEADER: u32 = 1 << 20;
/// The length prefix: the least room a leaf takes in a snapshot file.
const LEAF_PREFIX_BYTES: u64 = 4;

/// What the rest of the node learns after each applied entry.
#[derive(Clone, Debug, Default)]
pub struct AppliedState {
    /// Board size.
    pub size: u64,
    /// Root of the board.
    pub root: Option<Hash>,
    /// This node's latest signed checkpoint.
    pub checkpoint: Option<SignedCheckpoint>,
}

/// Why the other nodes' signatures over a staged snapshot could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum VouchError {
    /// No other node signed the checkpoint (unreachable, not there yet, or signing
    /// another root) before the vouchers gave up.
    #[error("no other node signed size {size} root {root}")]
    NoSignature {
        /// The size asked about.
        size: u64,
        /// The root asked about.
        root: Hash,
    },
}

/// Who vouches for the checkpoint of a snapshot before this node installs it.
///
/// The state machine has no network: the node hands it an implementation that asks
/// the other nodes (`crate::cosign::PeerVouchers`); tests hand it fakes.
pub trait SnapshotVouchers: Send + Sync {
    /// `checkpoint` with the signatures the other nodes gave it. Unverified: the
    /// state machine judges them against the node policy without its own key.
    fn cosigned_checkpoint(
        &self,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'_, Result<SignedCheckpoint, VouchError>>;
}

/// How the state machine decides that peers vouched for a snapshot.
#[derive(Clone)]
enum Vouching {
    /// Nobody said: every install is refused, so a node whose wiring forgot the
    /// vouchers fails closed.
    Unconfigured,
    /// The other nodes vouch; their signatures must reach `node_policy` without this
    /// node's key.
    Peers {
        vouchers: Arc<dyn SnapshotVouchers>,
        node_policy: CosignaturePolicy,
    },
    /// Explicitly no peers to ask (see [`BoardStateMachine::without_snapshot_vouchers`]).
    Skipped,
}

/// The vouchers of an install and the policy their signatures must reach.
type PeerVouching = (Arc<dyn SnapshotVouchers>, CosignaturePolicy);

/// `policy` without `own`'s key (by name or public key), at the same threshold: what
/// the other nodes' signatures must reach on their own.
pub fn peer_policy(
    policy: &CosignaturePolicy,
    own: &NoteVerifier,
) -> Result<CosignaturePolicy, bboard_core::Error> {
    let others = policy
        .keys()
        .iter()
        .filter(|k| k.name() != own.name() && k.public_key() != own.public_key())
        .cloned()
        .collect();
    CosignaturePolicy::new(policy.origin(), others, policy.threshold())
}

fn io_error(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

fn sm_write_error(error: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&io_error(error)).into()
}

fn sm_read_error(error: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&io_error(error)).into()
}

fn snapshot_error(error: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, &io_error(error)).into()
}

/// Header of a snapshot file.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    meta: Meta,
    size: u64,
    root: [u8; 32],
    rejected: u64,
}

/// Where the current snapshot is.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: Meta,
    file: String,
}

impl StoredSnapshot {
    /// The snapshot file's name within the snapshot directory.
    fn file_name(&self) -> Option<String> {
        Path::new(&self.file)
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
    }
}

/// A snapshot staged beside the live board and checked whole, waiting for the peers'
/// word and the swap.
struct Staged {
    board: StagedBoard,
    checkpoint: Checkpoint,
    rejected: u64,
    file: std::fs::File,
}

/// The state machine of a bboard node.
pub struct BoardStateMachine {
    db: sled::Db,
    board: BoardStore,
    signer: NoteSigner,
    snapshot_dir: PathBuf,
    applied: watch::Sender<AppliedState>,
    vouching: Vouching,
    install_chunk: usize,
    /// Envelopes this node verified before proposing them (not verified again).
    verified: Arc<VerifiedEnvelopes>,
}

impl BoardStateMachine {
    /// Opens the state machine in `db`, checks the store's integrity (recomputed root
    /// against this node's last signed checkpoint) and refuses to start if it fails.
    /// Removes what an interrupted snapshot left behind (staging trees, received or
    /// half-written files). It installs no snapshot until told who vouches for one
    /// ([`Self::with_snapshot_vouchers`], [`Self::without_snapshot_vouchers`]).
    pub fn open(
        db: sled::Db,
        origin: &str,
        signer: NoteSigner,
        snapshot_dir: &Path,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(snapshot_dir).map_err(|source| StoreError::Io {
            action: "creating snapshot directory",
            path: snapshot_dir.to_path_buf(),
            source,
        })?;
        let board = BoardStore::open(&db, origin)?;
        let checkpoint = board.verify_integrity()?;
        let size = board.size()?;
        let root = if size > 0 || checkpoint.is_some() {
            Some(board.root_at(size)?)
        } else {
            None
        };
        let (applied, _) = watch::channel(AppliedState {
            size,
            root,
            checkpoint: board.latest_own_checkpoint()?,
        });
        let sm = BoardStateMachine {
            db,
            board,
            signer,
            snapshot_dir: snapshot_dir.to_path_buf(),
            applied,
            vouching: Vouching::Unconfigured,
            install_chunk: INSTALL_CHUNK,
            verified: Arc::default(),
        };
        let current = sm
            .read_meta::<StoredSnapshot>(META_SNAPSHOT)?
            .and_then(|s| s.file_name());
        remove_files(&sm.snapshot_dir, |name| {
            name.ends_with(".tmp") || (name.ends_with(".snap") && Some(name) != current.as_deref())
        });
        Ok(sm)
    }

    /// Installs snapshots only with the other nodes' word: before a snapshot is
    /// swapped in, `vouchers` gathers their signatures over its checkpoint, and they
    /// must reach `node_policy` without this node's own key.
    pub fn with_snapshot_vouchers(
        mut self,
        vouchers: Arc<dyn SnapshotVouchers>,
        node_policy: CosignaturePolicy,
    ) -> Self {
        self.vouching = Vouching::Peers {
            vouchers,
            node_policy,
        };
        self
    }

    /// Installs snapshots on this node's own checks alone (every leaf re-hashed and
    /// re-applied, the root against the header and against every checkpoint this node
    /// signed), without asking peers. Only for state machines that have no peers to
    /// ask — openraft's conformance suite, unit tests; a node with peers uses
    /// [`Self::with_snapshot_vouchers`].
    pub fn without_snapshot_vouchers(mut self) -> Self {
        self.vouching = Vouching::Skipped;
        self
    }

    /// Read access to the board (for the services).
    pub fn board(&self) -> BoardStore {
        self.board.clone()
    }

    /// Subscribes to applied-state changes.
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.applied.subscribe()
    }

    /// What the services share with this state machine: the board's read side, its
    /// applied state, and the set of envelopes the service verifies in full before
    /// proposing them, which apply then takes as verified ([`crate::verified`]).
    pub fn handles(&self) -> crate::node::StateMachineHandles {
        crate::node::StateMachineHandles {
            board: self.board(),
            applied: self.subscribe(),
            verified: self.verified.clone(),
        }
    }

    /// Another handle on the same state machine, for a blocking task.
    fn handle(&self) -> Self {
        BoardStateMachine {
            db: self.db.clone(),
            board: self.board.clone(),
            signer: self.signer.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
            applied: self.applied.clone(),
            vouching: self.vouching.clone(),
            install_chunk: self.install_chunk,
            verified: self.verified.clone(),
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.board
            .with_tree(|tree| tree.get(key))?
            .map(|bytes| decode(&bytes, "state machine metadata"))
            .transpose()
    }

    fn publish(&self, size: u64, root: Hash, checkpoint: Option<SignedCheckpoint>) {
        self.applied.send_modify(|state| {
            state.size = size;
            state.root = Some(root);
            if checkpoint.is_some() {
                state.checkpoint = checkpoint;
            }
        });
    }

    /// Runs the board rules over `leaves` in order (their stateless checks in
    /// parallel first): the outcome of each, and what to persist.
    fn run_rules(
        board: &BoardStore,
        leaves: &[Vec<u8>],
        verified: Option<&VerifiedEnvelopes>,
    ) -> Result<(Vec<Outcome>, Vec<Admitted>), StoreError> {
        // Stateless checks (decoding, signatures, ballot proofs) in parallel; the
        // result is the same on every node, and the same whether this node already
        // verified an envelope in its service or verifies it here.
        let prechecked = leaves
            .par_iter()
            .map(|leaf| match verified {
                Some(verified) => precheck_known(board, leaf, |proto| verified.take(proto)),
                None => precheck(board, leaf),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut applier = BatchApplier::new(board)?;
        let outcomes = leaves
            .iter()
            .zip(&prechecked)
            .map(|(leaf, prechecked)| applier.apply_prechecked(leaf, prechecked))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((outcomes, applier.finish()))
    }

    /// Applies one batch of leaves (blocking: CPU and sled work).
    fn apply_batch(
        board: &BoardStore,
        signer: &NoteSigner,
        leaves: &[Vec<u8>],
        log_id: &LogId<NodeId>,
        verified: &VerifiedEnvelopes,
    ) -> Result<(BoardResponse, AppliedBatch), StoreError> {
        let reordered;
        let leaves =
            if crate::fault::active() == Some(crate::fault::Fault::Reorder) && leaves.len() >= 2 {
                let mut swapped = leaves.to_vec();
                swapped.swap(0, 1);
                reordered = swapped;
                &reordered[..]
            } else {
                leaves
            };
        let (outcomes, admitted) = Self::run_rules(board, leaves, Some(verified))?;
        let mut rejected = 0u64;
        for outcome in &outcomes {
            if let Outcome::Rejected(rejection) = outcome {
                // A correct leader pre-checks and never proposes such an entry.
                tracing::warn!(%log_id, %rejection, "committed entry rejected on apply");
                rejected += 1;
            }
        }
        let applied = board.commit_batch(
            &admitted,
            rejected,
            &[(META_LAST_APPLIED, encode(&Some(*log_id))?)],
            Some(signer),
        )?;
        Ok((
            BoardResponse {
                outcomes,
                tree_size: applied.size,
            },
            applied,
        ))
    }

    /// The vouchers and the policy their signatures must reach, or why no snapshot
    /// can be installed; `None` when vouching is explicitly skipped.
    fn vouching_policy(&self) -> Result<Option<PeerVouching>, StoreError> {
        match &self.vouching {
            Vouching::Unconfigured => Err(SnapshotError::NoVouchers.into()),
            Vouching::Skipped => Ok(None),
            Vouching::Peers {
                vouchers,
                node_policy,
            } => {
                let policy =
                    peer_policy(node_policy, &self.signer.verifier()).map_err(|source| {
                        SnapshotError::CannotBeVouched {
                            threshold: node_policy.threshold(),
                            others: node_policy.keys().len().saturating_sub(1),
                            source: Box::new(source),
                        }
                    })?;
                Ok(Some((vouchers.clone(), policy)))
            }
        }
    }

    /// Installs a received snapshot file: stage and check, ask the peers, seal and
    /// swap (see the module documentation). The live board changes only in the swap.
    /// Either way the received file is removed: it was copied if it was kept.
    async fn install(&self, meta: &Meta, file: std::fs::File) -> Result<(), StoreError> {
        let result = self.stage_vouch_and_swap(meta, file).await;
        // openraft receives one snapshot at a time, through this state machine's
        // task, which is busy here: no other incoming file is being written.
        let dir = self.snapshot_dir.clone();
        tokio::task::spawn_blocking(move || remove_files(&dir, is_incoming)).await?;
        result
    }

    async fn stage_vouch_and_swap(
        &self,
        meta: &Meta,
        file: std::fs::File,
    ) -> Result<(), StoreError> {
        let vouching = self.vouching_policy()?;
        let stager = self.handle();
        let staging_meta = meta.clone();
        let staged =
            tokio::task::spawn_blocking(move || stager.stage(&staging_meta, file)).await??;
        if let Some((vouchers, policy)) = vouching {
            if let Err(e) = Self::vouch(&*vouchers, &policy, &staged.checkpoint).await {
                // Dropping the staged board drops its tree: sled work, off the runtime.
                tokio::task::spawn_blocking(move || drop(staged)).await?;
                return Err(e);
            }
        }
        let sealer = self.handle();
        let sealing_meta = meta.clone();
        let applied =
            tokio::task::spawn_blocking(move || sealer.seal_and_swap(staged, &sealing_meta))
                .await??;
        if applied.size > 0 {
            self.publish(applied.size, applied.root, applied.checkpoint);
        }
        Ok(())
    }

    /// Steps 1–3 of an install (blocking): bounds, staging through the board rules,
    /// the root against the header and against this node's signed checkpoints.
    fn stage(&self, meta: &Meta, file: std::fs::File) -> Result<Staged, StoreError> {
        let unreadable = |source| SnapshotError::Read {
            part: "snapshot file",
            source,
        };
        let len = file.metadata().map_err(unreadable)?.len();
        if len > MAX_SNAPSHOT_BYTES {
            return Err(SnapshotError::FileTooLarge {
                len,
                limit: MAX_SNAPSHOT_BYTES,
            }
            .into());
        }
        let mut reader = BufReader::new(file);
        reader
            .seek(std::io::SeekFrom::Start(0))
            .map_err(unreadable)?;
        let header: SnapshotHeader = read_header(&mut reader)?;
        if header.meta.last_log_id != meta.last_log_id {
            return Err(SnapshotError::WrongLogId {
                header: format!("{:?}", header.meta.last_log_id),
                installing: format!("{:?}", meta.last_log_id),
            }
            .into());
        }
        let leaves_start = reader.stream_position().map_err(unreadable)?;
        let room = len.saturating_sub(leaves_start) / LEAF_PREFIX_BYTES;
        if header.size > room {
            return Err(SnapshotError::TooManyLeaves {
                claimed: header.size,
                room,
            }
            .into());
        }
        // A node never goes back on what it signed: a shorter history is refused
        // before any work.
        if let Some(latest) = self.board.latest_own_checkpoint()? {
            let signed_size = latest.checkpoint().size.0;
            if signed_size > header.size {
                return Err(IntegrityError::WouldShrink {
                    new_size: header.size,
                    signed_size,
                }
                .into());
            }
        }

        let staged = self.board.begin_staging()?;
        let mut remaining = header.size;
        while remaining > 0 {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while remaining > 0 && chunk.len() < self.install_chunk && bytes < INSTALL_CHUNK_BYTES {
                let leaf = read_leaf(&mut reader)?;
                bytes += leaf.len();
                chunk.push(leaf);
                remaining -= 1;
            }
            // A snapshot's leaves were never seen by this node's service.
            let (outcomes, admitted) = Self::run_rules(staged.board(), &chunk, None)?;
            if let Some(refused) = outcomes
                .iter()
                .find(|o| !matches!(o, Outcome::Appended { .. }))
            {
                return Err(SnapshotError::NotAdmitted {
                    outcome: format!("{refused:?}"),
                }
                .into());
            }
            staged.board().commit_batch(&admitted, 0, &[], None)?;
        }
        if !reader.fill_buf().map_err(unreadable)?.is_empty() {
            return Err(SnapshotError::TrailingBytes { size: header.size }.into());
        }
        let root = staged.board().root_at(header.size)?;
        if root.0 != header.root {
            return Err(SnapshotError::RootMismatch {
                leaves: root,
                header: Hash(header.root),
            }
            .into());
        }
        staged.adopt_signed_history(&self.board)?;
        Ok(Staged {
            board: staged,
            checkpoint: Checkpoint {
                origin: self.board.origin().to_string(),
                size: TreeSize(header.size),
                root,
            },
            rejected: header.rejected,
            file: reader.into_inner(),
        })
    }

    /// Step 4: the other nodes' signatures over the staged checkpoint must reach
    /// `policy` (the node policy without this node's key).
    async fn vouch(
        vouchers: &dyn SnapshotVouchers,
        policy: &CosignaturePolicy,
        staged: &Checkpoint,
    ) -> Result<(), StoreError> {
        let (size, root) = (staged.size.0, staged.root);
        let signed = vouchers
            .cosigned_checkpoint(staged.clone())
            .await
            .map_err(|source| SnapshotError::Unvouched { size, root, source })?;
        let vouched = signed.checkpoint();
        if vouched != staged {
            return Err(SnapshotError::VouchedOtherCheckpoint {
                size,
                root,
                vouched: format!(
                    "origin {} size {} root {}",
                    vouched.origin, vouched.size, vouched.root
                ),
            }
            .into());
        }
        policy
            .verify(&signed)
            .map_err(|source| SnapshotError::NotVouched {
                size,
                root,
                source: Box::new(source),
            })?;
        Ok(())
    }

    /// The end of an install (blocking): keep the file, sign the staged root and
    /// record the state machine's metadata in the staged board, then swap it in.
    fn seal_and_swap(&self, staged: Staged, meta: &Meta) -> Result<AppliedBatch, StoreError> {
        let Staged {
            board,
            checkpoint,
            rejected,
            file,
        } = staged;
        // Named after the generation it belongs to, never after the peer's snapshot
        // id (not a safe file name).
        let path = self.snapshot_dir.join(format!("{}.snap", board.name()));
        let sealed = keep_file(file, &path).and_then(|()| {
            let stored = StoredSnapshot {
                meta: meta.clone(),
                file: path.to_string_lossy().into_owned(),
            };
            // Signed only now that every check passed, over the root computed from
            // the staged board; it becomes visible with the swap, in the same flush.
            board.board().commit_batch(
                &[],
                rejected,
                &[
                    (META_LAST_APPLIED, encode(&meta.last_log_id)?),
                    (META_MEMBERSHIP, encode(&meta.last_membership)?),
                    (META_SNAPSHOT, encode(&stored)?),
                ],
                (checkpoint.size.0 > 0).then_some(&self.signer),
            )
        });
        let applied = match sealed {
            Ok(applied) => applied,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let previous: Option<StoredSnapshot> = self.read_meta(META_SNAPSHOT)?;
        // From here on the file is referenced by whichever board the next start
        // finds recorded, so it stays even if the swap fails.
        self.board.swap_in(board)?;
        let kept = path.file_name().and_then(|n| n.to_str());
        let replaced = previous.and_then(|p| p.file_name());
        remove_files(&self.snapshot_dir, |name| {
            Some(name) == replaced.as_deref() && Some(name) != kept
        });
        Ok(applied)
    }
}

/// Copies the received snapshot file to `path` and makes it durable (file and
/// directory entry), so the stored snapshot it becomes is never a dangling name.
fn keep_file(mut source: std::fs::File, path: &Path) -> Result<(), StoreError> {
    let io = |source: std::io::Error| StoreError::Io {
        action: "keeping snapshot",
        path: path.to_path_buf(),
        source,
    };
    source.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    let mut target = std::fs::File::create(path).map_err(io)?;
    std::io::copy(&mut source, &mut target).map_err(io)?;
    target.sync_all().map_err(io)?;
    sync_parent(path)
}

/// Flushes the directory holding `path`, so a new or renamed file's name survives a
/// crash.
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            action: "flushing snapshot directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Whether `name` is a file [`BoardStateMachine::begin_receiving_snapshot`] created.
fn is_incoming(name: &str) -> bool {
    name.starts_with(INCOMING_PREFIX) && name.ends_with(".tmp")
}

/// Removes the files of `dir` whose names match (best effort: leftovers only cost disk).
fn remove_files(dir: &Path, matches: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if let Some(name) = entry.file_name().to_str() {
            if matches(name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Writes a length-prefixed part of a snapshot file (the header or one leaf).
fn write_part(writer: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io_error("snapshot part over 4 GiB"))?;
    writer.write_all(&len.to_be_bytes())?;
    writer.write_all(bytes)
}

/// Reads a length-prefixed part of a snapshot file, refusing one beyond `limit`
/// before allocating for it.
fn read_part(
    reader: &mut impl Read,
    part: &'static str,
    limit: u32,
) -> Result<Vec<u8>, StoreError> {
    let unreadable = |source| SnapshotError::Read { part, source };
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).map_err(unreadable)?;
    let len = u32::from_be_bytes(len);
    if len > limit {
        return Err(SnapshotError::TooLarge { part, len, limit }.into());
    }
    let mut bytes = vec![0; len as usize];
    reader.read_exact(&mut bytes).map_err(unreadable)?;
    Ok(bytes)
}

fn read_header(reader: &mut impl Read) -> Result<SnapshotHeader, StoreError> {
    let bytes = read_part(reader, "snapshot header", MAX_SNAPSHOT_HEADER)?;
    decode(&bytes, "snapshot header")
}

fn read_leaf(reader: &mut impl Read) -> Result<Vec<u8>, StoreError> {
    read_part(reader, "snapshot leaf", MAX_SNAPSHOT_LEAF)
}

/// Builds a snapshot file of the board as of when the builder was created.
pub struct BoardSnapshotBuilder {
    db: sled::Db,
    board: BoardStore,
    header: SnapshotHeader,
    snapshot_dir: PathBuf,
}

impl BoardSnapshotBuilder {
    /// Writes the snapshot file (blocking); returns its path.
    ///
    /// The builder reads the live board, which a concurrent install may swap: the
    /// leaves below the captured size are the same on both (an install is consistent
    /// with every checkpoint this node signed, and the live board's size is signed).
    fn write_file(&self) -> Result<PathBuf, StoreError> {
        // Everything the snapshot covers must be durable before logs are purged.
        self.db.flush()?;
        let name = format!("{}.snap", self.header.meta.snapshot_id);
        let final_path = self.snapshot_dir.join(&name);
        let temp_path = self.snapshot_dir.join(format!("{name}.tmp"));
        let io = |source: std::io::Error| StoreError::Io {
            action: "writing snapshot",
            path: temp_path.clone(),
            source,
        };
        let file = std::fs::File::create(&temp_path).map_err(io)?;
        let mut writer = BufWriter::new(file);
        write_part(&mut writer, &encode(&self.header)?).map_err(io)?;
        for index in 0..self.header.size {
            let leaf = self
                .board
                .leaf(index)?
                .ok_or(SnapshotError::MissingLeaf { index })?;
            write_part(&mut writer, &leaf).map_err(io)?;
        }
        let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temp_path, &final_path).map_err(io)?;
        sync_parent(&final_path)?;
        Ok(final_path)
    }

    /// Records `stored` as the current snapshot unless the board already records a
    /// newer one (an install that finished while this was building); returns the
    /// record it replaced.
    fn record(&self, stored: &StoredSnapshot) -> Result<Option<StoredSnapshot>, StoreError> {
        // One generation throughout: no swap between the read and the write.
        self.board.with_tree(|tree| {
            let previous: Option<StoredSnapshot> = tree
                .get(META_SNAPSHOT)?
                .map(|b| decode(&b, "stored snapshot"))
                .transpose()?;
            if previous
                .as_ref()
                .is_some_and(|p| p.meta.last_log_id > stored.meta.last_log_id)
            {
                return Ok(None);
            }
            tree.insert(META_SNAPSHOT, encode(stored)?)?;
            Ok(previous)
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for BoardSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let this = BoardSnapshotBuilder {
            db: self.db.clone(),
            board: self.board.clone(),
            header: self.header.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
        };
        let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, StoreError> {
            let path = this.write_file()?;
            // Opened before anything may remove it, so openraft always gets the file.
            let file = std::fs::File::open(&path).map_err(|source| StoreError::Io {
                action: "opening snapshot",
                path: path.clone(),
                source,
            })?;
            let stored = StoredSnapshot {
                meta: this.header.meta.clone(),
                file: path.to_string_lossy().into_owned(),
            };
            let previous = this.record(&stored)?;
            this.db.flush()?;
            if let Some(previous) = previous {
                if previous.file != stored.file {
                    let _ = std::fs::remove_file(&previous.file);
                }
            }
            Ok(file)
        })
        .await
        .map_err(sm_write_error)?
        .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &io_error(e))))?;
        Ok(Snapshot {
            meta: self.header.meta.clone(),
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for BoardStateMachine {
    type SnapshotBuilder = BoardSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let last_applied: Option<Option<LogId<NodeId>>> =
            self.read_meta(META_LAST_APPLIED).map_err(sm_read_error)?;
        let membership: Option<Membership> =
            self.read_meta(META_MEMBERSHIP).map_err(sm_read_error)?;
        Ok((last_applied.flatten(), membership.unwrap_or_default()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BoardResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            match entry.payload {
                EntryPayload::Blank => {
                    self.board
                        .commit_batch(
                            &[],
                            0,
                            &[(
                                META_LAST_APPLIED,
                                encode(&Some(log_id)).map_err(sm_write_error)?,
                            )],
                            None,
                        )
                        .map_err(sm_write_error)?;
                    responses.push(BoardResponse {
                        outcomes: Vec::new(),
                        tree_size: self.board.size().map_err(sm_read_error)?,
                    });
                }
                EntryPayload::Membership(membership) => {
                    let stored = Membership::new(Some(log_id), membership);
                    self.board
                        .commit_batch(
                            &[],
                            0,
                            &[
                                (
                                    META_LAST_APPLIED,
                                    encode(&Some(log_id)).map_err(sm_write_error)?,
                                ),
                                (META_MEMBERSHIP, encode(&stored).map_err(sm_write_error)?),
                            ],
                            None,
                        )
                        .map_err(sm_write_error)?;
                    responses.push(BoardResponse {
                        outcomes: Vec::new(),
                        tree_size: self.board.size().map_err(sm_read_error)?,
                    });
                }
                EntryPayload::Normal(BoardRequest::Batch { leaves }) => {
                    let board = self.board.clone();
                    let signer = self.signer.clone();
                    let verified = self.verified.clone();
                    let leaves: Vec<Vec<u8>> = leaves.into_iter().map(|l| l.0).collect();
                    let (response, applied) = tokio::task::spawn_blocking(move || {
                        Self::apply_batch(&board, &signer, &leaves, &log_id, &verified)
                    })
                    .await
                    .map_err(sm_write_error)?
                    .map_err(sm_write_error)?;
                    self.publish(applied.size, applied.root, applied.checkpoint);
                    responses.push(response);
                }
            }
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> BoardSnapshotBuilder {
        // Capture the state now (the state machine task is not applying); leaves below
        // `size` never change, so the builder can stream them later.
        let (last_log_id, last_membership) = match self.applied_state().await {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(error = %e, "reading applied state for a snapshot");
                (None, Membership::default())
            }
        };
        let size = self.board.size().unwrap_or(0);
        let root = self
            .board
            .root_at(size)
            .unwrap_or_else(|_| bboard_merkle::TreeHasher::empty_root(&Blake3Hasher));
        let rejected = self.board.rejected_count().unwrap_or(0);
        let snapshot_id = match &last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, size),
            None => format!("empty-{size}"),
        };
        BoardSnapshotBuilder {
            db: self.db.clone(),
            board: self.board.clone(),
            header: SnapshotHeader {
                meta: Meta {
                    last_log_id,
                    last_membership,
                    snapshot_id,
                },
                size,
                root: root.0,
                rejected,
            },
            snapshot_dir: self.snapshot_dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        let path = self.snapshot_dir.join(format!(
            "{INCOMING_PREFIX}{}.tmp",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(snapshot_error)?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        let file = snapshot.into_std().await;
        self.install(meta, file).await.map_err(|e| {
            tracing::error!(error = %e, snapshot = %meta.snapshot_id, "refusing snapshot; the board is unchanged");
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                &io_error(e),
            ))
        })?;
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let stored: Option<StoredSnapshot> =
            self.read_meta(META_SNAPSHOT).map_err(sm_read_error)?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let file = tokio::fs::File::open(&stored.file)
            .await
            .map_err(snapshot_error)?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(file),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_store::{open_db, SledLogStore};
    use bboard_core::envelope::SignedEnvelope;
    use bboard_core::leaf::{encode_leaf, leaf_hash};
    use bboard_core::pb;
    use ed25519_dalek::SigningKey;
    use tokio::io::AsyncWriteExt as _;

    const ORIGIN: &str = "suite.test";

    fn signer() -> NoteSigner {
        NoteSigner::new("node-test", SigningKey::from_bytes(&[5; 32])).unwrap()
    }

    /// The other nodes of the tests' cluster.
    fn peer(i: u8) -> NoteSigner {
        NoteSigner::new(&format!("peer-{i}"), SigningKey::from_bytes(&[40 + i; 32])).unwrap()
    }

    /// 2 of 3: this node and two peers, so the peers' two signatures are needed.
    fn node_policy(own: &NoteSigner) -> CosignaturePolicy {
        CosignaturePolicy::new(
            ORIGIN,
            vec![own.verifier(), peer(1).verifier(), peer(2).verifier()],
            2,
        )
        .unwrap()
    }

    /// Peers as the tests need them: each signer signs whatever checkpoint is asked
    /// (with its root replaced by `root`, if set); `fail` makes them unreachable.
    #[derive(Default)]
    struct FakeVouchers {
        signers: Vec<NoteSigner>,
        root: Option<Hash>,
        fail: bool,
    }

    impl FakeVouchers {
        fn honest() -> Self {
            FakeVouchers {
                signers: vec![peer(1), peer(2)],
                ..Default::default()
            }
        }
    }

    impl SnapshotVouchers for FakeVouchers {
        fn cosigned_checkpoint(
            &self,
            mut checkpoint: Checkpoint,
        ) -> BoxFuture<'_, Result<SignedCheckpoint, VouchError>> {
            Box::pin(async move {
                if let Some(root) = self.root {
                    checkpoint.root = root;
                }
                let no_signature = VouchError::NoSignature {
                    size: checkpoint.size.0,
                    root: checkpoint.root,
                };
                let (first, rest) = match self.signers.split_first() {
                    Some(split) if !self.fail => split,
                    _ => return Err(no_signature),
                };
                let mut merged = SignedCheckpoint::sign(checkpoint.clone(), first).unwrap();
                for signer in rest {
                    merged
                        .merge(&SignedCheckpoint::sign(checkpoint.clone(), signer).unwrap())
                        .unwrap();
                }
                Ok(merged)
            })
        }
    }

    fn open_db_in(dir: &tempfile::TempDir) -> sled::Db {
        open_db(&dir.path().join("db")).unwrap()
    }

    /// A state machine without peers (snapshots checked by the node alone).
    fn open_sm(dir: &tempfile::TempDir, signer: NoteSigner) -> BoardStateMachine {
        BoardStateMachine::open(open_db_in(dir), ORIGIN, signer, &dir.path().join("snap"))
            .unwrap()
            .without_snapshot_vouchers()
    }

    /// A state machine whose snapshots `vouchers` must vouch for, re-applying
    /// snapshots 8 leaves at a time so a small snapshot has many chunks.
    fn open_vouched(dir: &tempfile::TempDir, vouchers: FakeVouchers) -> BoardStateMachine {
        let mut sm =
            BoardStateMachine::open(open_db_in(dir), ORIGIN, signer(), &dir.path().join("snap"))
                .unwrap()
                .with_snapshot_vouchers(Arc::new(vouchers), node_policy(&signer()));
        sm.install_chunk = 8;
        sm
    }

    struct Builder;

    impl
        openraft::testing::StoreBuilder<
            TypeConfig,
            SledLogStore<TypeConfig>,
            BoardStateMachine,
            tempfile::TempDir,
        > for Builder
    {
        async fn build(
            &self,
        ) -> Result<
            (
                tempfile::TempDir,
                SledLogStore<TypeConfig>,
                BoardStateMachine,
            ),
            StorageError<NodeId>,
        > {
            let dir = tempfile::tempdir().unwrap();
            let db = open_db_in(&dir);
            let log = SledLogStore::open(&db).unwrap();
            // The suite has no peers: its snapshots are checked by the node alone.
            let sm = BoardStateMachine::open(db, ORIGIN, signer(), &dir.path().join("snap"))
                .unwrap()
                .without_snapshot_vouchers();
            Ok((dir, log, sm))
        }
    }

    /// openraft's conformance suite against the real log store and state machine.
    #[test]
    fn openraft_conformance_suite() {
        openraft::testing::Suite::test_all(Builder).unwrap();
    }

    fn authority() -> SigningKey {
        SigningKey::from_bytes(&[1; 32])
    }

    fn entry(author: &SigningKey, i: u64, kind: pb::entry_body::Kind) -> Vec<u8> {
        let body = pb::EntryBody {
            election_id: String::new(),
            created_unix_ms: i,
            kind: Some(kind),
        };
        encode_leaf(1000 + i, &SignedEnvelope::sign_body(&body, author))
    }

    fn note(author: &SigningKey, i: u64, text: &str) -> Vec<u8> {
        entry(
            author,
            i,
            pb::entry_body::Kind::Note(pb::Note {
                text: format!("{text} {i}"),
            }),
        )
    }

    /// Genesis, then notes `1..=n` by the authority, each saying `text`.
    fn genesis_and(n: u64, text: &str) -> Vec<Vec<u8>> {
        let authority = authority();
        let mut leaves = vec![entry(
            &authority,
            0,
            pb::entry_body::Kind::Genesis(pb::BoardGenesis {
                origin: ORIGIN.into(),
                authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
                description: String::new(),
                organisations: Vec::new(),
            }),
        )];
        leaves.extend((1..=n).map(|i| note(&authority, i, text)));
        leaves
    }

    fn genesis_and_notes(n: u64) -> Vec<Vec<u8>> {
        genesis_and(n, "note")
    }

    fn batch_entry(index: u64, leaves: &[Vec<u8>]) -> openraft::Entry<TypeConfig> {
        openraft::Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(BoardRequest::Batch {
                leaves: leaves
                    .iter()
                    .cloned()
                    .map(crate::types::LeafBytes)
                    .collect(),
            }),
        }
    }

    /// A snapshot of a node that applied `leaves`: its meta and the file's bytes.
    async fn snapshot_of(leaves: &[Vec<u8>]) -> (Meta, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let mut source = open_sm(&dir, peer(1));
        source.apply(vec![batch_entry(1, leaves)]).await.unwrap();
        let snapshot = source
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let mut bytes = Vec::new();
        let mut data = snapshot.snapshot;
        tokio::io::AsyncReadExt::read_to_end(&mut data, &mut bytes)
            .await
            .unwrap();
        (snapshot.meta, bytes)
    }

    /// A snapshot file: `header`, then `leaves`.
    fn snapshot_file(header: &SnapshotHeader, leaves: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_part(&mut bytes, &encode(header).unwrap()).unwrap();
        for leaf in leaves {
            write_part(&mut bytes, leaf).unwrap();
        }
        bytes
    }

    /// A header for `leaves` claiming `root`.
    fn header_for(meta: &Meta, leaves: &[Vec<u8>], root: Hash) -> SnapshotHeader {
        SnapshotHeader {
            meta: meta.clone(),
            size: leaves.len() as u64,
            root: root.0,
            rejected: 0,
        }
    }

    /// A snapshot file of `leaves` as a peer could forge it: a header whose root is
    /// the leaves' true root, so only replaying the rules can catch a bad leaf.
    fn forged_snapshot(meta: &Meta, leaves: &[Vec<u8>]) -> Vec<u8> {
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        let root = bboard_merkle::root_of_leaf_hashes(&Blake3Hasher, &hashes);
        snapshot_file(&header_for(meta, leaves, root), leaves)
    }

    /// Receives `bytes` as openraft would and installs them.
    async fn install_bytes(
        sm: &mut BoardStateMachine,
        meta: &Meta,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let mut incoming = sm.begin_receiving_snapshot().await.unwrap();
        incoming.write_all(bytes).await.unwrap();
        incoming.flush().await.unwrap();
        let file = incoming.into_std().await;
        sm.install(meta, file).await
    }

    /// Everything a reader or a peer can learn from a node's board and state machine.
    #[derive(Debug, PartialEq)]
    struct Image {
        generation: String,
        size: u64,
        root: Hash,
        leaves: Vec<Vec<u8>>,
        /// Every signed checkpoint note, by size.
        signed: Vec<(Vec<u8>, Vec<u8>)>,
        latest: Option<SignedCheckpoint>,
        applied: (Option<LogId<NodeId>>, Membership),
        published: (u64, Option<Hash>, Option<SignedCheckpoint>),
        integrity: Option<Checkpoint>,
        snapshot_files: Vec<String>,
    }

    async fn image(sm: &mut BoardStateMachine) -> Image {
        let board = sm.board();
        let size = board.size().unwrap();
        let published = sm.subscribe().borrow().clone();
        let mut snapshot_files: Vec<String> = std::fs::read_dir(&sm.snapshot_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        snapshot_files.sort();
        Image {
            generation: board.generation(),
            size,
            root: board.root_at(size).unwrap(),
            leaves: (0..size).map(|i| board.leaf(i).unwrap().unwrap()).collect(),
            signed: board.with_tree(|t| {
                t.scan_prefix([b'c'])
                    .map(|row| {
                        let (k, v) = row.unwrap();
                        (k.to_vec(), v.to_vec())
                    })
                    .collect()
            }),
            latest: board.latest_own_checkpoint().unwrap(),
            applied: sm.applied_state().await.unwrap(),
            published: (published.size, published.root, published.checkpoint),
            integrity: board.verify_integrity().unwrap(),
            snapshot_files,
        }
    }

    /// No staging tree, and no received or half-written file, is left behind.
    fn assert_clean(sm: &BoardStateMachine) {
        let generations: Vec<_> = sm
            .db
            .tree_names()
            .into_iter()
            .filter(|n| n.starts_with(b"board") && n.as_ref() != b"board-active")
            .collect();
        assert_eq!(generations.len(), 1, "{generations:?}");
        for entry in std::fs::read_dir(&sm.snapshot_dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "left behind: {name}");
        }
    }

    /// A node that applied genesis and `n` notes saying `text` (and signed them).
    async fn node_with(
        dir: &tempfile::TempDir,
        vouchers: FakeVouchers,
        n: u64,
        text: &str,
    ) -> BoardStateMachine {
        let mut sm = open_vouched(dir, vouchers);
        sm.apply(vec![batch_entry(1, &genesis_and(n, text))])
            .await
            .unwrap();
        sm
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshot_round_trip_rebuilds_the_same_board_on_another_node() {
        let leaves = genesis_and_notes(2500);
        let source_dir = tempfile::tempdir().unwrap();
        let mut source = open_sm(&source_dir, signer());
        let responses = source
            .apply(vec![
                batch_entry(1, &leaves[..1000]),
                batch_entry(2, &leaves[1000..]),
            ])
            .await
            .unwrap();
        assert_eq!(responses[1].tree_size, 2501);
        let mut builder = source.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.unwrap();
        assert_eq!(
            source.get_current_snapshot().await.unwrap().unwrap().meta,
            snapshot.meta
        );

        let target_dir = tempfile::tempdir().unwrap();
        let mut target = open_vouched(&target_dir, FakeVouchers::honest());
        target.install_chunk = INSTALL_CHUNK;
        let mut incoming = target.begin_receiving_snapshot().await.unwrap();
        let mut data = snapshot.snapshot;
        tokio::io::copy(&mut data, &mut *incoming).await.unwrap();
        target
            .install_snapshot(&snapshot.meta, incoming)
            .await
            .unwrap();

        let state = target.subscribe().borrow().clone();
        assert_eq!(state.size, 2501);
        assert_eq!(state.root, source.subscribe().borrow().root);
        assert_eq!(
            target.applied_state().await.unwrap().0,
            snapshot.meta.last_log_id
        );
        // The target signed the installed checkpoint, and its store passes the integrity check.
        assert!(target.board().verify_integrity().unwrap().is_some());
        assert!(target.get_current_snapshot().await.unwrap().is_some());
        assert_clean(&target);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_successful_install_swaps_the_board_and_then_signs_the_new_root() {
        let leaves = genesis_and_notes(50);
        let (meta, bytes) = snapshot_of(&leaves).await;
        let dir = tempfile::tempdir().unwrap();
        let mut target = node_with(&dir, FakeVouchers::honest(), 10, "note").await;
        let reader = target.board();
        let signed_before = reader.latest_own_checkpoint().unwrap().unwrap();
        assert_eq!(reader.generation(), "board");

        install_bytes(&mut target, &meta, &bytes).await.unwrap();

        // A reader holding the store from before reads the new board.
        assert_eq!(reader.size().unwrap(), 51);
        assert_ne!(reader.generation(), "board");
        let root = bboard_merkle::root_of_leaf_hashes(
            &Blake3Hasher,
            &leaves.iter().map(|l| leaf_hash(l)).collect::<Vec<_>>(),
        );
        assert_eq!(reader.root_at(51).unwrap(), root);
        // The node signed the root it computed, with its own key, and kept what it
        // signed before.
        let latest = reader.latest_own_checkpoint().unwrap().unwrap();
        assert_eq!(latest.checkpoint().size.0, 51);
        assert_eq!(latest.checkpoint().root, root);
        assert!(latest.is_signed_by(&signer().verifier()));
        assert_eq!(reader.own_checkpoint(11).unwrap().unwrap(), signed_before);
        let published = target.subscribe().borrow().clone();
        assert_eq!((published.size, published.root), (51, Some(root)));
        assert_eq!(published.checkpoint, Some(latest.clone()));
        assert_eq!(target.applied_state().await.unwrap().0, meta.last_log_id);
        assert_eq!(reader.verify_integrity().unwrap().unwrap().root, root);
        assert_clean(&target);
        // The kept file is the generation's and serves the snapshot on.
        let current = target.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, meta);
        let after = image(&mut target).await;
        assert_eq!(
            after.snapshot_files,
            vec![format!("{}.snap", after.generation)]
        );

        // A restart serves the installed board.
        drop((target, reader));
        let mut reopened = open_vouched(&dir, FakeVouchers::honest());
        assert_eq!(image(&mut reopened).await, after);
        assert!(reopened.get_current_snapshot().await.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupted_snapshot_is_refused_and_changes_nothing() {
        let (meta, mut bytes) = snapshot_of(&genesis_and_notes(50)).await;
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // flip a bit of the last leaf's signature

        // The target already holds a board (genesis and 10 notes): a refused snapshot
        // must leave all of it in place, not wipe it.
        let dir = tempfile::tempdir().unwrap();
        let mut target = node_with(&dir, FakeVouchers::honest(), 10, "note").await;
        let before = image(&mut target).await;
        assert_eq!(before.size, 11);

        let error = install_bytes(&mut target, &meta, &bytes).await.unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Snapshot(SnapshotError::NotAdmitted { .. })
            ),
            "{error}"
        );
        assert_eq!(image(&mut target).await, before);
        assert!(target.board().leaf(11).unwrap().is_none());
        assert_clean(&target);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_failing_at_its_last_leaf_leaves_the_old_board_serving() {
        let leaves = genesis_and_notes(50);
        let (meta, good) = snapshot_of(&leaves).await;
        // The last leaf violates the rules (its signer is not registered), in a file
        // whose header root is right for the leaves it holds.
        let mut forged_leaves = leaves.clone();
        *forged_leaves.last_mut().unwrap() = note(&SigningKey::from_bytes(&[9; 32]), 50, "note");
        let forged = forged_snapshot(&meta, &forged_leaves);
        let truncated = good[..good.len() - 10].to_vec();
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0, 0, 0, 0]);
        // Good leaves under a header root they do not have.
        let other_root = snapshot_file(&header_for(&meta, &leaves, Hash([7; 32])), &leaves);
        let dir = tempfile::tempdir().unwrap();
        let mut target = node_with(&dir, FakeVouchers::honest(), 10, "note").await;
        let before = image(&mut target).await;
        type Expect = fn(&StoreError) -> bool;
        let cases: [(&str, &[u8], Expect); 4] = [
            ("a rule-violating last leaf", &forged, |e| {
                matches!(e, StoreError::Snapshot(SnapshotError::NotAdmitted { .. }))
            }),
            ("a truncated last leaf", &truncated, |e| {
                matches!(e, StoreError::Snapshot(SnapshotError::Read { .. }))
            }),
            ("bytes after the last leaf", &trailing, |e| {
                matches!(
                    e,
                    StoreError::Snapshot(SnapshotError::TrailingBytes { size: 51 })
                )
            }),
            ("a header root the leaves do not have", &other_root, |e| {
                matches!(e, StoreError::Snapshot(SnapshotError::RootMismatch { .. }))
            }),
        ];
        for (case, bytes, expected) in cases {
            let error = install_bytes(&mut target, &meta, bytes).await.unwrap_err();
            assert!(expected(&error), "{case}: {error}");
            assert_eq!(image(&mut target).await, before, "{case}");
            assert_clean(&target);
        }
        // Nothing a refused install left behind stands in the way of a good one.
        install_bytes(&mut target, &meta, &good).await.unwrap();
        assert_eq!(target.board().size().unwrap(), 51);
        assert_clean(&target);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_inconsistent_with_a_checkpoint_the_node_signed_is_refused() {
        let (meta, bytes) = snapshot_of(&genesis_and_notes(50)).await;
        // The node signed another history of 6 entries.
        let dir = tempfile::tempdir().unwrap();
        let mut target = node_with(&dir, FakeVouchers::honest(), 5, "other").await;
        let before = image(&mut target).await;
        let error = install_bytes(&mut target, &meta, &bytes).await.unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Integrity(IntegrityError::WouldRewrite { size: 6, .. })
            ),
            "{error}"
        );
        assert_eq!(image(&mut target).await, before);
        assert_clean(&target);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_shorter_than_what_the_node_signed_is_refused() {
        // A prefix of what the node holds: consistent, but the node signed size 21.
        let (meta, bytes) = snapshot_of(&genesis_and_notes(10)).await;
        let dir = tempfile::tempdir().unwrap();
        let mut target = node_with(&dir, FakeVouchers::honest(), 20, "note").await;
        let before = image(&mut target).await;
        let error = install_bytes(&mut target, &meta, &bytes).await.unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Integrity(IntegrityError::WouldShrink {
                    new_size: 11,
                    signed_size: 21
                })
            ),
            "{error}"
        );
        assert_eq!(image(&mut target).await, before);
        assert_clean(&target);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_without_k_of_n_peer_cosignatures_is_refused() {
        let (meta, bytes) = snapshot_of(&genesis_and_notes(30)).await;
        type Expect = fn(&StoreError) -> bool;
        let not_vouched: Expect =
            |e| matches!(e, StoreError::Snapshot(SnapshotError::NotVouched { .. }));
        let cases: [(&str, FakeVouchers, Expect); 5] = [
            (
                "one peer of the two needed",
                FakeVouchers {
                    signers: vec![peer(1)],
                    ..Default::default()
                },
                not_vouched,
            ),
            (
                "this node's own signature does not count",
                FakeVouchers {
                    signers: vec![signer(), peer(2)],
                    ..Default::default()
                },
                not_vouched,
            ),
            (
                "signers outside the policy",
                FakeVouchers {
                    signers: vec![peer(3), peer(4)],
                    ..Default::default()
                },
                not_vouched,
            ),
            (
                "the peers signed another root",
                FakeVouchers {
                    signers: vec![peer(1), peer(2)],
                    root: Some(Hash([7; 32])),
                    ..Default::default()
                },
                |e| {
                    matches!(
                        e,
                        StoreError::Snapshot(SnapshotError::VouchedOtherCheckpoint { .. })
                    )
                },
            ),
            (
                "no peer answered",
                FakeVouchers {
                    fail: true,
                    ..FakeVouchers::honest()
                },
                |e| matches!(e, StoreError::Snapshot(SnapshotError::Unvouched { .. })),
            ),
        ];
        for (case, vouchers, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let mut target = node_with(&dir, vouchers, 10, "note").await;
            let before = image(&mut target).await;
            let error = install_bytes(&mut target, &meta, &bytes).await.unwrap_err();
            assert!(expected(&error), "{case}: {error}");
            assert_eq!(image(&mut target).await, before, "{case}");
            assert_clean(&target);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshots_are_refused_without_vouchers_or_with_too_few_peers_to_vouch() {
        let (meta, bytes) = snapshot_of(&genesis_and_notes(5)).await;
        // Nobody said who vouches.
        let dir = tempfile::tempdir().unwrap();
        let mut unconfigured =
            BoardStateMachine::open(open_db_in(&dir), ORIGIN, signer(), &dir.path().join("snap"))
                .unwrap();
        let before = image(&mut unconfigured).await;
        let error = install_bytes(&mut unconfigured, &meta, &bytes)
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::Snapshot(SnapshotError::NoVouchers)),
            "{error}"
        );
        assert_eq!(image(&mut unconfigured).await, before);
        assert_clean(&unconfigured);
        drop(unconfigured);

        // 2 of 2 with this node one of them: one peer can never reach 2.
        let dir = tempfile::tempdir().unwrap();
        let policy =
            CosignaturePolicy::new(ORIGIN, vec![signer().verifier(), peer(1).verifier()], 2)
                .unwrap();
        let mut alone =
            BoardStateMachine::open(open_db_in(&dir), ORIGIN, signer(), &dir.path().join("snap"))
                .unwrap()
                .with_snapshot_vouchers(Arc::new(FakeVouchers::honest()), policy);
        let error = install_bytes(&mut alone, &meta, &bytes).await.unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Snapshot(SnapshotError::CannotBeVouched {
                    threshold: 2,
                    others: 1,
                    ..
                })
            ),
            "{error}"
        );
        assert_clean(&alone);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_beyond_the_size_limits_is_refused_before_staging() {
        let leaves = genesis_and_notes(5);
        let (meta, _) = snapshot_of(&leaves).await;
        let dir = tempfile::tempdir().unwrap();
        let mut target = node_with(&dir, FakeVouchers::honest(), 2, "note").await;
        let before = image(&mut target).await;

        // A header claiming a billion leaves in a file of six.
        let mut header = header_for(&meta, &leaves, Hash([0; 32]));
        header.size = 1 << 30;
        let claims_too_many = snapshot_file(&header, &leaves);
        let error = install_bytes(&mut target, &meta, &claims_too_many)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Snapshot(SnapshotError::TooManyLeaves {
                    claimed: 0x4000_0000,
                    ..
                })
            ),
            "{error}"
        );

        // A leaf whose length prefix is beyond the board's leaf limit.
        let mut oversized = forged_snapshot(&meta, &leaves);
        let header_len = 4 + u32::from_be_bytes(oversized[..4].try_into().unwrap()) as usize;
        oversized[header_len..header_len + 4]
            .copy_from_slice(&(MAX_SNAPSHOT_LEAF + 1).to_be_bytes());
        oversized.resize(oversized.len() + 64, 0);
        let error = install_bytes(&mut target, &meta, &oversized)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Snapshot(SnapshotError::TooLarge {
                    part: "snapshot leaf",
                    ..
                })
            ),
            "{error}"
        );
        assert_eq!(image(&mut target).await, before);
        assert_clean(&target);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_after_a_crash_mid_install_serves_the_old_board_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let mut target = node_with(&dir, FakeVouchers::honest(), 10, "note").await;
            let before = image(&mut target).await;
            // What a crash mid-install leaves: a half-staged board generation, the
            // received file, a snapshot file half-written by the builder and one
            // kept for a generation that never went live.
            target
                .db
                .open_tree("board-999")
                .unwrap()
                .insert(b"l\0\0\0\0\0\0\0\0", &b"partial"[..])
                .unwrap();
            target.db.flush().unwrap();
            for name in ["incoming-1.tmp", "7-7-7.snap.tmp", "board-999.snap"] {
                std::fs::write(dir.path().join("snap").join(name), b"leftover").unwrap();
            }
            before
        };
        let mut reopened = open_vouched(&dir, FakeVouchers::honest());
        assert_eq!(image(&mut reopened).await, before);
        assert_clean(&reopened);
        assert!(!dir.path().join("snap").join("board-999.snap").exists());
    }
}
