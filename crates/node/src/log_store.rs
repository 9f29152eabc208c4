//! The Raft log store: openraft's storage-v2 [`RaftLogStorage`] and [`RaftLogReader`] over
//! sled.
//!
//! This module owns two sled trees inside the node's database:
//!
//! - `raft_log`: the replicated log. Key = log index as a big-endian `u64` (so sled's byte
//!   order is index order), value = the `rmp_serde`-encoded entry.
//! - `raft_meta`: the vote, the committed log id and the last purged log id, each
//!   `rmp_serde`-encoded under a fixed key.
//!
//! # Flush discipline
//!
//! Raft's safety rests on two promises made to the *other* nodes: a vote, once granted, is
//! never forgotten; and an entry, once acknowledged to a leader, is never lost. If either is
//! broken by a crash, two leaders can be elected for one term, or a committed entry (a
//! recorded ballot) can vanish. The database is opened with automatic flushing disabled
//! ([`open_db`]), so nothing reaches disk unless this module asks for it:
//!
//! - [`RaftLogStorage::save_vote`] returns only after a blocking `Db::flush` (fsync).
//! - [`RaftLogStorage::append`] writes the entries as one atomic `sled::Batch` (a crash can
//!   never leave a hole), flushes, and only *then* reports completion to openraft through the
//!   `LogFlushed` callback. Openraft only acknowledges entries to the leader after that.
//! - `truncate` and `purge` remove their range as one batch and flush.
//!
//! Flushes run on tokio's blocking pool (`spawn_blocking`). sled's `flush_async` is never
//! used: it has known deadlocks.
//!
//! Write IO is serialised by construction: every writing method takes `&mut self` and
//! completes (including its flush) before returning, so openraft's rule that a later write
//! must not overtake an earlier one holds.

// `StorageError` is openraft's error type, fixed by the trait signatures; boxing it in our
// private helpers would only add conversions.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Name of the sled tree holding log entries.
pub const LOG_TREE: &str = "raft_log";
/// Name of the sled tree holding the vote, committed and last-purged log ids.
pub const META_TREE: &str = "raft_meta";

/// sled page-cache size used by [`open_db`].
pub const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// Errors from opening the database or the log store (outside openraft's storage API, which
/// reports [`StorageError`]).
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// sled failed to open the database or a tree, or to read/write during recovery.
    #[error("sled error: {0}")]
    Sled(#[from] sled::Error),
    /// Stored metadata could not be decoded.
    #[error("corrupt raft metadata under key {key:?}: {source}")]
    Decode {
        /// The `raft_meta` key whose value failed to decode.
        key: String,
        /// The decoder's error.
        source: rmp_serde::decode::Error,
    },
}

/// Opens (creating if needed) the node's sled database at `path`, with automatic flushing
/// disabled (durability is driven explicitly by [`SledLogStore`]) and a 64 MiB cache.
pub fn open_db(path: &Path) -> Result<sled::Db, LogStoreError> {
    Ok(sled::Config::new()
        .path(path)
        .flush_every_ms(None)
        .cache_capacity(CACHE_CAPACITY_BYTES)
        .open()?)
}

/// Durable openraft log storage (storage-v2) over sled, generic over the Raft type config.
///
/// Cloning is cheap (sled handles are reference counted); clones share the same trees.
pub struct SledLogStore<C> {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    _c: PhantomData<fn() -> C>,
}

impl<C> Clone for SledLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            log: self.log.clone(),
            meta: self.meta.clone(),
            _c: PhantomData,
        }
    }
}

impl<C> Debug for SledLogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLogStore")
            .field("log_entries", &self.log.len())
            .finish_non_exhaustive()
    }
}

/// A read-only handle on the log, handed to openraft's replication tasks. Cheap to clone;
/// shares the sled tree with the [`SledLogStore`] it came from.
pub struct SledLogReader<C> {
    log: sled::Tree,
    _c: PhantomData<fn() -> C>,
}

impl<C> Clone for SledLogReader<C> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            _c: PhantomData,
        }
    }
}

impl<C> Debug for SledLogReader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLogReader").finish_non_exhaustive()
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Converts any `RangeBounds<u64>` into an inclusive `[start, end]`, or `None` if empty.
fn inclusive_bounds<RB: RangeBounds<u64>>(range: &RB) -> Option<(u64, u64)> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => *e,
        Bound::Excluded(e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (start <= end).then_some((start, end))
}

