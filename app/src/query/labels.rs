//! Time bucket labels, in the project's time zone and Plausible's formats (`time.ex`): `2024-01-05 13:00:00` for
//! hours, `2024-01-05` for days, the Monday for weeks (or the range's first day when that Monday is before it),
//! `2024-01-01` for months. `meta.time_labels` lists every bucket of the range, with or without data.

use chrono::{Datelike, Duration, NaiveDate};
use chrono_tz::Tz;

use super::columns::Bucket;
use super::range::UtcRange;

/// The range's first and last local day.
pub fn local_days(range: &UtcRange, tz: Tz) -> (NaiveDate, NaiveDate) {
    let first = range.start.with_timezone(&tz).date_naive();
    let last = (range.end - Duration::seconds(1)).with_timezone(&tz).date_naive();
    (first, last.max(first))
}

pub fn labels(bucket: Bucket, range: &UtcRange, tz: Tz) -> Vec<String> {
    let (first, last) = local_days(range, tz);
    let days = || first.iter_days().take_while(move |d| *d <= last);
    match bucket {
        Bucket::Hour => days().flat_map(|d| (0..24).map(move |h| format!("{d} {h:02}:00:00"))).collect(),
        Bucket::Day => days().map(|d| d.to_string()).collect(),
        Bucket::Week => {
            let mut out: Vec<String> = Vec::new();
            for d in days() {
                let label = week_label(&d.to_string(), first);
                if out.last() != Some(&label) {
                    out.push(label);
                }
            }
            out
        }
        Bucket::Month => {
            let mut out: Vec<String> = Vec::new();
            for d in days() {
                let label = format!("{:04}-{:02}-01", d.year(), d.month());
                if out.last() != Some(&label) {
                    out.push(label);
                }
            }
            out
        }
    }
}

/// A week bucket (its Monday, as ClickHouse's `toMonday` gives it) as Plausible labels it: the Monday, or the
/// range's first day when the Monday falls before the range.
pub fn week_label(monday: &str, first: NaiveDate) -> String {
    match NaiveDate::parse_from_str(monday, "%Y-%m-%d") {
        Ok(d) => {
            let monday = d - Duration::days(i64::from(d.weekday().num_days_from_monday()));
            monday.max(first).to_string()
        }
        Err(_) => monday.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn range(start: &str, end: &str) -> UtcRange {
        let p = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        UtcRange { start: p(start), end: p(end) }
    }

    #[test]
    fn labels_follow_plausible() {
        let tz = chrono_tz::UTC;
        let day = range("2024-01-03T00:00:00Z", "2024-01-04T00:00:00Z");
        let hours = labels(Bucket::Hour, &day, tz);
        assert_eq!(
            (hours.len(), hours[0].as_str(), hours[23].as_str()),
            (24, "2024-01-03 00:00:00", "2024-01-03 23:00:00")
        );
        // Wednesday 3 January to Tuesday 16 January: the first week is labelled by its first day in the range.
        let two_weeks = range("2024-01-03T00:00:00Z", "2024-01-17T00:00:00Z");
        assert_eq!(labels(Bucket::Week, &two_weeks, tz), ["2024-01-03", "2024-01-08", "2024-01-15"]);
        assert_eq!(labels(Bucket::Day, &two_weeks, tz).len(), 14);
        let months = range("2024-01-15T00:00:00Z", "2024-03-02T00:00:00Z");
        assert_eq!(labels(Bucket::Month, &months, tz), ["2024-01-01", "2024-02-01", "2024-03-01"]);
    }
}
