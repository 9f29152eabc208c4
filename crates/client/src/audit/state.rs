//! The files an auditor and a witness keep between runs.
//!
//! Two sections, kept apart on purpose:
//!
//! 1. **The audit state** ([`AuditState`]): the last k-of-n cosigned checkpoint an
//!    auditor accepted. It is the only part the rest of the audit knows about.
//! 2. **Versioned JSON state files** ([`write_atomically`], the private
//!    `load_json`/`save_json` pair, and [`WitnessStateFile`]): generic
//!    crash-safe persistence. Nothing outside this file uses their internals, so they
//!    can move to their own crate without touching the audit.
//!
//! Both files are written the same way, atomically and durably, so a crash leaves
//! either the old or the new state, never a torn file that would make an auditor or a
//! witness forget what it has already accepted.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use bboard_core::witness::WitnessState;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------
// 1. The audit state
// ---------------------------------------------------------------------------------

/// Version of the audit state JSON written by this code.
pub const AUDIT_STATE_VERSION: u32 = 1;

/// What an auditor remembers between runs.
///
/// JSON: `{"version":1,"checkpoint":"<signed note>"}` (`checkpoint` absent before the
/// first successful audit). The note is the last k-of-n cosigned checkpoint the
/// auditor accepted; it is re-verified on every run, so editing the file cannot make
/// the auditor trust a checkpoint the nodes did not sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    /// Format version, [`AUDIT_STATE_VERSION`].
    pub version: u32,
    /// The last accepted cosigned checkpoint (signed note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

impl Default for AuditState {
    fn default() -> Self {
        AuditState {
            version: AUDIT_STATE_VERSION,
            checkpoint: None,
        }
    }
}

impl AuditState {
    /// The state holding `checkpoint` (a signed note), at the current version.
    pub(crate) fn with_checkpoint(checkpoint: Option<String>) -> Self {
        AuditState {
            version: AUDIT_STATE_VERSION,
            checkpoint,
        }
    }

    /// Reads the state file; a missing file is the empty state (first run).
    pub fn load(path: &Path) -> io::Result<Self> {
        load_json(
            path,
            "audit",
            |state: &AuditState| state.version,
            AUDIT_STATE_VERSION,
        )
    }

    /// Writes the state file atomically and durably ([`write_atomically`]).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        save_json(path, self)
    }
}

// ---------------------------------------------------------------------------------
// 2. Versioned JSON state files (self-contained: to move to their own crate)
// ---------------------------------------------------------------------------------

/// Reads a versioned JSON state file; a missing file is the default (empty) state.
/// `version` reads the file's format version, which must be `expected`.
fn load_json<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    what: &str,
    version: impl Fn(&T) -> u32,
    expected: u32,
) -> io::Result<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let state: T = serde_json::from_str(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if version(&state) != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{what} state version {} is not supported", version(&state)),
                ));
            }
            Ok(state)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Writes a state file as pretty JSON, atomically and durably ([`write_atomically`]).
fn save_json<T: Serialize>(path: &Path, state: &T) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    write_atomically(path, &json)
}

/// Replaces `path` with `bytes` so that after a crash the file holds either the old or
/// the new content, never a mix: write a temporary file in the same directory, fsync
/// it, rename it over `path`, fsync the directory (so the rename itself is durable).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // Directory fsync is how POSIX makes a rename durable; not possible on all
        // platforms, where the rename is as durable as the OS makes it.
        if let Ok(dir) = std::fs::File::open(&dir) {
            dir.sync_all()
                .or_else(|e| if cfg!(unix) { Err(e) } else { Ok(()) })?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A witness's state file ([`WitnessState`] as JSON), saved atomically.
///
/// A witness must [`save`](Self::save) the new state returned by
/// `Witness::add_checkpoint` *before* it returns the cosignature, and must not run two
/// `add_checkpoint`s concurrently from the same loaded state.
#[derive(Clone, Debug)]
pub struct WitnessStateFile {
    path: PathBuf,
}

impl WitnessStateFile {
    /// The state file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        WitnessStateFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state; a missing file is the empty state (nothing cosigned yet).
    pub fn load(&self) -> io::Result<WitnessState> {
        load_json(
            &self.path,
            "witness",
            |state: &WitnessState| state.version,
            bboard_core::witness::WITNESS_STATE_VERSION,
        )
    }

    /// Writes the state atomically and durably.
    pub fn save(&self, state: &WitnessState) -> io::Result<()> {
        save_json(&self.path, state)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{checkpoint_note, honest};

    use super::*;

    const ORIGIN: &str = "bboard.test/audit";

    #[test]
    fn audit_state_files_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.json");
        assert_eq!(AuditState::load(&path).unwrap(), AuditState::default());
        let state = AuditState {
            version: AUDIT_STATE_VERSION,
            checkpoint: Some(checkpoint_note(ORIGIN, &honest(2), 2, &[1, 2])),
        };
        state.save(&path).unwrap();
        assert_eq!(AuditState::load(&path).unwrap(), state);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&path, "{\"version\":9}").unwrap();
        assert!(AuditState::load(&path).is_err());
    }

    #[test]
    fn witness_state_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = WitnessStateFile::new(dir.path().join("witness.json"));
        assert_eq!(file.load().unwrap(), WitnessState::default());
        let mut witnessed = WitnessState::default();
        witnessed.logs.insert(
            ORIGIN.into(),
            bboard_core::witness::LogState {
                size: 2,
                root: honest(2).root().unwrap(),
            },
        );
        file.save(&witnessed).unwrap();
        assert_eq!(file.load().unwrap(), witnessed);
    }
}
