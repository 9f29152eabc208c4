//! The clap commands of the election: thin wrappers that read files and flags, call
//! the `bboard-election` library and print for people.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use bboard_client::BoardClient;
use bboard_core::election::short_tracking_code;
use bboard_core::pb::{self, Phase};
use rand::SeedableRng;

use super::flags::{parse_choices, parse_counts};
use crate::board_cmds::{connect, runtime, ConnectArgs, TrustArgs};
use crate::keys::read_private_key;
use crate::preflight::not_verified;
use bboard_election::authority::{self, Registration};
use bboard_election::board::ElectionView;
use bboard_election::manifest::{describe_selection, random_selections, ManifestFile};
use bboard_election::report;
use bboard_election::terminal::{CastReceipt, TerminalSession};
use bboard_election::trustee::{self, Step, TrusteeFiles, TrusteeStep};

/// Most ballots one `terminal simulate` run posts.
const MAX_SIMULATED_BALLOTS: u64 = 100_000;

/// The board and the election a command works on.
#[derive(clap::Args, Debug)]
pub struct Target {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// Election id.
    #[arg(long)]
    election: String,
}

impl Target {
    async fn client(&self) -> Result<BoardClient> {
        connect(&self.connect, self.trust.policy()?).await
    }
}

/// Runs `body` with a client of `target` on a fresh runtime.
fn with_client<T>(target: &Target, body: impl AsyncFnOnce(BoardClient) -> Result<T>) -> Result<T> {
    runtime()?.block_on(async {
        let client = target.client().await?;
        body(client).await
    })
}

fn print_posted(what: &str, index: u64) {
    println!("{what}: entry {index}");
}

// ---------------------------------------------------------------------------------
// bboard election …

/// Arguments of `bboard election`.
#[derive(clap::Args)]
pub struct ElectionArgs {
    #[command(subcommand)]
    command: ElectionCommand,
}

#[derive(clap::Subcommand)]
enum ElectionCommand {
    /// Posts an election manifest (JSON, or TOML if the file ends in .toml).
    Create {
        #[command(flatten)]
        target: Target,
        /// Authority private key file.
        #[arg(long)]
        key: PathBuf,
        /// Manifest file.
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Registers a terminal, commission, trustee or authority key for the election.
    Register {
        #[command(flatten)]
        target: Target,
        /// Authority private key file.
        #[arg(long)]
        key: PathBuf,
        /// Role of the registered key.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Public key to register (hex).
        #[arg(long, value_name = "HEX", required_unless_present = "subject_key")]
        public_key: Option<String>,
        /// Or: a private key file whose public key to register.
        #[arg(long, value_name = "FILE", conflicts_with = "public_key")]
        subject_key: Option<PathBuf>,
        /// Precinct (terminals and commissions).
        #[arg(long, default_value = "")]
        precinct: String,
        /// Human label (terminal serial, organisation).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Moves the election to its next phase.
    Phase {
        #[command(flatten)]
        target: Target,
        /// Authority private key file.
        #[arg(long)]
        key: PathBuf,
        /// The phase to move to.
        #[arg(value_enum)]
        phase: PhaseArg,
    },
    /// Derives the joint key from the key ceremony on the board and posts it.
    JointKey {
        #[command(flatten)]
        target: Target,
        /// Authority private key file.
        #[arg(long)]
        key: PathBuf,
    },
}

/// Roles `election register` grants.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum RoleArg {
    /// A voting terminal of one precinct.
    Terminal,
    /// A precinct commission.
    Commission,
    /// A trustee named by the manifest.
    Trustee,
    /// An election authority.
    Authority,
}

impl From<RoleArg> for pb::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Terminal => pb::Role::Terminal,
            RoleArg::Commission => pb::Role::PrecinctCommission,
            RoleArg::Trustee => pb::Role::Trustee,
            RoleArg::Authority => pb::Role::Authority,
        }
    }
}

