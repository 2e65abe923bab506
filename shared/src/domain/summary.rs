//! Summary metrics and the `longer_than_usual` rule.
//!
//! Each pipeline keeps a compact *run series*: one 17-byte sample per run of the last
//! [`HISTORY_DAYS`] days (run key, start microsecond, status, duration). Ingestion maintains it;
//! list and detail endpoints compute every window metric (`days` = 1..=90) from it exactly,
//! without querying runs. See `docs/API.md` (Summaries) for the definitions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{Run, RunStatus};

/// How far back the series (and therefore the `days` window) reaches.
pub const HISTORY_DAYS: i64 = 90;
/// Bound on samples per pipeline so the series item stays well below DynamoDB's 400 KB item
/// limit (12,000 × 17 bytes ≈ 272 KB in base64). Only pipelines that run more often than every
/// ~11 minutes hit it; they then keep their newest 12,000 runs.
pub const MAX_SAMPLES: usize = 12_000;
/// At least this many successful earlier runs (or tries) before anything is called unusual.
pub const MIN_HISTORY: usize = 10;
/// The history a run or task try is compared against: its most recent successful predecessors.
pub const HISTORY_LEN: usize = 50;
const SAMPLE_BYTES: usize = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSample {
    /// First four bytes of the run id: identifies the run within its pipeline's series.
    pub key: u32,
    /// The run's position in time ([`Run::at`]), in microseconds since the epoch (Airflow's
    /// own precision, so window boundaries are exact).
    pub at: i64,
    pub status: RunStatus,
    pub duration_ms: Option<u32>,
}

impl RunSample {
    pub fn of(run: &Run) -> Self {
        Self {
            key: run_key(run.id),
            at: run.at().timestamp_micros(),
            status: run.status,
            duration_ms: run.duration().map(seconds_to_ms),
        }
    }
}

pub fn run_key(id: Uuid) -> u32 {
    let bytes = id.as_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn seconds_to_ms(seconds: f64) -> u32 {
    (seconds * 1000.0).round().clamp(0.0, (u32::MAX - 1) as f64) as u32
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt run series: {0}")]
pub struct SeriesError(String);

/// The runs of one pipeline over the last [`HISTORY_DAYS`], oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSeries {
    samples: Vec<RunSample>,
}

impl RunSeries {
    pub fn samples(&self) -> &[RunSample] {
        &self.samples
    }

    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(self.samples.len() * SAMPLE_BYTES);
        for sample in &self.samples {
            bytes.extend_from_slice(&sample.key.to_le_bytes());
            bytes.extend_from_slice(&sample.at.to_le_bytes());
            let duration = sample.duration_ms.map_or(0, |ms| ms.saturating_add(1));
            bytes.extend_from_slice(&duration.to_le_bytes());
            bytes.push(match sample.status {
                RunStatus::Queued => 0,
                RunStatus::Running => 1,
                RunStatus::Success => 2,
                RunStatus::Failed => 3,
            });
        }
        BASE64.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Self, SeriesError> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| SeriesError(e.to_string()))?;
        if bytes.len() % SAMPLE_BYTES != 0 {
            return Err(SeriesError(format!(
                "length {} is not a whole number of samples",
                bytes.len()
            )));
        }
        let word = |chunk: &[u8], at: usize| {
            u32::from_le_bytes([chunk[at], chunk[at + 1], chunk[at + 2], chunk[at + 3]])
        };
        let samples = bytes
            .chunks_exact(SAMPLE_BYTES)
            .map(|chunk| {
                let status = match chunk[16] {
                    0 => RunStatus::Queued,
                    1 => RunStatus::Running,
                    2 => RunStatus::Success,
                    3 => RunStatus::Failed,
                    other => return Err(SeriesError(format!("unknown status code {other}"))),
                };
                let duration = word(chunk, 12);
                let mut at = [0u8; 8];
                at.copy_from_slice(&chunk[4..12]);
                Ok(RunSample {
                    key: word(chunk, 0),
                    at: i64::from_le_bytes(at),
                    status,
                    duration_ms: duration.checked_sub(1),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { samples })
    }

    /// Adds a run, or replaces the sample of the same run.
    pub fn upsert(&mut self, sample: RunSample) {
        self.samples.retain(|s| s.key != sample.key);
        let position = self
            .samples
            .partition_point(|s| (s.at, s.key) < (sample.at, sample.key));
        self.samples.insert(position, sample);
    }

    /// Drops samples older than the history horizon, and the oldest beyond [`MAX_SAMPLES`].
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = (now - chrono::Duration::days(HISTORY_DAYS + 1)).timestamp_micros();
        self.samples.retain(|s| s.at >= horizon);
        if self.samples.len() > MAX_SAMPLES {
            let excess = self.samples.len() - MAX_SAMPLES;
            self.samples.drain(..excess);
        }
    }

    /// Whether a finished run took well longer than its pipeline's recent successful runs
    /// (those that started before it). See [`is_unusually_long`].
    pub fn is_longer_than_usual(&self, sample: &RunSample) -> bool {
        let Some(duration) = sample.duration_ms.filter(|_| sample.status.is_finished()) else {
            return false;
        };
        let history: Vec<u32> = self
            .samples
            .iter()
            .rev()
            .filter(|s| s.at < sample.at && s.key != sample.key && s.status == RunStatus::Success)
            .filter_map(|s| s.duration_ms)
            .take(HISTORY_LEN)
            .collect();
        is_unusually_long(duration, history)
    }

    /// Metrics of the runs whose position in time falls within the last `days` days.
    pub fn window(&self, now: DateTime<Utc>, days: u32) -> WindowStats {
        let start = window_start(now, days).timestamp_micros();
        let from = self.samples.partition_point(|s| s.at < start);
        let in_window = &self.samples[from..];
        let mut stats = WindowStats {
            runs_total: in_window.len() as u64,
            ..WindowStats::default()
        };
        let mut durations = Vec::new();
        for sample in in_window {
            match sample.status {
                RunStatus::Success => stats.runs_succeeded += 1,
                RunStatus::Failed => stats.runs_failed += 1,
                RunStatus::Queued | RunStatus::Running => {}
            }
            if sample.status.is_finished()
                && let Some(ms) = sample.duration_ms
            {
                durations.push(f64::from(ms) / 1000.0);
            }
        }
        let finished = stats.runs_succeeded + stats.runs_failed;
        stats.success_rate = (finished > 0).then(|| stats.runs_succeeded as f64 / finished as f64);
        durations.sort_by(f64::total_cmp);
        stats.duration_p50 = percentile(&durations, 0.50);
        stats.duration_p95 = percentile(&durations, 0.95);
        stats.duration_mean =
            (!durations.is_empty()).then(|| durations.iter().sum::<f64>() / durations.len() as f64);
        stats.recent_statuses = in_window
            .iter()
            .rev()
            .filter(|s| s.status.is_finished())
            .take(10)
            .map(|s| s.status)
            .collect();
        stats
    }

    /// The newest finished run with the given status, as (position in time, end time).
    pub fn latest_with_status(&self, status: RunStatus) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let sample = self.samples.iter().rev().find(|s| s.status == status)?;
        let at = Utc.timestamp_micros(sample.at).single()?;
        let end = at + chrono::Duration::milliseconds(i64::from(sample.duration_ms.unwrap_or(0)));
        Some((at, end))
    }
}

