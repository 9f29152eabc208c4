//! Signed admin commands (`bboard.v1.Admin`).
//!
//! An operator's [`pb::AdminCommand`] is encoded once; the bytes travel as the `body` of
//! a [`pb::SignedAdminRequest`] with an Ed25519 signature over
//! `"bboard/v1/admin\n" || body`. The domain prefix makes an admin signature useless as
//! an entry or checkpoint signature and the other way round.
//!
//! A request names no signer: the node tries each of its trusted admin keys with
//! `verify_strict` and reports which one verified. `issued_unix_ms` bounds how long a
//! captured request stays usable (± the allowed skew); within that window the node must
//! remember accepted requests to refuse replays (this module has no state and no clock:
//! the caller passes the time in). The command's `node_id` names the node it is for;
//! checking it against the receiving node's id is also the caller's job (the node's
//! admin service), so that a request accepted by one node cannot be replayed against
//! another.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use prost::Message as _;

use crate::envelope::SIGNATURE_LEN;
use crate::{pb, Error, Result};

/// Domain separation prefix of admin request signatures.
pub const ADMIN_SIGNATURE_DOMAIN: &[u8] = b"bboard/v1/admin\n";

/// Largest accepted encoded `AdminCommand`: 64 KiB.
pub const MAX_ADMIN_BODY_BYTES: usize = 64 * 1024;

/// Default allowed difference between a command's `issued_unix_ms` and the node's clock,
/// either way: 60 s.
pub const DEFAULT_MAX_SKEW_MS: u64 = 60_000;

/// The message an admin signature covers: `ADMIN_SIGNATURE_DOMAIN || body`.
pub fn admin_signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(ADMIN_SIGNATURE_DOMAIN.len() + body.len());
    message.extend_from_slice(ADMIN_SIGNATURE_DOMAIN);
    message.extend_from_slice(body);
    message
}

/// Encodes `cmd` and signs it with the admin key `key`.
pub fn sign_admin_command(cmd: &pb::AdminCommand, key: &SigningKey) -> pb::SignedAdminRequest {
    let body = cmd.encode_to_vec();
    let signature = key.sign(&admin_signed_message(&body));
    pb::SignedAdminRequest {
        body,
        signature: signature.to_bytes().to_vec(),
    }
}

