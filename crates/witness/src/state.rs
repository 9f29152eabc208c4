//! A witness's state file: what it last cosigned for each board, as versioned JSON,
//! replaced atomically and durably (`bboard_util::state_file`).

use std::io;
use std::path::{Path, PathBuf};

use bboard_core::witness::{WitnessState, WITNESS_STATE_VERSION};
use bboard_util::state_file::{load_json, save_json};

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
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not a witness state, or has another version.
    pub fn load(&self) -> io::Result<WitnessState> {
        load_json(
            &self.path,
            "witness",
            |state: &WitnessState| state.version,
            WITNESS_STATE_VERSION,
        )
    }

    /// Writes the state atomically and durably.
    ///
    /// # Errors
    ///
    /// The operating system's error; the old state is then still in place.
    pub fn save(&self, state: &WitnessState) -> io::Result<()> {
        save_json(&self.path, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bboard_core::witness::LogState;
    use bboard_merkle::Hash;

    #[test]
    fn the_state_file_starts_empty_and_reads_back_what_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let file = WitnessStateFile::new(dir.path().join("witness.json"));
        assert_eq!(file.load().unwrap(), WitnessState::default());
        let mut witnessed = WitnessState::default();
        witnessed.logs.insert(
            "example.org/board".into(),
            LogState {
                size: 2,
                root: Hash([7; 32]),
            },
        );
        file.save(&witnessed).unwrap();
        assert_eq!(file.load().unwrap(), witnessed);
        std::fs::write(file.path(), "{\"version\":9,\"logs\":{}}").unwrap();
        assert!(file.load().is_err(), "another version is refused");
    }
}
