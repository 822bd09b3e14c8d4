//! The credentials a reset call is made with, read from a Secret's data or the environment.
//!
//! | keys | environment | meaning |
//! | --- | --- | --- |
//! | `token` | `ROMA_TOKEN` | a ready IAM token, sent as `X-Auth-Token` |
//! | `accessKey`, `secretKey` (+ `securityToken`) | `ROMA_ACCESS_KEY`, `ROMA_SECRET_KEY` (+ `ROMA_SECURITY_TOKEN`) | SDK-HMAC-SHA256 signing |
//! | `username`, `password`, `domainName` (+ `iamEndpoint`) | `ROMA_USERNAME`, `ROMA_PASSWORD`, `ROMA_DOMAIN_NAME` (+ `ROMA_IAM_ENDPOINT`) | IAM password token exchange |
//!
//! Keys of more than one kind (e.g. a `token` next to an `accessKey`) are refused as
//! [`CredentialsError::Mixed`]: which one was meant cannot be known. Values are trimmed
//! (Secrets made from files often end with a newline); an empty value counts as absent. A
//! value sent in an HTTP header (token, access key, security token) must be one line of
//! visible ASCII characters: anything else is an error here, so that no request is made with
//! it. An IAM endpoint must be an absolute http(s) URL without user information.

use std::collections::BTreeMap;
use std::fmt;

use url::Url;

use secrecy::{ExposeSecret, SecretString};

/// Why no usable credentials were found. Messages name keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// None of the known keys is present.
    #[error(
        "no credentials: expected {token}, or {ak} and {sk}, or {user}, {password} and {domain}",
        token = .0.token, ak = .0.access_key, sk = .0.secret_key, user = .0.username,
        password = .0.password, domain = .0.domain_name
    )]
    Missing(&'static KeyNames),
    /// Keys of more than one credential kind are present: which was meant is unknown.
    #[error(
        "holds keys of more than one kind of credentials ({}): keep the keys of one kind only",
        keys.join(", ")
    )]
    Mixed {
        /// The keys found (names only).
        keys: Vec<&'static str>,
    },
    /// Some keys of a set are present, others are missing.
    #[error("incomplete {kind} credentials: missing {}", missing.join(", "))]
    Incomplete {
        /// `accessKey` or `password`.
        kind: &'static str,
        /// The missing keys.
        missing: Vec<&'static str>,
    },
    /// A value that is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// A value sent in a header that holds a line break, a space, a control or a non-ASCII
    /// character (it could not be sent, or would be a different value on the wire).
    #[error("{key} holds {what}: it must be one line of visible ASCII characters")]
    Unsendable {
        /// The key.
        key: &'static str,
        /// `a line break`, `a space`, `a control character` or `a non-ASCII character`.
        what: &'static str,
    },
    /// An IAM endpoint that is not an absolute http(s) URL without user information.
    #[error("{key} is not an absolute https URL without user information")]
    InvalidIamEndpoint {
        /// `iamEndpoint` or `ROMA_IAM_ENDPOINT`.
        key: &'static str,
    },
}

/// The names of the credential keys in one source (Secret data or environment).
#[derive(Debug, PartialEq, Eq)]
pub struct KeyNames {
    /// Static token.
    pub token: &'static str,
    /// Access key ID.
    pub access_key: &'static str,
    /// Secret access key.
    pub secret_key: &'static str,
    /// Security token of temporary AK/SK credentials.
    pub security_token: &'static str,
    /// IAM user name.
    pub username: &'static str,
    /// IAM user password.
    pub password: &'static str,
    /// IAM account (domain) name.
    pub domain_name: &'static str,
    /// IAM endpoint override.
    pub iam_endpoint: &'static str,
}

/// Keys of a Kubernetes Secret's data.
pub const SECRET_KEYS: KeyNames = KeyNames {
    token: "token",
    access_key: "accessKey",
    secret_key: "secretKey",
    security_token: "securityToken",
    username: "username",
    password: "password",
    domain_name: "domainName",
    iam_endpoint: "iamEndpoint",
};

/// Environment variables read by [`Credentials::from_env`].
pub const ENV_KEYS: KeyNames = KeyNames {
    token: "ROMA_TOKEN",
    access_key: "ROMA_ACCESS_KEY",
    secret_key: "ROMA_SECRET_KEY",
    security_token: "ROMA_SECURITY_TOKEN",
    username: "ROMA_USERNAME",
    password: "ROMA_PASSWORD",
    domain_name: "ROMA_DOMAIN_NAME",
    iam_endpoint: "ROMA_IAM_ENDPOINT",
};

