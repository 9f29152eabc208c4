//! `bboard alarms`: the censorship alarms of every node given, each checked.
//!
//! A node raises an alarm when an entry it forwarded to the leader is not on the board
//! by its inclusion deadline (docs/PROTOCOL.md §8). This command lists them
//! (`ListAlarms`), verifies each with the board's trusted node keys, and with
//! `--watch` follows the nodes' `Watch` streams and prints alarms as they are raised
//! and cleared, until Ctrl-C.
//!
//! Exit codes (listing): 0 when no node has an active alarm and everything verified;
//! [`ALARMS_EXIT_ACTIVE`] (2) when at least one valid alarm is active (an entry is being
//! censored, or was not included in time); [`ALARMS_EXIT_UNCHECKED`] (3) when no valid
//! alarm is active but a node could not be asked or served an alarm that does not
//! verify; 1 on any other error. `--watch` exits 0 on Ctrl-C.

use std::time::Duration;

use anyhow::{Context, Result};
use bboard_client::censorship::{check_alarms, list_alarms, CheckedAlarm};
use bboard_client::{BoardClient, BoardEvent, ClientOptions, StreamExt};
use bboard_core::alarm::verify_alarm;
use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::pb;

use crate::audit_cmds::{ExitWith, PolicyArgs};

/// Exit code when a valid alarm is active.
pub const ALARMS_EXIT_ACTIVE: u8 = 2;
/// Exit code when nothing is active but something could not be checked.
pub const ALARMS_EXIT_UNCHECKED: u8 = 3;

/// Arguments of `bboard alarms`.
#[derive(clap::Args, Debug)]
pub struct AlarmsArgs {
    /// Board node address (host:port); repeat for every node to ask.
    #[arg(long = "endpoint", required = true, value_name = "HOST:PORT")]
    endpoints: Vec<String>,
    /// Also list alarms that cleared (the entry landed after all).
    #[arg(long)]
    all: bool,
    /// Follow the nodes' Watch streams and print alarms as they are raised or cleared.
    #[arg(long)]
    watch: bool,
    /// Longest wait for one node, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    request_timeout: u64,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// One line for an alarm record: who raised it, about what, and its state.
fn describe(endpoint: &str, record: &pb::AlarmRecord, policy: &CosignaturePolicy) -> String {
    let state = if record.cleared {
        format!(
            "cleared (entry landed at index {}, noticed at {} ms)",
            record.cleared_leaf_index, record.cleared_unix_ms
        )
    } else {
        "ACTIVE".to_string()
    };
    let Some(alarm) = &record.alarm else {
        return format!("{endpoint}: INVALID record without an alarm [{state}]");
    };
    match verify_alarm(alarm, policy) {
        Err(e) => format!("{endpoint}: INVALID alarm ({e}) [{state}]"),
        Ok(check) => {
            let s = &check.statement;
            format!(
                "{endpoint}: {state}: alarm by {} (signature OK)\n  envelope {} signed by {}\n  received {} ms, deadline {} ms, raised {} ms; board size then {}\n  forwarded to leader {} ({})",
                check.raised_by.name(),
                check.envelope.id(),
                hex::encode(check.envelope.signer().as_bytes()),
                s.received_unix_ms,
                s.deadline_unix_ms,
                s.raised_unix_ms,
                s.board_size,
                s.forwarded_to_node,
                if s.forwarded_to_address.is_empty() {
                    "address unknown"
                } else {
                    &s.forwarded_to_address
                },
            )
        }
    }
}

fn options(args: &AlarmsArgs, policy: &CosignaturePolicy) -> ClientOptions {
    ClientOptions {
        per_request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        total_timeout: Duration::from_secs(args.request_timeout.max(1)),
        policy: Some(policy.clone()),
        ..ClientOptions::default()
    }
}

/// `bboard alarms`.
pub fn run(args: AlarmsArgs) -> Result<()> {
    let policy = args.policy.policy()?;
    let runtime = crate::board_cmds::runtime()?;
    runtime.block_on(async {
        crate::preflight::check_settings(&args.endpoints, &policy).await?;
        let client = BoardClient::connect(args.endpoints.clone(), options(&args, &policy))
            .await
            .context("connecting to the board")?;
        if args.watch {
            return watch(&args, &policy).await;
        }
        let served = list_alarms(&client, &args.endpoints, args.all).await;
        let mut unchecked = 0usize;
        for node in &served {
            match &node.alarms {
                Err(reason) => {
                    unchecked += 1;
                    println!("{}: could not list alarms: {reason}", node.endpoint);
                }
                Ok(records) if records.is_empty() => println!("{}: no alarms", node.endpoint),
                Ok(records) => {
                    for record in records {
                        println!("{}", describe(&node.endpoint, record, &policy));
                    }
                }
            }
        }
        let checked: Vec<CheckedAlarm> = check_alarms(&policy, &served);
        let invalid = checked.iter().filter(|a| a.check.is_err()).count();
        let active = checked
            .iter()
            .filter(|a| a.check.is_ok() && !a.record.cleared)
            .count();
        println!(
            "{} alarm(s): {active} active and valid, {invalid} invalid",
            checked.len()
        );
        if active > 0 {
            return Err(ExitWith {
                code: ALARMS_EXIT_ACTIVE,
                message: format!("{active} active censorship alarm(s)"),
            }
            .into());
        }
        if invalid > 0 || unchecked > 0 {
            return Err(ExitWith {
                code: ALARMS_EXIT_UNCHECKED,
                message: format!(
                    "{invalid} alarm(s) do not verify, {unchecked} node(s) could not be asked"
                ),
            }
            .into());
        }
        Ok(())
    })
}

/// Follows every endpoint's Watch stream (reconnecting when it ends) until Ctrl-C.
async fn watch(args: &AlarmsArgs, policy: &CosignaturePolicy) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for endpoint in &args.endpoints {
        let client = BoardClient::connect(vec![endpoint.clone()], options(args, policy))
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        let (endpoint, policy) = (endpoint.clone(), policy.clone());
        tasks.spawn(async move {
            loop {
                // From beyond the end: no entries, only new checkpoints and alarms.
                match client.watch(u64::MAX).await {
                    Ok(mut stream) => {
                        println!("{endpoint}: watching");
                        while let Some(event) = stream.next().await {
                            match event {
                                Ok(BoardEvent::Alarm(record)) => {
                                    println!("{}", describe(&endpoint, &record, &policy));
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    println!("{endpoint}: stream error: {e}");
                                    break;
                                }
                            }
                        }
                        println!("{endpoint}: stream ended; reconnecting");
                    }
                    Err(e) => println!("{endpoint}: cannot watch: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tasks.shutdown().await;
    Ok(())
}
