//! Checks a command's own trust settings (`--origin`, `--trusted-keys`) against the
//! nodes (or, offline, against the signed note it checks) before it judges anything,
//! so an operator's typo is reported as a configuration error (exit 1, naming the
//! setting) and never as misbehaviour found or "does NOT verify" (exit 2) nor as "all
//! clear" (exit 0).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Result};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint};

use crate::audit_cmds::ExitWith;

/// Exit code of a verifier (`verify-receipt`, `verify-evidence`, `prove`,
/// `verify-election`) whose subject does NOT verify: 2, as for audit findings. Exit 1
/// stays the tool's own error, including its configuration.
pub const EXIT_NOT_VERIFIED: u8 = 2;

/// The context of a verifier's failure: ends the process with [`EXIT_NOT_VERIFIED`]
/// and keeps the reason below it.
pub fn not_verified(message: String) -> ExitWith {
    ExitWith {
        code: EXIT_NOT_VERIFIED,
        message,
    }
}

/// Offline form of [`check_settings`]: fails with a configuration error when none of
/// `notes` (signed checkpoints of `what`) names the policy's origin, or none carries a
/// signature by a trusted key. Notes that do not parse are left to the verification,
/// which reports them as not verified.
pub fn check_note_settings(policy: &CosignaturePolicy, what: &str, notes: &[&str]) -> Result<()> {
    let parsed: Vec<SignedCheckpoint> = notes
        .iter()
        .filter_map(|note| SignedCheckpoint::parse(note).ok())
        .collect();
    let Some(first) = parsed.first() else {
        return Ok(());
    };
    if !parsed
        .iter()
        .any(|n| n.checkpoint().origin == policy.origin())
    {
        bail!(
            "configuration error: --origin {:?}, but {what} is about the board {:?}. \
             Nothing was judged; check --origin",
            policy.origin(),
            first.checkpoint().origin
        );
    }
    let by_trusted = parsed
        .iter()
        .any(|n| policy.keys().iter().any(|key| n.is_signed_by(key)));
    if !by_trusted {
        bail!(
            "configuration error: none of the {} keys in --trusted-keys signed {what} \
             (it is signed by {}): either these are not this board's node keys, or {what} \
             was not made by its nodes. Nothing was judged; check --trusted-keys",
            policy.keys().len(),
            first.signer_names().join(", ")
        );
    }
    Ok(())
}

/// Fails when the nodes that answer all name another origin than `policy`'s, or when
/// their latest checkpoint carries no signature by any trusted key. Nodes that do not
/// answer are left to the command (it reports them as it always did).
pub async fn check_settings(endpoints: &[String], policy: &CosignaturePolicy) -> Result<()> {
    check_settings_within(
        endpoints,
        policy,
        CHECK_REQUEST_TIMEOUT,
        CHECK_TOTAL_TIMEOUT,
    )
    .await
}

/// Longest wait of [`check_settings`] for one node.
pub const CHECK_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait of [`check_settings`] in all.
pub const CHECK_TOTAL_TIMEOUT: Duration = Duration::from_secs(10);

/// [`check_settings`] within a command's own timeouts (`--request-timeout`,
/// `--timeout`), each capped at the defaults: the check must not wait longer than
/// the command would.
pub async fn check_settings_within(
    endpoints: &[String],
    policy: &CosignaturePolicy,
    request_timeout: Duration,
    total_timeout: Duration,
) -> Result<()> {
    // No policy: the checkpoint is read as served, to see who signed it.
    let options = ClientOptions {
        per_request_timeout: request_timeout.min(CHECK_REQUEST_TIMEOUT),
        total_timeout: total_timeout.min(CHECK_TOTAL_TIMEOUT),
        policy: None,
        ..ClientOptions::default()
    };
    let Ok(client) = BoardClient::connect(endpoints.to_vec(), options).await else {
        return Ok(());
    };
    let mut origins = BTreeSet::new();
    for (_, status) in client.status_all().await {
        if let Ok(status) = status {
            origins.insert(status.origin);
        }
    }
    if origins.is_empty() {
        return Ok(());
    }
    if !origins.contains(policy.origin()) {
        bail!(
            "configuration error: --origin {:?} is not this board's: the nodes report {}. \
             Nothing was judged or posted; check --origin",
            policy.origin(),
            origins
                .iter()
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Ok(latest) = client.checkpoint(None).await {
        let signed = &latest.signed;
        let by_trusted = policy.keys().iter().any(|key| signed.is_signed_by(key));
        if signed.checkpoint().size.0 > 0 && !by_trusted {
            bail!(
                "configuration error: none of the {} keys in --trusted-keys signed the \
                 board's latest checkpoint (signed by {}): they are not this board's node \
                 keys. Nothing was judged or posted; check --trusted-keys",
                policy.keys().len(),
                signed.signer_names().join(", ")
            );
        }
    }
    Ok(())
}
