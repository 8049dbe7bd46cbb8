//! Time as alerts and files write it: RFC 3339 UTC, from and to seconds or nanoseconds since
//! the epoch (proleptic Gregorian, Howard Hinnant's day algorithms; no time-zone database).

/// Format nanoseconds since the epoch as RFC 3339 UTC with nanosecond precision.
pub fn format_rfc3339_nanos(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01 (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339_secs(secs: u64) -> String {
    let mut s = format_rfc3339_nanos(secs.saturating_mul(1_000_000_000));
    s.truncate(19);
    s.push('Z');
    s
}

/// `YYYY-MM-DDTHH:MM:SSZ` (also with a fraction, dropped, or a `+00:00` offset) to seconds since
/// the epoch; the message says what was expected.
pub fn parse_rfc3339_secs(text: &str) -> Result<u64, String> {
    parse_rfc3339_nanos(text).map(|ns| ns / 1_000_000_000)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (or a `+00:00` offset) to nanoseconds since the epoch (a
/// fraction past nanoseconds is truncated); the message says what was expected.
pub fn parse_rfc3339_nanos(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a UTC time such as 2026-12-07T01:00:00Z");
    let b = text.trim().as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        std::str::from_utf8(&b[r])
            .ok()
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &b[19..];
    let mut frac_ns: u64 = 0;
    if rest.first() == Some(&b'.') {
        let digits: Vec<u8> = rest[1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .copied()
            .collect();
        if digits.is_empty() {
            return Err(bad());
        }
        for i in 0..9 {
            frac_ns = frac_ns * 10 + u64::from(digits.get(i).map_or(0, |c| c - b'0'));
        }
        rest = &rest[1 + digits.len()..];
    }
    if !(rest == b"Z" || rest == b"z" || rest == b"+00:00") {
        return Err(bad());
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let secs =
        u64::try_from(days * 86_400 + i64::from(h * 3600 + mi * 60 + s)).map_err(|_| bad())?;
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_ns))
        .ok_or_else(bad)
}

/// A duration: one or more `<number><unit>`, units `ms`, `s`, `m`, `h`, `d` (`"1h30m"`,
/// `"250ms"`); the message says what was expected. The one duration syntax of every
/// configuration key and file.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty duration (write e.g. \"1h\", \"30m\", \"500ms\")".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let units = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let (number, unit) = (&rest[..digits], &rest[digits..digits + units]);
        if number.is_empty() {
            return Err(format!(
                "{text:?}: a number must come before {:?} (e.g. \"1h30m\")",
                rest.chars().next().unwrap_or(' ')
            ));
        }
        let n: u64 = number.parse().map_err(|_| format!("{text:?}: too long"))?;
        let secs = |mul: u64| {
            n.checked_mul(mul)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("{text:?}: too long"))
        };
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => secs(1)?,
            "m" => secs(60)?,
            "h" => secs(3600)?,
            "d" => secs(86_400)?,
            "" => {
                return Err(format!(
                    "{text:?}: {number} has no unit (units: ms, s, m, h, d; e.g. \"{number}m\")"
                ))
            }
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?} (units: ms, s, m, h, d; e.g. \"1h30m\")"
                ))
            }
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{text:?}: too long"))?;
        rest = &rest[digits + units..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29T12:34:56.000000007Z (leap day)
        assert_eq!(
            format_rfc3339_nanos(951_827_696_000_000_007),
            "2000-02-29T12:34:56.000000007Z"
        );
        // 2026-11-29T19:30:00.123456789Z
        assert_eq!(
            format_rfc3339_nanos(1_795_980_600_123_456_789),
            "2026-11-29T19:30:00.123456789Z"
        );
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        for bad in ["", "s", "5 parsecs", "1x", "99999999999999999999d", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("30").unwrap_err().contains("\"30m\""));
    }

    #[test]
    fn nanoseconds_round_trip() {
        for ns in [0, 951_827_696_000_000_007, 1_795_980_600_123_456_789] {
            assert_eq!(parse_rfc3339_nanos(&format_rfc3339_nanos(ns)), Ok(ns));
        }
        assert_eq!(
            parse_rfc3339_nanos("1970-01-01T00:00:01.5Z"),
            Ok(1_500_000_000)
        );
        assert!(parse_rfc3339_nanos("1970-01-01T00:00:01.Z").is_err());
    }

    #[test]
    fn seconds_round_trip() {
        assert_eq!(format_rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_secs(1_796_605_200), "2026-12-07T01:00:00Z");
        for t in [0, 59, 951_782_400, 1_796_605_200, 4_102_444_799] {
            assert_eq!(parse_rfc3339_secs(&format_rfc3339_secs(t)), Ok(t), "{t}");
        }
        assert_eq!(
            parse_rfc3339_secs("2026-12-07T01:00:00.123Z"),
            Ok(1_796_605_200)
        );
        assert_eq!(
            parse_rfc3339_secs("2026-12-07T01:00:00+00:00"),
            Ok(1_796_605_200)
        );
        for bad in [
            "",
            "2026-12-07",
            "2026-13-07T01:00:00Z",
            "2026-12-07T01:00:00+01:00",
        ] {
            assert!(parse_rfc3339_secs(bad).is_err(), "{bad}");
        }
    }
}
