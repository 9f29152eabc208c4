//! The node's long-lived measurements: latency and size histograms and counters by
//! reason, updated on the append path and rendered by `/metrics` (see
//! [`crate::http`]) together with gauges read fresh at each scrape.
//!
//! Each node owns its own set (no global recorder), so several nodes can share a
//! process (`bboard devcluster`, tests). Every update is O(1) and lock-free or a short
//! lock; the label sets are fixed (rejection codes, peer ids), so no client can grow them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the rejected-appends counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// The gRPC status the submitter got (`invalid_argument`, `permission_denied`,
    /// `failed_precondition`).
    pub code: &'static str,
}

/// How many applied sizes are remembered to time their way to a final checkpoint.
const APPLIED_REMEMBERED: usize = 256;

/// The histograms and counters of one node.
#[derive(Debug)]
pub struct NodeMetrics {
    /// Seconds from an append's arrival at this node to its receipt (or rejection).
    pub append_seconds: Histogram,
    /// Seconds from proposing a batch to Raft to its being applied on the leader.
    pub commit_seconds: Histogram,
    /// Entries per proposed batch.
    pub batch_entries: Histogram,
    /// Seconds from this node applying a size to its checkpoint being final (k-of-n).
    pub cosign_seconds: Histogram,
    /// Appends refused by the board rules, by the status code the submitter got.
    pub rejected: Family<RejectionLabels, Counter>,
    applied_at: Mutex<VecDeque<(u64, Instant)>>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            // 0.5 ms .. ~33 s.
            append_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 17)),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 17)),
            // 1 .. 4096 entries.
            batch_entries: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            cosign_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 17)),
            rejected: Family::default(),
            applied_at: Mutex::new(VecDeque::new()),
        }
    }
}

impl NodeMetrics {
    /// Counts an append refused by the rules with `code`.
    pub fn reject(&self, code: tonic::Code) {
        let code = match code {
            tonic::Code::InvalidArgument => "invalid_argument",
            tonic::Code::PermissionDenied => "permission_denied",
            tonic::Code::FailedPrecondition => "failed_precondition",
            _ => "other",
        };
        self.rejected.get_or_create(&RejectionLabels { code }).inc();
    }

    /// Notes that this node has applied `size` now.
    pub fn applied(&self, size: u64) {
        let Ok(mut applied) = self.applied_at.lock() else {
            return;
        };
        if applied.back().is_none_or(|(last, _)| *last < size) {
            applied.push_back((size, Instant::now()));
        }
        while applied.len() > APPLIED_REMEMBERED {
            applied.pop_front();
        }
    }

    /// Notes that `size` became final now: observes the time since this node was
    /// first seen to have applied it (or a larger size).
    pub fn finalised(&self, size: u64) {
        let Ok(mut applied) = self.applied_at.lock() else {
            return;
        };
        if let Some((_, at)) = applied.iter().find(|(applied, _)| *applied >= size) {
            self.cosign_seconds.observe(at.elapsed().as_secs_f64());
        }
        while applied.front().is_some_and(|(applied, _)| *applied <= size) {
            applied.pop_front();
        }
    }

    /// Adds these metrics to a scrape's `registry` (cheap: the registry shares them).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "append_seconds",
            "Seconds from an append's arrival at this node to its receipt or rejection",
            self.append_seconds.clone(),
        );
        registry.register(
            "commit_seconds",
            "Seconds from proposing a batch to Raft to its being applied on the leader",
            self.commit_seconds.clone(),
        );
        registry.register(
            "batch_entries",
            "Entries per batch the leader proposed",
            self.batch_entries.clone(),
        );
        registry.register(
            "cosign_seconds",
            "Seconds from this node applying a size to its checkpoint being final (k-of-n)",
            self.cosign_seconds.clone(),
        );
        registry.register(
            "appends_rejected",
            "Appends refused by the board rules, by the status code the submitter got",
            self.rejected.clone(),
        );
    }
}

/// Rewrites OpenMetrics text (what `prometheus_client` encodes) as the Prometheus text
/// format 0.0.4 that `promtool check metrics` and plain scrapers read: counter families
/// carry the `_total` name of their sample, and there is no `# EOF`. No crate in the
/// dependency tree encodes 0.0.4, and the difference is only these lines.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_sample_name_and_the_rest_is_unchanged() {
        let metrics = NodeMetrics::default();
        metrics.reject(tonic::Code::PermissionDenied);
        metrics.append_seconds.observe(0.003);
        let mut registry = Registry::with_prefix("bboard");
        metrics.register(&mut registry);
        let mut openmetrics = String::new();
        prometheus_client::encoding::text::encode(&mut openmetrics, &registry).unwrap();
        let text = to_prometheus_text(&openmetrics);
        assert!(
            text.contains("# TYPE bboard_appends_rejected_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP bboard_appends_rejected_total Appends"),
            "{text}"
        );
        assert!(
            text.contains("bboard_appends_rejected_total{code=\"permission_denied\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE bboard_append_seconds histogram\n"),
            "{text}"
        );
        assert!(text.contains("bboard_append_seconds_count 1\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn time_to_final_is_observed_once_per_final_size() {
        let metrics = NodeMetrics::default();
        metrics.applied(5);
        metrics.applied(9);
        metrics.finalised(7); // timed from size 9's apply, the first seen covering 7
        metrics.finalised(9);
        metrics.finalised(20); // never seen applied here: not timed
        metrics.applied(21);
        metrics.finalised(21);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("cosign_seconds_count 3\n"), "{text}");
    }
}
