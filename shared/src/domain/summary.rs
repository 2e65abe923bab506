//! Summary metrics and the `longer_than_usual` rule.
//!
//! Each pipeline keeps a compact *run series* (one item, see `docs/TABLE_DESIGN.md`):
//!
//! - an **exact tier**: one sample per run (8-byte run key, start microsecond, status, duration in
//!   microseconds, as Airflow gives them) for its newest [`EXACT_SAMPLES`] runs;
//! - an **hourly tier**: runs older than those, folded into one aggregate per hour of their
//!   position in time (runs, succeeded, failed, finished durations: count, exact sum, and a
//!   log-scale histogram whose bins are [`BIN_RATIO`] wide).
//!
//! Ingestion maintains it; list and detail endpoints compute every window metric
//! (`days` = 1..=90) from it without querying runs: counts, success rate and mean are exact;
//! percentiles are exact while the window holds exact samples only, and otherwise within
//! [`PERCENTILE_ERROR`] (relative). See `docs/API.md` (Summaries) for the definitions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{Run, RunStatus};

/// How far back the series (and therefore the `days` window) reaches.
pub const HISTORY_DAYS: i64 = 90;
/// Runs kept one by one (25 bytes each, about 70 KB of base64 at most): a week of a DAG
/// that runs every 5 minutes. Older runs of the 90 days are kept per hour; only pipelines with
/// more runs than this in 90 days (more often than about every hour) have hourly aggregates.
pub const EXACT_SAMPLES: usize = 2_100;
/// Width of a duration histogram bin: a bin holds durations in `[r^i, r^(i+1))` microseconds.
pub const BIN_RATIO: f64 = 1.02;
/// Bound on the relative error of a percentile computed with hourly aggregates: every duration
/// is represented by its bin's geometric middle, `sqrt(BIN_RATIO) - 1` ≈ 0.995 % away at most.
pub const PERCENTILE_ERROR: f64 = 0.01;
/// At least this many successful earlier runs (or tries) before anything is called unusual.
pub const MIN_HISTORY: usize = 10;
/// The history a run or task try is compared against: its most recent successful predecessors.
pub const HISTORY_LEN: usize = 50;
/// Samples of the first encoding (before the hourly tier): key, start, duration in ms, status.
const V1_SAMPLE_BYTES: usize = 17;
const SAMPLE_BYTES: usize = 25;
/// The current encoding starts with this tag (not a base64 character, so never a v1 series).
const V2_TAG: &str = "v2:";
const HOUR_MICROS: i64 = 3_600_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSample {
    /// First eight bytes of the run id: identifies the run within its pipeline's series (a
    /// series of the first encoding kept four: those keep them in the high half, see
    /// [`same_run`]).
    pub key: u64,
    /// The run's position in time ([`Run::at`]), in microseconds since the epoch (Airflow's
    /// own precision, so window boundaries are exact).
    pub at: i64,
    pub status: RunStatus,
    /// End − start in microseconds (Airflow's precision), once both are known.
    pub duration_us: Option<u64>,
}

impl RunSample {
    pub fn of(run: &Run) -> Self {
        Self {
            key: run_key(run.id),
            at: run.at().timestamp_micros(),
            status: run.status,
            duration_us: match (run.started_at, run.ended_at) {
                (Some(start), Some(end)) => {
                    (end - start).num_microseconds().map(|us| us.max(0) as u64)
                }
                _ => None,
            },
        }
    }

    fn finished_duration(&self) -> Option<u64> {
        self.duration_us.filter(|_| self.status.is_finished())
    }
}

pub fn run_key(id: Uuid) -> u64 {
    let bytes = id.as_bytes();
    u64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes"))
}

/// Whether two keys name the same run: equal, or one is a four-byte key of the first encoding
/// (low half zero) and the high halves agree.
pub fn same_run(a: u64, b: u64) -> bool {
    a == b || ((a as u32 == 0 || b as u32 == 0) && a >> 32 == b >> 32)
}

fn seconds_to_ms(seconds: f64) -> u32 {
    (seconds * 1000.0).round().clamp(0.0, (u32::MAX - 1) as f64) as u32
}