/// How a reset call authenticates. Secret values are `secrecy`'s [`SecretString`]s: `Debug`
/// redacts them, nothing displays them, and they are zeroed when dropped.
#[derive(Clone)]
pub enum Credentials {
    /// A ready IAM token, sent as `X-Auth-Token`.
    Token(SecretString),
    /// AK/SK: requests are signed SDK-HMAC-SHA256.
    AccessKey {
        /// Access key ID (an identifier, shown masked in `Debug` all the same).
        access_key: String,
        /// Secret access key.
        secret_key: SecretString,
        /// Security token of temporary credentials, sent as `X-Security-Token`.
        security_token: Option<SecretString>,
    },
    /// IAM password authentication: a token is fetched from IAM, scoped to the project.
    Password {
        /// IAM user name.
        username: String,
        /// IAM user password.
        password: SecretString,
        /// Account (domain) name.
        domain_name: String,
        /// IAM endpoint; `None` derives it from the ROMA endpoint.
        iam_endpoint: Option<Url>,
    },
}

impl Credentials {
    /// From a Secret's `data` (decoded bytes), with the keys of [`SECRET_KEYS`].
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, CredentialsError> {
        Self::from_lookup(&SECRET_KEYS, |key| data.get(key).map(|v| v.as_slice()))
    }

    /// From the environment variables of [`ENV_KEYS`].
    pub fn from_env() -> Result<Self, CredentialsError> {
        let names = &ENV_KEYS;
        let vars: BTreeMap<&'static str, Vec<u8>> = [
            names.token,
            names.access_key,
            names.secret_key,
            names.security_token,
            names.username,
            names.password,
            names.domain_name,
            names.iam_endpoint,
        ]
        .into_iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (name, v.into_encoded_bytes())))
        .collect();
        Self::from_lookup(names, |key| vars.get(key).map(Vec::as_slice))
    }

    /// From any source: `lookup(key)` gives a key's raw value.
    pub fn from_lookup<'a>(
        names: &'static KeyNames,
        lookup: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<Self, CredentialsError> {
        let get = |key: &'static str| -> Result<Option<String>, CredentialsError> {
            match lookup(key) {
                None => Ok(None),
                Some(bytes) => {
                    let text =
                        std::str::from_utf8(bytes).map_err(|_| CredentialsError::NotUtf8(key))?;
                    let text = text.trim();
                    Ok((!text.is_empty()).then(|| text.to_owned()))
                }
            }
        };
        let header_value = |key: &'static str| -> Result<Option<String>, CredentialsError> {
            let value = get(key)?;
            if let Some(text) = &value
                && let Some(what) = unsendable(text)
            {
                return Err(CredentialsError::Unsendable { key, what });
            }
            Ok(value)
        };
        let present = |key: &'static str| lookup(key).is_some_and(|v| !v.trim_ascii().is_empty());
        let kinds = [
            vec![names.token],
            vec![names.access_key, names.secret_key, names.security_token],
            vec![
                names.username,
                names.password,
                names.domain_name,
                names.iam_endpoint,
            ],
        ];
        let found: Vec<Vec<&'static str>> = kinds
            .iter()
            .map(|keys| keys.iter().copied().filter(|k| present(k)).collect())
            .collect();
        if found.iter().filter(|keys| !keys.is_empty()).count() > 1 {
            return Err(CredentialsError::Mixed {
                keys: found.into_iter().flatten().collect(),
            });
        }
        if let Some(token) = header_value(names.token)? {
            return Ok(Self::Token(token.into()));
        }
        let access_key = get(names.access_key)?;
        let secret_key = get(names.secret_key)?;
        if let (Some(_), Some(secret_key)) = (&access_key, &secret_key) {
            return Ok(Self::AccessKey {
                access_key: header_value(names.access_key)?.unwrap_or_default(),
                secret_key: secret_key.as_str().into(),
                security_token: header_value(names.security_token)?.map(SecretString::from),
            });
        }
        let username = get(names.username)?;
        let password = get(names.password)?;
        let domain_name = get(names.domain_name)?;
        if let (Some(username), Some(password), Some(domain_name)) =
            (&username, &password, &domain_name)
        {
            let iam_endpoint = get(names.iam_endpoint)?
                .map(|text| {
                    Url::parse(&text)
                        .ok()
                        .filter(|u| {
                            matches!(u.scheme(), "https" | "http")
                                && u.has_host()
                                && u.username().is_empty()
                                && u.password().is_none()
                        })
                        .ok_or(CredentialsError::InvalidIamEndpoint {
                            key: names.iam_endpoint,
                        })
                })
                .transpose()?;
            return Ok(Self::Password {
                username: username.clone(),
                password: password.as_str().into(),
                domain_name: domain_name.clone(),
                iam_endpoint,
            });
        }
        if access_key.is_some() || secret_key.is_some() {
            let missing = [
                (names.access_key, access_key.is_none()),
                (names.secret_key, secret_key.is_none()),
            ];
            return Err(CredentialsError::Incomplete {
                kind: "accessKey",
                missing: missing.iter().filter(|m| m.1).map(|m| m.0).collect(),
            });
        }
        if username.is_some() || password.is_some() || domain_name.is_some() {
            let missing = [
                (names.username, username.is_none()),
                (names.password, password.is_none()),
                (names.domain_name, domain_name.is_none()),
            ];
            return Err(CredentialsError::Incomplete {
                kind: "password",
                missing: missing.iter().filter(|m| m.1).map(|m| m.0).collect(),
            });
        }
        Err(CredentialsError::Missing(names))
    }

    /// Whether a call needs an IAM token exchanged first (IAM password credentials).
    pub fn exchanges_token(&self) -> bool {
        matches!(self, Self::Password { .. })
    }

    /// `"token"`, `"accessKey"` or `"password"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::AccessKey { .. } => "accessKey",
            Self::Password { .. } => "password",
        }
    }

    /// Every secret value these credentials hold, to scrub from anything copied out of a
    /// response.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        match self {
            Self::Token(token) => vec![token.expose_secret()],
            Self::AccessKey {
                secret_key,
                security_token,
                ..
            } => std::iter::once(secret_key.expose_secret())
                .chain(security_token.as_ref().map(SecretString::expose_secret))
                .collect(),
            Self::Password { password, .. } => vec![password.expose_secret()],
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(token) => f.debug_tuple("Token").field(token).finish(),
            Self::AccessKey {
                access_key,
                secret_key,
                security_token,
            } => f
                .debug_struct("AccessKey")
                .field("access_key", &mask(access_key))
                .field("secret_key", secret_key)
                .field("security_token", security_token)
                .finish(),
            Self::Password {
                username,
                password,
                domain_name,
                iam_endpoint,
            } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", password)
                .field("domain_name", domain_name)
                .field("iam_endpoint", &iam_endpoint.as_ref().map(Url::as_str))
                .finish(),
        }
    }
}

