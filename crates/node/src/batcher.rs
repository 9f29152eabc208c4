//! The group-commit batcher: gathers concurrent appends (what is queued; while earlier
//! batches are in flight, for at most `batch_max_delay_ms`) up to `batch_max_entries` /
//! `batch_max_bytes`, stamps them with a
//! non-decreasing timestamp, encodes each leaf once, and proposes them as ONE Raft
//! entry (`BoardRequest::Batch`), so one fsync covers the whole batch. At most
//! [`MAX_BATCHES_IN_FLIGHT`] proposals are in flight at once.
//!
//! Invariant: every waiter gets exactly one answer. The state machine returns one
//! outcome per leaf, in order; if the counts ever differ, the batch is answered with an
//! internal error for every waiter (and logged), never dropped silently — see
//! [`deliver_outcomes`].

use std::sync::Arc;
use std::time::Duration;

use bboard_core::board::Outcome;
use bboard_core::envelope::SignedEnvelope;
use bboard_core::leaf::encode_leaf;
use tokio::sync::{mpsc, oneshot, watch};

use crate::node::{now_unix_ms, Shared};
use crate::types::{BoardRequest, LeafBytes};

/// Proposals in flight at once (each is one Raft entry).
pub const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// Pending appends queued for the batcher before callers wait.
pub const QUEUE_DEPTH: usize = 16_384;

/// An append waiting for its batch.
pub struct PendingAppend {
    /// The checked envelope.
    pub envelope: SignedEnvelope,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<Outcome, tonic::Status>>,
}

/// A committed batch whose outcomes do not line up with its leaves: a bug in the
/// state machine (it must return one outcome per leaf), never a client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("committed batch of {waiters} leaves returned {outcomes} outcomes")]
pub struct OutcomeCountMismatch {
    /// Appends waiting for an answer (leaves proposed).
    pub waiters: usize,
    /// Outcomes the state machine returned.
    pub outcomes: usize,
}

/// Answers every waiter of a committed batch through `send`, in order: waiter `i` gets
/// outcome `i`. If the counts differ, every waiter gets an internal error instead, and
/// the mismatch is returned so the caller can report it. Never drops a waiter.
pub fn deliver_outcomes<W>(
    waiters: Vec<W>,
    outcomes: Vec<Outcome>,
    mut send: impl FnMut(W, Result<Outcome, tonic::Status>),
) -> Result<(), OutcomeCountMismatch> {
    if waiters.len() != outcomes.len() {
        let mismatch = OutcomeCountMismatch {
            waiters: waiters.len(),
            outcomes: outcomes.len(),
        };
        let message = format!("internal error: {mismatch}; the entry may be on the board, retry");
        for waiter in waiters {
            send(waiter, Err(tonic::Status::internal(message.clone())));
        }
        return Err(mismatch);
    }
    for (waiter, outcome) in waiters.into_iter().zip(outcomes) {
        send(waiter, Ok(outcome));
    }
    Ok(())
}

