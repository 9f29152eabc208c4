//! An operator's own misconfiguration, with real processes: a command given the wrong
//! origin or the wrong trusted keys posts nothing and says which setting is wrong,
//! and exits 1 (never "error" for an entry that landed); `audit` and `alarms` report
//! it as a configuration error (exit 1), not as findings nor as all clear.

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::time::Duration;

use bboard_testkit::key;
use bboard_testkit::process::*;

/// The `bboard` binary the nodes run.
const BIN: &str = env!("CARGO_BIN_EXE_bboard");

#[test]
fn a_wrong_origin_or_wrong_keys_is_a_configuration_error_and_posts_nothing() {
    serially(async {
        let (mut cluster, all) = Cluster::start_with_genesis(BIN, 3).await;
        let trusted = cluster.write_trusted_keys();
        let authority_file = cluster.write_key_file("authority.key", &key(1));
        let strangers = cluster.write_strangers_keys();
        let size = status(&all[0]).await.unwrap().tree_size;

        let append = |origin: &str, keys: &std::path::Path, note: &str| {
            vec![
                "append".to_owned(),
                "--endpoint".to_owned(),
                all[0].clone(),
                "--key".to_owned(),
                authority_file.display().to_string(),
                "--note".to_owned(),
                note.to_owned(),
                "--trusted-keys".to_owned(),
                keys.display().to_string(),
                "--origin".to_owned(),
                origin.to_owned(),
            ]
        };
        for (what, args) in [
            ("origin", append("wrong.example/board", &trusted, "one")),
            ("keys", append(bboard_testkit::ORIGIN, &strangers, "two")),
        ] {
            let (code, output) = cluster.run_cli_code(args, Duration::from_secs(60)).await;
            assert_eq!(code, Some(1), "wrong {what}: {output}");
            assert!(
                output.contains("configuration error")
                    && output.contains("Nothing was judged or posted"),
                "wrong {what}: {output}"
            );
            assert!(!output.contains("IS on the board"), "{output}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            status(&all[0]).await.unwrap().tree_size,
            size,
            "nothing landed"
        );

        // Readers that judge the nodes: a typo of their own is exit 1, naming the
        // setting, never findings (2) nor "all clear" (0).
        let state = cluster.dir.path().join("audit-state.json");
        let evidence = cluster.dir.path().join("evidence");
        let judge = |command: &str, origin: &str, keys: &std::path::Path| {
            let mut args = vec![command.to_owned()];
            for endpoint in &all {
                args.extend(["--endpoint".to_owned(), endpoint.clone()]);
            }
            args.extend([
                "--trusted-keys".to_owned(),
                keys.display().to_string(),
                "--origin".to_owned(),
                origin.to_owned(),
            ]);
            if command == "audit" {
                args.extend([
                    "--state".to_owned(),
                    state.display().to_string(),
                    "--evidence-dir".to_owned(),
                    evidence.display().to_string(),
                ]);
            }
            args
        };
        for command in ["audit", "alarms"] {
            for (setting, args) in [
                ("--origin", judge(command, "wrong.example/board", &trusted)),
                (
                    "--trusted-keys",
                    judge(command, bboard_testkit::ORIGIN, &strangers),
                ),
            ] {
                let (code, output) = cluster.run_cli_code(args, Duration::from_secs(60)).await;
                assert_eq!(code, Some(1), "{command} with a wrong {setting}: {output}");
                assert!(
                    output.contains("configuration error") && output.contains(setting),
                    "{command} with a wrong {setting}: {output}"
                );
            }
            let (code, output) = cluster
                .run_cli_code(
                    judge(command, bboard_testkit::ORIGIN, &trusted),
                    Duration::from_secs(60),
                )
                .await;
            assert_eq!(code, Some(0), "{command} configured right: {output}");
        }
        assert!(
            !evidence.exists(),
            "no evidence written for an operator's typo"
        );

        // Configured right, the same command posts.
        let (code, output) = cluster
            .run_cli_code(
                append(bboard_testkit::ORIGIN, &trusted, "three"),
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(code, Some(0), "{output}");
        assert!(
            output.contains(&format!("appended: entry {size}")),
            "{output}"
        );
        cluster.assert_alive();
    });
}

/// A node that accepts connections and never answers: every call to it times out.
fn silent_node() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

#[test]
fn an_unknown_outcome_keeps_the_envelope_and_its_resend_lands_once() {
    serially(async {
        let (mut cluster, all) = Cluster::start_with_genesis(BIN, 3).await;
        let trusted = cluster.write_trusted_keys();
        let authority_file = cluster.write_key_file("authority.key", &key(1));
        let trust = |endpoint: &str| {
            vec![
                "--endpoint".to_owned(),
                endpoint.to_owned(),
                "--trusted-keys".to_owned(),
                trusted.display().to_string(),
                "--origin".to_owned(),
                bboard_testkit::ORIGIN.to_owned(),
            ]
        };

        // No node confirms: the outcome is unknown, and the envelope is kept.
        let (_silent, silent) = silent_node();
        let mut args: Vec<String> = ["append", "--key", &authority_file.display().to_string()]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(["--note".to_owned(), "lost answer".to_owned()]);
        args.extend(trust(&silent));
        args.extend(["--request-timeout", "1", "--timeout", "3"].map(String::from));
        let (code, output) = cluster.run_cli_code(args, Duration::from_secs(60)).await;
        assert_eq!(code, Some(1), "{output}");
        assert!(
            output.contains("outcome is unknown")
                && output.contains("may or may not be on the board")
                && output.contains("bboard append --envelope")
                && output.contains("Do not run the original command again"),
            "{output}"
        );
        let kept: Vec<std::path::PathBuf> =
            std::fs::read_dir(cluster.dir.path().join("bboard-unsent"))
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
        assert_eq!(kept.len(), 1, "one envelope kept: {kept:?}");
        let kept = kept[0].display().to_string();
        assert!(output.contains(&kept), "the message names {kept}: {output}");

        // Re-sent as it is, it lands once; a second re-send is a duplicate.
        let size = status(&all[0]).await.unwrap().tree_size;
        let resend = || {
            let mut args = vec!["append".to_owned(), "--envelope".to_owned(), kept.clone()];
            args.extend(trust(&all[0]));
            args
        };
        let (code, output) = cluster
            .run_cli_code(resend(), Duration::from_secs(60))
            .await;
        assert_eq!(code, Some(0), "{output}");
        assert!(
            output.contains(&format!("appended: entry {size} ")) && output.contains("receipt OK"),
            "{output}"
        );
        let (code, output) = cluster
            .run_cli_code(resend(), Duration::from_secs(60))
            .await;
        assert_eq!(code, Some(0), "{output}");
        assert!(
            output.contains(&format!("appended: entry {size} ")) && output.contains("duplicate"),
            "{output}"
        );
        assert_eq!(status(&all[0]).await.unwrap().tree_size, size + 1);
        cluster.assert_alive();
    });
}