/// Decodes one `raft_log` row; corrupt rows become a `StorageError`, never a panic.
fn decode_entry<C>(key: &[u8], value: &[u8]) -> Result<C::Entry, StorageError<C::NodeId>>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let Some(index) = key_index(key) else {
        return Err(StorageIOError::read_logs(AnyError::error(format!(
            "malformed raft_log key of {} bytes",
            key.len()
        )))
        .into());
    };
    rmp_serde::from_slice(value).map_err(|e| StorageIOError::read_log_at_index(index, &e).into())
}

fn read_range<C>(
    log: &sled::Tree,
    range: impl RangeBounds<u64>,
) -> Result<Vec<C::Entry>, StorageError<C::NodeId>>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let Some((start, end)) = inclusive_bounds(&range) else {
        return Ok(Vec::new());
    };
    log.range(index_key(start)..=index_key(end))
        .map(|row| {
            let (k, v) = row.map_err(|e| StorageIOError::read_logs(&e))?;
            decode_entry::<C>(&k, &v)
        })
        .collect()
}

/// Runs a blocking `Db::flush` (fsync) on tokio's blocking pool.
async fn flush_blocking(db: &sled::Db) -> io::Result<()> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.flush().map(|_| ()))
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::from)
}

impl<C> SledLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Opens the log store on `db` (see [`open_db`]), creating the `raft_log` and `raft_meta`
    /// trees if absent.
    ///
    /// Also finishes a purge interrupted by a crash: entries at or below the recorded
    /// last-purged index are removed.
    pub fn open(db: &sled::Db) -> Result<Self, LogStoreError> {
        let store = Self {
            db: db.clone(),
            log: db.open_tree(LOG_TREE)?,
            meta: db.open_tree(META_TREE)?,
            _c: PhantomData,
        };
        if let Some(purged) = store.meta_get::<LogId<C::NodeId>>(KEY_LAST_PURGED)? {
            let stale = store.remove_range_batch(..=purged.index)?;
            if stale > 0 {
                tracing::warn!(
                    stale,
                    purged = %purged,
                    "raft log: removed entries left by an interrupted purge"
                );
                store.db.flush()?;
            }
        }
        Ok(store)
    }

    fn meta_get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, LogStoreError> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(v) => {
                rmp_serde::from_slice(&v)
                    .map(Some)
                    .map_err(|source| LogStoreError::Decode {
                        key: String::from_utf8_lossy(key).into_owned(),
                        source,
                    })
            }
        }
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        on_err: fn(&AnyError) -> StorageIOError<C::NodeId>,
    ) -> Result<Option<T>, StorageError<C::NodeId>> {
        self.meta_get(key)
            .map_err(|e| on_err(&AnyError::new(&e)).into())
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        on_err: fn(&AnyError) -> StorageIOError<C::NodeId>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let bytes = rmp_serde::to_vec_named(value).map_err(|e| on_err(&AnyError::new(&e)))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| on_err(&AnyError::new(&e)))?;
        Ok(())
    }

    /// Removes every `raft_log` key within `range` in one atomic batch; returns how many.
    fn remove_range_batch(&self, range: impl RangeBounds<u64>) -> Result<usize, sled::Error> {
        let Some((start, end)) = inclusive_bounds(&range) else {
            return Ok(0);
        };
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for key in self.log.range(index_key(start)..=index_key(end)).keys() {
            batch.remove(key?);
            n += 1;
        }
        if n > 0 {
            self.log.apply_batch(batch)?;
        }
        Ok(n)
    }

    /// Writes `entries` as one atomic batch (readable on return, not yet durable).
    fn insert_entries<I>(
        &self,
        entries: I,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        let mut batch = sled::Batch::default();
        let mut last = None;
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            let bytes = rmp_serde::to_vec_named(&entry)
                .map_err(|e| StorageIOError::write_log_entry(log_id.clone(), &e))?;
            batch.insert(&index_key(log_id.index), bytes);
            last = Some(log_id);
        }
        if last.is_some() {
            self.log
                .apply_batch(batch)
                .map_err(|e| StorageIOError::write_logs(&e))?;
        }
        Ok(last)
    }

    /// The body of [`RaftLogStorage::append`]: writes `entries` as one atomic batch, then
    /// blocks (on the blocking pool) until they are fsynced.
    ///
    /// `Ok` means the entries are durable. An `Err` from the write itself is a
    /// [`StorageError`] (returned from `append`); a flush failure is the inner `io::Error`
    /// (handed to openraft's callback).
    pub(crate) async fn append_entries_durably<I>(
        &self,
        entries: I,
    ) -> Result<io::Result<()>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        let last = self.insert_entries(entries)?;
        let flushed = flush_blocking(&self.db).await;
        match &flushed {
            Ok(()) => tracing::trace!(?last, "raft log: appended and flushed"),
            Err(e) => tracing::error!(?last, error = %e, "raft log: flush after append failed"),
        }
        Ok(flushed)
    }

    async fn flush_or(
        &self,
        on_err: fn(&AnyError) -> StorageIOError<C::NodeId>,
    ) -> Result<(), StorageError<C::NodeId>> {
        flush_blocking(&self.db)
            .await
            .map_err(|e| on_err(&AnyError::new(&e)).into())
    }
}

