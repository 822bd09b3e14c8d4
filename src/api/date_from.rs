//! `spec.dateFrom`: epoch milliseconds or an RFC 3339 timestamp, and its one conversion to ms.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The latest instant a `dateFrom` may name: 9999-12-31T23:59:59.999Z, the end of the
/// four-digit years that RFC 3339 can write.
pub const MAX_EPOCH_MILLIS: i64 = 253_402_300_799_999;

/// The smallest positive integer taken as milliseconds: 100000000000 ms is
/// 1973-03-03T09:46:40Z. A positive integer below it can only be seconds (1630052714 is
/// 2021-08-27 in seconds, 1970-01-19 in milliseconds) and is refused; 0 is the epoch in
/// either unit.
pub const MIN_MILLIS: i64 = 100_000_000_000;

/// The message of the CRD rule that refuses seconds.
pub const SECONDS_MESSAGE: &str = "dateFrom looks like seconds: use milliseconds, e.g. 1630052714000 (a positive integer below 100000000000 would be before 1973-03-03T09:46:40Z in milliseconds)";

pub use super::rfc3339::RFC3339_PATTERN;

/// Longest string `dateFrom`: a timestamp with nanoseconds and an offset is 35 characters;
/// the bound leaves room for longer fractions and bounds the cost of the CEL rule.
pub const MAX_DATE_FROM_LEN: usize = 64;

/// The CEL rule the CRD carries on `dateFrom`: both forms name an instant from
/// 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z ([`MAX_EPOCH_MILLIS`]), the range
/// [`DateFrom::epoch_millis`] accepts. A string must match [`RFC3339_PATTERN`]; its instant is
/// checked where an offset can carry it across an end (the first and last day).
pub fn cel_rule() -> String {
    // Seconds of the offset (east positive) and of the local time of day.
    let offset = "((self.endsWith('Z') || self.endsWith('z')) ? 0 : \
        (self.substring(self.size() - 6, self.size() - 5) == '-' ? -1 : 1) * \
        (int(self.substring(self.size() - 5, self.size() - 3)) * 3600 + \
        int(self.substring(self.size() - 2, self.size())) * 60))";
    let local = "(int(self.substring(11, 13)) * 3600 + int(self.substring(14, 16)) * 60 + \
        int(self.substring(17, 19)))";
    let day = "self.substring(0, 10)";
    format!(
        "type(self) == string ? \
         (self.matches('{RFC3339_PATTERN}') && \
         ({day} > '1970-01-01' || ({day} == '1970-01-01' && {local} >= {offset}) || \
         ({day} == '1969-12-31' && {local} - {offset} >= 86400)) && \
         ({day} < '9999-12-31' || {local} - {offset} <= 86399)) : \
         (self >= 0 && self <= {MAX_EPOCH_MILLIS})"
    )
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
    /// A positive integer below [`MIN_MILLIS`]: seconds, not milliseconds.
    #[error(
        "dateFrom {0} looks like seconds: use milliseconds, e.g. {0}000 (as milliseconds it would be before 1973-03-03T09:46:40Z)"
    )]
    LooksLikeSeconds(i64),
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
        #[source]
        reason: super::rfc3339::Rfc3339Error,
    },
    /// A valid timestamp before 1970-01-01T00:00:00Z.
    #[error("dateFrom {0:?} is before 1970-01-01T00:00:00Z")]
    BeforeEpoch(String),
    /// A valid timestamp after 9999-12-31T23:59:59.999Z (a negative offset on the last day).
    #[error("dateFrom {0:?} is after 9999-12-31T23:59:59.999Z")]
    TimestampTooLate(String),
    /// A string longer than [`MAX_DATE_FROM_LEN`].
    #[error("dateFrom is {0} characters long: at most {MAX_DATE_FROM_LEN} are allowed")]
    TooLong(usize),
}

impl DateFrom {
    /// The instant as UTC epoch milliseconds, as sent in `date_from`.
    ///
    /// Fractions of a millisecond in a timestamp are truncated.
    pub fn epoch_millis(&self) -> Result<i64, DateFromError> {
        match self {
            Self::EpochMillis(ms) if *ms < 0 => Err(DateFromError::Negative(*ms)),
            Self::EpochMillis(ms) if *ms > MAX_EPOCH_MILLIS => Err(DateFromError::TooLate(*ms)),
            Self::EpochMillis(ms) if *ms > 0 && *ms < MIN_MILLIS => {
                Err(DateFromError::LooksLikeSeconds(*ms))
            }
            Self::EpochMillis(ms) => Ok(*ms),
            Self::Timestamp(text) => parse_rfc3339(text),
        }
    }
}

