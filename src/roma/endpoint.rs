//! Where a reset call goes: endpoint resolution and the allow-list that guards it.
//!
//! `spec.endpoint` > `spec.region` (`https://roma.{region}.myhuaweicloud.com`) > the default
//! endpoint > the default region. The result must match one of the allowed endpoint patterns
//! (by default `https://roma.*.myhuaweicloud.com` plus the configured defaults), so that no
//! TaskReset can make the controller send credentials to a host of its choosing; plain
//! `http://` is refused unless insecure mode is on.

use std::fmt;

use url::Url;

use crate::api::{is_valid_id, is_valid_region};

/// The allow-list used when none is configured (the configured defaults are always added).
pub const DEFAULT_ALLOWED_ENDPOINT: &str = "https://roma.*.myhuaweicloud.com";

/// The global IAM endpoint, used when the ROMA host names no region.
pub const GLOBAL_IAM_ENDPOINT: &str = "https://iam.myhuaweicloud.com";

/// The IAM allow-list used when none is configured: the global and the regional Huawei Cloud
/// IAM endpoints.
pub const DEFAULT_ALLOWED_IAM_ENDPOINTS: [&str; 2] =
    [GLOBAL_IAM_ENDPOINT, "https://iam.*.myhuaweicloud.com"];

const HUAWEI_CLOUD_DOMAIN: &str = "myhuaweicloud.com";

/// Why no usable endpoint could be found. Messages name URLs and regions, never credentials
/// (URLs with user information are refused and shown without it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Neither the object nor the configuration names an endpoint or a region.
    #[error(
        "no endpoint: set spec.endpoint or spec.region, or configure a default endpoint or region"
    )]
    NoEndpoint,
    /// The endpoint matches no allowed pattern.
    #[error("endpoint {endpoint} is not in the allowed endpoints ({allowed})")]
    NotAllowed {
        /// The endpoint asked for.
        endpoint: String,
        /// The allowed patterns, comma-separated.
        allowed: String,
    },
    /// Plain http while insecure mode is off.
    #[error(
        "endpoint {0} uses plain http: only https is allowed unless --insecure-allow-http is set (tests and sandboxes only)"
    )]
    InsecureScheme(String),
    /// Not an absolute http(s) URL with a host and without user information, query or fragment.
    #[error("endpoint {value:?} is not usable: {reason}")]
    Invalid {
        /// The value, with any user information removed.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A region that does not look like `cn-north-4`.
    #[error("region {0:?} must look like cn-north-4")]
    InvalidRegion(String),
    /// An allowed-endpoint pattern that cannot be used.
    #[error("allowed endpoint {pattern:?} is not usable: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A project, instance or task ID that could escape its path segment.
    #[error(
        "{field} {value:?} must be 1-64 letters, digits, '_' or '-', starting with a letter or digit"
    )]
    InvalidId {
        /// `projectId`, `instanceId` or `taskId`.
        field: &'static str,
        /// The value as given.
        value: String,
    },
}

/// Which endpoints calls may go to, and the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPolicy {
    allowed: Vec<EndpointPattern>,
    default_endpoint: Option<Endpoint>,
    default_region: Option<String>,
    insecure_allow_http: bool,
}

impl EndpointPolicy {
    /// A policy from `--allowed-endpoints` (empty: [`DEFAULT_ALLOWED_ENDPOINT`]),
    /// `--default-endpoint`, `--default-region` and `--insecure-allow-http`. The defaults are
    /// always allowed.
    ///
    /// A pattern is `scheme://host[:port][/path]`; a `*` in a host label matches one or more
    /// letters, digits or `-` within that label (never a `.`); with a path, the endpoint's
    /// path must start with it.
    pub fn new(
        allowed: Vec<String>,
        default_endpoint: Option<Url>,
        default_region: Option<String>,
        insecure_allow_http: bool,
    ) -> Result<Self, EndpointError> {
        let mut patterns =
            parse_patterns(&allowed, &[DEFAULT_ALLOWED_ENDPOINT], insecure_allow_http)?;
        let default_endpoint = default_endpoint
            .map(|url| Endpoint::validate(url, insecure_allow_http))
            .transpose()?;
        if let Some(endpoint) = &default_endpoint {
            patterns.push(EndpointPattern::exact(endpoint));
        }
        if let Some(region) = &default_region {
            let endpoint = Endpoint::for_region(region)?;
            if !patterns.iter().any(|p| p.matches(&endpoint.base)) {
                patterns.push(EndpointPattern::exact(&endpoint));
            }
        }
        Ok(Self {
            allowed: patterns,
            default_endpoint,
            default_region,
            insecure_allow_http,
        })
    }

