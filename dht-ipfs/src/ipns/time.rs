//! The `Validity` of an EOL record: an RFC 3339 timestamp with up to nanosecond
//! precision, read into Unix nanoseconds and written the way js-ipns and the spec's
//! example write it (`2126-01-01T00:00:00.000000000Z`: UTC, nine digits).

/// Nanoseconds in a second.
const NANOS: i128 = 1_000_000_000;

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; H. Hinnant's
/// `days_from_civil`, which is exact for every year of four digits).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01 (the inverse of the above).
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

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `n` ASCII digits at the front of `s`, as a number, and the rest.
fn digits(s: &[u8], n: usize) -> Option<(i64, &[u8])> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s[..n]
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some((v, &s[n..]))
}

fn expect(s: &[u8], c: u8) -> Option<&[u8]> {
    s.split_first()
        .filter(|(first, _)| **first == c)
        .map(|(_, rest)| rest)
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction]` followed by `Z` or `±HH:MM` (RFC 3339's
/// `date-time`, as Go's `time.RFC3339Nano` parses it: `T` and `Z` upper case, at most
/// nine fraction digits, no leap second) into nanoseconds since the Unix epoch.
pub(super) fn parse_rfc3339(s: &[u8]) -> Option<i128> {
    let (year, s) = digits(s, 4)?;
    let (month, s) = digits(expect(s, b'-')?, 2)?;
    let (day, s) = digits(expect(s, b'-')?, 2)?;
    let (hour, s) = digits(expect(s, b'T')?, 2)?;
    let (minute, s) = digits(expect(s, b':')?, 2)?;
    let (second, mut s) = digits(expect(s, b':')?, 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut fraction: i128 = 0;
    if let Some(rest) = expect(s, b'.') {
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let (f, rest) = digits(rest, n)?;
        fraction = i128::from(f) * 10i128.pow(9 - n as u32);
        s = rest;
    }
    let offset = match s {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, rest) = digits(rest, 2)?;
            let (om, rest) = digits(expect(rest, b':')?, 2)?;
            if !rest.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    Some(i128::from(seconds) * NANOS + fraction)
}

/// Writes Unix nanoseconds as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub(super) fn format_rfc3339(unix_nanos: u64) -> String {
    let nanos = i128::from(unix_nanos);
    let seconds = (nanos / NANOS) as i64;
    let fraction = nanos % NANOS;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:09}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_instants() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00.000000001Z"), Some(1));
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339(b"1969-12-31T23:59:59Z"), Some(-NANOS));
        assert_eq!(
            parse_rfc3339(b"2001-09-09T01:46:40.5Z"),
            Some(1_000_000_000 * NANOS + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"2001-09-09T03:46:40+02:00"),
            parse_rfc3339(b"2001-09-09T01:46:40Z")
        );
        for n in [
            0,
            1,
            951_782_400_123_456_789,
            4_891_334_400_000_000_000,
            u64::MAX,
        ] {
            let s = format_rfc3339(n);
            assert_eq!(parse_rfc3339(s.as_bytes()), Some(i128::from(n)), "{s}");
        }
        assert_eq!(
            format_rfc3339(951_782_400_123_456_789),
            "2000-02-29T00:00:00.123456789Z"
        );
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for s in [
            &b""[..],
            b"2026-02-29T00:00:00Z",
            b"2026-13-01T00:00:00Z",
            b"2026-01-01t00:00:00Z",
            b"2026-01-01T24:00:00Z",
            b"2026-01-01T00:00:60Z",
            b"2026-01-01T00:00:00",
            b"2026-01-01T00:00:00.Z",
            b"2026-01-01T00:00:00.1234567890Z",
            b"2026-01-01T00:00:00Zjunk",
            b"2026-01-01T00:00:00+2:00",
            b"+026-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{}", String::from_utf8_lossy(s));
        }
    }
}
