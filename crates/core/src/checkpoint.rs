//! Checkpoints: the signed statement "the board named `origin` has `size` leaves with
//! Merkle root `root`".
//!
//! The text is a [C2SP tlog-checkpoint](https://c2sp.org/tlog-checkpoint) body:
//!
//! ```text
//! <origin>\n
//! <size in decimal>\n
//! <base64 (standard, padded) of the 32-byte root>\n
//! ```
//!
//! and the signed form is a [C2SP signed note](https://c2sp.org/signed-note): the text,
//! a blank line, then one line `— <key name> base64(key_id[4] || signature[64])` per
//! node. Each node signs with its own Ed25519 key (signature type 0x01), key id =
//! `SHA-256(name || 0x0A || 0x01 || public_key)[..4]`, so Go's `sumdb/note` and other
//! C2SP tools read these notes and our verifier keys (`name+keyid+base64(0x01||key)`).
//!
//! The `signed_note` crate provides the line formats, key ids and name rules; this
//! module adds what it does not: strict checkpoint parsing (no extension lines, no
//! leading zeros, canonical base64), `verify_strict` signatures, merging of
//! cosignatures gathered from several nodes, and the k-of-n [`CosignaturePolicy`].

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bboard_merkle::{Hash, TreeSize};
use ed25519_dalek::{Signature as Ed25519Signature, Signer as _, SigningKey, VerifyingKey};
use signed_note::{is_key_name_valid, key_id, Signature as NoteSignature};

use crate::envelope::PUBLIC_KEY_LEN;
use crate::{Error, Result};

/// Signature type byte of Ed25519 keys in signed notes.
pub const ALG_ED25519: u8 = 0x01;

/// Largest signed note we parse. A checkpoint with 100 signatures is under 16 KiB.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// Most signature lines we parse in one note.
pub const MAX_NOTE_SIGNATURES: usize = 100;

/// Longest origin line we accept.
pub const MAX_ORIGIN_BYTES: usize = 256;

/// The unsigned statement: board `origin` has `size` leaves with root `root`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Identifies the board, e.g. `bboard.example/election-2026`.
    pub origin: String,
    /// Number of leaves.
    pub size: TreeSize,
    /// Merkle root of the first `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint's note text (what signatures cover).
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size.0,
            BASE64.encode(self.root.as_bytes())
        )
    }

    /// Parses checkpoint text strictly: exactly three lines, a valid origin, a decimal
    /// size without leading zeros, a canonical padded base64 32-byte root.
    pub fn from_text(text: &str) -> Result<Self> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| Error::MalformedCheckpoint("text must end with a newline".into()))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root] = lines.as_slice() else {
            return Err(Error::MalformedCheckpoint(format!(
                "expected 3 lines (origin, size, root), found {}",
                lines.len()
            )));
        };
        validate_origin(origin)?;
        let size = parse_size(size)?;
        let root = parse_root(root)?;
        Ok(Checkpoint {
            origin: (*origin).to_string(),
            size,
            root,
        })
    }
}

/// Checks an origin line: non-empty, printable, bounded.
pub fn validate_origin(origin: &str) -> Result<()> {
    if origin.is_empty() {
        return Err(Error::MalformedCheckpoint("empty origin".into()));
    }
    if origin.len() > MAX_ORIGIN_BYTES {
        return Err(Error::MalformedCheckpoint(format!(
            "origin longer than {MAX_ORIGIN_BYTES} bytes"
        )));
    }
    if origin.chars().any(char::is_control) {
        return Err(Error::MalformedCheckpoint(
            "origin contains a control character".into(),
        ));
    }
    Ok(())
}

fn parse_size(line: &str) -> Result<TreeSize> {
    let well_formed = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    if !well_formed {
        return Err(Error::MalformedCheckpoint(format!(
            "size {line:?} is not a decimal number without leading zeros"
        )));
    }
    line.parse::<u64>()
        .map(TreeSize)
        .map_err(|_| Error::MalformedCheckpoint(format!("size {line:?} does not fit in 64 bits")))
}

fn parse_root(line: &str) -> Result<Hash> {
    let bytes = BASE64
        .decode(line)
        .map_err(|e| Error::MalformedCheckpoint(format!("root is not base64: {e}")))?;
    if BASE64.encode(&bytes) != line {
        return Err(Error::MalformedCheckpoint(
            "root is not canonical base64".into(),
        ));
    }
    Hash::from_slice(&bytes).map_err(|_| {
        Error::MalformedCheckpoint(format!("root is {} bytes, expected 32", bytes.len()))
    })
}

