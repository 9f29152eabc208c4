//! Checks a command's own trust settings (`--origin`, `--trusted-keys`) against the
//! nodes before it judges them, so an operator's typo is reported as a configuration
//! error (exit 1, naming the setting) and never as misbehaviour found (exit 2) or as
//! "all clear" (exit 0).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Result};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::CosignaturePolicy;

/// Fails when the nodes that answer all name another origin than `policy`'s, or when
/// their latest checkpoint carries no signature by any trusted key. Nodes that do not
/// answer are left to the command (it reports them as it always did).
pub async fn check_settings(endpoints: &[String], policy: &CosignaturePolicy) -> Result<()> {
    // No policy: the checkpoint is read as served, to see who signed it.
    let options = ClientOptions {
        per_request_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
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
             Nothing was judged; check --origin",
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
                 keys. Nothing was judged; check --trusted-keys",
                policy.keys().len(),
                signed.signer_names().join(", ")
            );
        }
    }
    Ok(())
}
