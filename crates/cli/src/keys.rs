//! Key files: `bboard keygen` and reading keys back.
//!
//! A private key file holds the 32-byte Ed25519 seed in hex on one line, readable only
//! by its owner (mode 0600 on Unix). The public part is printed both as raw hex (what
//! board entries carry) and as a signed-note verifier key (what checkpoint verifiers
//! are configured with).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bboard_core::checkpoint::NoteSigner;
use bboard_util::key_file;
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
    Ok(key_file::write_signing_key(path, key)?)
}

/// Reads a private key file written by [`write_private_key`].
pub fn read_private_key(path: &Path) -> Result<SigningKey> {
    Ok(key_file::read_signing_key(path)?)
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
