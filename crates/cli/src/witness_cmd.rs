//! `bboard witness serve|feed`: an independent HTTP witness in the spirit of
//! [C2SP tlog-witness](https://c2sp.org/tlog-witness), and a client that feeds it a
//! node's latest checkpoint.
//!
//! The service itself (request format, answers, durable state) is the `bboard-witness`
//! crate; the decision is `bboard_core::witness`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::{NoteSigner, SignedCheckpoint};
use bboard_core::witness::{AddCheckpoint, Witness};
use bboard_merkle::Hash;
use bboard_witness::{offer_checkpoint, WitnessAnswer, WitnessService, WitnessStateFile};

use crate::audit_cmds::PolicyArgs;

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
    let verifier = signer.verifier();
    let service = WitnessService::open(
        Witness::new(signer, [log_policy]),
        WitnessStateFile::new(&args.state),
    )?;
    let app = bboard_witness::router(service);
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
        let offer = AddCheckpoint {
            old_size: old,
            proof: proof_between(&client, old, size).await?,
            note: note.clone(),
        };
        match offer_checkpoint(&args.witness, &offer).await? {
            WitnessAnswer::KnownSize(known) if attempt == 0 => {
                println!("witness knows size {known}: proving from there");
                old = known;
            }
            reply => {
                answer = Some(reply);
                break;
            }
        }
    }
    let lines = match answer {
        Some(WitnessAnswer::Cosigned(lines)) => lines,
        Some(WitnessAnswer::Refused { status, reason }) => {
            bail!("the witness refused to cosign size {size} (HTTP {status}): {reason}")
        }
        Some(WitnessAnswer::KnownSize(_)) | None => {
            bail!("the witness kept answering with a size conflict")
        }
    };
    let cosigned = format!("{note}{lines}");
    SignedCheckpoint::parse(&cosigned).context("the witness's cosignature line is malformed")?;
    println!("witness cosigned checkpoint of size {size}:");
    print!("{cosigned}");
    Ok(())
}
