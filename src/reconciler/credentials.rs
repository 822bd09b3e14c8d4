//! Finding the credentials Secret of a TaskReset and reading it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::api::{SecretVersion, TaskReset, is_dns1123_subdomain};
use crate::roma::{Credentials, CredentialsError, Endpoint, RomaClient};

/// A Secret by namespace and name (the `--default-credentials-secret` form is `ns/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// For the default Secret: the namespaces whose TaskResets may use it
    /// (`--default-credentials-namespaces`); `None`: every namespace.
    pub allowed_namespaces: Option<BTreeSet<String>>,
}

impl SecretRef {
    /// This Secret, usable as the default only by TaskResets in `namespaces` (an empty list
    /// keeps it open to every namespace).
    #[must_use]
    pub fn restricted_to(mut self, namespaces: &[String]) -> Self {
        let set: BTreeSet<String> = namespaces
            .iter()
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty())
            .collect();
        self.allowed_namespaces = (!set.is_empty()).then_some(set);
        self
    }

    /// Whether a TaskReset in `namespace` may use this Secret as its default.
    pub fn serves(&self, namespace: &str) -> bool {
        self.allowed_namespaces
            .as_ref()
            .is_none_or(|allowed| allowed.contains(namespace))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A `--default-credentials-secret` value that is not `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not of the form NAMESPACE/NAME")]
pub struct SecretRefError(String);

impl std::str::FromStr for SecretRef {
    type Err = SecretRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(Self {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    allowed_namespaces: None,
                })
            }
            _ => Err(SecretRefError(s.to_owned())),
        }
    }
}

/// The credentials of one TaskReset, or why there are none (a message for the status:
/// names and keys only, never a value).
#[derive(Debug)]
pub enum Lookup {
    /// Usable credentials, and the version of the Secret they were read from.
    Found(Credentials, SecretVersion),
    /// Nothing usable; the message says what to fix.
    Missing(String),
    /// A Secret whose content is ambiguous (keys of more than one credential kind), or that
    /// names an IAM endpoint the configuration does not allow: the message names the keys or
    /// the endpoint, never a value.
    Invalid(String),
}

/// Which Secret holds the credentials for `tr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Its own reference (same namespace).
    Own(SecretRef),
    /// The controller's default.
    Default(SecretRef),
    /// Neither: the message says why (for the status; names only).
    None(String),
}

/// Which Secret holds the credentials for `tr`: its own reference (same namespace, a valid
/// Secret name), else the controller's default if it serves `tr`'s namespace.
pub fn secret_for(tr: &TaskReset, default: Option<&SecretRef>) -> Choice {
    let namespace = tr.metadata.namespace.as_deref().unwrap_or_default();
    if let Some(reference) = &tr.spec.credentials_secret_ref {
        // Defence in depth behind the CRD pattern: a name is only ever a path segment.
        if !is_dns1123_subdomain(&reference.name) {
            return Choice::None(format!(
                "spec.credentialsSecretRef.name {:?} is not a valid Secret name",
                reference.name
            ));
        }
        return Choice::Own(SecretRef {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
            allowed_namespaces: None,
        });
    }
    match default {
        None => Choice::None(
            "no spec.credentialsSecretRef and no --default-credentials-secret configured".into(),
        ),
        Some(default) if !default.serves(namespace) => Choice::None(format!(
            "no spec.credentialsSecretRef, and the default Secret {default} is not available to namespace {namespace:?} (--default-credentials-namespaces): set spec.credentialsSecretRef to a Secret in this namespace"
        )),
        Some(default) => Choice::Default(default.clone()),
    }
}

/// Where credentials are read from.
pub struct Source<'a> {
    /// The Secrets, through their cache.
    pub secrets: &'a super::secrets::Secrets,
    /// The Secret used when a TaskReset names none.
    pub default: Option<&'a SecretRef>,
    /// Read past the cache.
    pub fresh: bool,
}

