//! The controller's own check of a spec (defence in depth behind the CRD schema).

use super::{DateFromError, RetryPolicy, TaskResetSpec};

/// Pattern of `projectId`, `instanceId` and `taskId`: nothing can escape its path segment.
pub const ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";
/// Pattern of `region`, e.g. `cn-north-4`.
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// Pattern of `credentialsSecretRef.name`: a DNS-1123 subdomain, as kube-apiserver requires of
/// every Secret name. Nothing else can be spliced into the Secret's API path (`?`, `/`, `%`).
pub const DNS1123_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

// Every free-text field has a maxLength in the CRD and the same bound here. kube-apiserver
// counts characters (code points), as [`char_len`] does; it also estimates the cost of CEL
// rules from these bounds, so they keep the CRD's rules inside the cost budget.

/// `projectId`, `instanceId`, `taskId`: what [`ID_PATTERN`] allows.
pub const MAX_ID_LEN: usize = 64;
/// `region`: a DNS label (the region is one label of the endpoint's host name); real regions
/// are under 20 characters.
pub const MAX_REGION_LEN: usize = 63;
/// `endpoint`: 2048, the URL length that browsers, proxies and gateways commonly accept; a
/// base URL is a host name (at most 253) and a short path.
pub const MAX_ENDPOINT_LEN: usize = 2048;
/// `runId`: 253, the length of an object name, so a name can be used as a run ID.
pub const MAX_RUN_ID_LEN: usize = 253;
/// `credentialsSecretRef.name`: 253, the limit of a DNS-1123 subdomain and of a Secret name.
pub const MAX_SECRET_NAME_LEN: usize = 253;

/// Why a spec cannot be acted on. Messages name the field and the offending value; none of
/// the fields checked here is secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An ID that does not match [`ID_PATTERN`].
    #[error(
        "{field} {value:?} must be 1-64 letters, digits, '_' or '-', starting with a letter or digit"
    )]
    InvalidId {
        /// `projectId`, `instanceId` or `taskId`.
        field: &'static str,
        /// The value as given.
        value: String,
    },
    /// A `dateFrom` that names no usable instant.
    #[error(transparent)]
    DateFrom(#[from] DateFromError),
    /// A free-text field longer than its CRD `maxLength`.
    #[error("{field} is {len} characters long: at most {max} are allowed")]
    TooLong {
        /// The field, e.g. `endpoint`.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `credentialsSecretRef.name` that is not a DNS-1123 subdomain.
    #[error(
        "credentialsSecretRef.name {0:?} is not a Secret name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
    )]
    InvalidSecretName(String),
    /// A `region` that does not match [`REGION_PATTERN`].
    #[error("region {0:?} must look like cn-north-4")]
    InvalidRegion(String),
    /// An `endpoint` that is not an absolute http(s) URL without credentials, query or fragment.
    #[error("endpoint {value:?} is not usable: {reason}")]
    InvalidEndpoint {
        /// The value as given, with any user information removed.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A spec that passed [`TaskResetSpec::validate`]: the values the call is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSpec {
    /// Huawei Cloud project ID.
    pub project_id: String,
    /// ROMA Connect instance ID.
    pub instance_id: String,
    /// Combined task ID.
    pub task_id: String,
    /// `date_from` to send, in UTC epoch ms; `None` sends `{}`.
    pub date_from_ms: Option<i64>,
    /// The region asked for, if any.
    pub region: Option<String>,
    /// The endpoint asked for, parsed, if any.
    pub endpoint: Option<url::Url>,
    /// The retry policy.
    pub retry_policy: RetryPolicy,
}

