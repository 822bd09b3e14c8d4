//! Finding the credentials Secret of a TaskReset and reading it.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::api::TaskReset;
use crate::roma::Credentials;

/// A Secret by namespace and name (the `--default-credentials-secret` form is `ns/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for SecretRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(Self {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!("{s:?} is not of the form NAMESPACE/NAME")),
        }
    }
}

/// The credentials of one TaskReset, or why there are none (a message for the status:
/// names and keys only, never a value).
#[derive(Debug)]
pub enum Lookup {
    /// Usable credentials.
    Found(Credentials),
    /// Nothing usable; the message says what to fix.
    Missing(String),
}

/// Which Secret holds the credentials for `tr`: its own reference (same namespace), else the
/// controller's default.
pub fn secret_for(tr: &TaskReset, default: Option<&SecretRef>) -> Option<SecretRef> {
    match (
        &tr.spec.credentials_secret_ref,
        tr.metadata.namespace.as_deref(),
    ) {
        (Some(reference), Some(namespace)) => Some(SecretRef {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
        }),
        _ => default.cloned(),
    }
}

/// Read the credentials for `tr`. A missing or incomplete Secret is a [`Lookup::Missing`];
/// any other API failure is an error (retried by the controller's error policy).
pub async fn lookup(
    client: &kube::Client,
    tr: &TaskReset,
    default: Option<&SecretRef>,
) -> Result<Lookup, kube::Error> {
    let Some(secret_ref) = secret_for(tr, default) else {
        return Ok(Lookup::Missing(
            "no spec.credentialsSecretRef and no --default-credentials-secret configured".into(),
        ));
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &secret_ref.namespace);
    let Some(secret) = api.get_opt(&secret_ref.name).await? else {
        return Ok(Lookup::Missing(format!("Secret {secret_ref} not found")));
    };
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (key, value) in secret.string_data.unwrap_or_default() {
        data.entry(key).or_insert_with(|| value.into_bytes());
    }
    Ok(match Credentials::from_secret_data(&data) {
        Ok(credentials) => Lookup::Found(credentials),
        Err(err) => Lookup::Missing(format!("Secret {secret_ref} is not usable: {err}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SecretReference, TaskResetSpec};

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
            Some(SecretRef {
                namespace: "data".into(),
                name: "mine".into()
            })
        );
        assert_eq!(secret_for(&tr("data", None), Some(&default)), Some(default));
        assert_eq!(secret_for(&tr("data", None), None), None);
    }

    #[test]
    fn default_secret_syntax() {
        assert!("ns/name".parse::<SecretRef>().is_ok());
        for bad in ["name", "/name", "ns/", "a/b/c", ""] {
            assert!(bad.parse::<SecretRef>().is_err(), "{bad}");
        }
    }
}