/// The first instant of a `days` window ending now.
pub fn window_start(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - chrono::Duration::days(i64::from(days))
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowStats {
    pub runs_total: u64,
    pub runs_succeeded: u64,
    pub runs_failed: u64,
    pub success_rate: Option<f64>,
    pub duration_p50: Option<f64>,
    pub duration_p95: Option<f64>,
    pub duration_mean: Option<f64>,
    /// Statuses of the last 10 finished runs in the window, newest first.
    pub recent_statuses: Vec<RunStatus>,
}

/// Linear interpolation between closest ranks (NumPy's default), over sorted values.
pub fn percentile(sorted: &[f64], fraction: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = fraction * last as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

/// The rule behind `longer_than_usual`: with at least [`MIN_HISTORY`] earlier successful
/// durations (the most recent [`HISTORY_LEN`]), a duration is unusual when it exceeds both
/// their 95th percentile and 1.25 × their median (the second condition keeps runs of
/// pipelines with very steady durations from being flagged for a few milliseconds).
pub fn is_unusually_long(duration_ms: u32, history_ms: Vec<u32>) -> bool {
    if history_ms.len() < MIN_HISTORY {
        return false;
    }
    let mut sorted: Vec<f64> = history_ms.into_iter().map(f64::from).collect();
    sorted.sort_by(f64::total_cmp);
    let (Some(p50), Some(p95)) = (percentile(&sorted, 0.5), percentile(&sorted, 0.95)) else {
        return false;
    };
    let duration = f64::from(duration_ms);
    duration > p95 && duration > 1.25 * p50
}

/// Recent successful tries of one task of a pipeline, for the task runs' `longer_than_usual`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskHistory {
    /// (start second, duration ms), oldest first, at most [`HISTORY_LEN`].
    pub tries: Vec<(i64, u32)>,
}

impl TaskHistory {
    /// Whether a finished try at `at` that took `duration` is unusual against earlier tries.
    pub fn is_longer_than_usual(&self, at: i64, duration_seconds: f64) -> bool {
        let history = self
            .tries
            .iter()
            .rev()
            .filter(|(start, _)| *start < at)
            .map(|(_, ms)| *ms)
            .take(HISTORY_LEN)
            .collect();
        is_unusually_long(seconds_to_ms(duration_seconds), history)
    }

    /// Records a successful try (idempotent for the same start and duration).
    pub fn record_success(&mut self, at: i64, duration_seconds: f64) {
        let entry = (at, seconds_to_ms(duration_seconds));
        if self.tries.contains(&entry) {
            return;
        }
        let position = self.tries.partition_point(|t| *t < entry);
        self.tries.insert(position, entry);
        if self.tries.len() > HISTORY_LEN {
            let excess = self.tries.len() - HISTORY_LEN;
            self.tries.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample at `at` seconds since the epoch.
    fn sample(key: u32, at: i64, status: RunStatus, duration_ms: Option<u32>) -> RunSample {
        RunSample {
            key,
            at: at * 1_000_000,
            status,
            duration_ms,
        }
    }

    #[test]
    fn series_round_trips_through_its_encoding() {
        let mut series = RunSeries::default();
        series.upsert(sample(7, 1_700_000_000, RunStatus::Success, Some(1500)));
        series.upsert(sample(8, 1_700_000_100, RunStatus::Running, None));
        series.upsert(sample(9, 1_699_999_000, RunStatus::Failed, Some(0)));
        let decoded = RunSeries::decode(&series.encode()).unwrap();
        assert_eq!(decoded, series);
        assert_eq!(decoded.samples()[0].key, 9, "sorted by time");
        assert!(RunSeries::decode("not base64!").is_err());
    }

    #[test]
    fn upsert_replaces_the_same_run() {
        let mut series = RunSeries::default();
        series.upsert(sample(1, 100, RunStatus::Running, None));
        series.upsert(sample(1, 100, RunStatus::Success, Some(10)));
        assert_eq!(series.samples().len(), 1);
        assert_eq!(series.samples()[0].status, RunStatus::Success);
    }

    #[test]
    fn window_counts_rates_and_percentiles() {
        let now = Utc.timestamp_opt(10 * 86_400, 0).unwrap();
        let mut series = RunSeries::default();
        // One run per day for 10 days; day 9 failed; the newest is still running.
        for day in 0..10 {
            let status = match day {
                9 => RunStatus::Running,
                8 => RunStatus::Failed,
                _ => RunStatus::Success,
            };
            let duration = status.is_finished().then_some((day as u32 + 1) * 1000);
            series.upsert(sample(day as u32, day * 86_400 + 60, status, duration));
        }
        let week = series.window(now, 7);
        // Days 3..=9 start within the last 7 days.
        assert_eq!(week.runs_total, 7);
        assert_eq!(week.runs_succeeded, 5);
        assert_eq!(week.runs_failed, 1);
        assert_eq!(week.success_rate, Some(5.0 / 6.0));
        // Finished durations 4..=9 s.
        assert_eq!(week.duration_p50, Some(6.5));
        assert_eq!(week.duration_mean, Some(6.5));
        assert!((week.duration_p95.unwrap() - 8.75).abs() < 1e-9);
        assert_eq!(week.recent_statuses[0], RunStatus::Failed);
        assert_eq!(week.recent_statuses.len(), 6);
        let empty = RunSeries::default().window(now, 7);
        assert_eq!(empty.success_rate, None);
        assert_eq!(empty.duration_p50, None);
    }

    #[test]
    fn unusual_needs_history_and_a_clear_margin() {
        assert!(!is_unusually_long(100_000, vec![1000; MIN_HISTORY - 1]));
        assert!(is_unusually_long(2000, vec![1000; MIN_HISTORY]));
        // Steady durations: 1% above p95 is not "well above".
        assert!(!is_unusually_long(1010, vec![1000; 20]));
    }

    #[test]
    fn prune_keeps_the_horizon() {
        let now = Utc.timestamp_opt(200 * 86_400, 0).unwrap();
        let mut series = RunSeries::default();
        series.upsert(sample(1, 50 * 86_400, RunStatus::Success, Some(1)));
        series.upsert(sample(2, 150 * 86_400, RunStatus::Success, Some(1)));
        series.prune(now);
        assert_eq!(series.samples().len(), 1);
        assert_eq!(series.samples()[0].key, 2);
    }

    #[test]
    fn task_history_flags_slow_tries() {
        let mut history = TaskHistory::default();
        for i in 0..20 {
            history.record_success(i * 100, 10.0);
        }
        assert!(history.is_longer_than_usual(5000, 30.0));
        assert!(!history.is_longer_than_usual(5000, 10.0));
        assert_eq!(history.tries.len(), 20);
    }
}
