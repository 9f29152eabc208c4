//! Membership by a majority of organisations, with real `bboard node run` processes
//! and the operators' CLI:
//!
//! - the leader refuses a membership change no authorisation on the board covers;
//! - the board refuses an authorisation signed by one organisation;
//! - the same change signed by a majority is applied, and it authorises that change
//!   only: another one is refused.
//!
//! That the followers refuse such a change even when the leader proposes it is shown
//! with a leader that skips its own check (`tamper.rs`, test-only fault).

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::time::Duration;

use bboard_testkit::process::*;
use bboard_testkit::{key, tls_identity};

/// The `bboard` binary the nodes run.
const BIN: &str = env!("CARGO_BIN_EXE_bboard");

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_membership_change_needs_a_majority_of_organisations() {
    serially(async {
        // Four organisations: a majority is three.
        let mut cluster = Cluster::configure(BIN, 4, &[1, 2, 3], fast_raft());
        for id in 1..=4 {
            cluster.node(id).start();
        }
        let voters = cluster.endpoints(&[1, 2, 3]);
        let leader = voters[find_leader(&voters, Duration::from_secs(30)).await].clone();
        cluster.genesis_and_keys(&voters, &key(1), &[]).await;
        let add_node_4 = args(&[
            "add-learner",
            "--id",
            "4",
            "--address",
            &cluster.endpoints(&[4])[0],
            "--peer-address",
            &cluster.node(4).peer_address.clone(),
            "--tls-fingerprint",
            &tls_identity(4).fingerprint().to_string(),
        ]);
        let admin = |command: Vec<String>| {
            let mut all = args(&[
                "admin",
                "--endpoint",
                &leader,
                "--key",
                &cluster.admin_key_file.display().to_string(),
                "--timeout-secs",
                "20",
            ]);
            all.extend(command);
            all
        };

        // Asked directly, with no authorisation on the board: refused by the leader.
        let (ok, output) = cluster
            .run_cli(admin(add_node_4.clone()), Duration::from_secs(60))
            .await;
        assert!(!ok, "{output}");
        assert!(
            output.contains("FailedPrecondition") && output.contains("no membership authorisation"),
            "{output}"
        );

        // Signed by one organisation: the board refuses the authorisation.
        let one = cluster.authorise_by(&add_node_4, 1).await;
        let (ok, output) = cluster
            .run_cli(admin(args(&["submit", &one])), Duration::from_secs(60))
            .await;
        assert!(!ok, "{output}");
        assert!(
            output.contains("the board refused")
                && output.contains("signed for 1 of 4 organisations"),
            "{output}"
        );
        let outsider = status(&cluster.endpoints(&[4])[0]).await.unwrap();
        assert_eq!(
            outsider.tree_size, 0,
            "node 4 replicates nothing: {outsider:?}"
        );

        // Signed by three of four: applied, node 4 becomes a learner.
        let majority = cluster.authorise_by(&add_node_4, 3).await;
        let (ok, output) = cluster
            .run_cli(
                admin(args(&["submit", &majority])),
                Duration::from_secs(120),
            )
            .await;
        assert!(ok, "{output}");
        assert!(output.contains("added as a learner"), "{output}");
        let size = status(&leader).await.unwrap().tree_size;
        wait_for_size(&cluster.endpoints(&[4]), size, Duration::from_secs(30)).await;

        // That authorisation covers that change only: promoting node 4 needs its own.
        let (ok, output) = cluster
            .run_cli(
                admin(args(&["change-membership", "--voters", "1,2,3,4"])),
                Duration::from_secs(60),
            )
            .await;
        assert!(!ok, "{output}");
        assert!(output.contains("for another change"), "{output}");
        let promote = cluster
            .authorise(&args(&["change-membership", "--voters", "1,2,3,4"]))
            .await;
        let (ok, output) = cluster
            .run_cli(admin(args(&["submit", &promote])), Duration::from_secs(120))
            .await;
        assert!(ok, "{output}");
        assert!(output.contains("membership changed"), "{output}");
        cluster.assert_alive();
    });
}