/// The histogram bin of a duration: 0 for zero, else 1 + floor(log_r(µs)).
fn bin_of(micros: u64) -> u16 {
    if micros == 0 {
        return 0;
    }
    let index = ((micros as f64).ln() / BIN_RATIO.ln()).floor().max(0.0);
    (index as u64 + 1).min(u64::from(u16::MAX)) as u16
}

/// The duration (µs) that stands for every duration of a bin: its geometric middle.
fn bin_value(bin: u16) -> f64 {
    if bin == 0 {
        return 0.0;
    }
    BIN_RATIO.powf(f64::from(bin - 1) + 0.5)
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt run series: {0}")]
pub struct SeriesError(String);

/// The runs of one hour (by position in time) that left the exact tier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourBucket {
    /// Hours since the epoch.
    pub hour: i64,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Finished runs with a duration, and the exact sum of their durations (µs).
    pub durations: u64,
    pub duration_sum_us: u64,
    /// Finished durations per histogram bin, by bin (no empty bins).
    pub bins: Vec<(u16, u64)>,
}

impl HourBucket {
    /// Adds (or, with `remove`, takes back) one run's contribution.
    fn apply(&mut self, sample: &RunSample, remove: bool) {
        let step = |value: &mut u64| {
            *value = if remove {
                value.saturating_sub(1)
            } else {
                *value + 1
            }
        };
        step(&mut self.total);
        match sample.status {
            RunStatus::Success => step(&mut self.succeeded),
            RunStatus::Failed => step(&mut self.failed),
            RunStatus::Queued | RunStatus::Running => {}
        }
        if let Some(us) = sample.finished_duration() {
            step(&mut self.durations);
            self.duration_sum_us = if remove {
                self.duration_sum_us.saturating_sub(us)
            } else {
                self.duration_sum_us + us
            };
            let bin = bin_of(us);
            let index = match self.bins.binary_search_by_key(&bin, |(b, _)| *b) {
                Ok(index) => index,
                Err(index) => {
                    self.bins.insert(index, (bin, 0));
                    index
                }
            };
            step(&mut self.bins[index].1);
            if self.bins[index].1 == 0 {
                self.bins.remove(index);
            }
        }
    }
}

fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR_MICROS)
}

fn put_varint(bytes: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(low);
            return;
        }
        bytes.push(low | 0x80);
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], SeriesError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| SeriesError("truncated".into()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u64, SeriesError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SeriesError("varint too long".into()))
    }
}

fn status_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Queued => 0,
        RunStatus::Running => 1,
        RunStatus::Success => 2,
        RunStatus::Failed => 3,
    }
}

fn status_of(code: u8) -> Result<RunStatus, SeriesError> {
    Ok(match code {
        0 => RunStatus::Queued,
        1 => RunStatus::Running,
        2 => RunStatus::Success,
        3 => RunStatus::Failed,
        other => return Err(SeriesError(format!("unknown status code {other}"))),
    })
}

/// The runs of one pipeline over the last [`HISTORY_DAYS`]: the newest one by one (oldest
/// first), the older ones per hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSeries {
    samples: Vec<RunSample>,
    /// Hourly aggregates of the runs that left the exact tier, oldest first.
    buckets: Vec<HourBucket>,
    /// The latest position in time of a run that left the exact tier: windows starting after
    /// it are computed from samples only.
    folded_until: Option<i64>,
}

impl RunSeries {
    /// The exact tier: the newest runs, oldest first.
    pub fn samples(&self) -> &[RunSample] {
        &self.samples
    }

    /// The hourly tier, oldest hour first.
    pub fn buckets(&self) -> &[HourBucket] {
        &self.buckets
    }