impl TaskResetSpec {
    /// Check every field the schema checks, and what it cannot (real instants, URL syntax).
    pub fn validate(&self) -> Result<ValidSpec, SpecError> {
        let id = |field: &'static str, value: &str| {
            if is_valid_id(value) {
                Ok(value.to_owned())
            } else {
                Err(SpecError::InvalidId {
                    field,
                    value: value.to_owned(),
                })
            }
        };
        let project_id = id("projectId", &self.project_id)?;
        let instance_id = id("instanceId", &self.instance_id)?;
        let task_id = id("taskId", &self.task_id)?;
        for (field, value, max) in [
            ("region", self.region.as_deref(), MAX_REGION_LEN),
            ("endpoint", self.endpoint.as_deref(), MAX_ENDPOINT_LEN),
            ("runId", self.run_id.as_deref(), MAX_RUN_ID_LEN),
            (
                "credentialsSecretRef.name",
                self.credentials_secret_ref
                    .as_ref()
                    .map(|r| r.name.as_str()),
                MAX_SECRET_NAME_LEN,
            ),
        ] {
            let len = value.map_or(0, char_len);
            if len > max {
                return Err(SpecError::TooLong { field, len, max });
            }
        }
        if let Some(reference) = &self.credentials_secret_ref
            && !is_dns1123_subdomain(&reference.name)
        {
            return Err(SpecError::InvalidSecretName(reference.name.clone()));
        }
        let date_from_ms = self
            .date_from
            .as_ref()
            .map(|d| d.epoch_millis())
            .transpose()?;
        if let Some(region) = &self.region
            && !is_valid_region(region)
        {
            return Err(SpecError::InvalidRegion(region.clone()));
        }
        let endpoint = self.endpoint.as_deref().map(parse_endpoint).transpose()?;
        Ok(ValidSpec {
            project_id,
            instance_id,
            task_id,
            date_from_ms,
            region: self.region.clone(),
            endpoint,
            retry_policy: self.retry_policy,
        })
    }
}

/// Whether `value` matches [`ID_PATTERN`].
pub fn is_valid_id(value: &str) -> bool {
    let b = value.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// Length in characters (Unicode code points), as kube-apiserver measures `maxLength`.
pub(crate) fn char_len(value: &str) -> usize {
    value.chars().count()
}

/// Whether `value` is a DNS-1123 subdomain ([`DNS1123_SUBDOMAIN_PATTERN`], 1-253 characters).
pub fn is_dns1123_subdomain(value: &str) -> bool {
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    (1..=MAX_SECRET_NAME_LEN).contains(&value.len()) && value.split('.').all(label_ok)
}

/// Whether `value` matches [`REGION_PATTERN`]: two letters, one or more `-word`, then `-digits`.
pub fn is_valid_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let all = |s: &str, f: fn(&u8) -> bool| !s.is_empty() && s.bytes().all(|c| f(&c));
    parts.len() >= 3
        && parts[0].len() == 2
        && all(parts[0], u8::is_ascii_lowercase)
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| all(p, u8::is_ascii_lowercase))
        && parts.last().is_some_and(|p| all(p, u8::is_ascii_digit))
}

/// Parse an endpoint: absolute http(s) URL with a host, no user information, query or fragment.
/// Whether http is allowed, and whether the host is, is the endpoint policy's decision.
pub fn parse_endpoint(value: &str) -> Result<url::Url, SpecError> {
    let invalid = |shown: String, reason| SpecError::InvalidEndpoint {
        value: shown,
        reason,
    };
    let url = url::Url::parse(value)
        .map_err(|_| invalid(redact_userinfo(value), "not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            redact_userinfo(value),
            "must not carry user information; use credentialsSecretRef",
        ));
    }
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid(value.to_owned(), "scheme must be https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(value.to_owned(), "has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            value.to_owned(),
            "must not have a query or fragment",
        ));
    }
    Ok(url)
}