fn check_key_name(name: &str) -> Result<()> {
    if is_key_name_valid(name) {
        Ok(())
    } else {
        Err(Error::InvalidKeyName(name.to_string()))
    }
}

/// Key id of an Ed25519 note key: `SHA-256(name || 0x0A || 0x01 || key)[..4]`, big endian.
pub fn ed25519_key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut encoded = Vec::with_capacity(1 + PUBLIC_KEY_LEN);
    encoded.push(ALG_ED25519);
    encoded.extend_from_slice(key.as_bytes());
    key_id(name, &encoded)
}

/// A node's checkpoint-signing key with its note key name.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish()
    }
}

impl NoteSigner {
    /// A signer named `name` (non-empty, no whitespace or '+').
    pub fn new(name: &str, key: SigningKey) -> Result<Self> {
        check_key_name(name)?;
        let key_id = ed25519_key_id(name, &key.verifying_key());
        Ok(NoteSigner {
            name: name.to_string(),
            key,
            key_id,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs a board entry with this node's key (a node posts
    /// `CheckpointCosignatures` entries under the key it signs checkpoints with).
    pub fn sign_entry(&self, body: &crate::pb::EntryBody) -> crate::envelope::SignedEnvelope {
        crate::envelope::SignedEnvelope::sign_body(body, &self.key)
    }

    /// Signs `domain || message` with this node's key (node statements such as
    /// censorship alarms; the domain keeps them apart from entries and notes).
    pub fn sign_statement(&self, domain: &[u8], message: &[u8]) -> ed25519_dalek::Signature {
        use ed25519_dalek::Signer;
        let mut signed = Vec::with_capacity(domain.len() + message.len());
        signed.extend_from_slice(domain);
        signed.extend_from_slice(message);
        self.key.sign(&signed)
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    fn sign_line(&self, text: &str) -> Result<NoteSignature> {
        let signature = self.key.sign(text.as_bytes());
        NoteSignature::new(
            self.name.clone(),
            self.key_id,
            signature.to_bytes().to_vec(),
        )
        .map_err(|e| Error::MalformedNote(e.to_string()))
    }
}

/// A trusted node's public note key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    key_id: u32,
}

impl NoteVerifier {
    /// A verifier for `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self> {
        check_key_name(name)?;
        Ok(NoteVerifier {
            name: name.to_string(),
            key_id: ed25519_key_id(name, &key),
            key,
        })
    }

    /// Parses the standard verifier key form `name+keyid+base64(0x01 || key)`.
    pub fn parse(vkey: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidVerifierKey(format!("{vkey:?}: {reason}"));
        let (name, rest) = vkey.split_once('+').ok_or_else(|| bad("no '+'"))?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or_else(|| bad("no second '+'"))?;
        check_key_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("key id is not 8 hex digits"));
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad("key id is not hex"))?;
        let key_bytes = BASE64
            .decode(key_b64)
            .map_err(|_| bad("key is not base64"))?;
        let Some((&alg, key)) = key_bytes.split_first() else {
            return Err(bad("empty key"));
        };
        if alg != ALG_ED25519 {
            return Err(bad("not an Ed25519 (type 0x01) key"));
        }
        let key = crate::envelope::parse_public_key(key)?;
        let verifier = NoteVerifier::new(name, key)?;
        if verifier.key_id != id {
            return Err(bad("key id does not match name and key"));
        }
        Ok(verifier)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `signature` is this key's strictly valid signature over `text`.
    fn verifies(&self, text: &str, signature: &NoteSignature) -> bool {
        if signature.name() != self.name || signature.id() != self.key_id {
            return false;
        }
        let Ok(bytes) = <&[u8; 64]>::try_from(signature.signature()) else {
            return false;
        };
        self.key
            .verify_strict(text.as_bytes(), &Ed25519Signature::from_bytes(bytes))
            .is_ok()
    }
}

impl std::fmt::Display for NoteVerifier {
    /// The standard verifier key form `name+keyid+base64(0x01 || key)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut encoded = vec![ALG_ED25519];
        encoded.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(encoded)
        )
    }
}

