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

/// The instants the comparison period covers, computed as Plausible's `Stats.Comparisons` does: on whole local
/// days, with a source period that ends in the future cut at today (so "this month" on the 5th compares five days).
/// Year over year moves back 365 days, not one calendar year.
pub fn resolve_comparison(
    range: &DateRange,
    comparison: &Comparison,
    tz: Tz,
    now: DateTime<Utc>,
    stats_start: Option<NaiveDate>,
) -> UtcRange {
    let today = today(tz, now);
    let (first, last) = match span(range, today, stats_start) {
        Span::Days(first, last) => (first, last),
        Span::Instants(from, to) => (from.with_timezone(&tz).date_naive(), to.with_timezone(&tz).date_naive()),
    };
    let (from, to) = match &comparison.mode {
        ComparisonMode::Custom { from, to } => return to_utc(Span::Days(*from, *to), tz),
        ComparisonMode::YearOverYear => (first - Duration::days(365), last.min(today) - Duration::days(365)),
        ComparisonMode::PreviousPeriod => {
            let shift = first - last.min(today) - Duration::days(1);
            (first + shift, last.min(today) + shift)
        }
    };
    let (from, to) = if comparison.match_day_of_week { match_day_of_week(from, to, first) } else { (from, to) };
    to_utc(Span::Days(from, to), tz)
}

/// Moves the comparison so it starts on the source's weekday: to the next such day, or the previous one when the
/// next would be the source's own first day (Plausible's rule, which is not always the nearest).
fn match_day_of_week(from: NaiveDate, to: NaiveDate, source_first: NaiveDate) -> (NaiveDate, NaiveDate) {
    let wanted = source_first.weekday();
    if from.weekday() == wanted {
        return (from, to);
    }
    let ahead = i64::from((7 + wanted.num_days_from_monday() - from.weekday().num_days_from_monday()) % 7);
    let next = from + Duration::days(ahead);
    let new_from = if next == source_first { next - Duration::days(7) } else { next };
    (new_from, to + (new_from - from))
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
    fn comparisons_follow_plausible() {
        let now = utc("2021-05-05T12:30:00Z");
        let tz = chrono_tz::UTC;
        let mode = |mode| Comparison { mode, match_day_of_week: false };
        let cases = [
            // 7d is 28 April to 4 May; the week before it.
            (DateRange::Last(Days(7)), mode(ComparisonMode::PreviousPeriod), "2021-04-21", "2021-04-28"),
            // This month so far (1 to 5 May) against the five days before.
            (DateRange::Month, mode(ComparisonMode::PreviousPeriod), "2021-04-26", "2021-05-01"),
            // Year over year: 365 days back, the future cut at today.
            (DateRange::Month, mode(ComparisonMode::YearOverYear), "2020-05-01", "2020-05-06"),
            (
                DateRange::Custom { from: d("2021-03-01"), to: d("2021-03-01") },
                mode(ComparisonMode::YearOverYear),
                "2020-03-01",
                "2020-03-02",
            ),
            (
                DateRange::Month,
                mode(ComparisonMode::Custom { from: d("2020-01-01"), to: d("2020-01-31") }),
                "2020-01-01",
                "2020-02-01",
            ),
            // 28 April 2021 is a Wednesday; 365 days earlier is a Tuesday, so it moves to Wednesday 29 April 2020.
            (
                DateRange::Last(Days(7)),
                Comparison { mode: ComparisonMode::YearOverYear, match_day_of_week: true },
                "2020-04-29",
                "2020-05-06",
            ),
        ];
        for (source, comparison, start, end) in cases {
            let want = range(&format!("{start}T00:00:00Z"), &format!("{end}T00:00:00Z"));
            assert_eq!(resolve_comparison(&source, &comparison, tz, now, None), want, "{source:?} {comparison:?}");
        }
    }

    #[test]
    fn matching_the_weekday_never_lands_on_the_source_start() {
        // Source starts Wednesday 28 April; a comparison from Tuesday 27 April would move onto the 28th, so it
        // goes back to Wednesday 21 April instead.
        assert_eq!(
            match_day_of_week(d("2021-04-27"), d("2021-05-03"), d("2021-04-28")),
            (d("2021-04-21"), d("2021-04-27"))
        );
    }
}
