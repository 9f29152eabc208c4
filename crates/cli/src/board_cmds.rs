//! Commands that talk to a running board over gRPC (`bboard-client`): `status`,
//! `append`, `get` and `prove`. Each builds its own tokio runtime, since the rest of
//! the CLI is synchronous.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::{CosignaturePolicy, VerifiedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use bboard_merkle::Hash;

use crate::preflight::not_verified;

/// Which nodes to talk to, and how patiently.
#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// Board node address (host:port); repeat for several nodes of the cluster.
    #[arg(long = "endpoint", required = true, value_name = "HOST:PORT")]
    pub endpoints: Vec<String>,
    /// Longest wait for one call to one node, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    request_timeout: u64,
    /// Longest time a call may take with all its retries, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
}

/// Arguments of `bboard status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Arguments of `bboard append`.
#[derive(clap::Args, Debug)]
pub struct AppendArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Private key file (hex seed, as written by `bboard keygen`) to sign the entry with.
    #[arg(long, required_unless_present = "envelope")]
    key: Option<PathBuf>,
    /// Text of a Note entry to append.
    #[arg(
        long,
        required_unless_present_any = ["body_file", "envelope"],
        conflicts_with_all = ["body_file", "envelope"]
    )]
    note: Option<String>,
    /// Re-send this signed envelope exactly as it is (a file kept after an unknown
    /// outcome, under bboard-unsent/): safe to repeat, the board keeps one copy.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key", "body_file"])]
    envelope: Option<PathBuf>,
    /// Election id of the note (empty: a board-level note).
    #[arg(long, conflicts_with = "body_file")]
    election: Option<String>,
    /// File holding an already encoded EntryBody (protobuf bytes) to sign and append.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Where to write the receipt (JSON).
    #[arg(long, value_name = "FILE")]
    receipt_out: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Arguments of `bboard get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Index of the entry.
    #[arg(long)]
    index: u64,
}

/// Arguments of `bboard prove`.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("what")
        .required(true)
        .args(["index", "leaf_hash", "consistency"])
))]
pub struct ProveArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Prove that the entry with this index is on the board.
    #[arg(long)]
    index: Option<u64>,
    /// Prove that the leaf with this hash (hex) is on the board.
    #[arg(long, value_name = "HEX")]
    leaf_hash: Option<String>,
    /// Prove that the tree of size OLD is a prefix of the tree of size NEW (NEW = 0: the latest).
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    consistency: Option<Vec<u64>>,
    /// Tree size to prove inclusion in (default: the latest checkpoint).
    #[arg(long, conflicts_with = "consistency")]
    size: Option<u64>,
    #[command(flatten)]
    policy: crate::audit_cmds::PolicyArgs,
}

/// A runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// Optional trusted node keys: when given, every receipt and checkpoint is verified
/// against k-of-n of them.
#[derive(clap::Args, Debug, Clone)]
pub struct TrustArgs {
    /// File with one trusted node verifier key per line (e.g. the cluster's
    /// trusted-keys.txt); receipts and checkpoints are then verified.
    #[arg(long, value_name = "FILE", requires = "origin")]
    pub trusted_keys: Option<PathBuf>,
    /// Origin (board name) the checkpoints must carry.
    #[arg(long, requires = "trusted_keys")]
    pub origin: Option<String>,
    /// Signatures required (k of n); default: a majority of the keys.
    #[arg(long, requires = "trusted_keys")]
    pub threshold: Option<usize>,
    /// File with one witness verifier key per line: checkpoints must then also carry
    /// `--witness-threshold` witness cosignatures.
    #[arg(long, value_name = "FILE", requires_all = ["witness_threshold", "trusted_keys"])]
    pub witness_keys: Option<PathBuf>,
    /// Witness cosignatures required (m of the witness keys).
    #[arg(long, value_name = "M", requires = "witness_keys")]
    pub witness_threshold: Option<usize>,
}

impl TrustArgs {
    /// The policy, if trusted keys were given.
    pub fn policy(&self) -> Result<Option<CosignaturePolicy>> {
        match (&self.trusted_keys, &self.origin) {
            (Some(trusted_keys), Some(origin)) => crate::audit_cmds::PolicyArgs {
                trusted_keys: trusted_keys.clone(),
                origin: origin.clone(),
                threshold: self.threshold,
                witness_keys: self.witness_keys.clone(),
                witness_threshold: self.witness_threshold,
            }
            .policy()
            .map(Some),
            _ => Ok(None),
        }
    }
}

/// Connects to the nodes of `args`, verifying against `policy` when given. With a
/// policy, the nodes are first asked whether it is theirs
/// ([`crate::preflight::check_settings`]): a command given a wrong `--origin` or
/// `--trusted-keys` stops there, before it reads, judges or posts anything.
pub async fn connect(args: &ConnectArgs, policy: Option<CosignaturePolicy>) -> Result<BoardClient> {
    let per_request_timeout = Duration::from_secs(args.request_timeout.max(1));
    let total_timeout = Duration::from_secs(args.timeout.max(1));
    if let Some(policy) = &policy {
        crate::preflight::check_settings_within(
            &args.endpoints,
            policy,
            per_request_timeout,
            total_timeout,
        )
        .await?;
    }
    let options = ClientOptions {
        per_request_timeout,
        total_timeout,
        policy,
        ..ClientOptions::default()
    };
    BoardClient::connect(args.endpoints.clone(), options)
        .await
        .context("connecting to the board")
}

fn describe_checkpoint(checkpoint: &VerifiedCheckpoint, policy_keys: usize) -> String {
    format!(
        "checkpoint {} size {} root {}, signed by {} of {} trusted nodes ({})",
        checkpoint.checkpoint.origin,
        checkpoint.checkpoint.size.0,
        checkpoint.checkpoint.root,
        checkpoint.signers.len(),
        policy_keys,
        checkpoint.signers.join(", ")
    )
}

/// `bboard status`: prints the status of every node given.
pub fn run_status(args: StatusArgs) -> Result<()> {
    runtime()?.block_on(async {
        let client = connect(&args.connect, None).await?;
        let mut answered = 0;
        for (endpoint, result) in client.status_all().await {
            match result {
                Ok(s) => {
                    answered += 1;
                    let leader = match (s.leader_id, s.leader_address.as_str()) {
                        (0, _) => "unknown".to_string(),
                        (id, "") => format!("{id}"),
                        (id, address) => format!("{id} ({address})"),
                    };
                    println!("{endpoint}:");
                    println!("  node:       {} {:?}", s.node_id, s.node_name);
                    println!("  role:       {}", s.role);
                    println!("  term:       {}", s.term);
                    println!("  leader:     {leader}");
                    println!("  origin:     {}", s.origin);
                    println!("  tree size:  {}", s.tree_size);
                    println!("  root:       {}", hex::encode(&s.root));
                    println!(
                        "  raft log:   last {} committed {}",
                        s.last_log_index, s.committed_index
                    );
                }
                Err(error) => println!("{endpoint}: unreachable: {error}"),
            }
        }
        if answered == 0 {
            bail!("no node answered");
        }
        Ok(())
    })
}

/// `bboard append`: signs a note (or an encoded body) and appends it.
pub fn run_append(args: AppendArgs) -> Result<()> {
    let envelope = match &args.envelope {
        Some(path) => crate::unsent::read_envelope(path)?,
        None => sign_entry(&args)?,
    };
    let policy = args.trust.policy()?;
    let policy_keys = policy.as_ref().map_or(0, |p| p.keys().len());
    let result = runtime()?.block_on(async {
        let client = connect(&args.connect, policy).await?;
        client
            .append(&envelope)
            .await
            .context("appending the entry")
    })?;
    print_appended(&args, &envelope, &result, policy_keys)
}

/// The envelope `append` signs: a note or an encoded body, with `--key`.
fn sign_entry(args: &AppendArgs) -> Result<SignedEnvelope> {
    let key = crate::keys::read_private_key(args.key.as_ref().context("give --key")?)?;
    Ok(match (&args.body_file, &args.note) {
        (Some(path), _) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let envelope = SignedEnvelope::sign(bytes, &key);
            envelope
                .body()
                .with_context(|| format!("{} is not an encoded EntryBody", path.display()))?;
            envelope
        }
        (None, Some(text)) => {
            let body = pb::EntryBody {
                election_id: args.election.clone().unwrap_or_default(),
                created_unix_ms: bboard_util::clock::now_unix_ms(),
                kind: Some(pb::entry_body::Kind::Note(pb::Note { text: text.clone() })),
            };
            SignedEnvelope::sign_body(&body, &key)
        }
        (None, None) => bail!("give --note, --body-file or --envelope"),
    })
}

fn print_appended(
    args: &AppendArgs,
    envelope: &SignedEnvelope,
    result: &bboard_client::AppendResult,
    policy_keys: usize,
) -> Result<()> {
    println!(
        "appended: entry {} via {}{}",
        result.receipt.leaf_index,
        result.endpoint,
        if result.duplicate {
            " (duplicate: it was already on the board; original receipt)"
        } else {
            ""
        }
    );
    println!("duplicate:     {}", result.duplicate);
    println!("envelope id:   {}", envelope.id());
    println!("leaf hash:     {}", result.receipt.leaf_hash);
    println!(
        "tracking code: {}",
        if result.receipt.tracking_code.is_empty() {
            "-"
        } else {
            &result.receipt.tracking_code
        }
    );
    match &result.verified {
        Some(verified) => println!(
            "receipt OK:    {}",
            describe_checkpoint(&verified.checkpoint, policy_keys)
        ),
        None => println!("receipt not verified (no --trusted-keys given)"),
    }
    if let Some(path) = &args.receipt_out {
        let json =
            serde_json::to_string_pretty(&result.receipt).context("serialising the receipt")?;
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing receipt {}", path.display()))?;
        println!("receipt written to {}", path.display());
    }
    Ok(())
}

/// `bboard get`: prints one entry.
pub fn run_get(args: GetArgs) -> Result<()> {
    let entry = runtime()?.block_on(async {
        let client = connect(&args.connect, None).await?;
        client
            .get_entry(args.index)
            .await
            .with_context(|| format!("reading entry {}", args.index))
    })?;
    let envelope = &entry.leaf.envelope;
    println!("index:       {}", entry.index);
    println!("leaf hash:   {}", entry.leaf_hash);
    println!("timestamp:   {} (unix ms)", entry.leaf.timestamp_unix_ms);
    println!("signer:      {}", hex::encode(envelope.signer().as_bytes()));
    println!("envelope id: {}", envelope.id());
    match envelope.body() {
        Ok(body) => {
            let kind = body
                .kind
                .as_ref()
                .map_or("none", bboard_core::board::kind_name);
            println!("kind:        {kind}");
            println!("election:    {:?}", body.election_id);
            println!(
                "created:     {} (unix ms, submitter's clock)",
                body.created_unix_ms
            );
            println!("body:        {:#?}", body.kind);
        }
        Err(error) => println!(
            "body:        undecodable ({error}): {}",
            hex::encode(envelope.body_bytes())
        ),
    }
    Ok(())
}

/// `bboard prove`: fetches and verifies an inclusion or consistency proof against
/// k-of-n cosigned checkpoints. Fails (non-zero exit) when anything does not verify.
pub fn run_prove(args: ProveArgs) -> Result<()> {
    let policy = args.policy.policy()?;
    let policy_keys = policy.keys().len();
    runtime()?.block_on(async {
        let client = connect(&args.connect, Some(policy)).await?;
        if let Some(sizes) = &args.consistency {
            let &[old, new] = sizes.as_slice() else {
                bail!("--consistency takes two sizes: OLD NEW");
            };
            let proof = client.consistency_proof(old, new).await.map_err(|error| {
                judged(
                    error,
                    format!("consistency proof from size {old} to {new} NOT verified"),
                )
            })?;
            println!(
                "OK: the tree of size {} (root {}) is a prefix of the tree of size {} (root {})",
                proof.old_size,
                proof.old_root,
                proof.new_checkpoint.checkpoint.size.0,
                proof.new_checkpoint.checkpoint.root
            );
            if let Some(old) = &proof.old_checkpoint {
                println!("old: {}", describe_checkpoint(old, policy_keys));
            }
            println!(
                "new: {}",
                describe_checkpoint(&proof.new_checkpoint, policy_keys)
            );
            print_hashes("consistency proof", &proof.proof);
            return Ok(());
        }
        let proof = match (&args.index, &args.leaf_hash) {
            (Some(index), _) => client
                .inclusion_proof_by_index(*index, args.size)
                .await
                .map_err(|error| {
                    judged(error, format!("inclusion of entry {index} NOT verified"))
                })?,
            (None, Some(text)) => {
                let hash = Hash::from_hex(text.trim())
                    .map_err(|e| anyhow::anyhow!("--leaf-hash {text:?}: {e}"))?;
                client
                    .inclusion_proof_by_leaf_hash(&hash, args.size)
                    .await
                    .map_err(|error| {
                        judged(error, format!("inclusion of leaf {hash} NOT verified"))
                    })?
            }
            (None, None) => bail!("give --index, --leaf-hash or --consistency"),
        };
        println!(
            "OK: entry {} (leaf hash {}) is in the tree of size {}",
            proof.leaf_index, proof.leaf_hash, proof.tree_size
        );
        println!("{}", describe_checkpoint(&proof.checkpoint, policy_keys));
        print_hashes("inclusion proof", &proof.proof);
        Ok(())
    })
}

/// A failed proof for the exit code: a node that did not answer means nothing was
/// checked (the tool's error, exit 1); anything the nodes did answer — a refusal, no
/// such entry, a proof or checkpoint that does not verify — means the claim does NOT
/// hold (exit 2).
fn judged(error: bboard_client::ClientError, message: String) -> anyhow::Error {
    use bboard_client::ClientError;
    match error {
        ClientError::Timeout { .. } | ClientError::Rpc { .. } | ClientError::NoEndpoint => {
            anyhow::Error::new(error).context(format!("{message}: the nodes did not answer"))
        }
        error => anyhow::Error::new(error).context(not_verified(message)),
    }
}

fn print_hashes(what: &str, hashes: &[Hash]) {
    println!("{what} ({} hashes):", hashes.len());
    for hash in hashes {
        println!("  {hash}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Prove {
        #[command(flatten)]
        args: ProveArgs,
    }

    #[derive(Parser, Debug)]
    struct Append {
        #[command(flatten)]
        args: AppendArgs,
    }

    const TRUST: [&str; 4] = ["--trusted-keys", "k", "--origin", "o"];

    fn prove(extra: &[&str]) -> Result<Prove, clap::Error> {
        let mut argv = vec!["prove", "--endpoint", "h:1"];
        argv.extend(TRUST);
        argv.extend(extra);
        Prove::try_parse_from(argv)
    }

    #[test]
    fn prove_needs_exactly_one_subject() {
        assert!(prove(&[]).is_err());
        assert!(prove(&["--index", "1", "--leaf-hash", "ab"]).is_err());
        assert!(prove(&["--consistency", "1", "--size", "3"]).is_err());
        let parsed = prove(&["--consistency", "2", "5"]).unwrap();
        assert_eq!(parsed.args.consistency, Some(vec![2, 5]));
        let parsed = prove(&["--index", "3", "--size", "9"]).unwrap();
        assert_eq!((parsed.args.index, parsed.args.size), (Some(3), Some(9)));
    }

    #[test]
    fn append_needs_a_note_or_a_body_file() {
        let base = ["append", "--endpoint", "h:1", "--key", "k"];
        assert!(Append::try_parse_from(base).is_err());
        let with = |extra: &[&str]| {
            let mut argv = base.to_vec();
            argv.extend(extra);
            Append::try_parse_from(argv)
        };
        assert!(with(&["--note", "hi"]).is_ok());
        assert!(with(&["--body-file", "b"]).is_ok());
        assert!(with(&["--note", "hi", "--body-file", "b"]).is_err());
        assert!(with(&["--note", "hi", "--trusted-keys", "k"]).is_err());
        assert!(with(&["--note", "hi", "--trusted-keys", "k", "--origin", "o"]).is_ok());
    }
}