/// A checkpoint with the signature lines gathered for it (not yet judged).
#[derive(Clone, Debug, PartialEq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    text: String,
    signatures: Vec<NoteSignature>,
}

impl SignedCheckpoint {
    /// A checkpoint signed by `signer`.
    pub fn sign(checkpoint: Checkpoint, signer: &NoteSigner) -> Result<Self> {
        let text = checkpoint.to_text();
        let signature = signer.sign_line(&text)?;
        Ok(SignedCheckpoint {
            checkpoint,
            text,
            signatures: vec![signature],
        })
    }

    /// Adds (or replaces) `signer`'s signature.
    pub fn add_signature(&mut self, signer: &NoteSigner) -> Result<()> {
        let signature = signer.sign_line(&self.text)?;
        self.signatures
            .retain(|s| !(s.name() == signature.name() && s.id() == signature.id()));
        self.signatures.push(signature);
        Ok(())
    }

    /// Adds the signature lines of `other`, which must be a note over the same
    /// checkpoint. Identical lines are kept once. Signatures are not verified here:
    /// a [`CosignaturePolicy`] judges them.
    pub fn merge(&mut self, other: &SignedCheckpoint) -> Result<()> {
        self.same_checkpoint_as(other)?;
        for signature in &other.signatures {
            if !self.signatures.contains(signature) && self.signatures.len() < MAX_NOTE_SIGNATURES {
                self.signatures.push(signature.clone());
            }
        }
        Ok(())
    }

    /// Copies `verifier`'s signature line from `other` (a note over the same
    /// checkpoint) into this note, if `other` carries one that verifies and this note
    /// has no line of that key yet. Returns whether it did. Costs one signature check
    /// per line of `other` claiming the key, so a cosigner adding peers' signatures one
    /// by one never re-verifies the lines it already holds.
    ///
    /// # Errors
    ///
    /// [`Error::CheckpointMismatch`] if `other` is over another checkpoint.
    pub fn adopt_signature(
        &mut self,
        other: &SignedCheckpoint,
        verifier: &NoteVerifier,
    ) -> Result<bool> {
        self.same_checkpoint_as(other)?;
        if self.has_line_of(verifier) {
            return Ok(false);
        }
        let Some(line) = other
            .signatures
            .iter()
            .find(|signature| verifier.verifies(&self.text, signature))
        else {
            return Ok(false);
        };
        self.signatures.push(line.clone());
        Ok(true)
    }

    /// Signatures move only between notes over the same checkpoint.
    fn same_checkpoint_as(&self, other: &SignedCheckpoint) -> Result<()> {
        if other.checkpoint != self.checkpoint {
            return Err(Error::CheckpointMismatch(format!(
                "cannot merge signatures of size {} root {} into size {} root {}",
                other.checkpoint.size.0,
                other.checkpoint.root,
                self.checkpoint.size.0,
                self.checkpoint.root
            )));
        }
        Ok(())
    }

    /// Whether a signature line names `verifier`'s key (name and key id), valid or not.
    pub fn has_line_of(&self, verifier: &NoteVerifier) -> bool {
        self.signatures
            .iter()
            .any(|s| s.name() == verifier.name && s.id() == verifier.key_id)
    }

    /// Parses a signed note holding a checkpoint. Rejects anything that is not exactly
    /// text, blank line, and 1..=100 well-formed signature lines.
    pub fn parse(note: &str) -> Result<Self> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(Error::TooLarge {
                what: "signed note",
                actual: note.len(),
                limit: MAX_NOTE_BYTES,
            });
        }
        let (text, signature_block) = note
            .rsplit_once("\n\n")
            .ok_or_else(|| Error::MalformedNote("no blank line before signatures".into()))?;
        let text = format!("{text}\n");
        // signed_note validates what a note may contain (UTF-8, no control characters).
        signed_note::Note::new(text.as_bytes(), &[])
            .map_err(|e| Error::MalformedNote(e.to_string()))?;
        let checkpoint = Checkpoint::from_text(&text)?;
        let lines = signature_block.strip_suffix('\n').ok_or_else(|| {
            Error::MalformedNote("signature block must end with a newline".into())
        })?;
        let mut signatures = Vec::new();
        for line in lines.split('\n') {
            if signatures.len() == MAX_NOTE_SIGNATURES {
                return Err(Error::MalformedNote(format!(
                    "more than {MAX_NOTE_SIGNATURES} signatures"
                )));
            }
            let signature = NoteSignature::from_bytes(line.as_bytes())
                .map_err(|e| Error::MalformedNote(format!("signature line {line:?}: {e}")))?;
            signatures.push(signature);
        }
        Ok(SignedCheckpoint {
            checkpoint,
            text,
            signatures,
        })
    }

    /// The signed note: text, blank line, signature lines.
    pub fn to_note(&self) -> String {
        let mut note = self.text.clone();
        note.push('\n');
        for signature in &self.signatures {
            note.push_str(&String::from_utf8_lossy(&signature.to_bytes()));
        }
        note
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Names of the keys that put a signature line on this note (unverified).
    pub fn signer_names(&self) -> Vec<&str> {
        self.signatures.iter().map(|s| s.name()).collect()
    }

    /// Whether the note carries a valid signature by `verifier`.
    pub fn is_signed_by(&self, verifier: &NoteVerifier) -> bool {
        self.signatures
            .iter()
            .any(|signature| verifier.verifies(&self.text, signature))
    }
}

