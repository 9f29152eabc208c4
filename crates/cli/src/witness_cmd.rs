//! `bboard witness serve|feed`: an independent HTTP witness in the spirit of
//! [C2SP tlog-witness](https://c2sp.org/tlog-witness), and a client that feeds it a
//! node's latest checkpoint.
//!
//! The witness answers one request, `POST /add-checkpoint`, whose body is
//!
//! ```text
//! old <size the caller proves from>
//! <base64 hash of the consistency proof, one per line>
//!
//! <signed checkpoint note>
//! ```
//!
//! and answers
//!
//! - `200` with its cosignature line(s) (`text/plain`) once the new state is on disk;
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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use bboard_client::audit::WitnessStateFile;
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::{NoteSigner, SignedCheckpoint};
use bboard_core::witness::{Witness, WitnessRefusal, WitnessState};
use bboard_merkle::Hash;

use crate::audit_cmds::PolicyArgs;
use crate::http_client::HttpAnswer;

/// Content type of a `409` size-conflict answer (tlog-witness).
const TLOG_SIZE: &str = "text/x.tlog.size";

/// Arguments of `bboard witness`.
#[derive(clap::Args)]
pub struct WitnessArgs {
    #[command(subcommand)]
    command: WitnessCommand,
}

#[derive(clap::Subcommand)]
enum WitnessCommand {
    /// Runs the witness HTTP service until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Sends a node's latest final checkpoint to a witness and prints the cosigned note.
    Feed(FeedArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: SocketAddr,
    /// The witness's private key file (hex seed, as written by `bboard keygen`).
    #[arg(long)]
    key: PathBuf,
    /// The witness's key name (appears on its cosignature lines).
    #[arg(long)]
    name: String,
    /// State file: the last checkpoint cosigned per board (created if missing).
    #[arg(long, default_value = "witness-state.json")]
    state: PathBuf,
    /// File with the board nodes' verifier keys, one per line.
    #[arg(long, value_name = "FILE")]
    log_keys: PathBuf,
    /// Origin of the board witnessed.
    #[arg(long)]
    origin: String,
    /// Node signatures a checkpoint needs (k of n); default: a majority.
    #[arg(long)]
    threshold: Option<usize>,
}

#[derive(clap::Args)]
struct FeedArgs {
    /// Base URL of the witness, e.g. `http://127.0.0.1:7380`.
    #[arg(long)]
    witness: String,
    /// A board node's gRPC address (host:port): checkpoints and proofs come from it.
    #[arg(long)]
    endpoint: String,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Offer this signed checkpoint note instead of the node's latest (e.g. one
    /// suspected of being forked); proofs still come from `--endpoint`.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// The size the witness is believed to know (default 0; the witness answers with
    /// the right one and the request is retried once).
    #[arg(long, default_value_t = 0)]
    old_size: u64,
}

/// Runs `bboard witness`.
pub fn run(args: WitnessArgs) -> Result<()> {
    let runtime = crate::node_cmds::runtime()?;
    match args.command {
        WitnessCommand::Serve(args) => runtime.block_on(serve(args)),
        WitnessCommand::Feed(args) => runtime.block_on(feed(args)),
    }
}

/// The service's shared state.
struct WitnessService {
    witness: Witness,
    file: WitnessStateFile,
    /// The state as last persisted; held for a whole decide-persist step.
    state: Mutex<WitnessState>,
}

async fn serve(args: ServeArgs) -> Result<()> {
    let key = crate::keys::read_private_key(&args.key)?;
    let signer = NoteSigner::new(&args.name, key).context("invalid witness name")?;
    let log_policy = PolicyArgs {
        trusted_keys: args.log_keys.clone(),
        origin: args.origin.clone(),
        threshold: args.threshold,
        witness_keys: None,
        witness_threshold: None,
    }
    .policy()?;
    let file = WitnessStateFile::new(&args.state);
    let state = file
        .load()
        .with_context(|| format!("reading the witness state {}", args.state.display()))?;
    let verifier = signer.verifier();
    let service = Arc::new(WitnessService {
        witness: Witness::new(signer, [log_policy]),
        file,
        state: Mutex::new(state),
    });
    let app = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    println!("witness {} serving http://{address}", args.name);
    println!("witness verifier key: {verifier}");
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::node_cmds::wait_for_stop_signal())
        .await
        .context("serving HTTP")?;
    println!("stopping");
    Ok(())
}

/// A parsed `add-checkpoint` request body.
#[derive(Debug, PartialEq, Eq)]
struct AddCheckpoint {
    old_size: u64,
    proof: Vec<Hash>,
    note: String,
}

