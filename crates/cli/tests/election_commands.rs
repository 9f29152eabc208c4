//! A whole election run with the `bboard` commands against real node processes, as
//! an operator types them. Before each posting command runs as configured, it runs
//! with a wrong `--origin` and with trusted keys of another board: each time it must
//! exit 1 naming the setting, and the board must not grow. `verify-election` must then
//! verify, warn about a paper/electronic difference, and fail on it under `--strict`.

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bboard_election::trustee::{self, TrusteeFiles};
use bboard_testkit::key;
use bboard_testkit::process::*;

/// The `bboard` binary the nodes run.
const BIN: &str = env!("CARGO_BIN_EXE_bboard");

const ELECTION: &str = "e1";
const TRUSTEES: [&str; 3] = ["CEC", "Observers", "PartyA"];
const LIMIT: Duration = Duration::from_secs(120);

/// The cluster, and the three trust settings the commands are given.
struct Operator<'a> {
    cluster: &'a Cluster,
    endpoint: String,
    trusted: PathBuf,
    strangers: PathBuf,
}

impl Operator<'_> {
    /// `command` with the endpoint, the election (unless it is `append`) and the
    /// given trust settings.
    fn args(&self, command: &[&str], origin: &str, keys: &Path) -> Vec<String> {
        let mut args: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["--endpoint".to_owned(), self.endpoint.clone()]);
        if command[0] != "append" {
            args.extend(["--election".to_owned(), ELECTION.to_owned()]);
        }
        args.extend([
            "--trusted-keys".to_owned(),
            keys.display().to_string(),
            "--origin".to_owned(),
            origin.to_owned(),
        ]);
        args
    }

    async fn size(&self) -> u64 {
        status(&self.endpoint).await.unwrap().tree_size
    }

    /// Runs `command` configured right; returns its exit code and output.
    async fn run_code(&self, command: &[&str]) -> (Option<i32>, String) {
        let args = self.args(command, bboard_testkit::ORIGIN, &self.trusted);
        self.cluster.run_cli_code(args, LIMIT).await
    }

    /// Runs `command` configured right; it must succeed.
    async fn run(&self, command: &[&str]) -> String {
        let (code, output) = self.run_code(command).await;
        assert_eq!(code, Some(0), "{output}");
        output
    }

    /// Runs `command` with a wrong origin, then with wrong trusted keys: each must be
    /// a configuration error naming the setting, posting nothing. Then runs it right.
    async fn refused_then_run(&self, command: &[&str]) -> String {
        let before = self.size().await;
        for (setting, origin, keys) in [
            ("--origin", "wrong.example/board", self.trusted.as_path()),
            (
                "--trusted-keys",
                bboard_testkit::ORIGIN,
                self.strangers.as_path(),
            ),
        ] {
            let args = self.args(command, origin, keys);
            let (code, output) = self.cluster.run_cli_code(args, LIMIT).await;
            assert_eq!(code, Some(1), "a wrong {setting}: {output}");
            assert!(
                output.contains("configuration error")
                    && output.contains(setting)
                    && output.contains("Nothing was judged or posted"),
                "a wrong {setting}: {output}"
            );
            assert!(!output.contains("IS on the board"), "{output}");
        }
        // Give an entry that was wrongly posted time to show.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(self.size().await, before, "{command:?} posted nothing");
        self.run(command).await
    }
}