    /// Bytes this series holds on the heap (for cache budgets).
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.samples.capacity() * std::mem::size_of::<RunSample>()
            + self
                .buckets
                .iter()
                .map(|bucket| {
                    std::mem::size_of::<HourBucket>()
                        + bucket.bins.capacity() * std::mem::size_of::<(u16, u64)>()
                })
                .sum::<usize>()
    }

    /// Runs counted in the series, in both tiers.
    pub fn runs(&self) -> u64 {
        self.samples.len() as u64 + self.buckets.iter().map(|b| b.total).sum::<u64>()
    }

    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(self.samples.len() * SAMPLE_BYTES + 64);
        put_varint(&mut bytes, self.samples.len() as u64);
        for sample in &self.samples {
            bytes.extend_from_slice(&sample.key.to_le_bytes());
            bytes.extend_from_slice(&sample.at.to_le_bytes());
            let duration = sample.duration_us.map_or(0, |us| us.saturating_add(1));
            bytes.extend_from_slice(&duration.to_le_bytes());
            bytes.push(status_code(sample.status));
        }
        match self.folded_until {
            None => bytes.push(0),
            Some(at) => {
                bytes.push(1);
                bytes.extend_from_slice(&at.to_le_bytes());
            }
        }
        put_varint(&mut bytes, self.buckets.len() as u64);
        let mut previous_hour = 0;
        for bucket in &self.buckets {
            put_varint(&mut bytes, zigzag(bucket.hour - previous_hour));
            previous_hour = bucket.hour;
            for value in [
                bucket.total,
                bucket.succeeded,
                bucket.failed,
                bucket.durations,
                bucket.duration_sum_us,
                bucket.bins.len() as u64,
            ] {
                put_varint(&mut bytes, value);
            }
            // Bin gaps, most often one byte each: (gap << 1 | several), then the count
            // beyond one only when there are several.
            let mut previous_bin = 0;
            for (bin, count) in &bucket.bins {
                let gap = u64::from(bin - previous_bin);
                previous_bin = *bin;
                put_varint(&mut bytes, gap << 1 | u64::from(*count > 1));
                if *count > 1 {
                    put_varint(&mut bytes, count - 2);
                }
            }
        }
        format!("{V2_TAG}{}", BASE64.encode(bytes))
    }

    /// Decodes either encoding: the current one, or the first (17-byte samples with durations
    /// in milliseconds, written before the hourly tier), which becomes an exact tier.
    pub fn decode(text: &str) -> Result<Self, SeriesError> {
        let Some(body) = text.strip_prefix(V2_TAG) else {
            return Self::decode_v1(text);
        };
        let bytes = BASE64
            .decode(body)
            .map_err(|e| SeriesError(e.to_string()))?;
        let mut reader = Reader {
            bytes: &bytes,
            at: 0,
        };
        let count = reader.varint()? as usize;
        if count > bytes.len() / SAMPLE_BYTES {
            return Err(SeriesError(format!("{count} samples do not fit")));
        }
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let chunk = reader.take(SAMPLE_BYTES)?;
            let duration = u64::from_le_bytes(chunk[16..24].try_into().expect("8 bytes"));
            samples.push(RunSample {
                key: u64::from_le_bytes(chunk[0..8].try_into().expect("8 bytes")),
                at: i64::from_le_bytes(chunk[8..16].try_into().expect("8 bytes")),
                status: status_of(chunk[24])?,
                duration_us: duration.checked_sub(1),
            });
        }
        let folded_until = match reader.take(1)?[0] {
            0 => None,
            _ => Some(i64::from_le_bytes(
                reader.take(8)?.try_into().expect("8 bytes"),
            )),
        };
        let bucket_count = reader.varint()? as usize;
        if bucket_count > bytes.len() {
            return Err(SeriesError(format!("{bucket_count} hours do not fit")));
        }
        let mut buckets = Vec::with_capacity(bucket_count);
        let mut hour = 0;
        for _ in 0..bucket_count {
            hour += unzigzag(reader.varint()?);
            let mut bucket = HourBucket {
                hour,
                total: reader.varint()?,
                succeeded: reader.varint()?,
                failed: reader.varint()?,
                durations: reader.varint()?,
                duration_sum_us: reader.varint()?,
                bins: Vec::new(),
            };
            let bins = reader.varint()?;
            let mut bin = 0u64;
            for _ in 0..bins {
                let entry = reader.varint()?;
                bin += entry >> 1;
                let count = if entry & 1 == 1 {
                    reader.varint()? + 2
                } else {
                    1
                };
                let bin = u16::try_from(bin).map_err(|_| SeriesError("bin out of range".into()))?;
                bucket.bins.push((bin, count));
            }
            buckets.push(bucket);
        }
        if reader.at != bytes.len() {
            return Err(SeriesError("trailing bytes".into()));
        }
        Ok(Self {
            samples,
            buckets,
            folded_until,
        })
    }

    fn decode_v1(text: &str) -> Result<Self, SeriesError> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| SeriesError(e.to_string()))?;
        if bytes.len() % V1_SAMPLE_BYTES != 0 {
            return Err(SeriesError(format!(
                "length {} is not a whole number of samples",
                bytes.len()
            )));
        }
        let samples = bytes
            .chunks_exact(V1_SAMPLE_BYTES)
            .map(|chunk| {
                let duration_ms = u32::from_le_bytes(chunk[12..16].try_into().expect("4 bytes"));
                Ok(RunSample {
                    key: u64::from(u32::from_le_bytes(chunk[0..4].try_into().expect("4 bytes")))
                        << 32,
                    at: i64::from_le_bytes(chunk[4..12].try_into().expect("8 bytes")),
                    status: status_of(chunk[16])?,
                    duration_us: duration_ms.checked_sub(1).map(|ms| u64::from(ms) * 1000),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            samples,
            ..Self::default()
        })
    }

    /// Whether the run with this key is in the exact tier.
    pub fn holds(&self, key: u64) -> bool {
        self.samples.iter().any(|s| same_run(s.key, key))
    }

    /// Whether runs have left the exact tier: an update of a run that is not in it must then
    /// first take back the run's stored version with [`RunSeries::remove_folded`].
    pub fn has_folded(&self) -> bool {
        self.folded_until.is_some()
    }

    /// Takes back the contribution of a run (as stored before) from the hourly tier, if that
    /// run had left the exact tier. No effect on a run in the exact tier or never folded.
    pub fn remove_folded(&mut self, stored: &RunSample) {
        if self.holds(stored.key) || self.folded_until.is_none_or(|until| stored.at > until) {
            return;
        }
        let hour = hour_of(stored.at);
        if let Ok(index) = self.buckets.binary_search_by_key(&hour, |b| b.hour) {
            self.buckets[index].apply(stored, true);
            if self.buckets[index].total == 0 {
                self.buckets.remove(index);
            }
        }
    }

    /// Adds a run, or replaces the sample of the same run in the exact tier.
    pub fn upsert(&mut self, sample: RunSample) {
        self.samples.retain(|s| !same_run(s.key, sample.key));
        let position = self
            .samples
            .partition_point(|s| (s.at, s.key) < (sample.at, sample.key));
        self.samples.insert(position, sample);
    }

    /// Drops runs older than the history horizon, and folds the oldest samples beyond
    /// [`EXACT_SAMPLES`] into the hourly tier.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.prune_to(now, EXACT_SAMPLES);
    }

    /// [`RunSeries::prune`] with another exact-tier size (tests).
    pub fn prune_to(&mut self, now: DateTime<Utc>, exact: usize) {
        let horizon = (now - chrono::Duration::days(HISTORY_DAYS + 1)).timestamp_micros();
        self.samples.retain(|s| s.at >= horizon);
        // A bucket whose hour ends before the horizon holds only runs beyond it.
        self.buckets
            .retain(|b| (b.hour + 1).saturating_mul(HOUR_MICROS) > horizon);
        if self.samples.len() > exact {
            let excess = self.samples.len() - exact;
            let folded: Vec<RunSample> = self.samples.drain(..excess).collect();
            for sample in folded {
                let hour = hour_of(sample.at);
                let index = match self.buckets.binary_search_by_key(&hour, |b| b.hour) {
                    Ok(index) => index,
                    Err(index) => {
                        let bucket = HourBucket {
                            hour,
                            ..HourBucket::default()
                        };
                        self.buckets.insert(index, bucket);
                        index
                    }
                };
                self.buckets[index].apply(&sample, false);
                self.folded_until = Some(self.folded_until.map_or(sample.at, |u| u.max(sample.at)));
            }
        }
        if self.buckets.is_empty() {
            self.folded_until = None;
        }
    }

    /// Whether a finished run took well longer than its pipeline's recent successful runs
    /// (those that started before it). See [`is_unusually_long`].
    pub fn is_longer_than_usual(&self, sample: &RunSample) -> bool {
        let Some(duration) = sample.finished_duration() else {
            return false;
        };
        let history: Vec<u64> = self
            .samples
            .iter()
            .rev()
            .filter(|s| {
                s.at < sample.at && !same_run(s.key, sample.key) && s.status == RunStatus::Success
            })
            .filter_map(|s| s.duration_us)
            .take(HISTORY_LEN)
            .collect();
        is_unusually_long(duration, history)
    }

    /// The first instant the window of `days` days ending `now` really counts from: its start,
    /// or, when runs of it left the exact tier, the start of the hour holding its start.
    pub fn counted_from(&self, now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let start = window_start(now, days);
        match self.folded_until {
            Some(until) if start.timestamp_micros() <= until => Utc
                .timestamp_micros(hour_of(start.timestamp_micros()) * HOUR_MICROS)
                .single()
                .unwrap_or(start),
            _ => start,
        }
    }

    /// Metrics of the runs whose position in time falls within the last `days` days.
    pub fn window(&self, now: DateTime<Utc>, days: u32) -> WindowStats {
        let start = self.counted_from(now, days).timestamp_micros();
        let from = self.samples.partition_point(|s| s.at < start);
        let in_window = &self.samples[from..];
        let mut stats = WindowStats {
            runs_total: in_window.len() as u64,
            ..WindowStats::default()
        };
        let mut durations: Vec<f64> = Vec::new();
        let mut duration_sum_us: u128 = 0;
        for sample in in_window {
            match sample.status {
                RunStatus::Success => stats.runs_succeeded += 1,
                RunStatus::Failed => stats.runs_failed += 1,
                RunStatus::Queued | RunStatus::Running => {}
            }
            if let Some(us) = sample.finished_duration() {
                durations.push(us as f64);
                duration_sum_us += u128::from(us);
            }
        }
        let first_hour = start.div_euclid(HOUR_MICROS);
        // Dense counts per bin (a few thousand at most).
        let mut binned: Vec<u64> = Vec::new();
        let from_bucket = self.buckets.partition_point(|b| b.hour < first_hour);
        for bucket in &self.buckets[from_bucket..] {
            stats.runs_total += bucket.total;
            stats.runs_succeeded += bucket.succeeded;
            stats.runs_failed += bucket.failed;
            duration_sum_us += u128::from(bucket.duration_sum_us);
            for &(bin, count) in &bucket.bins {
                let bin = usize::from(bin);
                if binned.len() <= bin {
                    binned.resize(bin + 1, 0);
                }
                binned[bin] += count;
            }
        }
        let finished = stats.runs_succeeded + stats.runs_failed;
        stats.success_rate = (finished > 0).then(|| stats.runs_succeeded as f64 / finished as f64);
        let exact = durations.len() as u64;
        let approximated: u64 = binned.iter().sum();
        let count = exact + approximated;
        stats.duration_mean =
            (count > 0).then(|| duration_sum_us as f64 / count as f64 / 1_000_000.0);
        stats.duration_percentiles_approximate = approximated > 0;
        durations.sort_by(f64::total_cmp);
        let mut values = Durations {
            exact: &durations,
            binned: binned
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(b, n)| (bin_value(b as u16), n))
                .collect(),
            count,
        };
        stats.duration_p50 = values.percentile(0.50).map(micros_to_seconds_f64);
        stats.duration_p95 = values.percentile(0.95).map(micros_to_seconds_f64);
        stats.recent_statuses = in_window
            .iter()
            .rev()
            .filter(|s| s.status.is_finished())
            .take(10)
            .map(|s| s.status)
            .collect();
        stats
    }

    /// The newest finished run with the given status in the exact tier, as (position in
    /// time, end time).
    pub fn latest_with_status(&self, status: RunStatus) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let sample = self.samples.iter().rev().find(|s| s.status == status)?;
        let at = Utc.timestamp_micros(sample.at).single()?;
        let micros = i64::try_from(sample.duration_us.unwrap_or(0)).ok()?;
        Some((at, at + chrono::Duration::microseconds(micros)))
    }
}

