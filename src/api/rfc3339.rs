//! The one RFC 3339 parser of the spec's timestamps (`dateFrom`, `notAfter`), matching
//! [`RFC3339_PATTERN`] exactly, so the CRD admits nothing the controller cannot read.
//!
//! It is not bounded by `jiff::Timestamp`'s range (which ends at 9999-12-30T22:00:00Z) and takes
//! any number of fractional digits (kube-apiserver's `date-time` format does too; digits past
//! the nanosecond are dropped), so every instant of the four-digit years can be written.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The regular expression (RE2 syntax, as CEL and kube-apiserver use) of an RFC 3339
/// timestamp: date, `T` (or `t` or a space), time with an optional fraction of any length,
/// then `Z` or a numeric offset of at most 23:59.
pub const RFC3339_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// An instant of the four-digit years, as seconds and nanoseconds since the Unix epoch
/// (negative before 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Nanoseconds within the second (0..1e9).
    pub nanos: u32,
}

impl Instant {
    /// Milliseconds since the epoch (fractions of a millisecond truncated, towards the past).
    pub fn millis(self) -> i64 {
        self.seconds * 1000 + i64::from(self.nanos / 1_000_000)
    }

    /// As a `jiff::Timestamp`, saturating at its bounds (which fall inside year 9999 and
    /// year -9999).
    pub fn timestamp(self) -> Timestamp {
        let nanos = i32::try_from(self.nanos).unwrap_or(0);
        Timestamp::new(self.seconds, nanos).unwrap_or(if self.seconds < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }
}

/// Why a text is not an RFC 3339 timestamp. The message says what is wrong, without the
/// whole value (the caller quotes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rfc3339Error {
    /// Not of the form the pattern describes.
    #[error("expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)")]
    Shape,
    /// An offset past 23:59.
    #[error("offset {sign}{hours:02}:{minutes:02} is out of range")]
    Offset {
        /// `+` or `-`.
        sign: char,
        /// Hours of the offset.
        hours: i64,
        /// Minutes of the offset.
        minutes: i64,
    },
    /// A day the calendar does not have (`2021-02-30`).
    #[error("{year:04}-{month:02}-{day:02} is not a date")]
    NotADate {
        /// The year as written.
        year: i64,
        /// The month as written.
        month: i64,
        /// The day as written.
        day: i64,
    },
    /// A time the clock does not have (`24:00:00`, a leap second).
    #[error("{hour:02}:{minute:02}:{second:02} is not a time of day")]
    NotATime {
        /// The hour as written.
        hour: i64,
        /// The minute as written.
        minute: i64,
        /// The second as written.
        second: i64,
    },
}

/// Parse `text` as [`RFC3339_PATTERN`] describes, checking that the date and time exist.
pub fn parse(text: &str) -> Result<Instant, Rfc3339Error> {
    let shape = || Rfc3339Error::Shape;
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let field = |range: std::ops::Range<usize>, sep: Option<u8>| {
        let end = range.end;
        let value = num(range)?;
        match sep {
            Some(sep) if b.get(end) != Some(&sep) => None,
            _ => Some(value),
        }
    };
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        field(0..4, Some(b'-')),
        field(5..7, Some(b'-')),
        field(8..10, None),
        field(11..13, Some(b':')),
        field(14..16, Some(b':')),
        field(17..19, None),
    ) else {
        return Err(shape());
    };
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return Err(shape());
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(shape());
        }
        nanos = frac[..n]
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(9)
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'));
        rest = &frac[n..];
    }
    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
        {
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if h > 23 || m > 59 {
                return Err(Rfc3339Error::Offset {
                    sign: char::from(*sign),
                    hours: h,
                    minutes: m,
                });
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return Err(shape()),
    };
    let date = i16::try_from(year)
        .ok()
        .zip(i8::try_from(month).ok())
        .zip(i8::try_from(day).ok())
        .and_then(|((y, m), d)| jiff::civil::Date::new(y, m, d).ok())
        .ok_or(Rfc3339Error::NotADate { year, month, day })?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(Rfc3339Error::NotATime {
            hour,
            minute,
            second,
        });
    }
    let days = days_from_civil(
        i64::from(date.year()),
        i64::from(date.month()),
        i64::from(date.day()),
    );
    Ok(Instant {
        seconds: days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds,
        nanos,
    })
}

/// Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Deserialize an optional [`Time`] with [`parse`] instead of `jiff`'s parser, which refuses
/// more than nine fractional digits and instants late in year 9999 that kube-apiserver
/// stores. Serialization is `Time`'s own.
pub fn deserialize_opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    parse(&text)
        .map(|instant| Some(Time(instant.timestamp())))
        .map_err(|reason| {
            serde::de::Error::custom(format!(
                "{text:?} is not an RFC 3339 timestamp such as 2027-01-01T00:00:00Z: {reason}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .millis()
    }

    #[test]
    fn agrees_with_jiff_where_jiff_has_range() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2021-08-27T08:25:14Z",
            "2021-08-27t08:25:14z",
            "2021-08-27 08:25:14Z",
            "2021-08-27T16:25:14+08:00",
            "2021-08-27T08:25:14.123456789-03:30",
            "2000-02-29T23:59:59.5+23:59",
            "1969-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
            "9999-12-30T22:00:00.999Z",
        ] {
            let ours = parse(text).expect(text);
            let jiff: Timestamp = text.parse().expect(text);
            assert_eq!(ours.timestamp(), jiff, "{text}");
            assert_eq!(ours.millis(), jiff.as_millisecond(), "{text}");
        }
    }

    /// Issue 11.13 and 11.11: what `jiff::Timestamp` (the parser before) refused.
    #[test]
    fn reaches_the_end_of_year_9999_and_any_fraction_length() {
        assert!("9999-12-31T23:59:59.999Z".parse::<Timestamp>().is_err());
        assert!(
            "2030-01-01T00:00:00.1234567891Z"
                .parse::<Timestamp>()
                .is_err()
        );
        assert_eq!(ms("9999-12-31T23:59:59.999Z"), 253_402_300_799_999);
        assert_eq!(
            ms("9999-12-31T23:59:59.9999999999999Z"),
            253_402_300_799_999
        );
        let ten = parse("2030-01-01T00:00:00.1234567891Z").expect("10 digits");
        assert_eq!(ten.nanos, 123_456_789);
        assert_eq!(
            parse("9999-12-31T23:59:59Z").expect("max").timestamp(),
            Timestamp::MAX
        );
    }

    #[test]
    fn refuses_what_the_pattern_refuses_and_unreal_dates() {
        for bad in [
            "",
            "2021-08-27",
            "2021-08-27T08:25:14",
            "2021-08-27T08:25:14.Z",
            "2021-08-27T08:25:14+0800",
            "2021-08-27T08:25:14+24:00",
            "2021-08-27T08:25:14+08:60",
            "2021-08-27T08:25:14Z[UTC]",
            "2021-08-27X08:25:14Z",
            "2021-13-27T08:25:14Z",
            "2021-02-30T08:25:14Z",
            "2021-08-27T25:25:14Z",
            "2021-08-27T08:60:14Z",
            "2021-08-27T08:25:60Z",
            "+2021-08-27T08:25:14Z",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn not_after_deserializes_what_kube_apiserver_stores() {
        #[derive(Deserialize)]
        struct S {
            #[serde(default, deserialize_with = "deserialize_opt_time")]
            t: Option<Time>,
        }
        let s: S = serde_json::from_str(r#"{"t": "2030-01-01T00:00:00.1234567890Z"}"#)
            .expect("10 fractional digits");
        assert_eq!(
            s.t.map(|t| t.0),
            Some("2030-01-01T00:00:00.123456789Z".parse().expect("ts"))
        );
        let none: S = serde_json::from_str(r#"{"t": null}"#).expect("null");
        assert!(none.t.is_none());
        assert!(serde_json::from_str::<S>(r#"{"t": "soon"}"#).is_err());
    }
}