#[test]
fn every_election_command_checks_its_trust_settings_before_it_posts() {
    serially(async {
        let (mut cluster, all) = Cluster::start_with_genesis(BIN, 3).await;
        let dir = cluster.dir.path().to_path_buf();
        let operator = Operator {
            cluster: &cluster,
            endpoint: all[0].clone(),
            trusted: cluster.write_trusted_keys(),
            strangers: cluster.write_strangers_keys(),
        };
        let key_file = |name: &str, seed: u8| {
            let path = cluster.write_key_file(&format!("{name}.key"), &key(seed));
            path.display().to_string()
        };
        let authority = key_file("authority", 1);
        let terminal = key_file("terminal", 20);
        let commission = key_file("commission", 21);

        // The manifest, with each trustee's table as `trustee keygen` prints it.
        let mut manifest = String::from(
            "title = \"Test\"\nthreshold = 2\n[[contests]]\nid = \"mayor\"\ntitle = \"Mayor\"\n\
             options = [\"Ann\", \"Bob\", \"Cyd\"]\nmin_selections = 1\nmax_selections = 1\n\
             [[precincts]]\nid = \"p1\"\nname = \"Town hall\"\n",
        );
        let mut trustee_dirs = Vec::new();
        for name in TRUSTEES {
            let files = TrusteeFiles {
                dir: dir.join(name),
            };
            let spec = trustee::keygen(&files, name, &mut rand_core::OsRng).unwrap();
            manifest.push_str(&spec.to_manifest_toml());
            trustee_dirs.push(files.dir.display().to_string());
        }
        let manifest_file = dir.join("manifest.toml");
        std::fs::write(&manifest_file, manifest).unwrap();
        let manifest_file = manifest_file.display().to_string();

        // Set-up by the authority.
        let a = authority.as_str();
        operator
            .refused_then_run(&[
                "election",
                "create",
                "--key",
                a,
                "--manifest",
                &manifest_file,
            ])
            .await;
        for (i, trustee_dir) in trustee_dirs.iter().enumerate() {
            let signing = format!("{trustee_dir}/signing.key");
            let register = [
                "election",
                "register",
                "--key",
                a,
                "--role",
                "trustee",
                "--subject-key",
                &signing,
            ];
            if i == 0 {
                operator.refused_then_run(&register).await;
            } else {
                operator.run(&register).await;
            }
        }
        for (role, subject) in [("terminal", &terminal), ("commission", &commission)] {
            operator
                .run(&[
                    "election",
                    "register",
                    "--key",
                    a,
                    "--role",
                    role,
                    "--subject-key",
                    subject,
                    "--precinct",
                    "p1",
                ])
                .await;
        }
        operator
            .refused_then_run(&["election", "phase", "--key", a, "key-ceremony"])
            .await;

        // The key ceremony: every trustee finishes a round before the next starts.
        for round in ["commit", "reveal", "share", "finish"] {
            for (i, trustee_dir) in trustee_dirs.iter().enumerate() {
                let step = ["trustee", round, "--dir", trustee_dir.as_str()];
                if i == 0 {
                    operator.refused_then_run(&step).await;
                } else {
                    operator.run(&step).await;
                }
            }
        }
        operator
            .refused_then_run(&["election", "joint-key", "--key", a])
            .await;
        operator
            .run(&["election", "phase", "--key", a, "open"])
            .await;

        // Voting: three ballots and one spoiled.
        let t = terminal.as_str();
        let cast = operator
            .refused_then_run(&["terminal", "vote", "--key", t, "--choice", "mayor=Ann"])
            .await;
        assert!(cast.contains("ballot cast: entry"), "{cast}");
        for choice in ["mayor=Ann", "mayor=Bob"] {
            operator
                .run(&["terminal", "vote", "--key", t, "--choice", choice])
                .await;
        }
        let spoiled = operator
            .refused_then_run(&["terminal", "spoil", "--key", t, "--choice", "mayor=Cyd"])
            .await;
        assert!(spoiled.contains("mayor: Cyd"), "{spoiled}");
        operator
            .run(&["election", "phase", "--key", a, "closed"])
            .await;

        // The paper protocol must give its ballot counts; this one finds one paper
        // ballot more in the box than the terminal counted.
        let (code, output) = operator
            .run_code(&[
                "protocol",
                "post",
                "--key",
                &commission,
                "--count",
                "mayor=2,1,0",
            ])
            .await;
        assert_eq!(
            code,
            Some(1),
            "missing paper counts are a usage error: {output}"
        );
        assert!(output.contains("--ballots-issued"), "{output}");
        operator
            .refused_then_run(&[
                "protocol",
                "post",
                "--key",
                &commission,
                "--count",
                "mayor=2,1,0",
                "--ballots-issued",
                "4",
                "--ballots-cast",
                "4",
            ])
            .await;

        // The tally: k = 2 of the 3 trustees decrypt.
        operator
            .run(&["election", "phase", "--key", a, "tallying"])
            .await;
        operator
            .refused_then_run(&["trustee", "decrypt", "--dir", &trustee_dirs[0]])
            .await;
        operator
            .run(&["trustee", "decrypt", "--dir", &trustee_dirs[1]])
            .await;
        let tally = operator.run(&["tally"]).await;
        assert!(
            tally.contains("valid decryption shares from CEC (#0), Observers (#1)"),
            "trustees are named: {tally}"
        );
        operator
            .refused_then_run(&["results", "publish", "--key", a])
            .await;
        operator
            .run(&["election", "phase", "--key", a, "published"])
            .await;

        // The check: verified, with the paper difference flagged; --strict fails on it.
        let verified = operator.run(&["verify-election"]).await;
        assert!(
            verified.contains("VERIFIED") && verified.contains("WARNING: 1 difference"),
            "{verified}"
        );
        assert!(
            verified.contains("4 paper ballots cast") && verified.contains("counts 3 ballots"),
            "{verified}"
        );
        let (code, strict) = operator.run_code(&["verify-election", "--strict"]).await;
        assert_eq!(code, Some(2), "{strict}");
        assert!(strict.contains("--strict"), "{strict}");
        let wrong = operator.args(
            &["verify-election"],
            "wrong.example/board",
            &operator.trusted,
        );
        let (code, output) = cluster.run_cli_code(wrong, LIMIT).await;
        assert_eq!(
            code,
            Some(1),
            "a wrong origin is the verifier's own error: {output}"
        );
        cluster.assert_alive();
    });
}