/// What makes a header value unsendable (or different on the wire), if anything.
fn unsendable(text: &str) -> Option<&'static str> {
    text.chars()
        .find(|c| !c.is_ascii_graphic())
        .map(|c| match c {
            '\n' | '\r' => "a line break",
            ' ' => "a space",
            c if c.is_control() => "a control character",
            _ => "a non-ASCII character",
        })
}

/// The first four characters of an identifier, then `...`.
fn mask(value: &str) -> String {
    let shown: String = value.chars().take(4).collect();
    format!("{shown}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn each_key_set_gives_its_kind() {
        let token = Credentials::from_secret_data(&data(&[("token", "tok-123\n")])).expect("ok");
        assert!(
            matches!(&token, Credentials::Token(t) if t.expose_secret() == "tok-123"),
            "{token:?}"
        );
        assert_eq!(token.kind(), "token");
        let aksk = Credentials::from_secret_data(&data(&[
            ("accessKey", "AK1"),
            ("secretKey", "SK1"),
            ("securityToken", "ST1"),
        ]))
        .expect("ok");
        assert_eq!(aksk.kind(), "accessKey");
        assert!(matches!(
            &aksk,
            Credentials::AccessKey { security_token: Some(st), .. } if st.expose_secret() == "ST1"
        ));
        let password = Credentials::from_secret_data(&data(&[
            ("username", "u"),
            ("password", "p"),
            ("domainName", "d"),
            ("iamEndpoint", "https://iam.example"),
        ]))
        .expect("ok");
        assert_eq!(password.kind(), "password");
        assert!(matches!(
            &password,
            Credentials::Password { iam_endpoint: Some(u), .. } if u.as_str() == "https://iam.example/"
        ));
    }

    #[test]
    fn errors_name_missing_keys_and_never_values() {
        let err = Credentials::from_secret_data(&data(&[("accessKey", "AKVALUE0001")]))
            .expect_err("incomplete");
        assert_eq!(
            err.to_string(),
            "incomplete accessKey credentials: missing secretKey"
        );
        let err = Credentials::from_secret_data(&data(&[
            ("password", "pa55w0rd-SECRET"),
            ("secretKey", ""),
        ]))
        .expect_err("incomplete");
        let text = err.to_string();
        assert!(
            text.contains("username") && text.contains("domainName"),
            "{text}"
        );
        assert!(!text.contains("pa55w0rd-SECRET"), "{text}");
        let err = Credentials::from_secret_data(&data(&[("other", "x")])).expect_err("missing");
        assert!(err.to_string().contains("token"), "{err}");
        let mut bad = data(&[]);
        bad.insert("token".into(), vec![0xff, 0xfe]);
        assert_eq!(
            Credentials::from_secret_data(&bad).expect_err("not UTF-8"),
            CredentialsError::NotUtf8("token")
        );
        let err = Credentials::from_secret_data(&data(&[
            ("username", "u"),
            ("password", "p"),
            ("domainName", "d"),
            ("iamEndpoint", "not a url"),
        ]))
        .expect_err("bad endpoint");
        assert_eq!(
            err,
            CredentialsError::InvalidIamEndpoint { key: "iamEndpoint" }
        );
    }

    /// Issue 15.9: a token next to AK/SK (or a password) used to win silently.
    #[test]
    fn mixed_credential_kinds_are_refused_naming_keys_only() {
        for (pairs, keys) in [
            (
                vec![
                    ("token", "TOK-SECRET"),
                    ("accessKey", "AK"),
                    ("secretKey", "SK-SECRET"),
                ],
                "token, accessKey, secretKey",
            ),
            (
                vec![("token", "TOK-SECRET"), ("password", "PW-SECRET")],
                "token, password",
            ),
            (
                vec![
                    ("accessKey", "AK"),
                    ("secretKey", "SK-SECRET"),
                    ("username", "u"),
                    ("password", "PW-SECRET"),
                    ("domainName", "d"),
                ],
                "accessKey, secretKey, username, password, domainName",
            ),
        ] {
            let err = Credentials::from_secret_data(&data(&pairs)).expect_err("mixed");
            let text = err.to_string();
            assert!(matches!(err, CredentialsError::Mixed { .. }), "{text}");
            assert!(text.contains(&format!("({keys})")), "{text}");
            assert!(!text.contains("SECRET"), "{text}");
        }
        // An empty key of another kind is absent, as everywhere.
        let ok = Credentials::from_secret_data(&data(&[("token", "t"), ("accessKey", " ")]));
        assert_eq!(ok.map(|c| c.kind()), Ok("token"));
    }

    #[test]
    fn env_names_are_used_by_the_env_source() {
        let vars = [("ROMA_USERNAME", "u"), ("ROMA_PASSWORD", "p")];
        let err = Credentials::from_lookup(&ENV_KEYS, |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.as_bytes())
        })
        .expect_err("incomplete");
        assert_eq!(
            err.to_string(),
            "incomplete password credentials: missing ROMA_DOMAIN_NAME"
        );
    }

    #[test]
    fn debug_redacts_every_secret() {
        let all = [
            Credentials::Token("TOKEN-SECRET-1".into()),
            Credentials::AccessKey {
                access_key: "AKID-VISIBLE-ONLY-MASKED".into(),
                secret_key: "SK-SECRET-2".into(),
                security_token: Some("ST-SECRET-3".into()),
            },
            Credentials::Password {
                username: "alice".into(),
                password: "PW-SECRET-4".into(),
                domain_name: "acme".into(),
                iam_endpoint: None,
            },
        ];
        for creds in &all {
            let shown = format!("{creds:?} {creds:#?}");
            for secret in [
                "SECRET-1",
                "SECRET-2",
                "SECRET-3",
                "SECRET-4",
                "VISIBLE-ONLY",
            ] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        assert!(format!("{:?}", all[2]).contains("alice"));
        // The secrets are there, marked as withheld, and reachable only through expose_secret.
        assert!(
            format!("{:?}", all[0]).contains("[REDACTED]"),
            "{:?}",
            all[0]
        );
        let secret = SecretString::from("hunter2-very-secret");
        assert!(!format!("{:?}", Some(&secret)).contains("hunter2"));
        assert_eq!(secret.expose_secret(), "hunter2-very-secret");
    }
}
