//! Key files: `bboard keygen` and reading keys back.
//!
//! A private key file holds the 32-byte Ed25519 seed in hex on one line, readable only
//! by its owner (mode 0600 on Unix). The public part is printed both as raw hex (what
//! board entries carry) and as a signed-note verifier key (what checkpoint verifiers
//! are configured with).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bboard_core::checkpoint::NoteSigner;
use ed25519_dalek::SigningKey;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Key name (used in checkpoint signatures): no spaces or '+'.
    #[arg(long)]
    name: String,
    /// Where to write the private key (hex seed). Refuses to overwrite.
    #[arg(long)]
    out: PathBuf,
}

/// Generates a key from the operating system's random source.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// Writes a private key file that only the owner can read; refuses to overwrite.
pub fn write_private_key(path: &Path, key: &SigningKey) -> Result<()> {
    write_secret_file(
        path,
        format!("{}\n", hex::encode(key.to_bytes())).as_bytes(),
    )
}

/// Creates a file only the owner can read (mode 0600 on Unix) holding `contents`;
/// refuses to overwrite.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "creating secret file {} (it must not exist yet)",
            path.display()
        )
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing secret file {}", path.display()))
}

/// Replaces (or creates) a secret file atomically: writes a 0600 sibling, then renames
/// it over `path`, so a crash leaves either the old or the new contents.
pub fn replace_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    // A leftover from an interrupted write holds nothing the real file does not.
    if temporary.exists() {
        std::fs::remove_file(&temporary)
            .with_context(|| format!("removing {}", temporary.display()))?;
    }
    write_secret_file(&temporary, contents)?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
}

/// Reads a private key file written by [`write_private_key`].
pub fn read_private_key(path: &Path) -> Result<SigningKey> {
    // Same format as a node's key file: one reader for both.
    Ok(bboard_node::runtime::read_key_file(path)?)
}

#[derive(clap::Args)]
pub struct KeyInfoArgs {
    /// Private key file written by `bboard keygen`.
    #[arg(long)]
    key: PathBuf,
    /// Key name to show the verifier key under.
    #[arg(long)]
    name: String,
}

fn print_public_parts(name: &str, key: &SigningKey) -> Result<()> {
    let signer = NoteSigner::new(name, key.clone()).context("invalid key name")?;
    println!(
        "public key (hex):  {}",
        hex::encode(key.verifying_key().as_bytes())
    );
    println!("verifier key:      {}", signer.verifier());
    Ok(())
}

pub fn run_keygen(args: KeygenArgs) -> Result<()> {
    let key = generate_key();
    // Check the name before writing anything.
    NoteSigner::new(&args.name, key.clone()).context("invalid key name")?;
    write_private_key(&args.out, &key)?;
    println!("private key written to {}", args.out.display());
    print_public_parts(&args.name, &key)
}

pub fn run_key_info(args: KeyInfoArgs) -> Result<()> {
    print_public_parts(&args.name, &read_private_key(&args.key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = generate_key();
        write_private_key(&path, &key).unwrap();
        assert_eq!(read_private_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(write_private_key(&path, &generate_key()).is_err());
        assert_eq!(read_private_key(&path).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn malformed_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        std::fs::write(&path, "abcd\n").unwrap();
        assert!(read_private_key(&path).is_err());
    }
}
