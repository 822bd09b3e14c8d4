//! `spec.dateFrom`: epoch milliseconds or an RFC 3339 timestamp, and its one conversion to ms.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The latest instant a `dateFrom` may name: 9999-12-31T23:59:59.999Z, the end of the
/// four-digit years that RFC 3339 can write.
pub const MAX_EPOCH_MILLIS: i64 = 253_402_300_799_999;

/// The regular expression (RE2 syntax, as CEL uses) that a string `dateFrom` must match.
///
/// Date, `T` (or `t` or a space), time with optional fraction, then `Z` or a numeric offset.
pub const RFC3339_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";

/// The CEL rule the CRD carries on `dateFrom`: integers must be >= 0, strings RFC 3339.
pub fn cel_rule() -> String {
    format!("type(self) == string ? self.matches('{RFC3339_PATTERN}') : self >= 0")
}

/// Where the reset starts from: `date_from` of the ROMA call.
///
/// Either UTC epoch milliseconds (`1630052714000`) or an RFC 3339 timestamp
/// (`"2021-08-27T08:25:14Z"`); both name an instant, converted by [`DateFrom::epoch_millis`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DateFrom {
    /// UTC epoch milliseconds, as the ROMA API takes them.
    EpochMillis(i64),
    /// An RFC 3339 timestamp with a `Z` or numeric offset.
    Timestamp(String),
}

/// Why a `dateFrom` does not name a usable instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateFromError {
    /// A negative number of milliseconds.
    #[error("dateFrom {0} is negative: epoch milliseconds must be >= 0")]
    Negative(i64),
    /// Later than [`MAX_EPOCH_MILLIS`].
    #[error("dateFrom {0} is after 9999-12-31T23:59:59.999Z")]
    TooLate(i64),
    /// A string that is not an RFC 3339 timestamp, or names no real instant.
    #[error(
        "dateFrom {value:?} is not an RFC 3339 timestamp such as 2021-08-27T08:25:14Z: {reason}"
    )]
    NotRfc3339 {
        /// The string as given (a date, never a secret).
        value: String,
        /// What the parser objected to.
        reason: String,
    },
    /// A valid timestamp before 1970-01-01T00:00:00Z.
    #[error("dateFrom {0:?} is before 1970-01-01T00:00:00Z")]
    BeforeEpoch(String),
}

impl DateFrom {
    /// The instant as UTC epoch milliseconds, as sent in `date_from`.
    ///
    /// Fractions of a millisecond in a timestamp are truncated.
    pub fn epoch_millis(&self) -> Result<i64, DateFromError> {
        match self {
            Self::EpochMillis(ms) if *ms < 0 => Err(DateFromError::Negative(*ms)),
            Self::EpochMillis(ms) if *ms > MAX_EPOCH_MILLIS => Err(DateFromError::TooLate(*ms)),
            Self::EpochMillis(ms) => Ok(*ms),
            Self::Timestamp(text) => parse_rfc3339(text),
        }
    }
}

fn parse_rfc3339(text: &str) -> Result<i64, DateFromError> {
    let not_rfc3339 = |reason: String| DateFromError::NotRfc3339 {
        value: text.to_owned(),
        reason,
    };
    if !matches_rfc3339_shape(text) {
        return Err(not_rfc3339(
            "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)".to_owned(),
        ));
    }
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e: jiff::Error| not_rfc3339(e.to_string()))?;
    let ms = ts.as_millisecond();
    if ms < 0 {
        return Err(DateFromError::BeforeEpoch(text.to_owned()));
    }
    Ok(ms)
}