/// Phases `election phase` moves to.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PhaseArg {
    /// Trustees run the key ceremony.
    KeyCeremony,
    /// Terminals post ballots (needs the joint key).
    Open,
    /// Voting is over; commissions post paper protocols.
    Closed,
    /// Trustees post decryption shares; results are published.
    Tallying,
    /// Final (needs a result for every precinct and contest).
    Published,
}

impl From<PhaseArg> for Phase {
    fn from(phase: PhaseArg) -> Self {
        match phase {
            PhaseArg::KeyCeremony => Phase::KeyCeremony,
            PhaseArg::Open => Phase::Open,
            PhaseArg::Closed => Phase::Closed,
            PhaseArg::Tallying => Phase::Tallying,
            PhaseArg::Published => Phase::Published,
        }
    }
}

fn public_key_arg(hex_key: Option<&str>, file: Option<&PathBuf>) -> Result<[u8; 32]> {
    match (hex_key, file) {
        (Some(text), _) => hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| anyhow!("--public-key must be 32 bytes of hex")),
        (None, Some(path)) => Ok(*read_private_key(path)?.verifying_key().as_bytes()),
        (None, None) => bail!("give --public-key or --subject-key"),
    }
}

/// `bboard election …`.
pub fn run_election(args: ElectionArgs) -> Result<()> {
    match args.command {
        ElectionCommand::Create {
            target,
            key,
            manifest,
        } => {
            let key = read_private_key(&key)?;
            let manifest = ManifestFile::load(&manifest)?.to_proto()?;
            with_client(&target, async |client| {
                let posted =
                    authority::create_election(&client, &key, &target.election, manifest).await?;
                print_posted(
                    &format!("election {:?} created (phase SETUP)", target.election),
                    posted.receipt.leaf_index,
                );
                Ok(())
            })
        }
        ElectionCommand::Register {
            target,
            key,
            role,
            public_key,
            subject_key,
            precinct,
            label,
        } => {
            let key = read_private_key(&key)?;
            let registration = Registration {
                public_key: public_key_arg(public_key.as_deref(), subject_key.as_ref())?,
                role: role.into(),
                precinct_id: precinct,
                label,
            };
            with_client(&target, async |client| {
                let posted =
                    authority::register_key(&client, &key, &target.election, &registration).await?;
                print_posted(
                    &format!(
                        "{} {} registered",
                        registration.role.as_str_name(),
                        hex::encode(registration.public_key)
                    ),
                    posted.receipt.leaf_index,
                );
                Ok(())
            })
        }
        ElectionCommand::Phase { target, key, phase } => {
            let key = read_private_key(&key)?;
            let phase = Phase::from(phase);
            with_client(&target, async |client| {
                let posted =
                    authority::change_phase(&client, &key, &target.election, phase).await?;
                print_posted(
                    &format!(
                        "election {:?} is now {}",
                        target.election,
                        phase.as_str_name()
                    ),
                    posted.receipt.leaf_index,
                );
                Ok(())
            })
        }
        ElectionCommand::JointKey { target, key } => {
            let key = read_private_key(&key)?;
            with_client(&target, async |client| {
                let (posted, joint) =
                    authority::post_joint_key(&client, &key, &target.election, 0).await?;
                print_posted(
                    &format!("joint key {} posted", hex::encode(&joint.public_key)),
                    posted.receipt.leaf_index,
                );
                Ok(())
            })
        }
    }
}

// ---------------------------------------------------------------------------------
// bboard trustee …

/// Arguments of `bboard trustee`.
#[derive(clap::Args)]
pub struct TrusteeArgs {
    #[command(subcommand)]
    command: TrusteeCommand,
}

#[derive(clap::Args, Debug)]
struct TrusteeTarget {
    #[command(flatten)]
    target: Target,
    /// The trustee's directory (from `trustee keygen`): keys and ceremony state.
    #[arg(long)]
    dir: PathBuf,
}

