//! Where a replica is in the change stream: the last sequence it applied, the head it knows of,
//! its lag, whether it should take traffic, and the apply latency — shared by the applier, the
//! writer, the health reporter and the metrics endpoint.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Upper bounds of the apply latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// A cumulative latency histogram in Prometheus's shape.
#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn record(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

#[derive(Default)]
struct Times {
    /// When the last change was applied.
    last_apply: Option<Instant>,
    /// Since when the replica has been behind the head (`None`: caught up).
    behind_since: Option<Instant>,
    /// Set once the replica reached the head it saw at start.
    caught_up: bool,
    /// Why the replica stopped applying (it then reports not ready until restarted).
    stalled: Option<String>,
    apply: Histogram,
    propagation: Histogram,
    snapshots_published: u64,
    snapshot_sequence: u64,
    /// The sequence of the snapshot this replica started from, if it did.
    restored: Option<u64>,
}

/// A replica's position in the stream and its readiness.
pub struct Progress {
    applied: AtomicU64,
    head: AtomicU64,
    head_at_start: u64,
    max_lag: u64,
    times: Mutex<Times>,
    ready: watch::Sender<bool>,
    applied_watch: watch::Sender<u64>,
}

impl Progress {
    /// A replica that has applied up to `applied` and saw the stream's last sequence at
    /// `head_at_start` when it started; it reports ready once it has applied that far, and then
    /// as long as it is at most `max_lag` sequences behind the head.
    pub fn new(applied: u64, head_at_start: u64, max_lag: u64) -> Progress {
        let (ready, _) = watch::channel(false);
        let (applied_watch, _) = watch::channel(applied);
        let progress = Progress {
            applied: AtomicU64::new(applied),
            head: AtomicU64::new(head_at_start.max(applied)),
            head_at_start,
            max_lag,
            times: Mutex::new(Times::default()),
            ready,
            applied_watch,
        };
        progress.update();
        progress
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        // Plain numbers: meaningful after a panic elsewhere.
        self.times.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last sequence applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The highest sequence known to be in the stream.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Sequences the replica is behind the head.
    pub fn lag(&self) -> u64 {
        self.head().saturating_sub(self.applied())
    }

    /// Whether the replica should take traffic: caught up with the head it saw at start, not
    /// stalled, and at most `max_lag` behind.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// A receiver that sees every change of [`Progress::is_ready`].
    pub fn watch_ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Wait until the replica has applied `seq` (for benchmarks and tests).
    pub async fn wait_applied(&self, seq: u64) {
        let mut rx = self.applied_watch.subscribe();
        let _ = rx.wait_for(|a| *a >= seq).await;
    }

    /// Why the replica stopped applying, if it did.
    pub fn stalled(&self) -> Option<String> {
        self.times().stalled.clone()
    }

    /// Stop for good (until restart): the replica can no longer apply the stream.
    pub fn stall(&self, reason: String) {
        tracing::error!(reason = %reason, "this replica stopped applying the change stream; it reports not ready until restarted");
        self.times().stalled = Some(reason);
        self.update();
    }

    /// A sequence exists in the stream (seen in a message, an acknowledgement or the stream's
    /// state).
    pub fn saw_head(&self, seq: u64) {
        self.head.fetch_max(seq, Ordering::AcqRel);
        self.update();
    }

    /// The stream itself reported `last` as its last sequence (its state, asked of its leader):
    /// the head becomes `last`, or the applied sequence if that is higher, even when that lowers
    /// it. Returns the head it replaced when it was lowered past what this replica applied.
    ///
    /// Why not [`Progress::saw_head`]'s maximum: around a NATS leader change, a publish
    /// acknowledgement or a consumer's pending count has named a sequence the stream does not
    /// hold (the cluster test saw 297 while the stream ended at 296). Kept as a maximum, such a
    /// sequence leaves the replica one change "behind" for good: lag 1, its consumer recreated
    /// every two seconds, never converged. The stream's own state corrects it.
    pub fn stream_head(&self, last: u64) -> Option<u64> {
        let head = last.max(self.applied());
        let before = self.head.swap(head, Ordering::AcqRel);
        self.update();
        (before > head).then_some(before)
    }

    /// Change `seq` was applied in `took`, `propagation` after it was published.
    pub fn applied_one(&self, seq: u64, took: Duration, propagation: Option<Duration>) {
        self.applied.fetch_max(seq, Ordering::AcqRel);
        self.head.fetch_max(seq, Ordering::AcqRel);
        {
            let mut t = self.times();
            t.last_apply = Some(Instant::now());
            t.apply.record(took);
            if let Some(p) = propagation {
                t.propagation.record(p);
            }
        }
        self.update();
        self.applied_watch.send_replace(self.applied());
    }

    /// This replica started from a snapshot covering up to `seq`.
    pub fn restored_from(&self, seq: u64) {
        self.times().restored = Some(seq);
    }

    /// A snapshot covering up to `seq` was published by this replica.
    pub fn snapshot_published(&self, seq: u64) {
        let mut t = self.times();
        t.snapshots_published += 1;
        t.snapshot_sequence = seq;
    }

    fn update(&self) {
        let (applied, head) = (self.applied(), self.head());
        let ready = {
            let mut t = self.times();
            if head > applied {
                t.behind_since.get_or_insert_with(Instant::now);
            } else {
                t.behind_since = None;
            }
            if applied >= self.head_at_start {
                t.caught_up = true;
            }
            // `head` and `applied` are read apart: an apply can land between the two reads and
            // put `applied` past the `head` read first.
            t.stalled.is_none() && t.caught_up && head.saturating_sub(applied) <= self.max_lag
        };
        self.ready.send_if_modified(|r| {
            let changed = *r != ready;
            *r = ready;
            changed
        });
    }

    /// Append this replica's metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let (applied, head) = (self.applied(), self.head());
        let t = self.times();
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            out,
            "vigie_cluster_applied_sequence",
            "Stream sequence of the last change applied by this replica.",
            applied as f64,
        );
        gauge(
            out,
            "vigie_cluster_head_sequence",
            "Highest stream sequence this replica knows of.",
            head as f64,
        );
        gauge(
            out,
            "vigie_cluster_lag_sequences",
            "Changes in the stream this replica has not applied yet.",
            head.saturating_sub(applied) as f64,
        );
        gauge(
            out,
            "vigie_cluster_lag_seconds",
            "How long this replica has been behind the head (0 when caught up).",
            t.behind_since.map_or(0.0, |s| s.elapsed().as_secs_f64()),
        );
        gauge(
            out,
            "vigie_cluster_seconds_since_last_apply",
            "Seconds since this replica last applied a change (-1: none since start).",
            t.last_apply.map_or(-1.0, |s| s.elapsed().as_secs_f64()),
        );
        gauge(
            out,
            "vigie_cluster_ready",
            "1 when this replica takes traffic (caught up, not stalled, lag within bounds).",
            if self.is_ready() { 1.0 } else { 0.0 },
        );
        gauge(
            out,
            "vigie_cluster_stalled",
            "1 when this replica stopped applying the stream (see its log; restart it).",
            if t.stalled.is_some() { 1.0 } else { 0.0 },
        );
        gauge(
            out,
            "vigie_cluster_snapshot_sequence",
            "Sequence covered by the last snapshot this replica published (0: none).",
            t.snapshot_sequence as f64,
        );
        if let Some(seq) = t.restored {
            gauge(
                out,
                "vigie_cluster_restored_sequence",
                "Sequence covered by the snapshot this replica started from (absent: it did not).",
                seq as f64,
            );
        }
        let _ = writeln!(
            out,
            "# HELP vigie_cluster_snapshots_published_total Snapshots this replica published.\n# TYPE vigie_cluster_snapshots_published_total counter\nvigie_cluster_snapshots_published_total {}",
            t.snapshots_published
        );
        t.apply.render(
            out,
            "vigie_cluster_apply_seconds",
            "Time to apply one change to the store and the index.",
        );
        t.propagation.render(
            out,
            "vigie_cluster_propagation_seconds",
            "From a change's publication (NATS server clock) to its apply here.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_caught_up_with_the_start_head_then_while_the_lag_is_small() {
        let p = Progress::new(3, 10, 5);
        assert!(!p.is_ready(), "behind the head seen at start");
        for seq in 4..10 {
            p.applied_one(seq, Duration::from_micros(10), None);
            assert!(!p.is_ready(), "at {seq}");
        }
        p.applied_one(10, Duration::from_micros(10), None);
        assert!(p.is_ready());
        p.saw_head(15);
        assert!(p.is_ready(), "5 behind is within the bound");
        p.saw_head(16);
        assert!(!p.is_ready(), "6 behind is not");
        assert_eq!(p.lag(), 6);
        p.applied_one(16, Duration::from_micros(10), None);
        assert!(p.is_ready());
        p.stall("gap".into());
        assert!(!p.is_ready());
        let mut text = String::new();
        p.render(&mut text);
        assert!(text.contains("vigie_cluster_lag_sequences 0"), "{text}");
        assert!(text.contains("vigie_cluster_stalled 1"), "{text}");
        assert!(
            text.contains("vigie_cluster_apply_seconds_count 8"),
            "{text}"
        );
    }

    #[test]
    fn a_head_the_stream_does_not_hold_is_dropped_at_its_next_state() {
        let p = Progress::new(296, 296, 1000);
        assert!(p.is_ready());
        // An acknowledgement around a leader change named 297; the stream ends at 296.
        p.saw_head(297);
        assert_eq!(p.lag(), 1);
        assert_eq!(p.stream_head(296), Some(297), "the stale head is reported");
        assert_eq!((p.head(), p.lag()), (296, 0));
        let mut text = String::new();
        p.render(&mut text);
        assert!(text.contains("vigie_cluster_head_sequence 296"), "{text}");
        assert!(text.contains("vigie_cluster_lag_seconds 0"), "{text}");
        // Never below what was applied (a lagging answer), and raising is not a correction.
        assert_eq!(p.stream_head(250), None);
        assert_eq!(p.head(), 296);
        assert_eq!(p.stream_head(300), None);
        assert_eq!((p.head(), p.lag()), (300, 4));
    }

    #[test]
    fn an_empty_stream_is_caught_up_at_once() {
        assert!(Progress::new(0, 0, 100).is_ready());
    }
}