fn write_logs_err<NID: openraft::NodeId>(e: &AnyError) -> StorageIOError<NID> {
    StorageIOError::write_logs(e.clone())
}
fn read_logs_err<NID: openraft::NodeId>(e: &AnyError) -> StorageIOError<NID> {
    StorageIOError::read_logs(e.clone())
}
fn write_vote_err<NID: openraft::NodeId>(e: &AnyError) -> StorageIOError<NID> {
    StorageIOError::write_vote(e.clone())
}
fn read_vote_err<NID: openraft::NodeId>(e: &AnyError) -> StorageIOError<NID> {
    StorageIOError::read_vote(e.clone())
}

/// The store and its readers read the log the same way, from their `log` tree.
macro_rules! impl_log_reader {
    ($reader:ident) => {
        impl<C> RaftLogReader<C> for $reader<C>
        where
            C: RaftTypeConfig,
            C::Entry: Serialize + DeserializeOwned,
        {
            async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
                &mut self,
                range: RB,
            ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
                read_range::<C>(&self.log, range)
            }
        }
    };
}

impl_log_reader!(SledLogStore);
impl_log_reader!(SledLogReader);

impl<C> RaftLogStorage<C> for SledLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = SledLogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last_purged_log_id: Option<LogId<C::NodeId>> =
            self.read_meta(KEY_LAST_PURGED, read_logs_err)?;
        let last_entry_id = match self.log.last().map_err(|e| StorageIOError::read_logs(&e))? {
            None => None,
            Some((k, v)) => Some(decode_entry::<C>(&k, &v)?.get_log_id().clone()),
        };
        // With no entries (or only stale ones at/below the purge point), the last log id is
        // the last purged one.
        let last_log_id = match (last_entry_id, &last_purged_log_id) {
            (Some(e), Some(p)) if e.index <= p.index => Some(p.clone()),
            (Some(e), _) => Some(e),
            (None, p) => p.clone(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        SledLogReader {
            log: self.log.clone(),
            _c: PhantomData,
        }
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.write_meta(KEY_VOTE, vote, write_vote_err)?;
        self.flush_or(write_vote_err).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_meta(KEY_VOTE, read_vote_err)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        // Not flushed here: a committed id that lags after a crash is safe (it is
        // re-learned from the leader); the next vote/append/truncate/purge flush persists it.
        match committed {
            Some(c) => self.write_meta(KEY_COMMITTED, &c, write_logs_err),
            None => {
                self.meta
                    .remove(KEY_COMMITTED)
                    .map_err(|e| StorageIOError::write_logs(&e))?;
                Ok(())
            }
        }
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_meta(KEY_COMMITTED, read_logs_err)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Only report completion once the entries are fsynced.
        let flushed = self.append_entries_durably(entries).await?;
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "raft log: truncate [index, +oo)");
        self.remove_range_batch(log_id.index..)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush_or(write_logs_err).await
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "raft log: purge (-oo, index]");
        // Record the purge point first: if we crash before the removal below, `open` finishes
        // the job, and `get_log_state` is right either way.
        let previous: Option<LogId<C::NodeId>> = self.read_meta(KEY_LAST_PURGED, read_logs_err)?;
        if previous.as_ref().is_none_or(|p| p.index < log_id.index) {
            self.write_meta(KEY_LAST_PURGED, &log_id, write_logs_err)?;
        }
        self.remove_range_batch(..=log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush_or(write_logs_err).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Cursor;
    use std::path::PathBuf;

    use openraft::storage::RaftLogStorageExt;
    use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload};

    use super::*;

    /// Test application data.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
    pub struct Req {
        /// Payload.
        pub body: String,
    }

    openraft::declare_raft_types!(
        /// Test type config.
        pub TC:
            D = Req,
            R = (),
            NodeId = u64,
            Node = BasicNode,
            Entry = Entry<TC>,
            SnapshotData = Cursor<Vec<u8>>,
    );

    type Store = SledLogStore<TC>;

    fn lid(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn ent(term: u64, index: u64) -> Entry<TC> {
        Entry {
            log_id: lid(term, index),
            payload: EntryPayload::Normal(Req {
                body: format!("ballot {index}"),
            }),
        }
    }

    fn ents(term: u64, range: std::ops::RangeInclusive<u64>) -> Vec<Entry<TC>> {
        range.map(|i| ent(term, i)).collect()
    }

    fn ids(entries: &[Entry<TC>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    fn open(path: &Path) -> (sled::Db, Store) {
        let db = open_db(path).unwrap();
        let store = Store::open(&db).unwrap();
        (db, store)
    }

    /// Copies a live sled directory, simulating a crash: only what is on disk survives (no
    /// drop-time flush as a clean shutdown would do).
    fn crash_copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dst: PathBuf = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                crash_copy(&e.path(), &dst);
            } else {
                std::fs::copy(e.path(), dst).unwrap();
            }
        }
    }

    #[tokio::test]
    async fn append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, mut s) = open(dir.path());
        assert_eq!(s.get_log_state().await.unwrap(), LogState::default());
        assert!(s.try_get_log_entries(..).await.unwrap().is_empty());

        s.blocking_append(ents(1, 0..=9)).await.unwrap();
        let all = s.try_get_log_entries(..).await.unwrap();
        assert_eq!(all, ents(1, 0..=9));
        assert_eq!(ids(&s.try_get_log_entries(3..5).await.unwrap()), [3, 4]);
        assert_eq!(ids(&s.try_get_log_entries(3..=5).await.unwrap()), [3, 4, 5]);
        assert_eq!(ids(&s.try_get_log_entries(8..).await.unwrap()), [8, 9]);
        assert_eq!(ids(&s.try_get_log_entries(..2).await.unwrap()), [0, 1]);
        assert!(s.try_get_log_entries(5..5).await.unwrap().is_empty());
        assert!(s.try_get_log_entries(20..30).await.unwrap().is_empty());
        let inverted = (Bound::Excluded(u64::MAX), Bound::Unbounded);
        assert!(s.try_get_log_entries(inverted).await.unwrap().is_empty());

        let mut r = s.get_log_reader().await;
        assert_eq!(ids(&r.try_get_log_entries(7..).await.unwrap()), [7, 8, 9]);
        // The reader shares the tree: later appends are visible through it.
        s.blocking_append([ent(2, 10)]).await.unwrap();
        assert_eq!(
            ids(&r.clone().try_get_log_entries(9..).await.unwrap()),
            [9, 10]
        );

        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, None);
        assert_eq!(st.last_log_id, Some(lid(2, 10)));
    }

    #[tokio::test]
    async fn entries_vote_committed_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut s) = open(dir.path());
            s.blocking_append(ents(1, 0..=4)).await.unwrap();
            s.save_vote(&Vote::new_committed(3, 2)).await.unwrap();
            s.save_committed(Some(lid(1, 3))).await.unwrap();
        }
        let (_db, mut s) = open(dir.path());
        assert_eq!(s.try_get_log_entries(..).await.unwrap(), ents(1, 0..=4));
        assert_eq!(
            s.read_vote().await.unwrap(),
            Some(Vote::new_committed(3, 2))
        );
        assert_eq!(s.read_committed().await.unwrap(), Some(lid(1, 3)));
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(lid(1, 4))
        );

        s.save_committed(None).await.unwrap();
        assert_eq!(s.read_committed().await.unwrap(), None);
    }

    /// The append callback fires only once the entries would survive a crash: a copy of the
    /// on-disk files, taken while the db is still open (no clean-shutdown flush), has them.
    #[tokio::test]
    async fn append_callback_implies_durable() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let (_db, mut s) = open(&live);
        s.blocking_append(ents(1, 0..=2)).await.unwrap();
        s.blocking_append(ents(1, 3..=5)).await.unwrap();

        let copy = dir.path().join("crashed");
        crash_copy(&live, &copy);
        let (_db2, mut c) = open(&copy);
        assert_eq!(c.try_get_log_entries(..).await.unwrap(), ents(1, 0..=5));

        // And the internal durable-append path on its own.
        s.append_entries_durably(ents(1, 6..=7))
            .await
            .unwrap()
            .unwrap();
        let copy2 = dir.path().join("crashed2");
        crash_copy(&live, &copy2);
        let (_db3, mut c2) = open(&copy2);
        assert_eq!(c2.try_get_log_entries(..).await.unwrap(), ents(1, 0..=7));
    }

    #[tokio::test]
    async fn vote_is_durable_on_return() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let (_db, mut s) = open(&live);
        assert_eq!(s.read_vote().await.unwrap(), None);
        s.save_vote(&Vote::new(5, 7)).await.unwrap();

        let copy = dir.path().join("crashed");
        crash_copy(&live, &copy);
        let (_db2, mut c) = open(&copy);
        assert_eq!(c.read_vote().await.unwrap(), Some(Vote::new(5, 7)));
    }

    #[tokio::test]
    async fn truncate_removes_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut s) = open(dir.path());
            s.blocking_append(ents(1, 0..=10)).await.unwrap();
            s.truncate(lid(1, 11)).await.unwrap(); // beyond the end: no-op
            assert_eq!(s.try_get_log_entries(..).await.unwrap().len(), 11);
            s.truncate(lid(1, 6)).await.unwrap();
            assert_eq!(
                ids(&s.try_get_log_entries(..).await.unwrap()),
                [0, 1, 2, 3, 4, 5]
            );
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_log_id, Some(lid(1, 5)));
            assert_eq!(st.last_purged_log_id, None);
            // Re-append a different tail after truncation.
            s.blocking_append(ents(2, 6..=7)).await.unwrap();
        }
        let (_db, mut s) = open(dir.path());
        let all = s.try_get_log_entries(..).await.unwrap();
        assert_eq!(ids(&all), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(all[6].log_id, lid(2, 6));

        s.truncate(lid(1, 0)).await.unwrap();
        assert!(s.try_get_log_entries(..).await.unwrap().is_empty());
        assert_eq!(s.get_log_state().await.unwrap(), LogState::default());
    }

    #[tokio::test]
    async fn purge_removes_head_and_tracks_last_purged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut s) = open(dir.path());
            s.blocking_append(ents(1, 0..=10)).await.unwrap();

            s.purge(lid(1, 0)).await.unwrap();
            assert_eq!(s.try_get_log_entries(..).await.unwrap().len(), 10);
            s.purge(lid(1, 5)).await.unwrap();
            assert_eq!(
                ids(&s.try_get_log_entries(0..100).await.unwrap()),
                [6, 7, 8, 9, 10]
            );
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(lid(1, 5)));
            assert_eq!(st.last_log_id, Some(lid(1, 10)));
        }
        {
            // Survives reopen.
            let (_db, mut s) = open(dir.path());
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(lid(1, 5)));
            assert_eq!(st.last_log_id, Some(lid(1, 10)));

            // Purge everything: last log id falls back to last purged.
            s.purge(lid(1, 10)).await.unwrap();
            assert!(s.try_get_log_entries(..).await.unwrap().is_empty());
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(lid(1, 10)));
            assert_eq!(st.last_log_id, Some(lid(1, 10)));

            // Purge beyond the last entry (after installing a snapshot).
            s.purge(lid(3, 20)).await.unwrap();
        }
        let (_db, mut s) = open(dir.path());
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(lid(3, 20)));
        assert_eq!(st.last_log_id, Some(lid(3, 20)));
        // Appending continues after the purge point.
        s.blocking_append([ent(3, 21)]).await.unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(lid(3, 20)));
        assert_eq!(st.last_log_id, Some(lid(3, 21)));
    }

    #[tokio::test]
    async fn interrupted_purge_is_completed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, mut s) = open(dir.path());
            s.blocking_append(ents(1, 0..=5)).await.unwrap();
            // Simulate a crash between recording the purge point and removing entries.
            s.write_meta(KEY_LAST_PURGED, &lid(1, 2), write_logs_err)
                .unwrap();
            db.flush().unwrap();
        }
        let (_db, mut s) = open(dir.path());
        assert_eq!(ids(&s.try_get_log_entries(..).await.unwrap()), [3, 4, 5]);
        assert_eq!(
            s.get_log_state().await.unwrap().last_purged_log_id,
            Some(lid(1, 2))
        );
    }

    #[tokio::test]
    async fn corrupt_entry_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut s) = open(dir.path());
        s.blocking_append(ents(1, 0..=2)).await.unwrap();
        db.open_tree(LOG_TREE)
            .unwrap()
            .insert(index_key(3), &b"\xc1 not msgpack"[..])
            .unwrap();

        let err = s.try_get_log_entries(..).await.unwrap_err();
        assert!(format!("{err}").contains("LogIndex(3)"), "{err}");
        assert!(s.get_log_state().await.is_err());
        // Ranges not touching the corrupt row still read.
        assert_eq!(ids(&s.try_get_log_entries(..3).await.unwrap()), [0, 1, 2]);

        db.open_tree(META_TREE)
            .unwrap()
            .insert(KEY_VOTE, &b"\xc1"[..])
            .unwrap();
        assert!(s.read_vote().await.is_err());
    }

    /// A minimal in-memory state machine, only so openraft's conformance suite can drive the
    /// log store (the real state machine lives elsewhere).
    mod suite_sm {
        use std::sync::{Arc, Mutex};

        use openraft::storage::{RaftStateMachine, Snapshot};
        use openraft::{RaftSnapshotBuilder, SnapshotMeta, StoredMembership};

        use super::*;

        type Meta = SnapshotMeta<u64, BasicNode>;

        #[derive(Default)]
        struct State {
            applied: Option<LogId<u64>>,
            membership: StoredMembership<u64, BasicNode>,
            snapshot: Option<Meta>,
            snap_seq: u64,
        }

        #[derive(Clone, Default)]
        pub struct MemSm(Arc<Mutex<State>>);

        impl RaftSnapshotBuilder<TC> for MemSm {
            async fn build_snapshot(&mut self) -> Result<Snapshot<TC>, StorageError<u64>> {
                let mut st = self.0.lock().unwrap();
                st.snap_seq += 1;
                let meta = Meta {
                    last_log_id: st.applied,
                    last_membership: st.membership.clone(),
                    snapshot_id: format!("snap-{}", st.snap_seq),
                };
                st.snapshot = Some(meta.clone());
                Ok(Snapshot {
                    meta,
                    snapshot: Box::new(Cursor::new(Vec::new())),
                })
            }
        }

        impl RaftStateMachine<TC> for MemSm {
            type SnapshotBuilder = Self;

            async fn applied_state(
                &mut self,
            ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>>
            {
                let st = self.0.lock().unwrap();
                Ok((st.applied, st.membership.clone()))
            }

            async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
            where
                I: IntoIterator<Item = Entry<TC>> + OptionalSend,
                I::IntoIter: OptionalSend,
            {
                let mut st = self.0.lock().unwrap();
                let mut out = Vec::new();
                for e in entries {
                    st.applied = Some(e.log_id);
                    if let EntryPayload::Membership(m) = e.payload {
                        st.membership = StoredMembership::new(Some(e.log_id), m);
                    }
                    out.push(());
                }
                Ok(out)
            }

            async fn get_snapshot_builder(&mut self) -> Self {
                self.clone()
            }

            async fn begin_receiving_snapshot(
                &mut self,
            ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
                Ok(Box::new(Cursor::new(Vec::new())))
            }

            async fn install_snapshot(
                &mut self,
                meta: &Meta,
                _snapshot: Box<Cursor<Vec<u8>>>,
            ) -> Result<(), StorageError<u64>> {
                let mut st = self.0.lock().unwrap();
                st.applied = meta.last_log_id;
                st.membership = meta.last_membership.clone();
                st.snapshot = Some(meta.clone());
                Ok(())
            }

            async fn get_current_snapshot(
                &mut self,
            ) -> Result<Option<Snapshot<TC>>, StorageError<u64>> {
                let st = self.0.lock().unwrap();
                Ok(st.snapshot.clone().map(|meta| Snapshot {
                    meta,
                    snapshot: Box::new(Cursor::new(Vec::new())),
                }))
            }
        }

        pub struct Builder;

        impl openraft::testing::StoreBuilder<TC, Store, MemSm, tempfile::TempDir> for Builder {
            async fn build(&self) -> Result<(tempfile::TempDir, Store, MemSm), StorageError<u64>> {
                let dir = tempfile::tempdir().unwrap();
                let (_db, store) = open(dir.path());
                Ok((dir, store, MemSm::default()))
            }
        }
    }

    /// openraft's own conformance suite for log storage (with a throwaway state machine).
    #[test]
    fn openraft_conformance_suite() {
        openraft::testing::Suite::test_all(suite_sm::Builder).unwrap();
    }
}
