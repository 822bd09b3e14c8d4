//! Durations on the command line: `500ms`, `30s`, `2m`, `1h`, `30d`.

use std::num::ParseIntError;
use std::time::Duration;

/// Why a text is not a duration (or not a usable timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Digits only.
    #[error("{0:?} needs a unit: ms, s, m, h or d (e.g. 30s)")]
    NoUnit(String),
    /// No whole number before the unit.
    #[error("{text:?} does not start with a whole number")]
    NotANumber {
        /// The text as given.
        text: String,
        /// The number's parse error.
        #[source]
        source: ParseIntError,
    },
    /// More seconds than a `u64` holds.
    #[error("{0:?} is too long")]
    TooLong(String),
    /// A unit other than `ms`, `s`, `m`, `h`, `d`.
    #[error("{text:?} has an unknown unit {unit:?}: use ms, s, m, h or d")]
    UnknownUnit {
        /// The text as given.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// A timeout of 0.
    #[error("{0:?} is 0: a timeout must be longer than 0 (e.g. 60s)")]
    ZeroTimeout(String),
}

/// Parse a whole number followed by `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError::NoUnit(text.to_owned()))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|source| DurationError::NotANumber {
        text: text.to_owned(),
        source,
    })?;
    let seconds = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| DurationError::TooLong(text.to_owned()))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => Err(DurationError::UnknownUnit {
            text: text.to_owned(),
            unit: unit.to_owned(),
        }),
    }
}

/// A timeout: as [`parse_duration`], but longer than 0 (a 0 timeout fails every call before
/// it is made, and `run` would record each reset as `Unknown`).
pub fn parse_timeout(text: &str) -> Result<Duration, DurationError> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(DurationError::ZeroTimeout(text.trim().to_owned()));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        for bad in ["", "30", "s", "1.5s", "-1s", "3w", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// Issue 15.9: `--request-timeout 0s` was accepted and every reset ended Unknown.
    #[test]
    fn timeouts_refuse_zero() {
        for zero in ["0s", "0ms", "000m", "0d"] {
            let err = parse_timeout(zero).expect_err(zero);
            assert_eq!(err, DurationError::ZeroTimeout(zero.to_owned()));
            assert!(err.to_string().contains("must be longer than 0"), "{err}");
        }
        assert_eq!(parse_timeout("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse_timeout("1.5s").is_err());
    }
}
