//! Canonical binary encodings of elastic-elgamal objects.
//!
//! elastic-elgamal 0.3 gives `to_bytes`/`from_bytes` only for some types (ciphertexts
//! lack `from_bytes`; range proofs, proofs of possession and DKG public info have no byte
//! form at all) but derives serde for all of them. We define fixed binary layouts of
//! 32-byte items here and cross the library boundary through its (human-readable,
//! base64url) serde representation as a `serde_json::Value`. Every parser checks exact
//! lengths, canonical scalars and canonical Ristretto points, so each object has exactly
//! one encoding.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use curve25519_dalek::{ristretto::CompressedRistretto, RistrettoPoint, Scalar};
use elastic_elgamal::{group::Ristretto, Ciphertext, ProofOfPossession, RangeProof};
use serde_json::{json, Value};

/// Size of a scalar or a compressed point.
pub(crate) const ITEM: usize = 32;
/// Size of an encoded ciphertext.
pub(crate) const CIPHERTEXT: usize = 64;

fn b64(bytes: &[u8]) -> Value {
    Value::String(URL_SAFE_NO_PAD.encode(bytes))
}

fn unb64(value: &Value) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value.as_str()?).ok()
}

fn items(bytes: &[u8]) -> Option<Vec<Value>> {
    if !bytes.len().is_multiple_of(ITEM) {
        return None;
    }
    Some(bytes.chunks(ITEM).map(b64).collect())
}

fn append_items(out: &mut Vec<u8>, value: &Value) -> Option<()> {
    for item in value.as_array()? {
        out.extend_from_slice(&unb64(item)?);
    }
    Some(())
}

/// Parses a canonical compressed Ristretto point.
pub(crate) fn point(bytes: &[u8]) -> Option<RistrettoPoint> {
    let point = CompressedRistretto::from_slice(bytes).ok()?.decompress()?;
    // Ristretto decoding only accepts canonical encodings; double-check anyway.
    (point.compress().as_bytes() == bytes).then_some(point)
}

/// Parses a canonical scalar.
pub(crate) fn scalar(bytes: &[u8]) -> Option<Scalar> {
    let array: [u8; 32] = bytes.try_into().ok()?;
    Option::from(Scalar::from_canonical_bytes(array))
}

/// Builds a ciphertext from its two points (the library has no constructor for this).
pub(crate) fn ciphertext_from_points(
    random: &RistrettoPoint,
    blinded: &RistrettoPoint,
) -> Option<Ciphertext<Ristretto>> {
    serde_json::from_value(json!({
        "random_element": b64(random.compress().as_bytes()),
        "blinded_element": b64(blinded.compress().as_bytes()),
    }))
    .ok()
}

/// Parses a 64-byte ciphertext (random element, then blinded element).
pub(crate) fn ciphertext(bytes: &[u8]) -> Option<Ciphertext<Ristretto>> {
    if bytes.len() != CIPHERTEXT {
        return None;
    }
    ciphertext_from_points(&point(&bytes[..ITEM])?, &point(&bytes[ITEM..])?)
}

/// Encodes a range proof: `count:u8 || partial ciphertexts (64 B each) || challenge ||
/// responses`.
pub(crate) fn encode_range_proof(proof: &RangeProof<Ristretto>) -> Option<Vec<u8>> {
    let value = serde_json::to_value(proof).ok()?;
    let partials = value.get("partial_ciphertexts")?.as_array()?;
    let mut out = vec![u8::try_from(partials.len()).ok()?];
    for ct in partials {
        out.extend_from_slice(&unb64(ct.get("random_element")?)?);
        out.extend_from_slice(&unb64(ct.get("blinded_element")?)?);
    }
    out.extend_from_slice(&unb64(value.get("common_challenge")?)?);
    append_items(&mut out, value.get("ring_responses")?)?;
    Some(out)
}

/// Parses a range proof encoded by [`encode_range_proof`].
pub(crate) fn range_proof(bytes: &[u8]) -> Option<RangeProof<Ristretto>> {
    let (&count, rest) = bytes.split_first()?;
    let partial_len = usize::from(count) * CIPHERTEXT;
    if rest.len() < partial_len + 3 * ITEM || !(rest.len() - partial_len).is_multiple_of(ITEM) {
        return None;
    }
    let (partials, rest) = rest.split_at(partial_len);
    let partials: Vec<Value> = partials
        .chunks(CIPHERTEXT)
        .map(|ct| {
            // Check the points here: the library would reject them too, but less precisely.
            point(&ct[..ITEM])?;
            point(&ct[ITEM..])?;
            Some(json!({"random_element": b64(&ct[..ITEM]), "blinded_element": b64(&ct[ITEM..])}))
        })
        .collect::<Option<_>>()?;
    let (challenge, responses) = rest.split_at(ITEM);
    serde_json::from_value(json!({
        "partial_ciphertexts": partials,
        "common_challenge": b64(challenge),
        "ring_responses": items(responses)?,
    }))
    .ok()
}