/// The same check as [`RFC3339_PATTERN`], by hand: jiff also accepts forms (such as bracketed
/// time zone names) that the CRD schema rejects, and the two must agree.
fn matches_rfc3339_shape(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

impl JsonSchema for DateFrom {
    fn schema_name() -> Cow<'static, str> {
        "DateFrom".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Where the reset starts from (date_from of the ROMA call): UTC epoch milliseconds (an integer >= 0, e.g. 1630052714000) or an RFC 3339 timestamp (e.g. \"2021-08-27T08:25:14Z\"). Omit it to send no date_from.",
            "x-kubernetes-int-or-string": true,
            "x-kubernetes-validations": [{
                "rule": cel_rule(),
                "message": "dateFrom must be epoch milliseconds >= 0 or an RFC 3339 timestamp such as 2021-08-27T08:25:14Z"
            }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Result<i64, DateFromError> {
        DateFrom::Timestamp(text.to_owned()).epoch_millis()
    }

    #[test]
    fn integers_pass_through_within_bounds() {
        assert_eq!(DateFrom::EpochMillis(0).epoch_millis(), Ok(0));
        assert_eq!(
            DateFrom::EpochMillis(1_630_052_714_000).epoch_millis(),
            Ok(1_630_052_714_000)
        );
        assert_eq!(
            DateFrom::EpochMillis(MAX_EPOCH_MILLIS).epoch_millis(),
            Ok(MAX_EPOCH_MILLIS)
        );
        assert_eq!(
            DateFrom::EpochMillis(-1).epoch_millis(),
            Err(DateFromError::Negative(-1))
        );
        assert_eq!(
            DateFrom::EpochMillis(MAX_EPOCH_MILLIS + 1).epoch_millis(),
            Err(DateFromError::TooLate(MAX_EPOCH_MILLIS + 1))
        );
    }

    #[test]
    fn rfc3339_forms_convert_to_the_same_instant() {
        assert_eq!(ms("2021-08-27T08:25:14Z"), Ok(1_630_052_714_000));
        assert_eq!(ms("2021-08-27t08:25:14z"), Ok(1_630_052_714_000));
        assert_eq!(ms("2021-08-27 08:25:14Z"), Ok(1_630_052_714_000));
        assert_eq!(ms("2021-08-27T16:25:14+08:00"), Ok(1_630_052_714_000));
        assert_eq!(ms("2021-08-27T08:25:14.123Z"), Ok(1_630_052_714_123));
        // Below a millisecond is truncated.
        assert_eq!(ms("2021-08-27T08:25:14.123999Z"), Ok(1_630_052_714_123));
        assert_eq!(ms("1970-01-01T00:00:00Z"), Ok(0));
    }

    #[test]
    fn garbage_and_unreal_instants_are_refused_with_the_value() {
        for bad in [
            "",
            "yesterday",
            "1630052714000",
            "2021-08-27",
            "2021-08-27T08:25:14",
            "2021-08-27T08:25:14.Z",
            "2021-08-27T08:25:14+0800",
            "2021-08-27T08:25:14Z[UTC]",
            "2021-13-27T08:25:14Z",
            "2021-02-30T08:25:14Z",
            "2021-08-27T25:25:14Z",
        ] {
            let err = ms(bad).expect_err(bad);
            assert!(
                matches!(&err, DateFromError::NotRfc3339 { value, .. } if value == bad),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("RFC 3339"), "{err}");
        }
        assert_eq!(
            ms("1969-12-31T23:59:59Z"),
            Err(DateFromError::BeforeEpoch("1969-12-31T23:59:59Z".into()))
        );
    }

    #[test]
    fn serde_accepts_both_forms() {
        let int: DateFrom = serde_json::from_str("1630052714000").expect("integer");
        assert_eq!(int, DateFrom::EpochMillis(1_630_052_714_000));
        let text: DateFrom = serde_json::from_str("\"2021-08-27T08:25:14Z\"").expect("string");
        assert_eq!(text, DateFrom::Timestamp("2021-08-27T08:25:14Z".into()));
        assert_eq!(serde_json::to_string(&int).expect("ser"), "1630052714000");
        assert!(serde_json::from_str::<DateFrom>("1.5").is_err());
        assert!(serde_json::from_str::<DateFrom>("true").is_err());
    }
}
