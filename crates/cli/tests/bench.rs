//! `bboard bench` as a user runs it: it starts its own 3-node cluster, drives it, and
//! reports what it measured, for both workloads.

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_bboard");

fn bench(args: &[&str]) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("bench")
        .args(args)
        .args(["--json", "--warmup", "0", "--duration", "60", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bboard bench {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn appends_and_proofs_are_measured_to_a_verified_answer() {
    let appends = bench(&["--clients", "4", "--count", "40", "--value-size", "100"]);
    assert_eq!(appends["workload"], "appends");
    assert_eq!(appends["completed"], 40, "{appends}");
    assert_eq!(appends["errors"], serde_json::json!({}), "{appends}");
    assert!(appends["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(appends["verified_against"]
        .as_str()
        .unwrap()
        .starts_with("2 of 3 node signatures"));

    let proofs = bench(&[
        "--workload",
        "proofs",
        "--prefill",
        "30",
        "--clients",
        "3",
        "--count",
        "60",
    ]);
    assert_eq!(proofs["workload"], "inclusion proofs");
    assert_eq!(proofs["completed"], 60, "{proofs}");
    assert_eq!(proofs["errors"], serde_json::json!({}), "{proofs}");
}

#[test]
fn scale_measures_the_board_at_each_size_after_a_restart() {
    let report = bench(&["--workload", "scale", "--sizes", "40,120", "--clients", "4"]);
    assert_eq!(report["workload"], "scale");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    for (row, size) in rows.iter().zip([40, 120]) {
        assert!(row["entries"].as_u64().unwrap() >= size, "{row}");
        // A real store holds at least the leaves it was given.
        assert!(row["disk_to_leaf_ratio"].as_f64().unwrap() >= 1.0, "{row}");
        assert!(row["restart_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(
            row["proof_latency_ms"]["p99"].as_f64().unwrap() > 0.0,
            "{row}"
        );
    }
}

#[test]
fn bad_settings_are_refused_before_anything_starts() {
    for args in [
        &["--clients", "0"][..],
        &["--workload", "proofs", "--prefill", "0"][..],
        &["--count", "0"][..],
        &["--workload", "scale", "--sizes", "1000,100"][..],
        &["--workload", "scale", "--endpoint", "127.0.0.1:1"][..],
    ] {
        let output = Command::new(BIN).arg("bench").args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(!String::from_utf8_lossy(&output.stderr).is_empty());
    }
}
