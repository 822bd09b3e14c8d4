//! What a request asks for: the route of its path and, for resources, the Kubernetes request
//! info (group, version, namespace, resource, name, subresource, verb), as kube-apiserver
//! derives it.

use std::collections::BTreeMap;

/// A resource request.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ResourceRequest {
    pub group: String,
    pub version: String,
    /// `Some` when the path had `namespaces/{ns}/`.
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// `list`, `watch`, `get`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'static str,
}

/// The route of a request path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    Version,
    Health,
    /// `/api`: APIVersions.
    LegacyVersions,
    /// `/apis`: APIGroupList.
    Groups,
    /// `/apis/{group}`: APIGroup.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`: APIResourceList.
    GroupVersion(String, String),
    OpenApiV2,
    OpenApiV3Root,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
    OpenApiV3(String, String),
    /// `/_sim/...`
    Sim(String),
    Resource(ResourceRequest),
    NotFound,
}

/// Parses a raw query string into a map (last value wins).
pub(crate) fn parse_query(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether a query flag is set to a true value.
pub(crate) fn query_flag(query: &BTreeMap<String, String>, key: &str) -> bool {
    query
        .get(key)
        .is_some_and(|v| matches!(v.as_str(), "true" | "1" | "True" | "TRUE"))
}

/// Routes a request.
pub(crate) fn route(method: &str, path: &str, query: &BTreeMap<String, String>) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["api"] => Route::LegacyVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::GroupVersion(String::new(), version.to_string()),
        ["apis", group, version] => Route::GroupVersion(group.to_string(), version.to_string()),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", "api", version] => Route::OpenApiV3(String::new(), version.to_string()),
        ["openapi", "v3", "apis", group, version] => {
            Route::OpenApiV3(group.to_string(), version.to_string())
        }
        ["_sim", rest @ ..] => Route::Sim(rest.join("/")),
        ["api", version, rest @ ..] => {
            resource(method, "", version, rest, query).map_or(Route::NotFound, Route::Resource)
        }
        ["apis", group, version, rest @ ..] => {
            resource(method, group, version, rest, query).map_or(Route::NotFound, Route::Resource)
        }
        _ => Route::NotFound,
    }
}

fn resource(
    method: &str,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &BTreeMap<String, String>,
) -> Option<ResourceRequest> {
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let mut req = ResourceRequest {
        group: group.to_string(),
        version: version.to_string(),
        ..ResourceRequest::default()
    };
    let rest: &[&str] = match rest {
        // `namespaces/{ns}/{resource}...` is namespaced; `namespaces[/{name}[/sub]]` is the
        // Namespace resource itself.
        ["namespaces", ns, resource, more @ ..] => {
            if group.is_empty() && matches!(*resource, "status" | "finalize") && more.is_empty() {
                req.plural = "namespaces".into();
                req.name = Some(ns.to_string());
                req.subresource = Some(resource.to_string());
                &[]
            } else {
                req.namespace = Some(ns.to_string());
                req.plural = resource.to_string();
                more
            }
        }
        [resource, more @ ..] => {
            req.plural = resource.to_string();
            more
        }
        [] => return None,
    };
    match rest {
        [] => {}
        [name] => req.name = Some(name.to_string()),
        [name, sub] => {
            req.name = Some(name.to_string());
            req.subresource = Some(sub.to_string());
        }
        _ => return None,
    }
    let watch = watch_prefix || query_flag(query, "watch");
    req.verb = match (method, req.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "",
    };
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: &str, path: &str, query: &str) -> Route {
        route(method, path, &parse_query(query))
    }

    #[test]
    fn paths_resolve_like_kube_apiserver() {
        assert_eq!(r("GET", "/api", ""), Route::LegacyVersions);
        assert_eq!(
            r("GET", "/api/v1", ""),
            Route::GroupVersion(String::new(), "v1".into())
        );
        let Route::Resource(tr) = r(
            "PATCH",
            "/apis/fdi.roma.io/v1alpha1/namespaces/ns/taskresets/a/status",
            "",
        ) else {
            panic!("not a resource")
        };
        assert_eq!(
            (
                tr.namespace.as_deref(),
                tr.plural.as_str(),
                tr.name.as_deref(),
                tr.subresource.as_deref(),
                tr.verb
            ),
            (Some("ns"), "taskresets", Some("a"), Some("status"), "patch")
        );
        let Route::Resource(ns) = r("GET", "/api/v1/namespaces/foo", "") else {
            panic!()
        };
        assert_eq!(
            (ns.plural.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("foo"), None)
        );
        let Route::Resource(nss) = r("PUT", "/api/v1/namespaces/foo/status", "") else {
            panic!()
        };
        assert_eq!(
            (nss.plural.as_str(), nss.subresource.as_deref(), nss.verb),
            ("namespaces", Some("status"), "update")
        );
        let Route::Resource(w) = r(
            "GET",
            "/api/v1/namespaces/ns/secrets",
            "watch=1&resourceVersion=5",
        ) else {
            panic!()
        };
        assert_eq!((w.verb, w.namespace.as_deref()), ("watch", Some("ns")));
        let Route::Resource(all) = r("GET", "/apis/fdi.roma.io/v1alpha1/taskresets", "") else {
            panic!()
        };
        assert_eq!((all.verb, all.namespace), ("list", None));
        let Route::Resource(legacy) = r("GET", "/api/v1/watch/namespaces/ns/secrets/s", "") else {
            panic!()
        };
        assert_eq!((legacy.verb, legacy.name.as_deref()), ("watch", Some("s")));
        assert_eq!(r("GET", "/apis/a/v1/x/y/z/w", ""), Route::NotFound);
    }
}
