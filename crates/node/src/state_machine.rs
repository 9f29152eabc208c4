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
//! held in memory. Installing one first re-hashes every leaf and compares the root with
//! the header, then re-applies the leaves through the same board rules (so every
//! signature is re-checked) and refuses a history that does not extend this node's own
//! signed checkpoints.

use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use bboard_core::board::{BatchApplier, BoardView, Outcome};
use bboard_core::checkpoint::{NoteSigner, SignedCheckpoint};
use bboard_core::election::precheck;
use bboard_core::leaf::leaf_hash;
use bboard_merkle::{Blake3Hasher, Hash, MemoryNodeStore, MerkleTree};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::board_store::{
    decode, encode, BoardStore, SnapshotError, StoreError, META_LAST_APPLIED, META_MEMBERSHIP,
};
use crate::types::{BoardRequest, BoardResponse, NodeId, TypeConfig};

type Membership = StoredMembership<NodeId, openraft::BasicNode>;
type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

const META_SNAPSHOT: &[u8] = b"msnapshot";
/// Leaves re-applied per sled batch when installing a snapshot.
const INSTALL_CHUNK: usize = 1024;
/// Largest leaf accepted from a snapshot file (a leaf is bounded by the body limit).
const MAX_SNAPSHOT_LEAF: u32 = 1 << 20;

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

/// The state machine of a bboard node.
pub struct BoardStateMachine {
    db: sled::Db,
    board: BoardStore,
    signer: NoteSigner,
    snapshot_dir: PathBuf,
    applied: watch::Sender<AppliedState>,
}

impl BoardStateMachine {
    /// Opens the state machine in `db`, checks the store's integrity (recomputed root
    /// against this node's last signed checkpoint) and refuses to start if it fails.
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
        let board = BoardStore::open(&db, "board", origin)?;
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
        Ok(BoardStateMachine {
            db,
            board,
            signer,
            snapshot_dir: snapshot_dir.to_path_buf(),
            applied,
        })
    }

    /// Read access to the board (for the services).
    pub fn board(&self) -> BoardStore {
        self.board.clone()
    }

    /// Subscribes to applied-state changes.
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.applied.subscribe()
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.board
            .tree()
            .get(key)?
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

    /// Applies one batch of leaves (blocking: CPU and sled work).
    fn apply_batch(
        board: &BoardStore,
        signer: &NoteSigner,
        leaves: &[Vec<u8>],
        log_id: &LogId<NodeId>,
    ) -> Result<(BoardResponse, crate::board_store::AppliedBatch), StoreError> {
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
        // Stateless checks (decoding, signatures, ballot proofs) in parallel; the
        // result is the same on every node.
        let prechecked = leaves
            .par_iter()
            .map(|leaf| precheck(board, leaf))
            .collect::<Result<Vec<_>, _>>()?;
        let mut applier = BatchApplier::new(board)?;
        let mut outcomes = Vec::with_capacity(leaves.len());
        let mut rejected = 0u64;
        for (leaf, prechecked) in leaves.iter().zip(&prechecked) {
            let outcome = applier.apply_prechecked(leaf, prechecked)?;
            if let Outcome::Rejected(rejection) = &outcome {
                // A correct leader pre-checks and never proposes such an entry.
                tracing::warn!(%log_id, %rejection, "committed entry rejected on apply");
                rejected += 1;
            }
            outcomes.push(outcome);
        }
        let admitted = applier.finish();
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

    fn install_from_file(&self, meta: &Meta, file: std::fs::File) -> Result<(), StoreError> {
        let unreadable = |source| SnapshotError::Read {
            part: "snapshot file",
            source,
        };
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

        // Pass 1: hash every leaf and compare the root before touching the store.
        let mut merkle = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
        for _ in 0..header.size {
            merkle.append(leaf_hash(&read_leaf(&mut reader)?))?;
        }
        let root = merkle.root()?;
        if root.0 != header.root {
            return Err(SnapshotError::RootMismatch {
                leaves: root,
                header: Hash(header.root),
            }
            .into());
        }

        // Pass 2: re-apply through the board rules, in chunks.
        reader
            .seek(std::io::SeekFrom::Start(leaves_start))
            .map_err(unreadable)?;
        self.board.clear_for_snapshot()?;
        let mut remaining = header.size;
        while remaining > 0 {
            let take = remaining.min(INSTALL_CHUNK as u64);
            let mut chunk = Vec::with_capacity(take as usize);
            for _ in 0..take {
                chunk.push(read_leaf(&mut reader)?);
            }
            remaining -= take;
            let prechecked = chunk
                .par_iter()
                .map(|leaf| precheck(&self.board, leaf))
                .collect::<Result<Vec<_>, _>>()?;
            let mut applier = BatchApplier::new(&self.board)?;
            for (leaf, prechecked) in chunk.iter().zip(&prechecked) {
                match applier.apply_prechecked(leaf, prechecked)? {
                    Outcome::Appended { .. } => {}
                    other => {
                        return Err(SnapshotError::NotAdmitted {
                            outcome: format!("{other:?}"),
                        }
                        .into())
                    }
                }
            }
            let last = remaining == 0;
            let mut extra = Vec::new();
            if last {
                extra.push((META_LAST_APPLIED, encode(&meta.last_log_id)?));
                extra.push((META_MEMBERSHIP, encode(&meta.last_membership)?));
            }
            let applied = self.board.commit_batch(
                &applier.finish(),
                if last { header.rejected } else { 0 },
                &extra,
                last.then_some(&self.signer),
            )?;
            if last {
                self.publish(applied.size, applied.root, applied.checkpoint);
            }
        }
        if header.size == 0 {
            self.board.commit_batch(
                &[],
                0,
                &[
                    (META_LAST_APPLIED, encode(&meta.last_log_id)?),
                    (META_MEMBERSHIP, encode(&meta.last_membership)?),
                ],
                None,
            )?;
        }
        // Keep the received file as this node's current snapshot, so it can serve it on.
        let path = self.snapshot_dir.join(format!("{}.snap", meta.snapshot_id));
        let io = |source: std::io::Error| StoreError::Io {
            action: "keeping snapshot",
            path: path.clone(),
            source,
        };
        let mut source = reader.into_inner();
        source.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        let mut target = std::fs::File::create(&path).map_err(io)?;
        std::io::copy(&mut source, &mut target).map_err(io)?;
        target.sync_all().map_err(io)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            file: path.to_string_lossy().into_owned(),
        };
        self.board.tree().insert(META_SNAPSHOT, encode(&stored)?)?;
        self.db.flush()?;
        remove_files(&self.snapshot_dir, |name| {
            name.starts_with("incoming-")
                || (name.ends_with(".snap")
                    && path.file_name().and_then(|n| n.to_str()) != Some(name))
        });
        Ok(())
    }
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

