//! Turning a symbolic [`DateRange`] into UTC instants, given the project's IANA time zone and "now".
//!
//! Days are the project's days: "today" is the date on the project's wall clock, and a day runs from its local
//! midnight to the next. Where a time zone skips midnight (a daylight-saving jump at 00:00), the day starts at the
//! first instant that exists; where midnight happens twice, at the first of them.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::model::{Comparison, ComparisonMode, DateRange, Days};

/// A half-open span of time: `start <= t < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What a range means before it meets the clock on the wall: whole local days, or two instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// Both days included.
    Days(NaiveDate, NaiveDate),
    /// `from` included, `to` included to the second (timestamps are whole seconds).
    Instants(DateTime<Utc>, DateTime<Utc>),
}

/// The instants a range covers. `stats_start` is the project's first day with data (for `all`); without one, `all`
/// means today, as in Plausible.
pub fn resolve(range: &DateRange, tz: Tz, now: DateTime<Utc>, stats_start: Option<NaiveDate>) -> UtcRange {
    to_utc(span(range, today(tz, now), stats_start), tz)
}

/// The instants the comparison period covers.
pub fn resolve_comparison(
    range: &DateRange,
    comparison: &Comparison,
    tz: Tz,
    now: DateTime<Utc>,
    stats_start: Option<NaiveDate>,
) -> UtcRange {
    let source = span(range, today(tz, now), stats_start);
    let compared = match (&comparison.mode, source) {
        (ComparisonMode::Custom { from, to }, _) => Span::Days(*from, *to),
        (ComparisonMode::PreviousPeriod, Span::Days(from, to)) => {
            let length = to - from;
            let last = from - Duration::days(1);
            Span::Days(last - length, last)
        }
        (ComparisonMode::PreviousPeriod, Span::Instants(from, to)) => {
            let length = to - from + Duration::seconds(1);
            Span::Instants(from - length, to - length)
        }
        (ComparisonMode::YearOverYear, Span::Days(from, to)) => Span::Days(year_earlier(from), year_earlier(to)),
        (ComparisonMode::YearOverYear, Span::Instants(from, to)) => {
            Span::Instants(year_earlier(from.date_naive()).and_time(from.time()).and_utc(), {
                year_earlier(to.date_naive()).and_time(to.time()).and_utc()
            })
        }
    };
    to_utc(compared, tz)
}

fn today(tz: Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

fn span(range: &DateRange, today: NaiveDate, stats_start: Option<NaiveDate>) -> Span {
    match range {
        DateRange::Day => Span::Days(today, today),
        DateRange::Last(Days(n)) => Span::Days(today - Duration::days(i64::from(*n)), today - Duration::days(1)),
        DateRange::Month => Span::Days(first_of_month(today), last_of_month(today)),
        DateRange::LastMonths(n) => {
            let this_month = first_of_month(today);
            let first = this_month.checked_sub_months(Months::new(*n)).unwrap_or(NaiveDate::MIN);
            Span::Days(first, this_month - Duration::days(1))
        }
        DateRange::Year => Span::Days(
            NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today),
            NaiveDate::from_ymd_opt(today.year(), 12, 31).unwrap_or(today),
        ),
        DateRange::All => Span::Days(stats_start.unwrap_or(today).min(today), today),
        DateRange::Custom { from, to } => Span::Days(*from, *to),
        DateRange::Between { from, to } => Span::Instants(from.with_timezone(&Utc), to.with_timezone(&Utc)),
    }
}

fn to_utc(span: Span, tz: Tz) -> UtcRange {
    match span {
        Span::Days(first, last) => {
            UtcRange { start: start_of_day(first, tz), end: start_of_day(last + Duration::days(1), tz) }
        }
        Span::Instants(from, to) => UtcRange { start: from, end: to + Duration::seconds(1) },
    }
}

/// The first instant of a local day.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut local = date.and_time(NaiveTime::MIN);
    // Every real transition lands on a quarter hour, and the longest gap on record is a whole day (Samoa, 2011),
    // so walking quarter hours finds the first wall-clock time that exists.
    for _ in 0..(4 * 48) {
        if let Some(instant) = tz.from_local_datetime(&local).earliest() {
            return instant.with_timezone(&Utc);
        }
        local += Duration::minutes(15);
    }
    date.and_time(NaiveTime::MIN).and_utc()
}

fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day0(0).unwrap_or(date)
}

fn last_of_month(date: NaiveDate) -> NaiveDate {
    first_of_month(date).checked_add_months(Months::new(1)).map(|d| d - Duration::days(1)).unwrap_or(date)
}

