//! Tracking codes: the chain value that identifies a voter's ballot on the board, and
//! its short human form printed on the voter's slip.

use crate::envelope::{EnvelopeId, SignedEnvelope};
use crate::leaf::LeafRecord;
use crate::pb::entry_body::Kind;

/// Length of a tracking code.
pub const TRACKING_CODE_LEN: usize = 32;

/// Domain separator of tracking codes.
const TRACKING_DOMAIN: &[u8] = b"bboard/v1/tracking-code\n";

/// Tracking code of a ballot (cast or spoiled):
/// `BLAKE3("bboard/v1/tracking-code\n" || previous_code || envelope_id)`.
pub fn tracking_code(
    previous: &[u8; TRACKING_CODE_LEN],
    envelope_id: &EnvelopeId,
) -> [u8; TRACKING_CODE_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(TRACKING_DOMAIN);
    hasher.update(previous);
    hasher.update(&envelope_id.0);
    *hasher.finalize().as_bytes()
}

/// The tracking code of a leaf's entry if it is a ballot or spoiled ballot.
pub fn tracking_code_of(record: &LeafRecord) -> Option<[u8; TRACKING_CODE_LEN]> {
    envelope_tracking_code(&record.envelope)
}

/// The tracking code of an envelope if it holds a ballot or spoiled ballot. It depends
/// only on the envelope's id and body, so every envelope with one id has one code.
pub fn envelope_tracking_code(envelope: &SignedEnvelope) -> Option<[u8; TRACKING_CODE_LEN]> {
    let body = envelope.body().ok()?;
    let ballot = match body.kind? {
        Kind::Ballot(ballot) => ballot,
        Kind::SpoiledBallot(spoiled) => spoiled.ballot?,
        _ => return None,
    };
    let previous: [u8; TRACKING_CODE_LEN] = ballot.previous_tracking_code.try_into().ok()?;
    Some(tracking_code(&previous, &envelope.id()))
}

/// The short human form of a tracking code printed on a voter's slip: the first 40
/// bits in Crockford base32, as two groups of four (`K7QF-2M9X`).
pub fn short_tracking_code(code: &[u8; TRACKING_CODE_LEN]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bits = code[..5]
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    let chars: String = (0..8)
        .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// Decodes a short tracking code (`XXXX-XXXX`, Crockford base32, case-insensitive,
/// with `I`/`L` read as 1 and `O` as 0) into the first 5 bytes of the full code.
pub fn parse_short_tracking_code(short: &str) -> Option<[u8; 5]> {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bits = 0u64;
    let mut count = 0;
    for c in short.chars().filter(|c| *c != '-') {
        let c = match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        };
        let value = ALPHABET.iter().position(|a| *a as char == c)?;
        bits = (bits << 5) | value as u64;
        count += 1;
    }
    if count != 8 {
        return None;
    }
    let bytes = bits.to_be_bytes();
    let mut prefix = [0u8; 5];
    prefix.copy_from_slice(&bytes[3..8]);
    Some(prefix)
}