fn parse_rfc3339(text: &str) -> Result<i64, DateFromError> {
    let len = text.chars().count();
    if len > MAX_DATE_FROM_LEN {
        return Err(DateFromError::TooLong(len));
    }
    let instant = super::rfc3339::parse(text).map_err(|reason| DateFromError::NotRfc3339 {
        value: text.to_owned(),
        reason,
    })?;
    match instant.millis() {
        ms if ms < 0 => Err(DateFromError::BeforeEpoch(text.to_owned())),
        ms if ms > MAX_EPOCH_MILLIS => Err(DateFromError::TimestampTooLate(text.to_owned())),
        ms => Ok(ms),
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
            "description": "Where the reset starts from (date_from of the ROMA call): UTC epoch milliseconds (an integer from 0 to 253402300799999, e.g. 1630052714000; a positive integer below 100000000000 is refused as seconds) or an RFC 3339 timestamp (e.g. \"2021-08-27T08:25:14Z\") of the same range, 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z. Omit it to send no date_from.",
            "x-kubernetes-int-or-string": true,
            "maxLength": MAX_DATE_FROM_LEN,
            "x-kubernetes-validations": [{
                "rule": cel_rule(),
                "message": "dateFrom must be epoch milliseconds from 0 to 253402300799999 or an RFC 3339 timestamp such as 2021-08-27T08:25:14Z from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z"
            }, {
                "rule": format!("type(self) == string || self <= 0 || self >= {MIN_MILLIS}"),
                "message": SECONDS_MESSAGE
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

    /// Issue 15.9: `dateFrom: 1630052714` (seconds) was sent as a replay from 1970-01-19.
    #[test]
    fn integers_that_can_only_be_seconds_are_refused() {
        for secs in [1, 1_630_052_714, MIN_MILLIS - 1] {
            let err = DateFrom::EpochMillis(secs)
                .epoch_millis()
                .expect_err("seconds");
            assert_eq!(err, DateFromError::LooksLikeSeconds(secs));
            let text = err.to_string();
            assert!(
                text.contains("looks like seconds: use milliseconds")
                    && text.contains(&format!("e.g. {secs}000")),
                "{text}"
            );
        }
        assert_eq!(
            DateFrom::EpochMillis(MIN_MILLIS).epoch_millis(),
            Ok(MIN_MILLIS)
        );
        assert_eq!(DateFrom::EpochMillis(0).epoch_millis(), Ok(0));
        // The timestamp form names its instant: 1972 stays expressible that way.
        assert_eq!(ms("1972-01-01T00:00:00Z"), Ok(63_072_000_000));
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

    /// Both forms accept the same range, and refuse the same, at both ends.
    #[test]
    fn both_forms_share_the_range_at_the_edges() {
        let int = |ms: i64| DateFrom::EpochMillis(ms).epoch_millis();
        assert_eq!(ms("9999-12-31T23:59:59.999Z"), Ok(MAX_EPOCH_MILLIS));
        assert_eq!(int(MAX_EPOCH_MILLIS), Ok(MAX_EPOCH_MILLIS));
        assert_eq!(ms("9999-12-31T23:59:59.999999999Z"), Ok(MAX_EPOCH_MILLIS));
        assert_eq!(ms("9999-12-31T22:59:59.999-01:00"), Ok(MAX_EPOCH_MILLIS));
        assert_eq!(ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(int(0), Ok(0));
        assert_eq!(ms("1970-01-01T08:00:00+08:00"), Ok(0));
        assert_eq!(ms("1969-12-31T23:00:00-01:00"), Ok(0));
        // One millisecond past either end.
        assert!(int(MAX_EPOCH_MILLIS + 1).is_err());
        for late in ["9999-12-31T23:00:00-01:00", "9999-12-31T23:59:59.999-00:01"] {
            assert_eq!(
                ms(late),
                Err(DateFromError::TimestampTooLate(late.into())),
                "{late}"
            );
        }
        assert!(int(-1).is_err());
        for early in ["1969-12-31T23:59:59.999Z", "1970-01-01T07:59:59.999+08:00"] {
            assert_eq!(ms(early), Err(DateFromError::BeforeEpoch(early.into())));
        }
        // More fractional digits than nanoseconds are accepted (and truncated).
        assert_eq!(ms("2021-08-27T08:25:14.1239999999Z"), Ok(1_630_052_714_123));
        let long = format!("2021-08-27T08:25:14.{}Z", "1".repeat(60));
        assert_eq!(ms(&long), Err(DateFromError::TooLong(81)));
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