#[derive(clap::Subcommand)]
enum TrusteeCommand {
    /// Creates a trustee directory: Ed25519 signing key and X25519 transport key.
    Keygen {
        /// Trustee name as in the manifest.
        #[arg(long)]
        name: String,
        /// Directory to create the key files in.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Key ceremony round 1: posts the commitment.
    Commit(TrusteeTarget),
    /// Key ceremony round 2: posts the public polynomial.
    Reveal(TrusteeTarget),
    /// Key ceremony round 3: posts a sealed share for every other trustee.
    Share(TrusteeTarget),
    /// Completes the ceremony: opens and checks the shares for this trustee.
    Finish(TrusteeTarget),
    /// Posts this trustee's decryption shares of the tally.
    Decrypt(TrusteeTarget),
}

/// `bboard trustee …`.
pub fn run_trustee(args: TrusteeArgs) -> Result<()> {
    let (step, target) = match args.command {
        TrusteeCommand::Keygen { name, dir } => {
            let files = TrusteeFiles { dir: dir.clone() };
            let public = trustee::keygen(&files, &name, &mut rand_core::OsRng)?;
            // The snippet alone goes to stdout, so `… >> manifest.toml` pastes it.
            eprintln!(
                "trustee keys written to {} (signing.key, transport.key; keep them secret); \
                 append this [[trustees]] table to the TOML manifest:",
                dir.display()
            );
            print!("{}", public.to_manifest_toml());
            return Ok(());
        }
        TrusteeCommand::Commit(t) => (Step::Commit, t),
        TrusteeCommand::Reveal(t) => (Step::Reveal, t),
        TrusteeCommand::Share(t) => (Step::Share, t),
        TrusteeCommand::Finish(t) => (Step::Finish, t),
        TrusteeCommand::Decrypt(t) => (Step::Decrypt, t),
    };
    let files = TrusteeFiles { dir: target.dir };
    files.check()?;
    with_client(&target.target, async |client| {
        let step_args = TrusteeStep {
            client: &client,
            election_id: &target.target.election,
            files: &files,
            min_size: 0,
        };
        let report = step_args
            .run(step)
            .await
            .with_context(|| format!("trustee {step}"))?;
        println!("{}", report.message);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------
// bboard terminal …

/// Arguments of `bboard terminal`.
#[derive(clap::Args)]
pub struct TerminalArgs {
    #[command(subcommand)]
    command: TerminalCommand,
}

#[derive(clap::Args, Debug)]
struct VoteArgs {
    #[command(flatten)]
    target: Target,
    /// Terminal private key file.
    #[arg(long)]
    key: PathBuf,
    /// A selection: CONTEST=OPTION[,OPTION…] (names or 0-based indices); repeat per
    /// contest. Contests without one get no selection.
    #[arg(long = "choice", value_name = "CONTEST=OPTIONS")]
    choices: Vec<String>,
    #[command(flatten)]
    delay: DelayArgs,
}

/// Anonymity option of the terminal commands.
#[derive(clap::Args, Debug)]
struct DelayArgs {
    /// Wait a random time up to this many milliseconds before posting each ballot, so
    /// that its board timestamp does not point at the voter seen at the terminal.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    max_delay_ms: u64,
}

impl DelayArgs {
    fn max_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.max_delay_ms)
    }
}

#[derive(clap::Subcommand)]
enum TerminalCommand {
    /// Encrypts a ballot and posts it.
    Vote(VoteArgs),
    /// Encrypts a ballot and posts it opened (Benaloh challenge; never counted).
    Spoil(VoteArgs),
    /// Posts N random valid ballots, one after another.
    Simulate {
        #[command(flatten)]
        target: Target,
        /// Terminal private key file.
        #[arg(long)]
        key: PathBuf,
        /// Number of ballots.
        #[arg(long, default_value_t = 10)]
        ballots: u64,
        /// Seed of the random selections.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        delay: DelayArgs,
    },
}

fn print_receipt(what: &str, receipt: &CastReceipt) {
    println!(
        "{what}: entry {}, tracking code {} ({})",
        receipt.leaf_index,
        receipt.short_code,
        hex::encode(receipt.tracking_code)
    );
}

/// `bboard terminal …`.
pub fn run_terminal(args: TerminalArgs) -> Result<()> {
    match args.command {
        TerminalCommand::Vote(vote) => cast_from_flags(vote, false),
        TerminalCommand::Spoil(vote) => cast_from_flags(vote, true),
        TerminalCommand::Simulate {
            target,
            key,
            ballots,
            seed,
            delay,
        } => {
            ensure!(
                (1..=MAX_SIMULATED_BALLOTS).contains(&ballots),
                "--ballots must be between 1 and {MAX_SIMULATED_BALLOTS}"
            );
            let key = read_private_key(&key)?;
            with_client(&target, async |client| {
                let mut session = TerminalSession::open(&client, &target.election, key, 0)
                    .await?
                    .with_max_delay(delay.max_delay());
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let started = Instant::now();
                let step = (ballots / 10).max(1);
                let mut last = None;
                for n in 1..=ballots {
                    let selections = random_selections(&session.manifest, &mut rng);
                    let receipt = session
                        .cast(&selections, false)
                        .await
                        .with_context(|| format!("ballot {n} of {ballots}"))?;
                    if n % step == 0 || n == ballots {
                        println!(
                            "{n}/{ballots} ballots posted ({:.1?}); last tracking code {}",
                            started.elapsed(),
                            receipt.short_code
                        );
                    }
                    last = Some(receipt.tracking_code);
                }
                if let Some(code) = last {
                    println!(
                        "terminal chain head is now {} ({})",
                        short_tracking_code(&code),
                        hex::encode(code)
                    );
                }
                Ok(())
            })
        }
    }
}

fn cast_from_flags(args: VoteArgs, challenge: bool) -> Result<()> {
    let key = read_private_key(&args.key)?;
    with_client(&args.target, async |client| {
        let mut session = TerminalSession::open(&client, &args.target.election, key, 0)
            .await?
            .with_max_delay(args.delay.max_delay());
        let selections = parse_choices(&session.manifest, &args.choices)?;
        let receipt = session.cast(&selections, challenge).await?;
        if let Some(spoiled) = &receipt.spoiled {
            print_receipt("spoiled ballot posted (not counted)", &receipt);
            session.check_spoiled(spoiled)?;
            println!("anyone can check that it encrypts what the voter saw:");
            for (contest, selection) in session.manifest.contests.iter().zip(&spoiled.selections) {
                println!(
                    "  {}: {}",
                    contest.contest_id,
                    describe_selection(contest, &selection.selected_options)
                );
            }
            println!(
                "  (the nonces are published with it; `bboard verify-election` re-encrypts and compares)"
            );
        } else {
            print_receipt("ballot cast", &receipt);
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------
// bboard protocol post, results [publish], tally, verify-election

/// Arguments of `bboard protocol`.
#[derive(clap::Args)]
pub struct ProtocolArgs {
    #[command(subcommand)]
    command: ProtocolCommand,
}

#[derive(clap::Subcommand)]
enum ProtocolCommand {
    /// Posts a precinct's paper protocol (commission key).
    Post {
        #[command(flatten)]
        target: Target,
        /// Commission private key file.
        #[arg(long)]
        key: PathBuf,
        /// Per contest: CONTEST=N,N,… (one count per option, in manifest order).
        #[arg(long = "count", value_name = "CONTEST=COUNTS", required = true)]
        counts: Vec<String>,
        /// Paper ballots issued to voters (from the poll book).
        #[arg(long)]
        ballots_issued: u64,
        /// Paper ballots found in the box.
        #[arg(long)]
        ballots_cast: u64,
    },
}

/// `bboard protocol post`.
pub fn run_protocol(args: ProtocolArgs) -> Result<()> {
    let ProtocolCommand::Post {
        target,
        key,
        counts,
        ballots_issued,
        ballots_cast,
    } = args.command;
    let key = read_private_key(&key)?;
    with_client(&target, async |client| {
        let view = ElectionView::fetch(&client, &target.election, 0).await?;
        let precinct_id =
            view.precinct_of(key.verifying_key().as_bytes(), pb::Role::PrecinctCommission)?;
        let protocol = pb::PrecinctProtocol {
            precinct_id: precinct_id.clone(),
            counts: parse_counts(&view.manifest, &counts)?,
            ballots_issued,
            ballots_cast,
            photo_hash: Vec::new(),
        };
        let posted = authority::post_protocol(&client, &key, &target.election, protocol).await?;
        print_posted(
            &format!("paper protocol of {precinct_id} posted"),
            posted.receipt.leaf_index,
        );
        Ok(())
    })
}

/// Arguments of `bboard results`: prints the published results beside the paper
/// protocols; `bboard results publish --key FILE` combines the trustees' decryption
/// shares and posts every result (authority key).
#[derive(clap::Args)]
pub struct ResultsArgs {
    /// `publish`: post the results instead of printing them.
    #[arg(value_enum)]
    action: Option<ResultsAction>,
    #[command(flatten)]
    target: Target,
    /// Authority private key file (for `publish`).
    #[arg(long, required_if_eq("action", "publish"))]
    key: Option<PathBuf>,
}

/// What `bboard results` does besides printing.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ResultsAction {
    /// Combine the posted decryption shares and post every missing result.
    Publish,
}

/// `bboard results [publish]`.
pub fn run_results(args: ResultsArgs) -> Result<()> {
    let target = &args.target;
    let Some(ResultsAction::Publish) = args.action else {
        return with_client(target, async |client| {
            let view = ElectionView::fetch(&client, &target.election, 0).await?;
            print!("{}", report::results_table(&view));
            Ok(())
        });
    };
    let key = read_private_key(args.key.as_ref().context("publish needs --key")?)?;
    with_client(target, async |client| {
        let posted = authority::publish_results(&client, &key, &target.election, 0).await?;
        if posted.is_empty() {
            println!("every result is already on the board");
        }
        for (append, result) in &posted {
            println!(
                "result of {}/{} posted: entry {}",
                result.precinct_id,
                result.count.as_ref().map_or("?", |c| c.contest_id.as_str()),
                append.receipt.leaf_index
            );
        }
        Ok(())
    })
}

/// Arguments of `bboard tally`.
#[derive(clap::Args)]
pub struct ReadArgs {
    #[command(flatten)]
    target: Target,
}

/// `bboard tally`: the encrypted tally's state and, once k trustees posted their
/// shares, the decrypted counts.
pub fn run_tally(args: ReadArgs) -> Result<()> {
    with_client(&args.target, async |client| {
        let view = ElectionView::fetch(&client, &args.target.election, 0).await?;
        print!("{}", report::tally_table(&view)?);
        Ok(())
    })
}

/// Arguments of `bboard verify-election`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: Target,
    /// Also fail (exit 2) when a precinct's paper protocol and electronic tally differ,
    /// or a published election lacks a paper protocol.
    #[arg(long)]
    strict: bool,
}

/// `bboard verify-election`: re-checks the whole election. Exit 2 when it does not
/// verify (or, with `--strict`, when paper and electronic counts differ); exit 1 for
/// the command's own errors, its trust settings checked first (in [`connect`]).
pub fn run_verify(args: VerifyArgs) -> Result<()> {
    let target = &args.target;
    with_client(target, async |client| {
        let report = report::verify(&client, &target.election, 0).await?;
        println!("{report}");
        if client.options().policy.is_none() {
            eprintln!(
                "warning: no --trusted-keys and --origin given: the entries were checked as \
                 one node served them, not against a checkpoint its peers cosigned"
            );
        }
        if !report.is_ok() {
            return Err(not_verified(format!(
                "the election {:?} does NOT verify: {} failure(s)",
                target.election,
                report.failures.len()
            ))
            .into());
        }
        if !report.paper_mismatches.is_empty() {
            if args.strict {
                println!("NOT VERIFIED under --strict: the paper and electronic counts differ");
                return Err(not_verified(format!(
                    "--strict: {} difference(s) between paper and electronic counts",
                    report.paper_mismatches.len()
                ))
                .into());
            }
            eprintln!(
                "warning: the paper and electronic counts differ (see above); \
                 `--strict` makes this a failure"
            );
        }
        Ok(())
    })
}
