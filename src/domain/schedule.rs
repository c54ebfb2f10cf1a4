//! Automatic backup rules with no I/O: the policy's days and UTC window, which slot a moment
//! falls in, retention, and what storage costs.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};

/// Days of the week a policy runs on, 1 = Monday ... 7 = Sunday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frequency(Vec<u32>);

impl Frequency {
    /// `"1,3,5"`: distinct numbers 1–7.
    pub fn parse(text: &str) -> Result<Frequency, String> {
        let mut days = Vec::new();
        for part in text.split(',') {
            let day: u32 = part.trim().parse().ok().filter(|d| (1..=7).contains(d)).ok_or_else(|| {
                format!("frequency is '{text}'; use days of the week 1-7 (1 = Monday) separated by commas, e.g. \"1,3,5\"")
            })?;
            if days.contains(&day) {
                return Err(format!("frequency names day {day} twice"));
            }
            days.push(day);
        }
        days.sort_unstable();
        Ok(Frequency(days))
    }

    pub fn includes(&self, date: NaiveDate) -> bool {
        self.0.contains(&date.weekday().number_from_monday())
    }

    pub fn as_text(&self) -> String {
        self.0
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A daily UTC window, `"HH:mm-HH:mm"`. An end at or before the start runs past midnight; the
/// slot belongs to the day the window opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let bad = || {
            format!("startTime is '{text}'; use a UTC window \"HH:mm-HH:mm\", e.g. \"02:00-04:00\"")
        };
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let window = Window {
            start: time(start)?,
            end: time(end)?,
        };
        if window.start == window.end {
            return Err(format!(
                "startTime '{text}' is an empty window; make the end differ from the start"
            ));
        }
        Ok(window)
    }

    pub fn as_text(&self) -> String {
        format!(
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }

    fn length(&self) -> Duration {
        let d = self.end - self.start;
        if d <= Duration::zero() {
            d + Duration::days(1)
        } else {
            d
        }
    }

    /// The window that opens on `date`: [open, close).
    pub fn on(&self, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let open = date.and_time(self.start).and_utc();
        (open, open + self.length())
    }
}

/// The slot `now` falls in: the date whose window (on a chosen day) holds `now`.
pub fn open_slot(now: DateTime<Utc>, days: &Frequency, window: &Window) -> Option<NaiveDate> {
    let today = now.date_naive();
    [today, today.pred_opt()?].into_iter().find(|date| {
        let (open, close) = window.on(*date);
        days.includes(*date) && open <= now && now < close
    })
}

/// The latest slot whose window closed at or before `now`, with its close time.
pub fn last_closed_slot(
    now: DateTime<Utc>,
    days: &Frequency,
    window: &Window,
) -> Option<(NaiveDate, DateTime<Utc>)> {
    let mut date = now.date_naive();
    for _ in 0..9 {
        let (_, close) = window.on(date);
        if days.includes(date) && close <= now {
            return Some((date, close));
        }
        date = date.pred_opt()?;
    }
    None
}

/// How long an automatic backup, or a cross-region copy of one, is kept: 1–30 days.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct RetentionDays(i64);

impl RetentionDays {
    pub const MAX: i64 = 30;

    /// `days` as the retention of `field` (named in the error).
    pub fn parse(field: &str, days: i64) -> Result<RetentionDays, String> {
        if (1..=Self::MAX).contains(&days) {
            Ok(RetentionDays(days))
        } else {
            Err(format!(
                "{field} is {days}; use a whole number from 1 to {}",
                Self::MAX
            ))
        }
    }

    pub fn days(self) -> i64 {
        self.0
    }

    /// When something created at `created` expires.
    pub fn expiry(self, created: DateTime<Utc>) -> DateTime<Utc> {
        created + Duration::days(self.0)
    }
}

impl TryFrom<i64> for RetentionDays {
    type Error = String;
    fn try_from(days: i64) -> Result<RetentionDays, String> {
        RetentionDays::parse("retentionDays", days)
    }
}