fn micros_to_seconds_f64(micros: f64) -> f64 {
    micros / 1_000_000.0
}

/// Finished durations of a window (µs): exact ones (sorted) and binned ones (bin value, count).
struct Durations<'a> {
    exact: &'a [f64],
    binned: Vec<(f64, u64)>,
    count: u64,
}

impl Durations<'_> {
    /// The value of the given rank (0-based) in the merged sorted order.
    fn nth(&self, rank: u64) -> f64 {
        // Walk both sorted sequences; the binned side is short (one entry per bin).
        let mut exact = 0usize;
        let mut seen = 0u64;
        for &(value, n) in &self.binned {
            let below = self.exact[exact..].partition_point(|v| *v < value);
            if rank < seen + below as u64 {
                return self.exact[exact + (rank - seen) as usize];
            }
            seen += below as u64;
            exact += below;
            if rank < seen + n {
                return value;
            }
            seen += n;
        }
        self.exact[exact + (rank - seen) as usize]
    }

    /// Linear interpolation between closest ranks (NumPy's default).
    fn percentile(&mut self, fraction: f64) -> Option<f64> {
        let last = self.count.checked_sub(1)?;
        let rank = fraction * last as f64;
        let low = rank.floor() as u64;
        let high = rank.ceil() as u64;
        let (a, b) = (self.nth(low), self.nth(high));
        Some(a + (b - a) * (rank - low as f64))
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
    /// Whether p50/p95 used hourly histograms (within [`PERCENTILE_ERROR`]) rather than only
    /// exact durations.
    pub duration_percentiles_approximate: bool,
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
/// pipelines with very steady durations from being flagged for a few milliseconds). Any unit,
/// the same for both arguments.
pub fn is_unusually_long(duration: u64, history: Vec<u64>) -> bool {
    if history.len() < MIN_HISTORY {
        return false;
    }
    let mut sorted: Vec<f64> = history.into_iter().map(|d| d as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let (Some(p50), Some(p95)) = (percentile(&sorted, 0.5), percentile(&sorted, 0.95)) else {
        return false;
    };
    let duration = duration as f64;
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
            .map(|(_, ms)| u64::from(*ms))
            .take(HISTORY_LEN)
            .collect();
        is_unusually_long(u64::from(seconds_to_ms(duration_seconds)), history)
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
    fn sample(key: u64, at: i64, status: RunStatus, duration_ms: Option<u64>) -> RunSample {
        RunSample {
            key,
            at: at * 1_000_000,
            status,
            duration_us: duration_ms.map(|ms| ms * 1000),
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
            let duration = status.is_finished().then_some((day as u64 + 1) * 1000);
            series.upsert(sample(day as u64, day * 86_400 + 60, status, duration));
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
    fn series_of_the_first_encoding_decodes_with_durations_in_microseconds() {
        // Two 17-byte samples as written before the hourly tier: key, start µs, ms + 1, status.
        let mut bytes = Vec::new();
        for (key, at, duration, status) in [(1u32, 10i64, 1501u32, 2u8), (2, 20, 0, 1)] {
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&at.to_le_bytes());
            bytes.extend_from_slice(&duration.to_le_bytes());
            bytes.push(status);
        }
        let series = RunSeries::decode(&BASE64.encode(bytes)).unwrap();
        assert_eq!(series.samples()[0].duration_us, Some(1_500_000));
        assert_eq!(series.samples()[0].key, 1 << 32);
        assert!(
            series.holds((1 << 32) | 0xabcd),
            "the same run under its new key"
        );
        assert!(!series.holds(3 << 32));
        assert_eq!(series.samples()[0].status, RunStatus::Success);
        assert_eq!(series.samples()[1].duration_us, None);
        assert!(!series.has_folded());
        // Written back in the current encoding, it reads the same.
        assert_eq!(RunSeries::decode(&series.encode()).unwrap(), series);
    }

    /// A pseudo-random series: every `step` seconds for 90 days, durations of 1 µs to ~3 h.
    fn long_series(now: DateTime<Utc>, step: i64) -> (RunSeries, Vec<RunSample>) {
        let mut series = RunSeries::default();
        let mut all = Vec::new();
        let mut state = 42u64;
        let start = now.timestamp() - 90 * 86_400 + 1;
        for i in 0..(90 * 86_400 / step) {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let status = match state >> 60 {
                0 => RunStatus::Failed,
                1 => RunStatus::Running,
                _ => RunStatus::Success,
            };
            let duration = (status != RunStatus::Running)
                .then(|| 1 + (state >> 20) % (1 << ((state >> 10) % 34)));
            let sample = RunSample {
                key: (i as u64) << 32 | 1,
                at: (start + i * step) * 1_000_000 + ((state >> 5) % 1_000_000) as i64,
                status,
                duration_us: duration,
            };
            all.push(sample);
            series.upsert(sample);
            if i % 100 == 0 {
                series.prune_to(now, 300);
            }
        }
        series.prune_to(now, 300);
        (series, all)
    }

    #[test]
    fn hourly_tier_counts_exactly_and_bounds_percentiles() {
        let now = Utc.timestamp_opt(1_800_000_000, 123_456_000).unwrap();
        let (series, all) = long_series(now, 300);
        assert_eq!(series.samples().len(), 300);
        assert_eq!(series.runs(), all.len() as u64);
        let decoded = RunSeries::decode(&series.encode()).unwrap();
        assert_eq!(decoded, series);
        for days in [1, 2, 7, 30, 90] {
            let stats = series.window(now, days);
            let from = series.counted_from(now, days).timestamp_micros();
            let in_window: Vec<&RunSample> = all.iter().filter(|s| s.at >= from).collect();
            let count = |st: RunStatus| in_window.iter().filter(|s| s.status == st).count() as u64;
            assert_eq!(stats.runs_total, in_window.len() as u64, "{days} days");
            assert_eq!(stats.runs_succeeded, count(RunStatus::Success));
            assert_eq!(stats.runs_failed, count(RunStatus::Failed));
            let mut durations: Vec<f64> = in_window
                .iter()
                .filter_map(|s| s.finished_duration())
                .map(|us| us as f64 / 1e6)
                .collect();
            durations.sort_by(f64::total_cmp);
            let mean = durations.iter().sum::<f64>() / durations.len() as f64;
            assert!((stats.duration_mean.unwrap() / mean - 1.0).abs() < 1e-9);
            for (got, fraction) in [(stats.duration_p50, 0.5), (stats.duration_p95, 0.95)] {
                let exact = percentile(&durations, fraction).unwrap();
                let error = (got.unwrap() / exact - 1.0).abs();
                let bound = if stats.duration_percentiles_approximate {
                    PERCENTILE_ERROR
                } else {
                    1e-9
                };
                assert!(error <= bound, "{days} days: {got:?} vs {exact}");
            }
            // A window within the exact tier is exact to the microsecond.
            if !stats.duration_percentiles_approximate {
                assert_eq!(from, window_start(now, days).timestamp_micros());
            }
        }
        assert!(series.window(now, 90).duration_percentiles_approximate);
        assert!(!series.window(now, 1).duration_percentiles_approximate);
    }

    #[test]
    fn a_folded_run_is_taken_back_before_it_is_counted_again() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let (mut series, all) = long_series(now, 3_600);
        let old = all[10];
        assert!(series.has_folded() && !series.holds(old.key));
        let before = series.window(now, 90);
        series.remove_folded(&old);
        series.upsert(RunSample {
            status: RunStatus::Failed,
            ..old
        });
        series.prune_to(now, 300);
        let after = series.window(now, 90);
        assert_eq!(after.runs_total, before.runs_total);
        let was_failed = u64::from(old.status == RunStatus::Failed);
        assert_eq!(after.runs_failed, before.runs_failed + 1 - was_failed);
    }

    #[test]
    fn bins_represent_durations_within_the_bound() {
        for us in [1u64, 2, 999, 1_000, 1_234_567, 86_400_000_000, 1 << 45] {
            let error = (bin_value(bin_of(us)) / us as f64 - 1.0).abs();
            assert!(error <= PERCENTILE_ERROR, "{us}: {error}");
        }
        assert_eq!(bin_value(bin_of(0)), 0.0);
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