/// The batcher loop (group commit). Runs on every node; only a leader's proposals
/// succeed, others answer UNAVAILABLE so callers retry against the leader.
pub async fn run_batcher(
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<PendingAppend>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = shared.config.limits.clone();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_BATCHES_IN_FLIGHT));
    let mut last_timestamp = 0u64;
    loop {
        let first = tokio::select! {
            item = queue.recv() => match item { Some(item) => item, None => return },
            _ = shutdown.changed() => return,
        };
        let mut batch = vec![first];
        let mut bytes = batch[0].envelope.body_bytes().len();
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(limits.batch_max_delay_ms);
        // With nothing in flight there is nothing to wait for: propose what is queued
        // now (a lone terminal's ballot is not held back). While batches are in
        // flight, wait up to the batch delay so that they fill.
        let busy = in_flight.available_permits() < MAX_BATCHES_IN_FLIGHT;
        while batch.len() < limits.batch_max_entries && bytes < limits.batch_max_bytes {
            let next = if busy {
                tokio::time::timeout_at(deadline, queue.recv())
                    .await
                    .ok()
                    .flatten()
            } else {
                queue.try_recv().ok()
            };
            match next {
                Some(item) => {
                    bytes += item.envelope.body_bytes().len();
                    batch.push(item);
                }
                None => break,
            }
        }
        // Timestamps never go backwards, even if the clock does.
        last_timestamp = last_timestamp.max(now_unix_ms());
        let leaves = batch
            .iter()
            .map(|p| LeafBytes(encode_leaf(last_timestamp, &p.envelope)))
            .collect();
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let raft = shared.raft.clone();
        shared.metrics.batch_entries.observe(batch.len() as f64);
        let shared = shared.clone();
        tokio::spawn(async move {
            let proposed = std::time::Instant::now();
            let result = raft.client_write(BoardRequest::Batch { leaves }).await;
            drop(permit);
            if result.is_ok() {
                shared
                    .metrics
                    .commit_seconds
                    .observe(proposed.elapsed().as_secs_f64());
            }
            match result {
                Ok(response) => {
                    let log_id = response.log_id;
                    let outcomes = response.data.outcomes;
                    // A waiter that gave up (dropped its receiver) needs no answer.
                    let send = |pending: PendingAppend, answer| {
                        let _ = pending.reply.send(answer);
                    };
                    if let Err(mismatch) = deliver_outcomes(batch, outcomes, send) {
                        tracing::error!(
                            %log_id,
                            waiters = mismatch.waiters,
                            outcomes = mismatch.outcomes,
                            "batch invariant violated: outcomes do not match the proposed leaves"
                        );
                    }
                }
                Err(e) => {
                    let message = match e.forward_to_leader() {
                        Some(forward) => format!(
                            "this node is not the leader (leader: {:?}); retry",
                            forward.leader_id
                        ),
                        None => format!("proposal failed: {e}; retry"),
                    };
                    for pending in batch {
                        let _ = pending
                            .reply
                            .send(Err(tonic::Status::unavailable(message.clone())));
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each waiter received (`None`: never answered).
    type Answers = Vec<Option<Result<Outcome, tonic::Status>>>;

    fn deliver(
        waiters: usize,
        outcomes: Vec<Outcome>,
    ) -> (Answers, Result<(), OutcomeCountMismatch>) {
        let mut answers: Answers = (0..waiters).map(|_| None).collect();
        let result = deliver_outcomes((0..waiters).collect(), outcomes, |waiter, answer| {
            assert!(answers[waiter].is_none(), "waiter {waiter} answered twice");
            answers[waiter] = Some(answer);
        });
        (answers, result)
    }

    #[test]
    fn each_waiter_gets_its_own_outcome_in_order() {
        let outcomes = vec![
            Outcome::Appended { index: 7 },
            Outcome::Duplicate { index: 2 },
            Outcome::Appended { index: 8 },
        ];
        let (answers, result) = deliver(3, outcomes.clone());
        assert_eq!(result, Ok(()));
        let got: Vec<Outcome> = answers
            .into_iter()
            .map(|a| a.expect("answered").expect("an outcome"))
            .collect();
        assert_eq!(got, outcomes);
    }

    #[test]
    fn fewer_outcomes_than_waiters_answers_every_waiter_with_an_internal_error() {
        let (answers, result) = deliver(3, vec![Outcome::Appended { index: 0 }]);
        assert_eq!(
            result,
            Err(OutcomeCountMismatch {
                waiters: 3,
                outcomes: 1
            })
        );
        for answer in answers {
            let status = answer.expect("every waiter is answered").unwrap_err();
            assert_eq!(status.code(), tonic::Code::Internal);
        }
    }

    #[test]
    fn more_outcomes_than_waiters_is_reported_too() {
        let outcomes = vec![
            Outcome::Appended { index: 0 },
            Outcome::Appended { index: 1 },
        ];
        let (answers, result) = deliver(1, outcomes);
        assert_eq!(
            result,
            Err(OutcomeCountMismatch {
                waiters: 1,
                outcomes: 2
            })
        );
        let status = answers[0].clone().expect("answered").unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
    }
}
