//! Keeps the signed envelope of a post whose outcome is unknown
//! ([`ClientError::OutcomeUnknown`]: no node confirmed it in time), so the operator
//! re-sends exactly that envelope with `bboard append --envelope FILE`. A re-send is
//! idempotent: the board keeps one copy and answers with the original receipt.
//! Running the original command again would sign a new entry instead (for a ballot, a
//! fresh encryption of the same choice, which would count twice).

use std::path::{Path, PathBuf};

use bboard_client::ClientError;
use bboard_core::envelope::SignedEnvelope;
use bboard_util::state_file::{write_atomically, Access};
use prost::Message;

/// Environment variable naming the directory kept envelopes go to (default
/// `bboard-unsent` in the working directory).
pub const UNSENT_DIR_VARIABLE: &str = "BBOARD_UNSENT_DIR";

/// The envelope of an unknown outcome somewhere in `error`'s chain, if any.
fn unknown_envelope(error: &anyhow::Error) -> Option<&SignedEnvelope> {
    // Library errors hold the client's error boxed, and a `Box<ClientError>` source
    // downcasts only as itself.
    error.chain().find_map(|cause| {
        let client_error = cause
            .downcast_ref::<ClientError>()
            .or_else(|| cause.downcast_ref::<Box<ClientError>>().map(AsRef::as_ref));
        match client_error {
            Some(ClientError::OutcomeUnknown { envelope, .. }) => Some(envelope.as_ref()),
            _ => None,
        }
    })
}

/// Writes `envelope` (the encoded `Envelope` message) to `dir/<envelope id>.envelope`,
/// durably; returns the path.
pub fn keep_envelope(dir: &Path, envelope: &SignedEnvelope) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.envelope", envelope.id()));
    write_atomically(&path, &envelope.to_proto().encode_to_vec(), Access::Default)?;
    Ok(path)
}

/// When `error` is an unknown outcome, keeps its envelope and returns what to tell
/// the operator; `None` for every other error.
pub fn keep(error: &anyhow::Error) -> Option<String> {
    let envelope = unknown_envelope(error)?;
    let dir = std::env::var_os(UNSENT_DIR_VARIABLE)
        .map_or_else(|| PathBuf::from("bboard-unsent"), PathBuf::from);
    let advice = "Do not run the original command again: it would sign a new entry (for a \
                  ballot, a new encryption of the same choice, which could count twice).";
    Some(match keep_envelope(&dir, envelope) {
        Ok(path) => format!(
            "the signed envelope is kept in {path}. Re-send exactly it, as often as needed \
             (the board keeps one copy and answers a re-send with the original receipt):\n  \
             bboard append --envelope {path} --endpoint … (and the same --trusted-keys and \
             --origin)\n{advice}",
            path = path.display()
        ),
        // The envelope must not be lost with the file: print it instead.
        Err(write_error) => format!(
            "the signed envelope could not be kept in {} ({write_error}); save these hex \
             bytes to a file and re-send it with `bboard append --envelope FILE`:\n{}\n{advice}",
            dir.display(),
            hex::encode(envelope.to_proto().encode_to_vec())
        ),
    })
}

/// Reads an envelope kept by [`keep`] (binary, or the hex it prints when it cannot
/// write), checking its signature.
pub fn read_envelope(path: &Path) -> anyhow::Result<SignedEnvelope> {
    use anyhow::Context;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&bytes).ok().map(str::trim);
    let bytes = match text.and_then(|t| hex::decode(t).ok()) {
        Some(decoded) if !decoded.is_empty() => decoded,
        _ => bytes,
    };
    SignedEnvelope::decode(&bytes, bboard_core::envelope::MAX_BODY_BYTES)
        .with_context(|| format!("{} is not a signed envelope", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_envelope_reads_back_as_binary_or_hex() {
        let dir = tempfile::tempdir().unwrap();
        let envelope = bboard_testkit::note(&bboard_testkit::key(3), 7);
        let path = keep_envelope(dir.path(), &envelope).unwrap();
        assert_eq!(read_envelope(&path).unwrap(), envelope);
        let hex_file = dir.path().join("printed.hex");
        std::fs::write(
            &hex_file,
            format!("{}\n", hex::encode(envelope.to_proto().encode_to_vec())),
        )
        .unwrap();
        assert_eq!(read_envelope(&hex_file).unwrap(), envelope);
        std::fs::write(&hex_file, "not an envelope").unwrap();
        assert!(read_envelope(&hex_file).is_err());
    }

    #[test]
    fn only_an_unknown_outcome_keeps_an_envelope() {
        let envelope = bboard_testkit::note(&bboard_testkit::key(4), 1);
        let unknown: anyhow::Error = ClientError::OutcomeUnknown {
            envelope: Box::new(envelope.clone()),
            attempts: 3,
            elapsed: std::time::Duration::from_secs(30),
            last: "x".into(),
            tried: vec!["a".into()],
        }
        .into();
        let wrapped = unknown.context("posting the ballot");
        assert_eq!(unknown_envelope(&wrapped), Some(&envelope));
        // As the election library reports it: the client's error boxed as a source.
        let boxed: anyhow::Error = bboard_election::Error::Append {
            what: "the ballot".into(),
            source: Box::new(ClientError::OutcomeUnknown {
                envelope: Box::new(envelope.clone()),
                attempts: 1,
                elapsed: std::time::Duration::from_secs(1),
                last: "x".into(),
                tried: Vec::new(),
            }),
        }
        .into();
        assert_eq!(unknown_envelope(&boxed), Some(&envelope));
        assert!(unknown_envelope(&anyhow::anyhow!("other")).is_none());
    }
}
