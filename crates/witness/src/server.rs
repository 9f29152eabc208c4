//! The witness's HTTP service (`bboard witness serve`).
//!
//! One request, `POST /add-checkpoint` ([`AddCheckpoint`] body), answered with
//!
//! - `200` and its cosignature line(s) (`text/plain`) once the new state is on disk;
//! - `409` with `Content-Type: text/x.tlog.size` and body `<known size>\n` when `old`
//!   is not the size it last cosigned (the caller retries with a proof from there);
//! - otherwise the status of [`WitnessRefusal::http_status`] with the reason as text
//!   (`403` not signed by the log's k-of-n, `409` fork at a cosigned size, `422`
//!   inconsistent proof, `400` rollback or malformed, `404` unknown log).
//!
//! The decision is [`Witness::add_checkpoint`]; this module only serialises requests
//! (one at a time, under a mutex) and persists the new state durably (write, fsync,
//! rename: [`WitnessStateFile`]) before answering `200`, so that not even a crash can
//! make it cosign two roots for one size.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bboard_core::witness::{AddCheckpoint, Witness, WitnessRefusal, WitnessState};

use crate::{WitnessStateFile, TLOG_SIZE};

/// Why a witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Its state file exists but cannot be read or is not a witness state.
    #[error("reading the witness state {path}: {source}")]
    State {
        /// The state file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A witness with its persisted state.
pub struct WitnessService {
    witness: Witness,
    file: WitnessStateFile,
    /// The state as last persisted; held for a whole decide-persist step.
    state: Mutex<WitnessState>,
}

impl WitnessService {
    /// A witness deciding with `witness`, its state kept in `file` (loaded now).
    ///
    /// # Errors
    ///
    /// [`OpenError::State`]: the state file exists but cannot be read or parsed.
    pub fn open(witness: Witness, file: WitnessStateFile) -> Result<Arc<Self>, OpenError> {
        let state = file.load().map_err(|source| OpenError::State {
            path: file.path().to_path_buf(),
            source,
        })?;
        Ok(Arc::new(WitnessService {
            witness,
            file,
            state: Mutex::new(state),
        }))
    }
}

/// The witness's HTTP routes.
pub fn router(service: Arc<WitnessService>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .with_state(service)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Why a request was not answered with a cosignature.
enum Failure {
    Refused(WitnessRefusal),
    Internal(String),
}

/// `POST /add-checkpoint`.
async fn add_checkpoint(State(service): State<Arc<WitnessService>>, body: Bytes) -> Response {
    let request = match std::str::from_utf8(&body)
        .map_err(|e| format!("body is not UTF-8: {e}"))
        .and_then(AddCheckpoint::parse)
    {
        Ok(request) => request,
        Err(reason) => return text(StatusCode::BAD_REQUEST, "text/plain", format!("{reason}\n")),
    };
    // Decide and persist under the lock, off the async threads (fsync blocks).
    let result = tokio::task::spawn_blocking(move || {
        let mut state = service
            .state
            .lock()
            .map_err(|_| Failure::Internal("witness state lock poisoned".into()))?;
        let cosigned = service
            .witness
            .add_checkpoint(&state, request.old_size, &request.proof, &request.note)
            .map_err(Failure::Refused)?;
        service.file.save(&cosigned.state).map_err(|e| {
            Failure::Internal(format!(
                "cannot persist {}: {e}",
                service.file.path().display()
            ))
        })?;
        *state = cosigned.state.clone();
        tracing::info!(origin = %cosigned.origin, size = cosigned.log.size, "cosigned");
        Ok(cosigned)
    })
    .await;
    match result {
        Ok(Ok(cosigned)) => text(StatusCode::OK, "text/plain", cosigned.cosignature),
        Ok(Err(Failure::Refused(WitnessRefusal::Conflict { known_size, .. }))) => {
            text(StatusCode::CONFLICT, TLOG_SIZE, format!("{known_size}\n"))
        }
        Ok(Err(Failure::Refused(refusal))) => {
            tracing::warn!(%refusal, "refused to cosign");
            let status = StatusCode::from_u16(refusal.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text(status, "text/plain", format!("{refusal}\n"))
        }
        Ok(Err(Failure::Internal(reason))) => {
            tracing::error!(%reason, "witness error");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{reason}\n"),
            )
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("witness task failed: {e}\n"),
        ),
    }
}