fn read_header(reader: &mut impl Read) -> Result<SnapshotHeader, StoreError> {
    let mut len = [0u8; 4];
    reader
        .read_exact(&mut len)
        .map_err(|source| SnapshotError::Read {
            part: "snapshot header",
            source,
        })?;
    let len = u32::from_be_bytes(len);
    if len > 1 << 20 {
        return Err(SnapshotError::TooLarge {
            part: "snapshot header",
            len,
            limit: 1 << 20,
        }
        .into());
    }
    let mut bytes = vec![0; len as usize];
    reader
        .read_exact(&mut bytes)
        .map_err(|source| SnapshotError::Read {
            part: "snapshot header",
            source,
        })?;
    decode(&bytes, "snapshot header")
}

fn read_leaf(reader: &mut impl Read) -> Result<Vec<u8>, StoreError> {
    let mut len = [0u8; 4];
    reader
        .read_exact(&mut len)
        .map_err(|source| SnapshotError::Read {
            part: "snapshot leaf",
            source,
        })?;
    let len = u32::from_be_bytes(len);
    if len > MAX_SNAPSHOT_LEAF {
        return Err(SnapshotError::TooLarge {
            part: "snapshot leaf",
            len,
            limit: MAX_SNAPSHOT_LEAF,
        }
        .into());
    }
    let mut leaf = vec![0; len as usize];
    reader
        .read_exact(&mut leaf)
        .map_err(|source| SnapshotError::Read {
            part: "snapshot leaf",
            source,
        })?;
    Ok(leaf)
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
        let header = encode(&self.header)?;
        writer
            .write_all(&(header.len() as u32).to_be_bytes())
            .map_err(io)?;
        writer.write_all(&header).map_err(io)?;
        for index in 0..self.header.size {
            let leaf = self
                .board
                .leaf(index)?
                .ok_or(SnapshotError::MissingLeaf { index })?;
            writer
                .write_all(&(leaf.len() as u32).to_be_bytes())
                .map_err(io)?;
            writer.write_all(&leaf).map_err(io)?;
        }
        let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temp_path, &final_path).map_err(io)?;
        Ok(final_path)
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
        let path = tokio::task::spawn_blocking(move || -> Result<PathBuf, StoreError> {
            let path = this.write_file()?;
            let stored = StoredSnapshot {
                meta: this.header.meta.clone(),
                file: path.to_string_lossy().into_owned(),
            };
            let previous: Option<StoredSnapshot> = this
                .board
                .tree()
                .get(META_SNAPSHOT)?
                .map(|b| decode(&b, "stored snapshot"))
                .transpose()?;
            this.board.tree().insert(META_SNAPSHOT, encode(&stored)?)?;
            this.db.flush()?;
            if let Some(previous) = previous {
                if previous.file != stored.file {
                    let _ = std::fs::remove_file(&previous.file);
                }
            }
            Ok(path)
        })
        .await
        .map_err(sm_write_error)?
        .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &io_error(e))))?;
        let file = tokio::fs::File::open(&path).await.map_err(snapshot_error)?;
        Ok(Snapshot {
            meta: self.header.meta.clone(),
            snapshot: Box::new(file),
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
                    let leaves: Vec<Vec<u8>> = leaves.into_iter().map(|l| l.0).collect();
                    let (response, applied) = tokio::task::spawn_blocking(move || {
                        Self::apply_batch(&board, &signer, &leaves, &log_id)
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
            "incoming-{}.tmp",
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
        let this = BoardStateMachine {
            db: self.db.clone(),
            board: self.board.clone(),
            signer: self.signer.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
            applied: self.applied.clone(),
        };
        let meta_owned = meta.clone();
        tokio::task::spawn_blocking(move || this.install_from_file(&meta_owned, file))
            .await
            .map_err(sm_write_error)?
            .map_err(|e| {
                tracing::error!(error = %e, "refusing snapshot");
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
    use ed25519_dalek::SigningKey;

    fn signer() -> NoteSigner {
        NoteSigner::new("node-test", SigningKey::from_bytes(&[5; 32])).unwrap()
    }

    fn open_sm(dir: &tempfile::TempDir, signer: NoteSigner) -> BoardStateMachine {
        let db = open_db(&dir.path().join("db")).unwrap();
        BoardStateMachine::open(db, "suite.test", signer, &dir.path().join("snap")).unwrap()
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
            let db = open_db(&dir.path().join("db")).unwrap();
            let log = SledLogStore::open(&db).unwrap();
            let sm = BoardStateMachine::open(db, "suite.test", signer(), &dir.path().join("snap"))
                .unwrap();
            Ok((dir, log, sm))
        }
    }

    /// openraft's conformance suite against the real log store and state machine.
    #[test]
    fn openraft_conformance_suite() {
        openraft::testing::Suite::test_all(Builder).unwrap();
    }

    fn genesis_and_notes(n: u64) -> Vec<Vec<u8>> {
        use bboard_core::envelope::SignedEnvelope;
        use bboard_core::leaf::encode_leaf;
        use bboard_core::pb;
        let authority = SigningKey::from_bytes(&[1; 32]);
        let entry = |i: u64, kind| {
            let body = pb::EntryBody {
                election_id: String::new(),
                created_unix_ms: i,
                kind: Some(kind),
            };
            encode_leaf(1000 + i, &SignedEnvelope::sign_body(&body, &authority))
        };
        let mut leaves = vec![entry(
            0,
            pb::entry_body::Kind::Genesis(pb::BoardGenesis {
                origin: "suite.test".into(),
                authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
                description: String::new(),
            }),
        )];
        for i in 1..=n {
            leaves.push(entry(
                i,
                pb::entry_body::Kind::Note(pb::Note {
                    text: format!("note {i}"),
                }),
            ));
        }
        leaves
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
        let target_signer =
            NoteSigner::new("node-other", SigningKey::from_bytes(&[6; 32])).unwrap();
        let mut target = open_sm(&target_dir, target_signer);
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
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupted_snapshot_is_refused_and_changes_nothing() {
        let leaves = genesis_and_notes(50);
        let source_dir = tempfile::tempdir().unwrap();
        let mut source = open_sm(&source_dir, signer());
        source.apply(vec![batch_entry(1, &leaves)]).await.unwrap();
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
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // flip a bit of the last leaf's signature

        // The target already holds a board (genesis and 10 notes): a refused snapshot
        // must leave all of it in place, not wipe it.
        let target_dir = tempfile::tempdir().unwrap();
        let mut target = open_sm(&target_dir, signer());
        target
            .apply(vec![batch_entry(1, &leaves[..11])])
            .await
            .unwrap();
        let before = target.subscribe().borrow().clone();
        assert_eq!(before.size, 11);
        let applied_before = target.applied_state().await.unwrap().0;
        let leaves_of = |sm: &BoardStateMachine| -> Vec<Vec<u8>> {
            (0..11)
                .map(|i| sm.board().leaf(i).unwrap().unwrap())
                .collect()
        };
        let entries_before = leaves_of(&target);
        assert_eq!(entries_before, leaves[..11]);

        let mut incoming = target.begin_receiving_snapshot().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut *incoming, &bytes)
            .await
            .unwrap();
        assert!(target
            .install_snapshot(&snapshot.meta, incoming)
            .await
            .is_err());

        assert_eq!(target.board().size().unwrap(), before.size);
        assert_eq!(
            Some(target.board().root_at(before.size).unwrap()),
            before.root
        );
        let after = target.subscribe().borrow().clone();
        assert_eq!((after.size, after.root), (before.size, before.root));
        assert_eq!(target.applied_state().await.unwrap().0, applied_before);
        assert_eq!(leaves_of(&target), entries_before);
        assert!(target.board().leaf(11).unwrap().is_none());
        assert!(target.board().verify_integrity().unwrap().is_some());
    }
}