/// The same day a year earlier; 29 February becomes 28 February.
fn year_earlier(date: NaiveDate) -> NaiveDate {
    date.checked_sub_months(Months::new(12)).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn range(start: &str, end: &str) -> UtcRange {
        UtcRange { start: utc(start), end: utc(end) }
    }

    // Plausible's own fixture: now 2021-05-05 12:30 UTC in a UTC site.
    #[test]
    fn shorthands_match_plausible_in_utc() {
        let now = utc("2021-05-05T12:30:00Z");
        let tz = chrono_tz::UTC;
        let cases = [
            (DateRange::Day, "2021-05-05T00:00:00Z", "2021-05-06T00:00:00Z"),
            (DateRange::Last(Days(7)), "2021-04-28T00:00:00Z", "2021-05-05T00:00:00Z"),
            (DateRange::Last(Days(30)), "2021-04-05T00:00:00Z", "2021-05-05T00:00:00Z"),
            (DateRange::Month, "2021-05-01T00:00:00Z", "2021-06-01T00:00:00Z"),
            (DateRange::LastMonths(6), "2020-11-01T00:00:00Z", "2021-05-01T00:00:00Z"),
            (DateRange::LastMonths(12), "2020-05-01T00:00:00Z", "2021-05-01T00:00:00Z"),
            (DateRange::Year, "2021-01-01T00:00:00Z", "2022-01-01T00:00:00Z"),
            (DateRange::All, "2021-05-05T00:00:00Z", "2021-05-06T00:00:00Z"),
        ];
        for (r, start, end) in cases {
            assert_eq!(resolve(&r, tz, now, None), range(start, end), "{r:?}");
        }
        assert_eq!(
            resolve(&DateRange::All, tz, now, Some(d("2020-02-03"))),
            range("2020-02-03T00:00:00Z", "2021-05-06T00:00:00Z")
        );
    }

    #[test]
    fn today_is_the_projects_day_not_utcs() {
        // 23:30 UTC on the 5th is already the 6th in Berlin (UTC+2 in May).
        let now = utc("2021-05-05T23:30:00Z");
        let r = resolve(&DateRange::Day, chrono_tz::Europe::Berlin, now, None);
        assert_eq!(r, range("2021-05-05T22:00:00Z", "2021-05-06T22:00:00Z"));
    }

    #[test]
    fn spring_forward_day_is_23_hours() {
        // Berlin moved from UTC+1 to UTC+2 at 02:00 on 2024-03-31.
        let r = DateRange::Custom { from: d("2024-03-31"), to: d("2024-03-31") };
        let got = resolve(&r, chrono_tz::Europe::Berlin, utc("2024-04-10T00:00:00Z"), None);
        assert_eq!(got, range("2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z"));
        assert_eq!(got.end - got.start, Duration::hours(23));
    }

    #[test]
    fn fall_back_day_is_25_hours() {
        // New York went from UTC-4 to UTC-5 at 02:00 on 2024-11-03.
        let r = DateRange::Custom { from: d("2024-11-03"), to: d("2024-11-03") };
        let got = resolve(&r, chrono_tz::America::New_York, utc("2024-11-10T00:00:00Z"), None);
        assert_eq!(got, range("2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z"));
        assert_eq!(got.end - got.start, Duration::hours(25));
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_when_the_clock_resumes() {
        // São Paulo jumped from 00:00 to 01:00 (UTC-3 to UTC-2) on 2018-11-04: that day had no midnight.
        let got = start_of_day(d("2018-11-04"), chrono_tz::America::Sao_Paulo);
        assert_eq!(got, utc("2018-11-04T03:00:00Z"));
    }

    #[test]
    fn explicit_instants_keep_their_offsets() {
        let r = DateRange::Between {
            from: DateTime::parse_from_rfc3339("2024-01-01T00:00:00+03:00").unwrap(),
            to: DateTime::parse_from_rfc3339("2024-01-02T12:00:00+03:00").unwrap(),
        };
        let got = resolve(&r, chrono_tz::America::New_York, utc("2024-02-01T00:00:00Z"), None);
        assert_eq!(got, range("2023-12-31T21:00:00Z", "2024-01-02T09:00:01Z"));
    }

    #[test]
    fn comparisons() {
        let now = utc("2021-05-05T12:30:00Z");
        let tz = chrono_tz::UTC;
        let previous = Comparison { mode: ComparisonMode::PreviousPeriod, match_day_of_week: false };
        let yoy = Comparison { mode: ComparisonMode::YearOverYear, match_day_of_week: false };
        assert_eq!(
            resolve_comparison(&DateRange::Last(Days(7)), &previous, tz, now, None),
            range("2021-04-21T00:00:00Z", "2021-04-28T00:00:00Z")
        );
        assert_eq!(
            resolve_comparison(&DateRange::Month, &yoy, tz, now, None),
            range("2020-05-01T00:00:00Z", "2020-06-01T00:00:00Z")
        );
        let leap = DateRange::Custom { from: d("2024-02-29"), to: d("2024-02-29") };
        assert_eq!(
            resolve_comparison(&leap, &yoy, tz, now, None),
            range("2023-02-28T00:00:00Z", "2023-03-01T00:00:00Z")
        );
        let custom = Comparison {
            mode: ComparisonMode::Custom { from: d("2020-01-01"), to: d("2020-01-31") },
            match_day_of_week: false,
        };
        assert_eq!(
            resolve_comparison(&DateRange::Month, &custom, tz, now, None),
            range("2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z")
        );
    }
}
