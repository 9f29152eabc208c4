//! The file an auditor keeps between runs ([`AuditState`]): the last k-of-n cosigned
//! checkpoint it accepted. It is written atomically and durably
//! (`bboard_util::state_file`), so a crash leaves either the old or the new state,
//! never a torn file that would make the auditor forget what it has already accepted.

use std::io;
use std::path::Path;

use bboard_util::state_file::{load_json, save_json};
use serde::{Deserialize, Serialize};

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

    /// Writes the state file atomically and durably.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        save_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use bboard_testkit::{fixture_note, honest_tree};

    use super::*;

    const ORIGIN: &str = "bboard.test/audit";

    #[test]
    fn audit_state_files_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.json");
        assert_eq!(AuditState::load(&path).unwrap(), AuditState::default());
        let state = AuditState {
            version: AUDIT_STATE_VERSION,
            checkpoint: Some(fixture_note(ORIGIN, &honest_tree(2), 2, &[1, 2])),
        };
        state.save(&path).unwrap();
        assert_eq!(AuditState::load(&path).unwrap(), state);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&path, "{\"version\":9}").unwrap();
        assert!(AuditState::load(&path).is_err());
    }
}