/// Drop anything between `://` and `@` so that a password in a URL never reaches a message.
fn redact_userinfo(value: &str) -> String {
    match (value.find("://"), value.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &value[..scheme_end], &value[at..])
        }
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DateFrom;

    fn spec() -> TaskResetSpec {
        crate::fixture::Fixture::new("x", crate::fixture::TASK)
            .region("cn-north-4")
            .build_spec()
    }

    #[test]
    fn a_good_spec_yields_its_values() {
        let valid = spec().validate().expect("valid");
        assert_eq!(valid.task_id, "15366328208d4d77b76532fe9f4006a6");
        assert_eq!(valid.date_from_ms, Some(1_630_052_714_000));
        assert_eq!(valid.region.as_deref(), Some("cn-north-4"));
    }

    #[test]
    fn ids_that_could_escape_their_segment_are_refused() {
        let long = "a".repeat(65);
        for bad in [
            "",
            "../x",
            "a/b",
            "a.b",
            "a%2F",
            "-a",
            "_a",
            "a b",
            long.as_str(),
        ] {
            let mut s = spec();
            s.task_id = bad.into();
            let err = s.validate().expect_err(bad);
            assert!(
                matches!(&err, SpecError::InvalidId { field: "taskId", value } if value == bad),
                "{bad}: {err:?}"
            );
        }
        assert!(is_valid_id(&"a".repeat(64)));
        assert!(is_valid_id("A_b-9"));
    }

    #[test]
    fn regions_follow_the_pattern() {
        for good in [
            "cn-north-4",
            "ap-southeast-1",
            "ru-northwest-2",
            "cn-north-east-10",
        ] {
            assert!(is_valid_region(good), "{good}");
        }
        for bad in [
            "cn-4",
            "CN-north-4",
            "cn-north",
            "cnn-north-4",
            "cn-north-4a",
            "cn--4",
            "",
        ] {
            assert!(!is_valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints_must_be_plain_absolute_urls_and_never_echo_passwords() {
        assert!(parse_endpoint("https://roma.cn-north-4.myhuaweicloud.com").is_ok());
        assert!(parse_endpoint("http://127.0.0.1:8080").is_ok());
        for bad in [
            "roma.cn-north-4.myhuaweicloud.com",
            "ftp://roma.example",
            "https://roma.example/?a=b",
            "https://roma.example/#x",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        let err = parse_endpoint("https://user:hunter2@roma.example").expect_err("userinfo");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    /// Issue 11.6 and 11.11: the CRD's bounds, again in the controller.
    #[test]
    fn free_text_is_bounded_and_secret_names_are_dns_1123() {
        use crate::api::SecretReference;
        let mut s = spec();
        s.run_id = Some("r".repeat(MAX_RUN_ID_LEN));
        s.endpoint = Some(format!("https://roma.example/{}", "p".repeat(2027)));
        assert_eq!(s.endpoint.as_ref().map(|e| e.len()), Some(MAX_ENDPOINT_LEN));
        assert!(s.validate().is_ok());
        s.run_id = Some("é".repeat(MAX_RUN_ID_LEN)); // characters, not bytes
        assert!(s.validate().is_ok());
        s.run_id = Some("r".repeat(MAX_RUN_ID_LEN + 1));
        assert_eq!(
            s.validate(),
            Err(SpecError::TooLong {
                field: "runId",
                len: 254,
                max: 253
            })
        );
        s.run_id = None;
        s.endpoint = Some(format!("https://roma.example/{}", "p".repeat(2028)));
        assert!(matches!(
            s.validate(),
            Err(SpecError::TooLong {
                field: "endpoint",
                ..
            })
        ));
        let mut s = spec();
        for (name, ok) in [
            ("roma-credentials", true),
            ("a.b-c.d", true),
            ("tok?x=1", false),
            ("a/b", false),
            ("Tok", false),
            ("-a", false),
            ("a..b", false),
            ("", false),
        ] {
            s.credentials_secret_ref = Some(SecretReference { name: name.into() });
            assert_eq!(s.validate().is_ok(), ok, "{name:?}");
            assert_eq!(is_dns1123_subdomain(name), ok, "{name:?}");
        }
        assert!(is_dns1123_subdomain(&"a".repeat(253)));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    }

    #[test]
    fn bad_date_from_is_a_spec_error() {
        let mut s = spec();
        s.date_from = Some(DateFrom::Timestamp("tomorrow".into()));
        assert!(matches!(s.validate(), Err(SpecError::DateFrom(_))));
    }
}
