//! Freshness: a pipeline is expected to have a successful run within its expected interval.
//!
//! The interval is platform-owned (`PATCH /pipelines/{id}/freshness`, never written by the
//! sync). Unset, it is derived from the Airflow schedule where that is a plain interval or a
//! simple cron: 1.5 × the schedule's period (room for the run's own duration and the
//! scheduler's delay); any other schedule (assets, `@once`, none, complex crons) has no
//! derived interval, so no freshness check. A breach is reported once per deadline: the last
//! successful run's end + the interval (docs/EVENTS.md).

use chrono::{DateTime, Duration, Utc};

use crate::domain::events::{Event, EventType};
use crate::domain::model::Pipeline;
use crate::keys::stamp;

/// Smallest and largest expected interval an editor may set (one minute, one year).
pub const MIN_INTERVAL_SECONDS: u64 = 60;
pub const MAX_INTERVAL_SECONDS: u64 = 366 * 24 * 3600;

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// The period of a schedule that is a preset, a `timedelta` (`1 day, 0:00:00`, `0:30:00`) or
/// a cron with at most one restricted time field per level; `None` otherwise.
pub fn schedule_period(schedule: &str) -> Option<u64> {
    let schedule = schedule.trim();
    match schedule {
        "@hourly" => return Some(HOUR),
        "@daily" | "@midnight" => return Some(DAY),
        "@weekly" => return Some(7 * DAY),
        "@monthly" => return Some(31 * DAY),
        "@yearly" | "@annually" => return Some(366 * DAY),
        _ => {}
    }
    timedelta(schedule).or_else(|| cron(schedule))
}

/// Airflow's rendering of a `timedelta`: `[N day[s], ]H:MM:SS`.
fn timedelta(text: &str) -> Option<u64> {
    let (days, clock) = match text.split_once(", ") {
        Some((days, clock)) => {
            let count = days
                .strip_suffix(" days")
                .or_else(|| days.strip_suffix(" day"))?;
            (count.trim().parse::<u64>().ok()?, clock)
        }
        None => (0, text),
    };
    let mut parts = clock.split(':');
    let hours: u64 = parts.next()?.trim().parse().ok()?;
    let minutes: u64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let total = days * DAY + hours * HOUR + minutes * MINUTE + seconds as u64;
    (total > 0).then_some(total)
}

/// The longest gap between firings of a simple five-field cron: `*` or `*/n` minutes under
/// any hour; fixed minutes under `*`, `*/n` or fixed hours; a day-of-week or day-of-month
/// restriction makes it weekly or monthly. Anything else (lists, ranges in minutes or hours,
/// months) is not derived.
fn cron(text: &str) -> Option<u64> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    if *month != "*" {
        return None;
    }
    let step = |field: &str| -> Option<Option<u64>> {
        if field == "*" {
            Some(Some(1))
        } else if let Some(n) = field.strip_prefix("*/") {
            n.parse().ok().filter(|n| *n > 0).map(Some)
        } else if field.parse::<u64>().is_ok() {
            Some(None) // fixed
        } else {
            None
        }
    };
    let within_day = match (step(minute)?, step(hour)?) {
        (Some(m), Some(1)) => m * MINUTE,
        (Some(_), _) => return None,
        (None, Some(h)) => h * HOUR,
        (None, None) => DAY,
    };
    match (*dom, *dow) {
        ("*", "*") => Some(within_day),
        ("*", _) => Some(7 * DAY),
        (_, "*") => Some(31 * DAY),
        _ => None,
    }
}

/// The interval the check uses: the configured one, else 1.5 × the schedule's period; `None`
/// when the pipeline has no freshness expectation.
pub fn effective_interval(pipeline: &Pipeline) -> Option<u64> {
    pipeline.freshness_interval_seconds.or_else(|| {
        let period = schedule_period(pipeline.schedule.as_deref()?)?;
        Some(period + period / 2)
    })
}

/// A breach at `now`: an active, unpaused pipeline whose last successful run ended longer
/// than its interval ago. The identity is the deadline, so each deadline is reported once;
/// a new success moves the deadline. A pipeline that never succeeded is not checked (its
/// failures are events of their own).
pub fn breach(pipeline: &Pipeline, now: DateTime<Utc>) -> Option<Event> {
    if pipeline.is_paused || !pipeline.is_active {
        return None;
    }
    let interval = effective_interval(pipeline)?;
    let last = pipeline.last_success.as_ref()?;
    let since = last.ended_at.unwrap_or(last.at);
    let deadline = since + Duration::seconds(i64::try_from(interval).ok()?);
    if now <= deadline {
        return None;
    }
    let mut event = Event::new(
        pipeline,
        EventType::FreshnessBreached,
        &stamp(deadline),
        deadline,
        now,
    );
    event.details = serde_json::json!({
        "expected_interval_seconds": interval,
        "configured": pipeline.freshness_interval_seconds.is_some(),
        "last_success_at": since,
        "last_success_run_id": (!last.id.is_nil()).then_some(last.id),
        "deadline": deadline,
    });
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_of_presets_timedeltas_and_simple_crons() {
        assert_eq!(schedule_period("@daily"), Some(DAY));
        assert_eq!(schedule_period("@hourly"), Some(HOUR));
        assert_eq!(schedule_period("1 day, 0:00:00"), Some(DAY));
        assert_eq!(
            schedule_period("2 days, 12:00:00"),
            Some(2 * DAY + 12 * HOUR)
        );
        assert_eq!(schedule_period("0:30:00"), Some(30 * MINUTE));
        assert_eq!(schedule_period("*/15 * * * *"), Some(15 * MINUTE));
        assert_eq!(schedule_period("* * * * *"), Some(MINUTE));
        assert_eq!(schedule_period("5 * * * *"), Some(HOUR));
        assert_eq!(schedule_period("0 */6 * * *"), Some(6 * HOUR));
        assert_eq!(schedule_period("30 2 * * *"), Some(DAY));
        assert_eq!(schedule_period("0 9 * * 1-5"), Some(7 * DAY));
        assert_eq!(schedule_period("0 0 1 * *"), Some(31 * DAY));
        for none in [
            "@once",
            "None",
            "Asset",
            "0,30 * * * *",
            "0 9-17 * * *",
            "0 0 1 1 *",
            "*/5 9 * * *",
            "0:00:00",
            "",
        ] {
            assert_eq!(schedule_period(none), None, "{none}");
        }
    }
}