/// A checkpoint that passed a [`CosignaturePolicy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Names of the trusted keys whose signatures verified.
    pub signers: Vec<String>,
    /// Names of the trusted witness keys whose signatures verified (empty unless the
    /// policy has witnesses, see [`CosignaturePolicy::with_witnesses`]).
    pub witnesses: Vec<String>,
}

/// Which checkpoints a client believes: those of `origin` signed by at least
/// `threshold` distinct keys out of `keys` and, optionally, cosigned by at least
/// `witness_threshold` of independent `witnesses` (see [`Self::with_witnesses`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignaturePolicy {
    origin: String,
    keys: Vec<NoteVerifier>,
    threshold: usize,
    witnesses: Vec<NoteVerifier>,
    witness_threshold: usize,
}

/// Rejects two verifiers sharing a name or a public key: each could then count twice.
fn check_distinct(keys: &[&NoteVerifier]) -> Result<()> {
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            if a.name == b.name || a.key == b.key {
                return Err(Error::InvalidPolicy(format!(
                    "keys {} and {} are not distinct",
                    a.name, b.name
                )));
            }
        }
    }
    Ok(())
}

impl CosignaturePolicy {
    /// A k-of-n policy. Key names and keys must be distinct, 1 ≤ k ≤ n.
    pub fn new(origin: &str, keys: Vec<NoteVerifier>, threshold: usize) -> Result<Self> {
        validate_origin(origin)?;
        if threshold == 0 || threshold > keys.len() {
            return Err(Error::InvalidPolicy(format!(
                "threshold {threshold} must be between 1 and the number of keys ({})",
                keys.len()
            )));
        }
        check_distinct(&keys.iter().collect::<Vec<_>>())?;
        Ok(CosignaturePolicy {
            origin: origin.to_string(),
            keys,
            threshold,
            witnesses: Vec::new(),
            witness_threshold: 0,
        })
    }

    /// The same policy, additionally requiring valid cosignatures by at least
    /// `threshold` distinct keys of `witnesses` (independent witnesses that cosign only
    /// checkpoints consistent with what they saw before). Witness keys must be
    /// distinct from each other and from the node keys, so no signature counts twice;
    /// `1 ≤ threshold ≤ witnesses`. Replaces any witnesses set before.
    pub fn with_witnesses(
        mut self,
        witnesses: Vec<NoteVerifier>,
        threshold: usize,
    ) -> Result<Self> {
        if threshold == 0 || threshold > witnesses.len() {
            return Err(Error::InvalidPolicy(format!(
                "witness threshold {threshold} must be between 1 and the number of witnesses ({})",
                witnesses.len()
            )));
        }
        check_distinct(&self.keys.iter().chain(&witnesses).collect::<Vec<_>>())?;
        self.witnesses = witnesses;
        self.witness_threshold = threshold;
        Ok(self)
    }

    /// The default policy: a strict majority of the keys.
    pub fn majority(origin: &str, keys: Vec<NoteVerifier>) -> Result<Self> {
        let threshold = keys.len() / 2 + 1;
        Self::new(origin, keys, threshold)
    }