    /// The endpoint of a TaskReset: `endpoint` > `region` > default endpoint > default region,
    /// checked against the scheme rule and the allow-list.
    pub fn resolve(
        &self,
        endpoint: Option<&Url>,
        region: Option<&str>,
    ) -> Result<Endpoint, EndpointError> {
        let chosen = match (endpoint, region) {
            (Some(url), _) => Endpoint::validate(url.clone(), self.insecure_allow_http)?,
            (None, Some(region)) => Endpoint::for_region(region)?,
            (None, None) => match (&self.default_endpoint, &self.default_region) {
                (Some(endpoint), _) => endpoint.clone(),
                (None, Some(region)) => Endpoint::for_region(region)?,
                (None, None) => return Err(EndpointError::NoEndpoint),
            },
        };
        if self.allowed.iter().any(|p| p.matches(&chosen.base)) {
            Ok(chosen)
        } else {
            Err(EndpointError::NotAllowed {
                endpoint: chosen.to_string(),
                allowed: self.allowed_list(),
            })
        }
    }

    /// An endpoint given by whoever runs the process (the `reset` command line): trusted, so
    /// the allow-list does not apply; the scheme rule does.
    pub fn trusted(&self, endpoint: &Url) -> Result<Endpoint, EndpointError> {
        Endpoint::validate(endpoint.clone(), self.insecure_allow_http)
    }

    /// Whether plain http endpoints are allowed.
    pub fn insecure_allow_http(&self) -> bool {
        self.insecure_allow_http
    }

    /// The allowed patterns, comma-separated, as shown in messages.
    pub fn allowed_list(&self) -> String {
        self.allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The patterns of an allow-list; `defaults` when it is empty.
fn parse_patterns(
    allowed: &[String],
    defaults: &[&str],
    insecure_allow_http: bool,
) -> Result<Vec<EndpointPattern>, EndpointError> {
    let given: Vec<&str> = allowed
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    let chosen = if given.is_empty() {
        defaults.to_vec()
    } else {
        given
    };
    chosen
        .into_iter()
        .map(|p| EndpointPattern::parse(p, insecure_allow_http))
        .collect()
}

/// Where an IAM password may be sent: the Secret's `iamEndpoint`, or the IAM endpoint
/// derived from the ROMA endpoint, must match one of these patterns (`--allowed-iam-endpoints`,
/// same syntax as `--allowed-endpoints`; default [`DEFAULT_ALLOWED_IAM_ENDPOINTS`]). Without
/// it, whoever writes a Secret could make the controller POST the password to any URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamEndpointPolicy {
    allowed: Vec<EndpointPattern>,
    insecure_allow_http: bool,
}

impl Default for IamEndpointPolicy {
    /// The default patterns, https only.
    fn default() -> Self {
        Self {
            allowed: DEFAULT_ALLOWED_IAM_ENDPOINTS
                .iter()
                .filter_map(|p| EndpointPattern::parse(p, false).ok())
                .collect(),
            insecure_allow_http: false,
        }
    }
}

impl IamEndpointPolicy {
    /// A policy from `--allowed-iam-endpoints` (empty: [`DEFAULT_ALLOWED_IAM_ENDPOINTS`]) and
    /// `--insecure-allow-http`.
    pub fn new(allowed: Vec<String>, insecure_allow_http: bool) -> Result<Self, EndpointError> {
        Ok(Self {
            allowed: parse_patterns(
                &allowed,
                &DEFAULT_ALLOWED_IAM_ENDPOINTS,
                insecure_allow_http,
            )?,
            insecure_allow_http,
        })
    }

    /// This policy plus exactly `url`, given by whoever runs the process (the `reset`
    /// command's `ROMA_IAM_ENDPOINT`).
    pub fn trusting(mut self, url: &Url) -> Result<Self, EndpointError> {
        let endpoint = Endpoint::validate(url.clone(), self.insecure_allow_http)?;
        self.allowed.push(EndpointPattern::exact(&endpoint));
        Ok(self)
    }

