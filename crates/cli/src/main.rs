//! `bboard`: the command-line entry point of the bulletin board.
//!
//! Thin glue over the library crates: argument parsing (clap), files, and messages
//! for people. Every failure is reported with context and a non-zero exit code.

mod admin;
mod alarm_cmds;
mod audit_cmds;
mod authorisation;
mod bench;
mod bench_scale;
mod board_cmds;
mod demo;
mod devcluster;
mod election;
mod keys;
mod node_cmds;
mod preflight;
#[cfg(test)]
mod test_args;
mod unsent;
mod witness_cmd;

use std::path::PathBuf;

use anyhow::{Context, Result};
use bboard_core::checkpoint::NoteVerifier;
use bboard_core::receipt::Receipt;
use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a node allocates and frees many small
/// buffers per append (sled's pages, HTTP/2 frames, protobuf), and glibc's malloc took
/// 13 % of a saturated node's CPU in the profile of issue #19 (musl's, in the static
/// container image, is slower still).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "bboard",
    version,
    about = "Public, append-only bulletin board for elections"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the end-to-end demonstration of what bboard can do today.
    Demo(demo::DemoArgs),
    /// Generates an Ed25519 key pair for a node, trustee, terminal or authority.
    Keygen(keys::KeygenArgs),
    /// Prints the public key and verifier key of a private key file.
    KeyInfo(keys::KeyInfoArgs),
    /// Checks a receipt offline against trusted node keys. Exit 0: valid, 2: NOT
    /// valid, 1: the command's own error (e.g. --origin or --trusted-keys not those of
    /// the receipt's board).
    VerifyReceipt(VerifyReceiptArgs),
    /// Creates or runs a board node.
    Node(node_cmds::NodeArgs),
    /// Posts the genesis entry of a new board.
    Genesis(node_cmds::GenesisArgs),
    /// Runs a local cluster in this process (development and demos).
    Devcluster(devcluster::DevclusterArgs),
    /// Sends a signed admin command (membership, snapshot, election) to a node.
    Admin(admin::AdminArgs),
    /// Prints the status of board nodes: role, term, leader, tree size, root.
    Status(board_cmds::StatusArgs),
    /// Signs a note (or an encoded entry body) and appends it to a running board, or
    /// re-sends a signed envelope kept after an unknown outcome (`--envelope`).
    Append(board_cmds::AppendArgs),
    /// Prints one entry of a running board.
    Get(board_cmds::GetArgs),
    /// Fetches and verifies an inclusion or consistency proof against k-of-n
    /// checkpoints. Exit 0: verified, 2: NOT verified, 1: the command's own error.
    Prove(board_cmds::ProveArgs),
    /// Election authority: create an election, register keys, change phase, post the
    /// joint key.
    Election(election::cli::ElectionArgs),
    /// Trustee: keys, key ceremony rounds, decryption shares.
    Trustee(election::cli::TrusteeArgs),
    /// Voting terminal: cast, spoil or simulate ballots.
    Terminal(election::cli::TerminalArgs),
    /// Precinct commission: post the paper protocol.
    Protocol(election::cli::ProtocolArgs),
    /// Published results beside the paper protocols; `results publish` posts them.
    Results(election::cli::ResultsArgs),
    /// The encrypted tally and, once k trustees decrypted, its counts.
    Tally(election::cli::ReadArgs),
    /// Re-checks a whole election from the board. Exit 0: verified, 2: NOT verified
    /// (or, with --strict, paper and electronic counts differ), 1: the command's own
    /// error.
    VerifyElection(election::cli::VerifyArgs),
    /// Audits every node's checkpoints against the k-of-n policy, the last audit and
    /// each other; writes evidence files. Exit 0: OK, 2: findings, 3: incomplete.
    Audit(audit_cmds::AuditArgs),
    /// Re-checks an evidence file written by `bboard audit` and names the culprits.
    /// Exit 0: it holds, 2: it does NOT hold, 1: the command's own error.
    VerifyEvidence(audit_cmds::VerifyEvidenceArgs),
    /// Independent witness: `serve` cosigns consistent checkpoints, `feed` sends one.
    Witness(witness_cmd::WitnessArgs),
    /// Load generator for a terminal fleet: appends at N clients (closed loop) or a
    /// rate (open loop), and reports throughput and latency to verified receipts.
    Bench(bench::BenchArgs),
    /// Lists (or with --watch follows) the nodes' censorship alarms, each verified.
    /// Exit 0: none active, 2: active alarms, 3: something could not be checked.
    Alarms(alarm_cmds::AlarmsArgs),
}

#[derive(clap::Args)]
struct VerifyReceiptArgs {
    /// Receipt file (JSON) as written by `bboard demo` or a terminal.
    #[arg(long)]
    receipt: PathBuf,
    #[command(flatten)]
    policy: audit_cmds::PolicyArgs,
}

