//! Offering a checkpoint to a witness (`POST <witness>/add-checkpoint`) and reading
//! its answer. Nodes do this with every final checkpoint, operators with
//! `bboard witness feed`; both read the answer the same way here.

use axum::http::Method;
use bboard_core::witness::AddCheckpoint;
use bboard_util::http::{request, HttpError};

use crate::TLOG_SIZE;

/// What a witness answered to one add-checkpoint request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessAnswer {
    /// `200`: it cosigned; its cosignature line(s), to append to the note.
    Cosigned(String),
    /// `409` with `text/x.tlog.size`: the size it last cosigned is this one, not the
    /// request's `old_size`; retry with a proof from there.
    KnownSize(u64),
    /// Any other answer: it refused, with the status and its reason.
    Refused {
        /// HTTP status.
        status: u16,
        /// The witness's reason (its answer body, trimmed).
        reason: String,
    },
}

/// Sends `offer` to the witness at `base_url` (its URL without `/add-checkpoint`).
///
/// # Errors
///
/// [`HttpError`] when no complete answer arrived; every answer is `Ok`.
pub async fn offer_checkpoint(
    base_url: &str,
    offer: &AddCheckpoint,
) -> Result<WitnessAnswer, HttpError> {
    let url = format!("{}/add-checkpoint", base_url.trim_end_matches('/'));
    let answer = request(Method::POST, &url, offer.to_body()).await?;
    let known_size = (answer.status == 409 && answer.content_type.starts_with(TLOG_SIZE))
        .then(|| answer.body.trim().parse::<u64>().ok())
        .flatten();
    Ok(match (answer.status, known_size) {
        (200, _) => WitnessAnswer::Cosigned(answer.body),
        (_, Some(size)) => WitnessAnswer::KnownSize(size),
        (status, None) => WitnessAnswer::Refused {
            status,
            reason: answer.body.trim().to_string(),
        },
    })
}