/// Checks an admin request received from outside and returns the command and the trusted
/// key that signed it.
///
/// In order: the body is at most [`MAX_ADMIN_BODY_BYTES`] ([`Error::TooLarge`]); the
/// request is signed ([`Error::UntrustedAdminRequest`] if the signature is empty) with a
/// 64-byte signature ([`Error::Malformed`] otherwise); the signature verifies strictly
/// under one of `trusted_admin_keys` ([`Error::UntrustedAdminRequest`]); the body is an
/// `AdminCommand` with a command set ([`Error::Malformed`]); and `issued_unix_ms` is
/// within `max_skew_ms` of `now_unix_ms` either way ([`Error::StaleAdminCommand`]).
///
/// The signature is checked before the body is decoded, so unauthenticated bytes are
/// never parsed.
pub fn verify_admin_request(
    req: &pb::SignedAdminRequest,
    trusted_admin_keys: &[VerifyingKey],
    now_unix_ms: u64,
    max_skew_ms: u64,
) -> Result<(pb::AdminCommand, VerifyingKey)> {
    if req.body.len() > MAX_ADMIN_BODY_BYTES {
        return Err(Error::TooLarge {
            what: "admin command",
            actual: req.body.len(),
            limit: MAX_ADMIN_BODY_BYTES,
        });
    }
    if req.signature.is_empty() {
        return Err(Error::UntrustedAdminRequest("request is not signed".into()));
    }
    let signature_bytes: &[u8; SIGNATURE_LEN] =
        req.signature.as_slice().try_into().map_err(|_| {
            Error::malformed(
                "admin request",
                format!(
                    "signature is {} bytes, expected {SIGNATURE_LEN}",
                    req.signature.len()
                ),
            )
        })?;
    let signature = Signature::from_bytes(signature_bytes);
    let message = admin_signed_message(&req.body);
    let signer = trusted_admin_keys
        .iter()
        .find(|key| key.verify_strict(&message, &signature).is_ok())
        .copied()
        .ok_or_else(|| {
            Error::UntrustedAdminRequest(format!(
                "signature verifies under none of the {} trusted admin key(s)",
                trusted_admin_keys.len()
            ))
        })?;
    let cmd = pb::AdminCommand::decode(req.body.as_slice())
        .map_err(|e| Error::malformed("admin command", e))?;
    if cmd.command.is_none() {
        return Err(Error::malformed("admin command", "no command set"));
    }
    if cmd.issued_unix_ms.abs_diff(now_unix_ms) > max_skew_ms {
        return Err(Error::StaleAdminCommand {
            issued_unix_ms: cmd.issued_unix_ms,
            now_unix_ms,
            max_skew_ms,
        });
    }
    Ok((cmd, signer))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::ENTRY_SIGNATURE_DOMAIN;

    const NOW: u64 = 1_700_000_000_000;
    const SKEW: u64 = DEFAULT_MAX_SKEW_MS;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn add_learner(issued_unix_ms: u64) -> pb::AdminCommand {
        pb::AdminCommand {
            issued_unix_ms,
            command: Some(pb::admin_command::Command::AddLearner(
                pb::AddLearnerCommand {
                    node_id: 4,
                    address: "127.0.0.1:7004".into(),
                    ..Default::default()
                },
            )),
            node_id: 1,
        }
    }

    fn verify(req: &pb::SignedAdminRequest, keys: &[VerifyingKey]) -> Result<pb::AdminCommand> {
        verify_admin_request(req, keys, NOW, SKEW).map(|(cmd, _)| cmd)
    }

    #[test]
    fn admin_valid_request_verifies_and_names_the_key() {
        let cmd = add_learner(NOW);
        let req = sign_admin_command(&cmd, &key(2));
        let trusted = [key(1).verifying_key(), key(2).verifying_key()];
        let (decoded, signer) = verify_admin_request(&req, &trusted, NOW, SKEW).unwrap();
        assert_eq!(decoded, cmd);
        assert_eq!(signer, key(2).verifying_key());
        // The edges of the window are accepted.
        for issued in [NOW - SKEW, NOW + SKEW] {
            let req = sign_admin_command(&add_learner(issued), &key(1));
            assert!(verify(&req, &trusted).is_ok(), "{issued}");
        }
    }

    #[test]
    fn admin_wrong_key_is_untrusted() {
        let req = sign_admin_command(&add_learner(NOW), &key(1));
        assert!(matches!(
            verify(&req, &[key(2).verifying_key()]),
            Err(Error::UntrustedAdminRequest(_))
        ));
        assert!(matches!(
            verify(&req, &[]),
            Err(Error::UntrustedAdminRequest(_))
        ));
    }

    #[test]
    fn admin_altered_body_or_signature_fails() {
        let trusted = [key(1).verifying_key()];
        let good = sign_admin_command(&add_learner(NOW), &key(1));
        for i in 0..good.body.len() {
            let mut req = good.clone();
            req.body[i] ^= 1;
            assert!(
                matches!(verify(&req, &trusted), Err(Error::UntrustedAdminRequest(_))),
                "byte {i}"
            );
        }
        let mut req = good;
        req.signature[10] ^= 1;
        assert!(matches!(
            verify(&req, &trusted),
            Err(Error::UntrustedAdminRequest(_))
        ));
    }

    #[test]
    fn admin_signature_is_domain_separated() {
        let trusted = [key(1).verifying_key()];
        let body = add_learner(NOW).encode_to_vec();
        for prefix in [&b""[..], ENTRY_SIGNATURE_DOMAIN] {
            let mut message = prefix.to_vec();
            message.extend_from_slice(&body);
            let req = pb::SignedAdminRequest {
                body: body.clone(),
                signature: key(1).sign(&message).to_bytes().to_vec(),
            };
            assert!(matches!(
                verify(&req, &trusted),
                Err(Error::UntrustedAdminRequest(_))
            ));
        }
    }

    #[test]
    fn admin_expired_and_future_commands_are_stale() {
        let trusted = [key(1).verifying_key()];
        for issued in [NOW - SKEW - 1, NOW + SKEW + 1, 0, u64::MAX] {
            let req = sign_admin_command(&add_learner(issued), &key(1));
            match verify(&req, &trusted) {
                Err(Error::StaleAdminCommand {
                    issued_unix_ms,
                    now_unix_ms,
                    max_skew_ms,
                }) => {
                    assert_eq!(
                        (issued_unix_ms, now_unix_ms, max_skew_ms),
                        (issued, NOW, SKEW)
                    )
                }
                other => panic!("{issued}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn admin_unsigned_missing_command_and_bad_lengths() {
        let trusted = [key(1).verifying_key()];
        let mut unsigned = sign_admin_command(&add_learner(NOW), &key(1));
        unsigned.signature.clear();
        assert!(matches!(
            verify(&unsigned, &trusted),
            Err(Error::UntrustedAdminRequest(_))
        ));

        let mut short = sign_admin_command(&add_learner(NOW), &key(1));
        short.signature.pop();
        assert!(matches!(
            verify(&short, &trusted),
            Err(Error::Malformed { .. })
        ));

        let no_command = pb::AdminCommand {
            issued_unix_ms: NOW,
            command: None,
            node_id: 1,
        };
        let req = sign_admin_command(&no_command, &key(1));
        assert!(matches!(
            verify(&req, &trusted),
            Err(Error::Malformed { .. })
        ));

        let huge = pb::SignedAdminRequest {
            body: vec![0; MAX_ADMIN_BODY_BYTES + 1],
            signature: vec![0; SIGNATURE_LEN],
        };
        assert!(matches!(
            verify(&huge, &trusted),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn admin_signed_garbage_body_is_malformed() {
        let trusted = [key(1).verifying_key()];
        let body = vec![0xff, 0xff, 0xff];
        let req = pb::SignedAdminRequest {
            signature: key(1)
                .sign(&admin_signed_message(&body))
                .to_bytes()
                .to_vec(),
            body,
        };
        assert!(matches!(
            verify(&req, &trusted),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn admin_garbage_bytes_never_panic() {
        let trusted = [key(1).verifying_key()];
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let req = pb::SignedAdminRequest {
                body: bytes.clone(),
                signature: bytes.iter().rev().copied().collect(),
            };
            assert!(verify(&req, &trusted).is_err());
            if let Ok(req) = pb::SignedAdminRequest::decode(bytes.as_slice()) {
                assert!(verify(&req, &trusted).is_err());
            }
        }
    }
}