    /// Whether a password may be sent to `url`: an absolute https URL (http in insecure
    /// mode) without user information, query or fragment, matching an allowed pattern.
    pub fn check(&self, url: &Url) -> Result<(), EndpointError> {
        let endpoint = Endpoint::validate(url.clone(), self.insecure_allow_http)?;
        if self.allowed.iter().any(|p| p.matches(&endpoint.base)) {
            Ok(())
        } else {
            Err(EndpointError::NotAllowed {
                endpoint: endpoint.to_string(),
                allowed: self.allowed_list(),
            })
        }
    }

    /// The allowed patterns, comma-separated, as shown in messages.
    pub fn allowed_list(&self) -> String {
        self.allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A validated base URL of the ROMA Connect API. `Display` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: Url,
}

impl Endpoint {
    /// `https://roma.{region}.myhuaweicloud.com`.
    pub fn for_region(region: &str) -> Result<Self, EndpointError> {
        if !is_valid_region(region) {
            return Err(EndpointError::InvalidRegion(region.to_owned()));
        }
        let url = Url::parse(&format!("https://roma.{region}.{HUAWEI_CLOUD_DOMAIN}"))
            .map_err(|_| EndpointError::InvalidRegion(region.to_owned()))?;
        Ok(Self { base: url })
    }

    fn validate(url: Url, insecure_allow_http: bool) -> Result<Self, EndpointError> {
        let invalid = |reason| EndpointError::Invalid {
            value: without_userinfo(&url),
            reason,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry user information"));
        }
        match url.scheme() {
            "https" => {}
            "http" if insecure_allow_http => {}
            "http" => return Err(EndpointError::InsecureScheme(url.to_string())),
            _ => return Err(invalid("scheme must be https")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        Ok(Self { base: url })
    }

    /// The base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// The `Host` header a request to this endpoint carries: host, plus `:port` when the port
    /// is not the scheme's default (what the HTTP client sends, and what the signer signs).
    pub fn host_header(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The region, when the host is `roma.{region}.myhuaweicloud.com`.
    pub fn region(&self) -> Option<&str> {
        let host = self.base.host_str()?;
        let region = host
            .strip_prefix("roma.")?
            .strip_suffix(HUAWEI_CLOUD_DOMAIN)?
            .strip_suffix('.')?;
        is_valid_region(region).then_some(region)
    }

    /// The IAM endpoint that goes with this ROMA endpoint: regional
    /// `https://iam.{region}.myhuaweicloud.com` for a `roma.{region}.myhuaweicloud.com` host,
    /// else the global [`GLOBAL_IAM_ENDPOINT`].
    pub fn default_iam_endpoint(&self) -> Url {
        let text = match self.region() {
            Some(region) => format!("https://iam.{region}.{HUAWEI_CLOUD_DOMAIN}"),
            None => GLOBAL_IAM_ENDPOINT.to_owned(),
        };
        // Both forms are valid URLs: the region passed `is_valid_region`.
        Url::parse(&text).unwrap_or_else(|_| self.base.clone())
    }

    /// `{base}/v2/{project}/fdi/instances/{instance}/multi-tasks/{task}/reset`, each ID checked
    /// again (nothing can escape its path segment) and percent-encoded.
    pub fn reset_url(
        &self,
        project_id: &str,
        instance_id: &str,
        task_id: &str,
    ) -> Result<Url, EndpointError> {
        for (field, value) in [
            ("projectId", project_id),
            ("instanceId", instance_id),
            ("taskId", task_id),
        ] {
            if !is_valid_id(value) {
                return Err(EndpointError::InvalidId {
                    field,
                    value: value.to_owned(),
                });
            }
        }
        let mut url = self.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| EndpointError::Invalid {
                    value: self.base.to_string(),
                    reason: "cannot be a base URL",
                })?;
            segments.pop_if_empty().extend([
                "v2",
                project_id,
                "fdi",
                "instances",
                instance_id,
                "multi-tasks",
                task_id,
                "reset",
            ]);
        }
        Ok(url)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.as_str().trim_end_matches('/'))
    }
}

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EndpointPattern {
    scheme: String,
    /// Host labels, lower-case; each may hold one `*`.
    labels: Vec<String>,
    port: u16,
    /// Path prefix without a trailing `/`; empty allows any path.
    path: String,
    shown: String,
}

impl EndpointPattern {
    fn parse(pattern: &str, insecure_allow_http: bool) -> Result<Self, EndpointError> {
        let invalid = |reason| EndpointError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or_else(|| invalid("must start with https://"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" if insecure_allow_http => 80,
            "http" => return Err(invalid("plain http needs --insecure-allow-http")),
            _ => return Err(invalid("scheme must be https")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') || path.contains(['?', '#', '*']) {
            return Err(invalid(
                "only scheme://host[:port][/path] with * in host labels",
            ));
        }
        let parse_port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| invalid("port must be a number"))
        };
        let (host, port) = match authority.strip_prefix('[').and_then(|a| a.find(']')) {
            // An IPv6 literal: `[::1]` or `[::1]:8443`.
            Some(end) => {
                let (host, rest) = authority.split_at(end + 2);
                match rest.strip_prefix(':') {
                    Some(port) => (host, parse_port(port)?),
                    None if rest.is_empty() => (host, default_port),
                    None => return Err(invalid("unexpected text after the host")),
                }
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, parse_port(port)?),
                None => (authority, default_port),
            },
        };
        let labels: Vec<String> = host.split('.').map(str::to_ascii_lowercase).collect();
        let label_ok = |l: &String| {
            !l.is_empty()
                && l.matches('*').count() <= 1
                && l.bytes().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'*' | b'[' | b']' | b':')
                })
        };
        if !labels.iter().all(label_ok) {
            return Err(invalid(
                "host must be a DNS name, with at most one * per label",
            ));
        }
        Ok(Self {
            scheme,
            labels,
            port,
            path: path.to_owned(),
            shown: pattern.to_owned(),
        })
    }

    fn exact(endpoint: &Endpoint) -> Self {
        let url = &endpoint.base;
        Self {
            scheme: url.scheme().to_owned(),
            labels: url
                .host_str()
                .unwrap_or_default()
                .split('.')
                .map(str::to_owned)
                .collect(),
            port: url.port_or_known_default().unwrap_or(443),
            path: url.path().trim_end_matches('/').to_owned(),
            shown: endpoint.to_string(),
        }
    }

    fn matches(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let labels: Vec<&str> = host.split('.').collect();
        url.scheme() == self.scheme
            && url.port_or_known_default() == Some(self.port)
            && labels.len() == self.labels.len()
            && labels
                .iter()
                .zip(&self.labels)
                .all(|(label, pattern)| label_matches(pattern, label))
            && path_within(url.path(), &self.path)
    }
}

