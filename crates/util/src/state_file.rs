//! Durable state files: the audit state, a witness's state, a trustee's ceremony
//! state. Each is replaced atomically, so that after a crash the file holds either the
//! old or the new content, never a mix, and it is on disk before the call returns.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Who may read a file written by [`write_atomically`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The process's default permissions (umask).
    Default,
    /// Only the owner (mode 0600 on Unix): secrets.
    OwnerOnly,
}

/// Replaces `path` with `bytes`: writes a temporary file in the same directory, fsyncs
/// it, renames it over `path`, and fsyncs the directory, so the rename itself is
/// durable.
///
/// # Errors
///
/// The operating system's error; the temporary file is removed on failure.
pub fn write_atomically(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
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
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if access == Access::OwnerOnly {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
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
        // Best effort: the temporary file holds nothing the real one needs.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a versioned JSON state file: a missing file is the default (empty) state; a
/// file of another `version` than `expected` is refused, never guessed at.
///
/// # Errors
///
/// The file cannot be read, is not JSON of `T`, or has another version.
pub fn load_json<T: DeserializeOwned + Default>(
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
///
/// # Errors
///
/// The operating system's error.
pub fn save_json<T: Serialize>(path: &Path, state: &T) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    write_atomically(path, &json, Access::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
    struct State {
        version: u32,
        items: Vec<u64>,
    }

    #[test]
    fn a_missing_state_file_is_the_empty_state_and_a_saved_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let load = || load_json(&path, "test", |s: &State| s.version, 1);
        assert_eq!(load().unwrap(), State::default());
        let state = State {
            version: 1,
            items: vec![3, 4],
        };
        save_json(&path, &state).unwrap();
        assert_eq!(load().unwrap(), state);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_state_file_of_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"version": 7, "items": []}"#).unwrap();
        let error = load_json(&path, "test", |s: &State| s.version, 1).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("version 7"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn owner_only_files_are_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomically(&path, b"s", Access::OwnerOnly).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
