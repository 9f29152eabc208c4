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
        let mut cluster = Cluster::configure(BIN, 3, &[1, 2, 3], fast_raft());
        for id in 1..=3 {
            cluster.node(id).start();
        }
        let all = cluster.endpoints(&[1, 2, 3]);
        find_leader(&all, Duration::from_secs(30)).await;
        let authority = key(1);
        cluster.genesis_and_keys(&all, &authority, &[]).await;
        let trusted = cluster.write_trusted_keys();
        let authority_file = cluster.dir.path().join("authority.key");
        std::fs::write(&authority_file, hex::encode(authority.to_bytes())).unwrap();
        let strangers = cluster.dir.path().join("strangers.txt");
        let stranger = bboard_core::checkpoint::NoteSigner::new("stranger", key(77)).unwrap();
        std::fs::write(&strangers, format!("{}\n", stranger.verifier())).unwrap();
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
                output.contains("nothing was posted")
                    && output.contains("check the origin and the trusted keys"),
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