    /// The board origin this policy is for.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[NoteVerifier] {
        &self.keys
    }

    /// k.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The trusted witness keys (empty unless set by [`Self::with_witnesses`]).
    pub fn witnesses(&self) -> &[NoteVerifier] {
        &self.witnesses
    }

    /// How many witness cosignatures are required (0: none).
    pub fn witness_threshold(&self) -> usize {
        self.witness_threshold
    }

    /// Accepts the checkpoint if its origin matches and at least k distinct trusted
    /// keys signed it validly. Signatures by unknown keys are ignored; invalid
    /// signatures by trusted keys are not counted and are named in the error.
    pub fn verify(&self, signed: &SignedCheckpoint) -> Result<VerifiedCheckpoint> {
        if signed.checkpoint.origin != self.origin {
            return Err(Error::WrongOrigin {
                expected: self.origin.clone(),
                actual: signed.checkpoint.origin.clone(),
            });
        }
        let (signers, invalid) = Self::count(&self.keys, signed);
        if signers.len() < self.threshold {
            return Err(Error::NotEnoughCosignatures {
                valid: signers.len(),
                required: self.threshold,
                invalid,
            });
        }
        let (witnesses, invalid) = Self::count(&self.witnesses, signed);
        if witnesses.len() < self.witness_threshold {
            return Err(Error::NotEnoughWitnessCosignatures {
                valid: witnesses.len(),
                required: self.witness_threshold,
                invalid,
            });
        }
        Ok(VerifiedCheckpoint {
            checkpoint: signed.checkpoint.clone(),
            signers,
            witnesses,
        })
    }

    /// Names of `keys` with a valid signature on `signed`, and of those claiming one
    /// (name and key id match) that does not verify.
    fn count(keys: &[NoteVerifier], signed: &SignedCheckpoint) -> (Vec<String>, Vec<String>) {
        let mut valid = Vec::new();
        let mut invalid = Vec::new();
        for key in keys {
            let claimed = signed
                .signatures
                .iter()
                .any(|s| s.name() == key.name && s.id() == key.key_id);
            if signed.is_signed_by(key) {
                valid.push(key.name.clone());
            } else if claimed {
                invalid.push(key.name.clone());
            }
        }
        (valid, invalid)
    }

    /// Parses and verifies a signed note in one step.
    pub fn verify_note(&self, note: &str) -> Result<VerifiedCheckpoint> {
        self.verify(&SignedCheckpoint::parse(note)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORIGIN: &str = "bboard.test/e1";

    fn signer(i: u8) -> NoteSigner {
        NoteSigner::new(&format!("node-{i}"), SigningKey::from_bytes(&[i; 32])).unwrap()
    }

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size: TreeSize(size),
            root: Hash([size as u8; 32]),
        }
    }

    fn policy(k: usize) -> CosignaturePolicy {
        CosignaturePolicy::new(ORIGIN, (1..=3).map(|i| signer(i).verifier()).collect(), k).unwrap()
    }

    #[test]
    fn text_round_trips() {
        let cp = checkpoint(42);
        assert_eq!(Checkpoint::from_text(&cp.to_text()).unwrap(), cp);
        assert!(cp.to_text().starts_with("bboard.test/e1\n42\n"));
    }

    #[test]
    fn malformed_texts_are_rejected() {
        let good = checkpoint(7).to_text();
        let root_line = good.lines().nth(2).unwrap().to_string();
        let cases = [
            "bboard.test/e1\n7\n".to_string(),
            format!("bboard.test/e1\n07\n{root_line}\n"),
            format!("bboard.test/e1\n-7\n{root_line}\n"),
            format!("bboard.test/e1\n 7\n{root_line}\n"),
            format!("bboard.test/e1\n99999999999999999999\n{root_line}\n"),
            format!("\n7\n{root_line}\n"),
            format!("bboard.test/e1\n7\n{root_line}\nextension\n"),
            format!("bboard.test/e1\n7\n{root_line}"),
            "bboard.test/e1\n7\nAAAA\n".to_string(),
            format!("bboard.test/e1\n7\n{}\n", root_line.trim_end_matches('=')),
        ];
        for case in cases {
            assert!(
                Checkpoint::from_text(&case).is_err(),
                "accepted malformed checkpoint {case:?}"
            );
        }
    }

    #[test]
    fn verifier_key_string_round_trips_and_checks_id() {
        let verifier = signer(1).verifier();
        let text = verifier.to_string();
        assert!(text.starts_with("node-1+"));
        assert_eq!(NoteVerifier::parse(&text).unwrap(), verifier);
        // Same key under another name has another id.
        let renamed = text.replacen("node-1", "node-9", 1);
        assert!(NoteVerifier::parse(&renamed).is_err());
        // signed_note's own parser accepts our keys (interoperability).
        assert!(signed_note::StandardVerifier::new(&text).is_ok());
    }

    #[test]
    fn k_of_n_policy() {
        let mut signed = SignedCheckpoint::sign(checkpoint(10), &signer(1)).unwrap();
        assert!(matches!(
            policy(2).verify(&signed),
            Err(Error::NotEnoughCosignatures {
                valid: 1,
                required: 2,
                ..
            })
        ));
        signed.add_signature(&signer(2)).unwrap();
        let verified = policy(2).verify(&signed).unwrap();
        assert_eq!(verified.signers, vec!["node-1", "node-2"]);
        // Round trip through text keeps the signatures.
        let reparsed = SignedCheckpoint::parse(&signed.to_note()).unwrap();
        assert_eq!(policy(2).verify(&reparsed).unwrap(), verified);
    }

    #[test]
    fn duplicate_signatures_count_once() {
        let mut signed = SignedCheckpoint::sign(checkpoint(10), &signer(1)).unwrap();
        let copy = signed.clone();
        signed.merge(&copy).unwrap();
        let note = signed.to_note();
        let line = note.lines().last().unwrap();
        let doubled = format!("{note}{line}\n");
        let parsed = SignedCheckpoint::parse(&doubled).unwrap();
        assert!(matches!(
            policy(2).verify(&parsed),
            Err(Error::NotEnoughCosignatures { valid: 1, .. })
        ));
    }

    #[test]
    fn untrusted_signers_do_not_count() {
        let mut signed = SignedCheckpoint::sign(checkpoint(3), &signer(1)).unwrap();
        signed.add_signature(&signer(7)).unwrap();
        assert!(policy(2).verify(&signed).is_err());
    }

    #[test]
    fn signature_over_another_root_is_invalid_and_named() {
        let honest = SignedCheckpoint::sign(checkpoint(5), &signer(1)).unwrap();
        let mut forged_cp = checkpoint(5);
        forged_cp.root = Hash([0xee; 32]);
        let forged = SignedCheckpoint::sign(forged_cp, &signer(2)).unwrap();
        // Transplant node-2's signature line (over another root) onto the honest note.
        let honest_note = honest.to_note();
        let forged_line = forged.to_note().lines().last().unwrap().to_string();
        let mixed = SignedCheckpoint::parse(&format!("{honest_note}{forged_line}\n")).unwrap();
        match policy(2).verify(&mixed) {
            Err(Error::NotEnoughCosignatures { valid, invalid, .. }) => {
                assert_eq!(valid, 1);
                assert_eq!(invalid, vec!["node-2".to_string()]);
            }
            other => panic!("expected rejection, got {other:?}"),
        }
    }

    #[test]
    fn wrong_origin_is_rejected() {
        let mut cp = checkpoint(1);
        cp.origin = "other.board".into();
        let mut signed = SignedCheckpoint::sign(cp, &signer(1)).unwrap();
        signed.add_signature(&signer(2)).unwrap();
        assert!(matches!(
            policy(2).verify(&signed),
            Err(Error::WrongOrigin { .. })
        ));
    }

    #[test]
    fn adopting_takes_only_a_valid_line_of_the_named_key() {
        let mut own = SignedCheckpoint::sign(checkpoint(9), &signer(1)).unwrap();
        let mut theirs = SignedCheckpoint::sign(checkpoint(9), &signer(2)).unwrap();
        theirs.add_signature(&signer(3)).unwrap();
        // Only the named key's line moves, once.
        assert!(own.adopt_signature(&theirs, &signer(2).verifier()).unwrap());
        assert!(!own.adopt_signature(&theirs, &signer(2).verifier()).unwrap());
        assert!(own.has_line_of(&signer(2).verifier()));
        assert!(!own.has_line_of(&signer(3).verifier()));
        assert_eq!(
            policy(2).verify(&own).unwrap().signers,
            ["node-1", "node-2"]
        );

        // A line that claims the key but does not verify is not adopted.
        let mut forged = SignedCheckpoint::sign(checkpoint(9), &signer(3)).unwrap();
        forged.signatures[0] =
            NoteSignature::new("node-3".into(), signer(3).key_id, vec![0; 64]).unwrap();
        assert!(!own.adopt_signature(&forged, &signer(3).verifier()).unwrap());
        assert!(!own.has_line_of(&signer(3).verifier()));

        // Another checkpoint is refused.
        let other = SignedCheckpoint::sign(checkpoint(10), &signer(3)).unwrap();
        assert!(matches!(
            own.adopt_signature(&other, &signer(3).verifier()),
            Err(Error::CheckpointMismatch(_))
        ));
    }

    #[test]
    fn merge_refuses_other_checkpoint() {
        let mut a = SignedCheckpoint::sign(checkpoint(1), &signer(1)).unwrap();
        let b = SignedCheckpoint::sign(checkpoint(2), &signer(2)).unwrap();
        assert!(matches!(a.merge(&b), Err(Error::CheckpointMismatch(_))));
    }

    #[test]
    fn policy_rejects_impossible_thresholds_and_duplicate_keys() {
        let keys: Vec<_> = (1..=3).map(|i| signer(i).verifier()).collect();
        assert!(CosignaturePolicy::new(ORIGIN, keys.clone(), 0).is_err());
        assert!(CosignaturePolicy::new(ORIGIN, keys.clone(), 4).is_err());
        let dup = vec![keys[0].clone(), keys[0].clone()];
        assert!(CosignaturePolicy::new(ORIGIN, dup, 1).is_err());
        assert_eq!(
            CosignaturePolicy::majority(ORIGIN, keys)
                .unwrap()
                .threshold(),
            2
        );
    }

    #[test]
    fn notes_without_signatures_or_with_bad_lines_are_rejected() {
        let text = checkpoint(1).to_text();
        assert!(SignedCheckpoint::parse(&text).is_err());
        assert!(SignedCheckpoint::parse(&format!("{text}\n")).is_err());
        assert!(SignedCheckpoint::parse(&format!("{text}\n— node-1 !!!\n")).is_err());
        assert!(SignedCheckpoint::parse(&format!("{text}\n- node-1 AAAAAAAA\n")).is_err());
    }

    #[test]
    fn signed_note_crate_verifies_our_notes() {
        // Interoperability: the reference port of Go's sumdb/note accepts our output.
        let mut signed = SignedCheckpoint::sign(checkpoint(9), &signer(1)).unwrap();
        signed.add_signature(&signer(2)).unwrap();
        let note = signed_note::Note::from_bytes(signed.to_note().as_bytes()).unwrap();
        let verifier =
            signed_note::StandardVerifier::new(&signer(1).verifier().to_string()).unwrap();
        let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
        let (verified, unverified) = note.verify(&list).unwrap();
        assert_eq!(verified.len(), 1);
        assert_eq!(unverified.len(), 1);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_notes_never_panics(note in ".{0,300}") {
            let _ = SignedCheckpoint::parse(&note);
            let _ = Checkpoint::from_text(&note);
            let _ = NoteVerifier::parse(&note);
        }

        #[test]
        fn checkpoint_text_round_trips(size in any::<u64>(), root in any::<[u8; 32]>(), origin in "[a-z0-9./-]{1,40}") {
            let cp = Checkpoint { origin, size: TreeSize(size), root: Hash(root) };
            prop_assert_eq!(Checkpoint::from_text(&cp.to_text()).unwrap(), cp);
        }

        #[test]
        fn any_altered_byte_of_a_signed_note_breaks_it(position in 0usize..1000, replacement in any::<u8>()) {
            let mut signed = SignedCheckpoint::sign(checkpoint(11), &signer(1)).unwrap();
            signed.add_signature(&signer(2)).unwrap();
            let note = signed.to_note().into_bytes();
            let position = position % note.len();
            prop_assume!(note[position] != replacement);
            let mut altered = note.clone();
            altered[position] = replacement;
            if let Ok(text) = String::from_utf8(altered) {
                if let Ok(parsed) = SignedCheckpoint::parse(&text) {
                    // A policy still accepting it must see the very same checkpoint.
                    if let Ok(verified) = policy(2).verify(&parsed) {
                        prop_assert_eq!(verified.checkpoint, checkpoint(11));
                    }
                }
            }
        }
    }
}