/// Size of the 0-or-1 proof of one option: a range proof over `0..2` is one ring of two
/// values, so it has no partial ciphertexts: `challenge || response_0 || response_1`.
pub(crate) const OPTION_PROOF: usize = 3 * ITEM;

/// Encodes a range proof over `0..2` in [`OPTION_PROOF`] bytes (the general encoding
/// without its always-zero count byte).
pub(crate) fn encode_option_proof(proof: &RangeProof<Ristretto>) -> Option<Vec<u8>> {
    let bytes = encode_range_proof(proof)?;
    match bytes.split_first() {
        Some((0, rest)) if rest.len() == OPTION_PROOF => Some(rest.to_vec()),
        _ => None,
    }
}

/// Parses an option proof encoded by [`encode_option_proof`].
pub(crate) fn option_proof(bytes: &[u8]) -> Option<RangeProof<Ristretto>> {
    if bytes.len() != OPTION_PROOF {
        return None;
    }
    let mut full = Vec::with_capacity(1 + OPTION_PROOF);
    full.push(0);
    full.extend_from_slice(bytes);
    range_proof(&full)
}

/// Encodes a proof of possession: `challenge || responses`.
pub(crate) fn encode_possession(proof: &ProofOfPossession<Ristretto>) -> Option<Vec<u8>> {
    let value = serde_json::to_value(proof).ok()?;
    let mut out = unb64(value.get("challenge")?)?;
    append_items(&mut out, value.get("responses")?)?;
    Some(out)
}

/// Parses a proof of possession encoded by [`encode_possession`].
pub(crate) fn possession(bytes: &[u8]) -> Option<ProofOfPossession<Ristretto>> {
    if bytes.len() < 2 * ITEM {
        return None;
    }
    let (challenge, responses) = bytes.split_at(ITEM);
    serde_json::from_value(json!({
        "challenge": b64(challenge),
        "responses": items(responses)?,
    }))
    .ok()
}

/// Serialises any library value as a `serde_json::Value` (for DKG public info).
pub(crate) fn to_value<T: serde::Serialize>(value: &T) -> Option<Value> {
    serde_json::to_value(value).ok()
}

/// Base64url helpers re-exported for the DKG encoders.
pub(crate) fn to_b64(bytes: &[u8]) -> Value {
    b64(bytes)
}

/// Decodes a base64url JSON string.
pub(crate) fn from_b64(value: &Value) -> Option<Vec<u8>> {
    unb64(value)
}

#[cfg(test)]
mod tests {
    use elastic_elgamal::{Keypair, RangeDecomposition};
    use merlin::Transcript;
    use rand::thread_rng;

    use super::*;

    #[test]
    fn ciphertext_round_trip() {
        let mut rng = thread_rng();
        let keys = Keypair::<Ristretto>::generate(&mut rng);
        let ct = keys.public().encrypt(3_u64, &mut rng);
        let bytes = ct.to_bytes();
        let parsed = ciphertext(&bytes).unwrap();
        assert_eq!(parsed.to_bytes(), bytes);
        assert!(ciphertext(&bytes[1..]).is_none());
        assert!(ciphertext(&[0xff; 64]).is_none());
    }

    #[test]
    fn range_proof_round_trip() {
        let mut rng = thread_rng();
        let keys = Keypair::<Ristretto>::generate(&mut rng);
        for bound in [2, 5, 30] {
            let range = RangeDecomposition::optimal(bound).into();
            let (ct, proof) = RangeProof::new(
                keys.public(),
                &range,
                bound - 1,
                &mut Transcript::new(b"t"),
                &mut rng,
            );
            let bytes = encode_range_proof(&proof).unwrap();
            let parsed = range_proof(&bytes).unwrap();
            assert_eq!(encode_range_proof(&parsed).unwrap(), bytes);
            parsed
                .verify(keys.public(), &range, ct.into(), &mut Transcript::new(b"t"))
                .unwrap();
            assert!(range_proof(&bytes[..bytes.len() - 1]).is_none());
        }
    }
}
