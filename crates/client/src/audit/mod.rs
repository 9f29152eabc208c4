//! `bboard audit` as a library: fetch every node's latest checkpoint, check it against
//! the k-of-n policy, against the checkpoint this auditor saw last time, and against
//! the other nodes; turn every provable conflict into an
//! [`Evidence`](bboard_core::evidence::Evidence) file.
//!
//! The work is split so the judgement is testable without a network:
//!
//! - `fetch` talks to the nodes; `judge` decides, as pure functions ([`needed`],
//!   [`compare`]); `report` shapes and prints the outcome ([`AuditReport`]); `state`
//!   keeps the file that lives between runs ([`AuditState`]).
//!
//! [`audit`] wires them:
//!
//! 1. fetch one [`Observation`] per endpoint (a node's own latest signed note, or why
//!    it could not be fetched);
//! 2. ask [`needed`] (pure) for the size of the cosigned reference checkpoint;
//! 3. ask every node for *its own* checkpoints of chosen sizes
//!    ([`Observation::own`]): the reference size, when it has applied that far, and
//!    the size it has applied. A node's latest checkpoint may be an older final one
//!    while what it signs now is over another root (e.g. a leader that applied entries
//!    in another order); its checkpoint of a given size always carries its own
//!    signature over its own tree at that size, so a key that signed another root at
//!    the reference size is caught as an equivocation, and one that signed a smaller
//!    tree that is not a prefix of the reference as not-a-prefix. [`needed`] is asked
//!    again with these, for the proofs and roots the comparison needs;
//! 4. fetch those into a [`ProofBook`] from the nodes that serve the cosigned
//!    checkpoint, and with `full` download every entry and recompute the tree;
//! 5. [`compare`] (pure) decides: the cosigned reference checkpoint, per-endpoint
//!    status, findings with evidence, warnings.
//!
//! Nothing a node serves is trusted: proofs and roots in the book are only used after
//! they verify against policy-verified (k-of-n) checkpoints, and every evidence file
//! is checked with [`verify_evidence`](bboard_core::evidence::verify_evidence) before
//! it is reported, so the report never contains evidence that
//! `bboard verify-evidence` would reject.
//!
//! Censorship is audited too ([`crate::censorship`]): every node's active alarms are
//! collected and verified; an alarm whose envelope is absent from the board (no node
//! has it) and whose signer is registered on the cosigned board is a finding, with a
//! [`Evidence::Censorship`](bboard_core::evidence::Evidence::Censorship) file (the alarm and the cosigned reference checkpoint).
//!
//! The caller keeps an [`AuditState`] (the last cosigned checkpoint seen) in a JSON
//! file between runs: a board that later shows a history not extending it is caught.

mod fetch;
mod groups;
mod judge;
mod report;
mod state;

use bboard_core::checkpoint::CosignaturePolicy;

use crate::ClientOptions;

pub use crate::censorship::{check_censorship_evidence, CensorshipCheckError, CensorshipConfirmed};
pub use judge::{compare, needed, Needs, Observation, OwnCheckpoint, ProofBook};
pub use report::{AuditReport, AuditVerdict, EndpointReport, EndpointStatus, Finding, Recomputed};
pub use state::{AuditState, AUDIT_STATE_VERSION};

/// Audits the board at `endpoints` with default timeouts; see
/// [`audit_with_options`].
pub async fn audit(
    endpoints: &[String],
    policy: &CosignaturePolicy,
    state: &mut AuditState,
    full: bool,
) -> AuditReport {
    audit_with_options(endpoints, policy, state, full, fetch::audit_options()).await
}

/// Audits the board: fetches every endpoint's latest checkpoint, the proofs the
/// comparison needs (from the nodes serving the cosigned checkpoint), with `full`
/// every entry, then [`compare`]s. Unreachable endpoints are reported, not fatal.
/// `state` is updated to [`AuditReport::next_state`]; the caller saves it
/// ([`AuditState::save`]). `options.policy` is ignored (checks use `policy`).
pub async fn audit_with_options(
    endpoints: &[String],
    policy: &CosignaturePolicy,
    state: &mut AuditState,
    full: bool,
    options: ClientOptions,
) -> AuditReport {
    // Without a policy the clients hand back each node's note as served, so the judge
    // sees whose signature is on what.
    let options = ClientOptions {
        policy: None,
        ..options
    };
    let previous = state.checkpoint.clone();
    let previous = previous.as_deref();

    let (mut observations, clients) = fetch::latest(endpoints, &options).await;
    let reference_size = needed(policy, previous, &observations).reference_size;
    fetch::own_checkpoints(&mut observations, &clients, reference_size).await;
    let needs = needed(policy, previous, &observations);
    let book = fetch::proof_book(&needs, &clients, endpoints, full, &options).await;
    let mut report = compare(policy, previous, &observations, &book);

    let alarms = fetch::alarms(endpoints, policy, &options, report.reference.as_deref()).await;
    report.warnings.extend(alarms.warnings);
    if let Some((checked, facts)) = alarms.found {
        let judgement =
            crate::censorship::judge(policy, report.reference.as_deref(), &checked, &facts);
        judge::add_censorship(&mut report, judgement);
    }
    *state = report.next_state.clone();
    report
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn unreachable_endpoints_are_reported_not_fatal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut state = AuditState::default();
        let options = ClientOptions {
            per_request_timeout: Duration::from_millis(500),
            total_timeout: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(10),
            ..ClientOptions::default()
        };
        let policy = bboard_testkit::fixture_policy("bboard.test/audit");
        let report = audit_with_options(&[closed], &policy, &mut state, true, options).await;
        assert_eq!(report.verdict, AuditVerdict::Incomplete, "{report}");
        assert!(matches!(
            report.endpoints[0].status,
            EndpointStatus::Unreachable(_)
        ));
        assert_eq!(state, AuditState::default());
    }
}