impl From<RetentionDays> for i64 {
    fn from(days: RetentionDays) -> i64 {
        days.0
    }
}

/// Days billed for storage from `from` to `to`: whole days, any part of a day counting as a
/// day, and at least one.
pub fn billed_days(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    let seconds = (to - from).num_seconds().max(0);
    ((seconds + 86_399) / 86_400).max(1)
}

/// Bytes in a billed GB (decimal, as cloud storage bills).
pub const BYTES_PER_GB: f64 = 1_000_000_000.0;

/// Cost of `gb_days` at a monthly price per GB, a month being 30 days.
pub fn cost(gb_days: f64, price_per_gb_month: f64) -> f64 {
    gb_days * price_per_gb_month / 30.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn frequency_and_window_parse_with_named_errors() {
        assert_eq!(Frequency::parse("5, 1,3").unwrap().as_text(), "1,3,5");
        assert!(Frequency::parse("0").unwrap_err().contains("frequency"));
        assert!(Frequency::parse("1,1").unwrap_err().contains("twice"));
        assert!(Frequency::parse("").is_err());
        assert_eq!(
            Window::parse("02:00-04:30").unwrap().as_text(),
            "02:00-04:30"
        );
        assert!(Window::parse("2-4").unwrap_err().contains("startTime"));
        assert!(Window::parse("25:00-04:00").is_err());
        assert!(Window::parse("04:00-04:00").unwrap_err().contains("empty"));
    }

    #[test]
    fn slots_open_on_chosen_days_inside_the_window() {
        // 2026-11-23 is a Monday.
        let mondays = Frequency::parse("1").unwrap();
        let window = Window::parse("02:00-04:00").unwrap();
        let monday = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(
            open_slot(at(2026, 11, 23, 2, 0), &mondays, &window),
            Some(monday)
        );
        assert_eq!(
            open_slot(at(2026, 11, 23, 3, 59), &mondays, &window),
            Some(monday)
        );
        assert_eq!(open_slot(at(2026, 11, 23, 4, 0), &mondays, &window), None);
        assert_eq!(open_slot(at(2026, 11, 23, 1, 59), &mondays, &window), None);
        assert_eq!(
            open_slot(at(2026, 11, 24, 3, 0), &mondays, &window),
            None,
            "Tuesday"
        );
        assert_eq!(
            last_closed_slot(at(2026, 11, 25, 12, 0), &mondays, &window),
            Some((monday, at(2026, 11, 23, 4, 0)))
        );
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let sundays = Frequency::parse("7").unwrap();
        let window = Window::parse("23:00-01:00").unwrap();
        let sunday = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(
            open_slot(at(2026, 11, 22, 23, 30), &sundays, &window),
            Some(sunday)
        );
        assert_eq!(
            open_slot(at(2026, 11, 23, 0, 30), &sundays, &window),
            Some(sunday)
        );
        assert_eq!(open_slot(at(2026, 11, 23, 23, 30), &sundays, &window), None);
    }

    #[test]
    fn storage_is_billed_per_started_day_with_a_one_day_minimum() {
        let from = at(2026, 1, 1, 0, 0);
        assert_eq!(
            billed_days(from, from + Duration::days(44) + Duration::hours(6)),
            45
        );
        assert_eq!(billed_days(from, from + Duration::days(44)), 44);
        assert_eq!(billed_days(from, from + Duration::minutes(5)), 1);
        assert_eq!(billed_days(from, from), 1);
        assert!((cost(30.0, 0.03) - 0.03).abs() < 1e-12);
        assert!(RetentionDays::parse("retentionDays", 0).is_err());
        assert_eq!(
            RetentionDays::parse("x.retentionDays", 31).unwrap_err(),
            "x.retentionDays is 31; use a whole number from 1 to 30"
        );
        assert_eq!(
            RetentionDays::parse("retentionDays", 2)
                .unwrap()
                .expiry(from),
            from + Duration::days(2)
        );
    }
}
