//! ISO-8601 dates and timestamps, by hand: the subset data files use does not justify a
//! calendar dependency.
//!
//! Accepted: `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM`, `:SS`, a fraction
//! of up to 9 digits (kept to microseconds), and `Z` or an offset `±HH:MM`, `±HHMM` or `±HH`.
//! Times without an offset are taken as UTC.

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Microseconds since 1970-01-01T00:00:00Z, or `None` when `text` is not ISO-8601.
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    let s = text.trim().as_bytes();
    let year = digits(s.get(0..4)?)?;
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(s.get(5..7)?)?;
    let day = digits(s.get(8..10)?)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * SECONDS_PER_DAY * MICROS_PER_SECOND;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(micros);
    }
    if !matches!(rest[0], b'T' | b't' | b' ') {
        return None;
    }
    let rest = &rest[1..];
    let hour = digits(rest.get(0..2)?)?;
    if rest.get(2) != Some(&b':') {
        return None;
    }
    let minute = digits(rest.get(3..5)?)?;
    let mut rest = &rest[5..];
    let mut second = 0;
    if rest.first() == Some(&b':') {
        second = digits(rest.get(1..3)?)?;
        rest = &rest[3..];
        if matches!(rest.first(), Some(b'.' | b',')) {
            let n = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            let fraction = &rest[1..=n];
            // Pad or cut to six digits: microseconds.
            let mut sub = 0;
            for i in 0..6 {
                sub = sub * 10 + fraction.get(i).map_or(0, |d| i64::from(d - b'0'));
            }
            micros += sub;
            rest = &rest[1 + n..];
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    micros += ((hour * 60 + minute) * 60 + second) * MICROS_PER_SECOND;
    let offset_minutes = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    Some(micros - offset_minutes * 60 * MICROS_PER_SECOND)
}

/// `micros` since the epoch as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
pub(crate) fn format_datetime(micros: i64) -> String {
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let sub = micros.rem_euclid(MICROS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    if sub == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{sub:06}Z")
    }
}

/// The calendar fields of a timestamp, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Proleptic Gregorian year.
    pub year: i64,
    /// 1–12.
    pub month: i64,
    /// 1–31.
    pub day: i64,
    /// 0–23.
    pub hour: i64,
    /// 0–59.
    pub minute: i64,
    /// Monday = 0 … Sunday = 6 (pandas' `dayofweek`).
    pub weekday: i64,
}

impl CivilTime {
    /// Splits `micros` since the Unix epoch.
    pub fn from_micros(micros: i64) -> Self {
        let seconds = micros.div_euclid(MICROS_PER_SECOND);
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            // 1970-01-01 was a Thursday (3 with Monday = 0).
            weekday: (days + 3).rem_euclid(7),
        }
    }
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0_i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_times_fractions_and_offsets() {
        assert_eq!(parse_datetime("1970-01-01"), Some(0));
        assert_eq!(parse_datetime("1970-01-02T00:00:01Z"), Some(86_401_000_000));
        assert_eq!(parse_datetime("1970-01-01 00:00:00.5"), Some(500_000));
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_datetime("1969-12-31T23:00:00-0100"), Some(0));
        assert_eq!(parse_datetime("2024-02-29"), Some(19_782 * 86_400_000_000));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24:00",
            "2024-01-01T25:00",
            "1.5",
            "",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_time_splits_fields_and_weekday() {
        let t = CivilTime::from_micros(parse_datetime("2013-01-01T05:17:00Z").unwrap());
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute),
            (2013, 1, 1, 5, 17)
        );
        assert_eq!(t.weekday, 1, "2013-01-01 was a Tuesday");
        let before = CivilTime::from_micros(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.hour),
            (1969, 12, 31, 23)
        );
        assert_eq!(before.weekday, 2, "1969-12-31 was a Wednesday");
    }

    #[test]
    fn formats_round_trip() {
        for text in [
            "2024-02-29T13:45:07Z",
            "1901-12-13T20:45:52.000250Z",
            "1970-01-01T00:00:00Z",
        ] {
            assert_eq!(format_datetime(parse_datetime(text).unwrap()), text);
        }
    }
}
