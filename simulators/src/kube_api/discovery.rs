//! Discovery documents (legacy APIVersions, APIGroupList, APIGroup, APIResourceList) and
//! OpenAPI v3 (enough for kubectl to see server-side field validation and for `kubectl
//! explain` of custom resources).

use super::registry::{Registry, ResourceType};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `/version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-taskreset-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub(crate) fn legacy_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Served versions per group (core excluded), in registration order of the types.
fn groups(registry: &Registry) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in registry.all() {
        if t.key.group.is_empty() {
            continue;
        }
        let versions = groups.entry(t.key.group.clone()).or_default();
        for v in &t.versions {
            if !versions.contains(&v.name) {
                versions.push(v.name.clone());
            }
        }
    }
    groups
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = list.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": list, "preferredVersion": preferred})
}

/// `/apis`.
pub(crate) fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry)
        .iter()
        .map(|(name, versions)| group_doc(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub(crate) fn group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = groups(registry);
    let versions = groups.get(name)?;
    let mut doc = group_doc(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn types_in<'a>(
    registry: &'a Registry,
    group: &'a str,
    version: &'a str,
) -> Vec<&'a Arc<ResourceType>> {
    registry
        .all()
        .filter(|t| t.key.group == group && t.version(version).is_some())
        .collect()
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = types_in(registry, group, version);
    if types.is_empty() && !(group.is_empty() && version == "v1") {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let mut r = json!({
            "name": t.key.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.version(version).is_some_and(|v| v.status_subresource) {
            resources.push(json!({
                "name": format!("{}/status", t.key.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The OpenAPI component name kube-apiserver uses: reversed group, version, kind.
fn component_name(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        return format!("io.k8s.api.core.{version}.{kind}");
    }
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: the group versions and where their documents are.
pub(crate) fn openapi_v3_root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".to_string())];
    for t in registry.all() {
        for v in &t.versions {
            let gv = (t.key.group.clone(), v.name.clone());
            if !gvs.contains(&gv) {
                gvs.push(gv);
            }
        }
    }
    for (group, version) in gvs {
        let doc = openapi_v3_group_version(registry, &group, &version);
        let hash = fnv(&doc.map(|d| d.to_string()).unwrap_or_default());
        let path = gv_path(&group, &version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn parameter(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(t: &ResourceType, version: &str, action: &str, params: &[&str]) -> Value {
    let component = component_name(&t.key.group, version, &t.kind);
    json!({
        "operationId": format!("{action}{}", t.kind),
        "parameters": params.iter().map(|p| parameter(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{component}")}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.key.group, "version": version, "kind": t.kind},
    })
}

/// `/openapi/v3/apis/{group}/{version}` (or `/openapi/v3/api/v1`).
pub(crate) fn openapi_v3_group_version(
    registry: &Registry,
    group: &str,
    version: &str,
) -> Option<Value> {
    let types = types_in(registry, group, version);
    if types.is_empty() && !(group.is_empty() && version == "v1") {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    let patch = [
        "dryRun",
        "fieldManager",
        "fieldValidation",
        "force",
        "pretty",
    ];
    for t in types {
        let base = if t.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}",
                gv_path(group, version),
                t.key.plural
            )
        } else {
            format!("/{}/{}", gv_path(group, version), t.key.plural)
        };
        paths.insert(
            base.clone(),
            json!({
                "get": operation(t, version, "list", &["labelSelector", "fieldSelector", "limit", "continue", "watch"]),
                "post": operation(t, version, "post", &write),
            }),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": operation(t, version, "get", &[]),
                "put": operation(t, version, "put", &write),
                "patch": operation(t, version, "patch", &patch),
                "delete": operation(t, version, "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
        if t.version(version).is_some_and(|v| v.status_subresource) {
            paths.insert(
                format!("{base}/{{name}}/status"),
                json!({
                    "get": operation(t, version, "get", &[]),
                    "put": operation(t, version, "put", &write),
                    "patch": operation(t, version, "patch", &patch),
                }),
            );
        }
        let mut schema = t
            .version(version)
            .and_then(|v| v.raw_schema.clone())
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            props.insert(
                "metadata".into(),
                json!({"type": "object", "description": "Standard object's metadata."}),
            );
        }
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": t.key.group, "version": version, "kind": t.kind}]);
        schemas.insert(component_name(group, version, &t.kind), schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_builtins_and_subresources() {
        let registry = Registry::with_builtins();
        let core = resource_list(&registry, "", "v1").unwrap_or(Value::Null);
        let names: Vec<&str> = core["resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        for expected in [
            "namespaces",
            "namespaces/status",
            "secrets",
            "configmaps",
            "events",
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        let groups = group_list(&registry);
        let group_names: Vec<&str> = groups["groups"]
            .as_array()
            .map(|a| a.iter().filter_map(|g| g["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            group_names,
            vec![
                "apiextensions.k8s.io",
                "coordination.k8s.io",
                "events.k8s.io"
            ]
        );
        assert!(resource_list(&registry, "nope.io", "v1").is_none());
    }

    #[test]
    fn openapi_v3_advertises_field_validation_on_patch() {
        let registry = Registry::with_builtins();
        let doc =
            openapi_v3_group_version(&registry, "coordination.k8s.io", "v1").unwrap_or(Value::Null);
        let op = &doc["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]
            ["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Lease");
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(params.contains(&"fieldValidation"));
        let root = openapi_v3_root(&registry);
        assert!(
            root["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("/openapi/v3/apis/coordination.k8s.io/v1?hash="))
        );
    }
}