impl fmt::Display for EndpointPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

fn label_matches(pattern: &str, label: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == label,
        Some((prefix, suffix)) => {
            label.len() > prefix.len() + suffix.len()
                && label.starts_with(prefix)
                && label.ends_with(suffix)
                && label[prefix.len()..label.len() - suffix.len()]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        }
    }
}

fn path_within(path: &str, prefix: &str) -> bool {
    let path = path.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn without_userinfo(url: &Url) -> String {
    let mut shown = url.clone();
    // Both setters only fail for URLs without a host, which have no user information.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("valid URL")
    }

    fn policy(allowed: &[&str], default: Option<&str>, region: Option<&str>) -> EndpointPolicy {
        EndpointPolicy::new(
            allowed.iter().map(|s| (*s).to_owned()).collect(),
            default.map(url),
            region.map(str::to_owned),
            false,
        )
        .expect("valid policy")
    }

    #[test]
    fn precedence_is_endpoint_then_region_then_defaults() {
        let p = policy(
            &[],
            Some("https://roma.eu-west-101.myhuaweicloud.com"),
            Some("ap-southeast-1"),
        );
        let explicit = url("https://roma.cn-north-4.myhuaweicloud.com");
        assert_eq!(
            p.resolve(Some(&explicit), Some("cn-east-3"))
                .expect("ok")
                .to_string(),
            "https://roma.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(
            p.resolve(None, Some("cn-east-3")).expect("ok").to_string(),
            "https://roma.cn-east-3.myhuaweicloud.com"
        );
        assert_eq!(
            p.resolve(None, None).expect("ok").to_string(),
            "https://roma.eu-west-101.myhuaweicloud.com"
        );
        let region_only = policy(&[], None, Some("ap-southeast-1"));
        assert_eq!(
            region_only.resolve(None, None).expect("ok").region(),
            Some("ap-southeast-1")
        );
        assert_eq!(
            policy(&[], None, None).resolve(None, None),
            Err(EndpointError::NoEndpoint)
        );
    }

    #[test]
    fn the_allow_list_guards_object_endpoints() {
        let p = policy(&[], None, None);
        for bad in [
            "https://evil.example.com",
            "https://roma.cn-north-4.myhuaweicloud.com.evil.example",
            "https://roma.a.b.myhuaweicloud.com",
            "https://xroma.cn-north-4.myhuaweicloud.com",
            "https://roma.cn-north-4.myhuaweicloud.com:8443",
        ] {
            assert!(
                matches!(
                    p.resolve(Some(&url(bad)), None),
                    Err(EndpointError::NotAllowed { .. })
                ),
                "{bad} must be refused"
            );
        }
        assert!(
            p.resolve(
                Some(&url("https://ROMA.cn-north-4.myhuaweicloud.com/")),
                None
            )
            .is_ok()
        );
        let custom = policy(
            &["https://*.roma.example:8443/api", "https://fixed.example"],
            Some("https://default.example"),
            None,
        );
        assert!(
            custom
                .resolve(Some(&url("https://eu-1.roma.example:8443/api/v1")), None)
                .is_ok()
        );
        assert!(
            custom
                .resolve(Some(&url("https://eu-1.roma.example:8443/other")), None)
                .is_err()
        );
        assert!(
            custom
                .resolve(Some(&url("https://fixed.example")), None)
                .is_ok()
        );
        assert!(
            custom
                .resolve(Some(&url("https://default.example")), None)
                .is_ok()
        );
        // A configured allow-list replaces the default pattern.
        assert!(custom.resolve(None, Some("cn-north-4")).is_err());
    }

    #[test]
    fn http_needs_insecure_mode() {
        let p = policy(&[], None, None);
        assert!(matches!(
            p.resolve(Some(&url("http://roma.cn-north-4.myhuaweicloud.com")), None),
            Err(EndpointError::InsecureScheme(_))
        ));
        assert!(matches!(
            p.trusted(&url("http://127.0.0.1:8080")),
            Err(EndpointError::InsecureScheme(_))
        ));
        assert!(matches!(
            EndpointPolicy::new(vec!["http://127.0.0.1:*".into()], None, None, false),
            Err(EndpointError::InvalidPattern { .. })
        ));
        let insecure = EndpointPolicy::new(vec!["http://127.0.0.1:8080".into()], None, None, true)
            .expect("valid");
        assert!(
            insecure
                .resolve(Some(&url("http://127.0.0.1:8080")), None)
                .is_ok()
        );
        assert!(
            insecure
                .resolve(Some(&url("http://127.0.0.1:8081")), None)
                .is_err()
        );
        assert!(insecure.trusted(&url("http://localhost:1")).is_ok());
    }

    #[test]
    fn unusable_urls_are_refused_without_showing_passwords() {
        let p = policy(&[], None, None);
        let err = p
            .trusted(&url(
                "https://user:s3cr3t-pw@roma.cn-north-4.myhuaweicloud.com",
            ))
            .expect_err("refused");
        assert!(!err.to_string().contains("s3cr3t-pw"), "{err}");
        for bad in [
            "https://roma.cn-north-4.myhuaweicloud.com/?x=1",
            "https://roma.cn-north-4.myhuaweicloud.com/#f",
            "ftp://roma.cn-north-4.myhuaweicloud.com",
        ] {
            assert!(p.trusted(&url(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            p.resolve(None, Some("North-4")),
            Err(EndpointError::InvalidRegion("North-4".into()))
        );
    }

    #[test]
    fn user_information_is_refused_everywhere() {
        let p = policy(&[], None, None);
        for bad in [
            "https://user:pw-SECRET@roma.cn-north-4.myhuaweicloud.com",
            "https://user@roma.cn-north-4.myhuaweicloud.com",
            "https://:pw-SECRET@roma.cn-north-4.myhuaweicloud.com",
        ] {
            let err = p.resolve(Some(&url(bad)), None).expect_err(bad);
            assert!(
                matches!(err, EndpointError::Invalid { .. })
                    && !err.to_string().contains("pw-SECRET"),
                "{bad}: {err}"
            );
            assert!(
                EndpointPolicy::new(vec![], Some(url(bad)), None, false).is_err(),
                "{bad} as the default endpoint"
            );
            let iam = IamEndpointPolicy::default();
            let iam_bad = bad.replace("roma.cn-north-4", "iam.cn-north-4");
            let err = iam.check(&url(&iam_bad)).expect_err(&iam_bad);
            assert!(!err.to_string().contains("pw-SECRET"), "{err}");
        }
        assert!(matches!(
            EndpointPolicy::new(
                vec!["https://u:p@roma.*.myhuaweicloud.com".into()],
                None,
                None,
                false
            ),
            Err(EndpointError::InvalidPattern { .. })
        ));
    }

    #[test]
    fn the_iam_allow_list_uses_the_same_patterns() {
        let p = IamEndpointPolicy::default();
        for ok in [
            "https://iam.myhuaweicloud.com",
            "https://iam.myhuaweicloud.com/",
            "https://iam.cn-north-4.myhuaweicloud.com",
            "https://IAM.ap-southeast-1.myhuaweicloud.com/",
        ] {
            assert!(p.check(&url(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example.com",
            "https://iam.a.b.myhuaweicloud.com",
            "https://iam.myhuaweicloud.com.evil.example",
            "https://iam.cn-north-4.myhuaweicloud.com:8443",
            "http://iam.myhuaweicloud.com",
            "https://roma.cn-north-4.myhuaweicloud.com",
            "https://iam.myhuaweicloud.com/?x=1",
        ] {
            assert!(p.check(&url(bad)).is_err(), "{bad}");
        }
        // The default IAM endpoint of every ROMA endpoint is allowed by default.
        for roma in [
            "https://roma.cn-north-4.myhuaweicloud.com",
            "https://gw.example",
        ] {
            let e = policy(&["https://gw.example"], None, None)
                .resolve(Some(&url(roma)), None)
                .or_else(|_| policy(&[], None, None).resolve(Some(&url(roma)), None))
                .expect("allowed");
            assert!(p.check(&e.default_iam_endpoint()).is_ok(), "{roma}");
        }
        let custom =
            IamEndpointPolicy::new(vec!["https://iam.corp.example".into()], false).expect("valid");
        assert!(custom.check(&url("https://iam.corp.example")).is_ok());
        assert!(custom.check(&url("https://iam.myhuaweicloud.com")).is_err());
        let local = IamEndpointPolicy::new(vec![], true)
            .expect("valid")
            .trusting(&url("http://127.0.0.1:8080"))
            .expect("trusted");
        assert!(local.check(&url("http://127.0.0.1:8080/")).is_ok());
        assert!(local.check(&url("http://127.0.0.1:8081")).is_err());
        assert!(IamEndpointPolicy::new(vec!["http://127.0.0.1:1".into()], false).is_err());
    }

    #[test]
    fn reset_urls_keep_every_id_in_its_segment() {
        let e = Endpoint::for_region("cn-north-4").expect("valid");
        assert_eq!(
            e.reset_url("p1", "i-2", "t_3").expect("ok").as_str(),
            "https://roma.cn-north-4.myhuaweicloud.com/v2/p1/fdi/instances/i-2/multi-tasks/t_3/reset"
        );
        let prefixed = EndpointPolicy::new(vec![], None, None, true)
            .expect("valid")
            .trusted(&url("http://127.0.0.1:9/gw/"))
            .expect("ok");
        assert_eq!(
            prefixed.reset_url("p", "i", "t").expect("ok").as_str(),
            "http://127.0.0.1:9/gw/v2/p/fdi/instances/i/multi-tasks/t/reset"
        );
        for bad in [
            "..",
            ".",
            "a/b",
            "a%2F",
            "",
            "a?b",
            "a#b",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(
                    e.reset_url("p", bad, "t"),
                    Err(EndpointError::InvalidId {
                        field: "instanceId",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_header_and_iam_endpoint_follow_the_url() {
        let e = Endpoint::for_region("cn-north-4").expect("valid");
        assert_eq!(e.host_header(), "roma.cn-north-4.myhuaweicloud.com");
        assert_eq!(
            e.default_iam_endpoint().as_str(),
            "https://iam.cn-north-4.myhuaweicloud.com/"
        );
        let local = EndpointPolicy::new(vec![], None, None, true)
            .expect("valid")
            .trusted(&url("http://127.0.0.1:8080"))
            .expect("ok");
        assert_eq!(local.host_header(), "127.0.0.1:8080");
        assert_eq!(local.region(), None);
        assert_eq!(
            local.default_iam_endpoint().as_str(),
            "https://iam.myhuaweicloud.com/"
        );
    }
}