/// Parses `old N\n<base64 hash>\n…\n\n<note>`; the error says what is wrong.
fn parse_add_checkpoint(body: &str) -> Result<AddCheckpoint, String> {
    let (head, note) = body
        .split_once("\n\n")
        .ok_or("missing the blank line between the proof and the checkpoint")?;
    let mut lines = head.split('\n');
    let old_size = lines
        .next()
        .and_then(|line| line.strip_prefix("old "))
        .ok_or("the first line must be `old <size>`")?;
    let old_size = old_size
        .parse::<u64>()
        .map_err(|e| format!("old size {old_size:?}: {e}"))?;
    let proof = lines
        .enumerate()
        .map(|(i, line)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|e| format!("proof hash {}: {e}", i + 1))?;
            Hash::from_slice(&bytes).map_err(|e| format!("proof hash {}: {e}", i + 1))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(AddCheckpoint {
        old_size,
        proof,
        note: note.to_string(),
    })
}

/// The request body for [`parse_add_checkpoint`].
fn add_checkpoint_body(old_size: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old_size}\n");
    for hash in proof {
        body.push_str(&base64::engine::general_purpose::STANDARD.encode(hash.as_bytes()));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
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
        .and_then(parse_add_checkpoint)
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

/// POSTs one add-checkpoint request to `witness` (base URL).
async fn post_add_checkpoint(witness: &str, body: String) -> Result<HttpAnswer> {
    let url = format!("{}/add-checkpoint", witness.trim_end_matches('/'));
    crate::http_client::request(Method::POST, &url, body).await
}

/// The consistency proof `old → new` from the node (verified between k-of-n
/// checkpoints by the client); empty where the proof is empty by definition or
/// cannot exist (the witness then decides, e.g. refuses a rollback).
async fn proof_between(client: &BoardClient, old: u64, new: u64) -> Result<Vec<Hash>> {
    if old == 0 || old >= new {
        return Ok(Vec::new());
    }
    let proof = client
        .consistency_proof(old, new)
        .await
        .with_context(|| format!("consistency proof from size {old} to {new}"))?;
    Ok(proof.proof)
}

async fn feed(args: FeedArgs) -> Result<()> {
    let policy = args.policy.policy()?;
    let options = ClientOptions {
        policy: Some(policy),
        ..ClientOptions::default()
    };
    let client = BoardClient::connect(vec![args.endpoint.clone()], options)
        .await
        .context("connecting to the board")?;
    let note = match &args.checkpoint {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading checkpoint {}", path.display()))?,
        None => {
            let info = client
                .checkpoint(None)
                .await
                .context("fetching the node's latest checkpoint")?;
            info.signed.to_note()
        }
    };
    let size = SignedCheckpoint::parse(&note)
        .context("the checkpoint to feed is not a signed note")?
        .checkpoint()
        .size
        .0;
    let mut old = args.old_size;
    let mut answer = None;
    for attempt in 0..2 {
        let proof = proof_between(&client, old, size).await?;
        let reply =
            post_add_checkpoint(&args.witness, add_checkpoint_body(old, &proof, &note)).await?;
        let known = (reply.status == 409 && reply.content_type.starts_with(TLOG_SIZE))
            .then(|| reply.body.trim().parse::<u64>().ok())
            .flatten();
        match known {
            Some(known) if attempt == 0 => {
                println!("witness knows size {known}: proving from there");
                old = known;
            }
            _ => {
                answer = Some(reply);
                break;
            }
        }
    }
    let Some(answer) = answer else {
        bail!("the witness kept answering with a size conflict");
    };
    if answer.status != 200 {
        bail!(
            "the witness refused to cosign size {size} (HTTP {}): {}",
            answer.status,
            answer.body.trim()
        );
    }
    let cosigned = format!("{note}{}", answer.body);
    SignedCheckpoint::parse(&cosigned).context("the witness's cosignature line is malformed")?;
    println!("witness cosigned checkpoint of size {size}:");
    print!("{cosigned}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn add_checkpoint_body_round_trips() {
        let proof = vec![
            Hash::from_slice(&[1; 32]).unwrap(),
            Hash::from_slice(&[2; 32]).unwrap(),
        ];
        let note = "o\n5\nroot\n\n— n sig\n";
        let body = add_checkpoint_body(3, &proof, note);
        assert!(body.starts_with("old 3\nAQEB"), "{body}");
        let parsed = parse_add_checkpoint(&body).unwrap();
        assert_eq!(
            parsed,
            AddCheckpoint {
                old_size: 3,
                proof,
                note: note.into()
            }
        );
        let empty = parse_add_checkpoint(&add_checkpoint_body(0, &[], note)).unwrap();
        assert!(empty.proof.is_empty());
        assert_eq!(empty.note, note);
    }

    #[test]
    fn malformed_add_checkpoint_bodies_are_refused_with_a_reason() {
        for (body, reason) in [
            ("old 1\n", "blank line"),
            ("new 1\n\nnote", "old <size>"),
            ("old x\n\nnote", "old size"),
            ("old 1\n!!!\n\nnote", "proof hash 1"),
            ("old 1\nAQEB\n\nnote", "proof hash 1"),
        ] {
            let error = parse_add_checkpoint(body).unwrap_err();
            assert!(error.contains(reason), "{body:?}: {error}");
        }
    }
}