/// Read the credentials for `tr`, whose calls go to `endpoint` through `roma`. A missing or
/// incomplete Secret is a [`Lookup::Missing`]; a Secret `roma` could not send (an IAM endpoint
/// outside the allow-list) a [`Lookup::Invalid`]; any other API failure is an error (retried
/// by the controller's error policy).
pub async fn lookup(
    source: &Source<'_>,
    tr: &TaskReset,
    roma: &RomaClient,
    endpoint: &Endpoint,
) -> Result<Lookup, kube::Error> {
    let secret_ref = match secret_for(tr, source.default) {
        Choice::Own(secret_ref) | Choice::Default(secret_ref) => secret_ref,
        Choice::None(message) => return Ok(Lookup::Missing(message)),
    };
    let found = source
        .secrets
        .get(&secret_ref.namespace, &secret_ref.name, source.fresh)
        .await?;
    let Some(secret) = found else {
        return Ok(Lookup::Missing(format!("Secret {secret_ref} not found")));
    };
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (key, value) in secret.string_data.iter().flatten() {
        data.entry(key.clone())
            .or_insert_with(|| value.clone().into_bytes());
    }
    let version = SecretVersion {
        secret: secret_ref.to_string(),
        resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
    };
    Ok(match Credentials::from_secret_data(&data) {
        Ok(credentials) => match roma.check_iam_endpoint(endpoint, &credentials) {
            Ok(()) => Lookup::Found(credentials, version),
            Err(err) => Lookup::Invalid(format!("Secret {secret_ref} is not usable: {err}")),
        },
        Err(err @ CredentialsError::Mixed { .. }) => {
            Lookup::Invalid(format!("Secret {secret_ref} is not usable: {err}"))
        }
        Err(err) => Lookup::Missing(format!("Secret {secret_ref} is not usable: {err}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SecretReference, TaskResetSpec};
    use k8s_openapi::api::core::v1::Secret;
    use kube::Api;
    use std::time::Duration;

    fn tr(namespace: &str, reference: Option<&str>) -> TaskReset {
        let mut tr = TaskReset::new(
            "x",
            TaskResetSpec {
                credentials_secret_ref: reference.map(|name| SecretReference { name: name.into() }),
                ..TaskResetSpec::new("p", "i", "t")
            },
        );
        tr.metadata.namespace = Some(namespace.into());
        tr
    }

    #[test]
    fn own_reference_stays_in_the_namespace_else_the_default() {
        let default: SecretRef = "ops/roma".parse().expect("parse");
        assert_eq!(
            secret_for(&tr("data", Some("mine")), Some(&default)),
            Choice::Own(SecretRef {
                namespace: "data".into(),
                name: "mine".into(),
                allowed_namespaces: None,
            })
        );
        assert_eq!(
            secret_for(&tr("data", None), Some(&default)),
            Choice::Default(default)
        );
        assert!(matches!(
            secret_for(&tr("data", None), None),
            Choice::None(_)
        ));
    }

    /// Issue 11.9: `--default-credentials-namespaces` limits who may use the default Secret.
    #[test]
    fn the_default_serves_only_the_listed_namespaces_when_restricted() {
        let open: SecretRef = "ops/roma".parse().expect("parse");
        let list = ["data".to_owned(), " etl ".to_owned()];
        let restricted = open.clone().restricted_to(&list);
        assert!(open.serves("anything"));
        assert!(restricted.serves("data") && restricted.serves("etl"));
        assert!(!restricted.serves("tenant-b"));
        assert_eq!(
            secret_for(&tr("data", None), Some(&restricted)),
            Choice::Default(restricted.clone())
        );
        let Choice::None(message) = secret_for(&tr("tenant-b", None), Some(&restricted)) else {
            panic!("the default must not serve tenant-b");
        };
        assert!(
            message.contains("default Secret ops/roma is not available to namespace \"tenant-b\""),
            "{message}"
        );
        // Its own Secret is always allowed.
        assert!(matches!(
            secret_for(&tr("tenant-b", Some("mine")), Some(&restricted)),
            Choice::Own(_)
        ));
        // An empty list is today's behaviour.
        assert_eq!(open.clone().restricted_to(&[]), open);
        assert_eq!(open.clone().restricted_to(&[String::new()]), open);
    }

    /// Issue 11.11: `tok?x=1` read Secret `tok`; a name is never spliced into a path unchecked.
    #[test]
    fn an_invalid_own_secret_name_is_never_looked_up() {
        for bad in ["tok?x=1", "a/b", "..", "Tok", "tok%2F", ""] {
            assert!(
                matches!(secret_for(&tr("data", Some(bad)), None), Choice::None(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn default_secret_syntax() {
        assert!("ns/name".parse::<SecretRef>().is_ok());
        for bad in ["name", "/name", "ns/", "a/b/c", ""] {
            assert!(bad.parse::<SecretRef>().is_err(), "{bad}");
        }
    }

    /// The restriction and the name check hold through `lookup` against an API server: the
    /// default Secret is read only for a listed namespace, and an invalid name is never sent.
    #[tokio::test]
    async fn lookup_honours_the_namespace_list_and_never_sends_a_bad_name() {
        use k8s_openapi::ByteString;
        use kube::api::PostParams;
        use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiServer};

        let kube = KubeApiServer::start(KubeApiConfig::default())
            .await
            .expect("kube sim");
        let client = kube.client().await;
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("roma".into()),
                ..Default::default()
            },
            data: Some(
                [("token".to_owned(), ByteString(b"t0ken".to_vec()))]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        };
        Api::<Secret>::namespaced(client.clone(), "ops")
            .create(&PostParams::default(), &secret)
            .await
            .expect("Secret");
        let default = "ops/roma"
            .parse::<SecretRef>()
            .expect("parse")
            .restricted_to(&["data".to_owned()]);
        let secrets = super::super::secrets::Secrets::new(client.clone(), Duration::ZERO);
        let source = |default| Source {
            secrets: &secrets,
            default,
            fresh: false,
        };
        let roma = RomaClient::new(crate::roma::ClientConfig::default()).expect("client");
        let endpoint = Endpoint::for_region("cn-north-4").expect("endpoint");
        let allowed = lookup(&source(Some(&default)), &tr("data", None), &roma, &endpoint)
            .await
            .expect("lookup");
        let Lookup::Found(_, version) = &allowed else {
            panic!("{allowed:?}");
        };
        // Issue 15.7: the default Secret's version is known, so a 401 can be pinned to it.
        assert_eq!(version.secret, "ops/roma");
        assert!(!version.resource_version.is_empty(), "{version:?}");
        kube.reset_request_log();
        let refused = lookup(
            &source(Some(&default)),
            &tr("tenant-b", None),
            &roma,
            &endpoint,
        )
        .await
        .expect("lookup");
        let Lookup::Missing(message) = refused else {
            panic!("tenant-b must not get the default Secret");
        };
        assert!(message.contains("not available to namespace"), "{message}");
        let bad = lookup(
            &source(None),
            &tr("data", Some("roma?x=1")),
            &roma,
            &endpoint,
        )
        .await
        .expect("lookup");
        assert!(matches!(bad, Lookup::Missing(_)), "{bad:?}");
        let secret_reads: Vec<String> = kube
            .request_log()
            .into_iter()
            .filter(|r| r.path.contains("/secrets"))
            .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
            .collect();
        assert!(secret_reads.is_empty(), "{secret_reads:?}");
        kube.shutdown().await;
    }
}