/// Logs go to stderr; `RUST_LOG` overrides the default (info for servers, warnings
/// otherwise).
fn init_logging(command: &Command) {
    let default = match command {
        Command::Node(_) => "info,openraft=warn,sled=warn",
        Command::Witness(_) => "info",
        // A local cluster starts its nodes one by one: openraft's "unreachable" errors
        // during start-up are expected there.
        Command::Devcluster(_) => "warn,bboard_node=info,openraft=off",
        // The demo stops a node on purpose: its peers' retries are not news.
        Command::Demo(_) => "error,openraft=off",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> std::process::ExitCode {
    // clap ends a usage error with exit 2, which bboard's verifiers use for "does NOT
    // verify": a mistyped or missing flag is the user's own error, exit 1.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            };
        }
    };
    init_logging(&cli.command);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            if let Some(advice) = unsent::keep(&error) {
                eprintln!("{advice}");
            }
            std::process::ExitCode::from(audit_cmds::exit_code(&error))
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Keygen(args) => keys::run_keygen(args),
        Command::KeyInfo(args) => keys::run_key_info(args),
        Command::VerifyReceipt(args) => verify_receipt(args),
        Command::Node(args) => node_cmds::run(args),
        Command::Genesis(args) => node_cmds::run_genesis(args),
        Command::Devcluster(args) => devcluster::run_devcluster(args),
        Command::Admin(args) => admin::run(args),
        Command::Status(args) => board_cmds::run_status(args),
        Command::Append(args) => board_cmds::run_append(args),
        Command::Get(args) => board_cmds::run_get(args),
        Command::Prove(args) => board_cmds::run_prove(args),
        Command::Election(args) => election::cli::run_election(args),
        Command::Trustee(args) => election::cli::run_trustee(args),
        Command::Terminal(args) => election::cli::run_terminal(args),
        Command::Protocol(args) => election::cli::run_protocol(args),
        Command::Results(args) => election::cli::run_results(args),
        Command::Tally(args) => election::cli::run_tally(args),
        Command::VerifyElection(args) => election::cli::run_verify(args),
        Command::Audit(args) => audit_cmds::run_audit(args),
        Command::VerifyEvidence(args) => audit_cmds::run_verify_evidence(args),
        Command::Witness(args) => witness_cmd::run(args),
        Command::Alarms(args) => alarm_cmds::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// An error and its causes on one line, like anyhow's `{:#}`, but a cause whose text
/// is already in the line is left out: many library errors both name their source in
/// their message and return it as `source()`, which would print the reason twice.
fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Reads trusted verifier keys, one per line; blank lines and `#` comments are skipped.
pub(crate) fn read_verifier_keys(path: &std::path::Path) -> Result<Vec<NoteVerifier>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading trusted keys from {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .enumerate()
        .map(|(i, line)| {
            NoteVerifier::parse(line).with_context(|| format!("{} key {}", path.display(), i + 1))
        })
        .collect()
}

fn verify_receipt(args: VerifyReceiptArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.receipt)
        .with_context(|| format!("reading receipt {}", args.receipt.display()))?;
    let receipt: Receipt = serde_json::from_str(&text).with_context(|| {
        preflight::not_verified(format!("{} is NOT a receipt", args.receipt.display()))
    })?;
    let policy = args.policy.policy()?;
    let what = format!("the receipt {}", args.receipt.display());
    preflight::check_note_settings(&policy, &what, &[&receipt.checkpoint])?;
    let verified = receipt
        .verify(&policy)
        .with_context(|| preflight::not_verified(format!("{what} is NOT valid")))?;
    println!(
        "receipt OK: entry {} (envelope {}) is in the board {} of size {} with root {}, signed by {} of {} trusted nodes ({})",
        verified.leaf_index.0,
        verified.leaf.envelope.id(),
        verified.checkpoint.checkpoint.origin,
        verified.checkpoint.checkpoint.size.0,
        verified.checkpoint.checkpoint.root,
        verified.checkpoint.signers.len(),
        policy.keys().len(),
        verified.checkpoint.signers.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    enum Inner {
        #[error("root mismatch: proof yields A, expected B")]
        Mismatch,
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("proof does not verify: {0}")]
        Proof(#[from] Inner),
    }

    #[test]
    fn a_reason_is_printed_once() {
        let error =
            anyhow::Error::new(Outer::from(Inner::Mismatch)).context("receipt r.json is NOT valid");
        assert_eq!(
            super::describe(&error),
            "receipt r.json is NOT valid: proof does not verify: root mismatch: proof yields A, expected B"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::describe(&plain), "outer: inner");
    }
}
