//! Response representations: plain JSON, `meta.k8s.io` Table (server-side printing for
//! `kubectl get`) and PartialObjectMetadata(List).

use super::registry::{ColumnSource, VersionInfo};
use super::util::{age_seconds, human_duration};
use serde_json::{Map, Value, json};

/// What the client asked for in `Accept`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Representation {
    Json,
    /// A Table of `meta.k8s.io/<version>`.
    Table(String),
    /// PartialObjectMetadata(List) of `meta.k8s.io/<version>`.
    PartialMetadata(String),
}

/// Reads `Accept` the way kube-apiserver negotiates: the first media type it can serve wins.
pub(crate) fn negotiate(accept: &str) -> Representation {
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let mime = parts.next().unwrap_or("");
        if !matches!(mime, "application/json" | "*/*" | "application/*" | "") {
            continue;
        }
        let mut as_ = "";
        let mut version = "v1";
        let mut group = "";
        for p in parts {
            match p.split_once('=') {
                Some(("as", v)) => as_ = v,
                Some(("v", v)) => version = v,
                Some(("g", v)) => group = v,
                _ => {}
            }
        }
        match (as_, group) {
            ("", _) => return Representation::Json,
            ("Table", "meta.k8s.io") if matches!(version, "v1" | "v1beta1") => {
                return Representation::Table(version.to_string());
            }
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io")
                if matches!(version, "v1" | "v1beta1") =>
            {
                return Representation::PartialMetadata(version.to_string());
            }
            _ => continue,
        }
    }
    Representation::Json
}

/// `includeObject` of a Table request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&String>) -> Self {
        match value.map(String::as_str) {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// The PartialObjectMetadata of an object.
pub(crate) fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn cell(obj: &Value, source: &ColumnSource, ty: &str) -> Value {
    match source {
        ColumnSource::CountKeys(fields) => {
            let n: usize = fields
                .iter()
                .filter_map(|f| obj.get(*f).and_then(Value::as_object).map(Map::len))
                .sum();
            json!(n)
        }
        ColumnSource::Path(path) => {
            let Some(first) = path.find(obj).into_iter().next() else {
                return Value::Null;
            };
            match (ty, first) {
                ("date", Value::String(s)) => match age_seconds(s) {
                    Some(secs) => json!(human_duration(secs)),
                    None => json!("<invalid>"),
                },
                ("string", Value::String(s)) => json!(s),
                ("string", Value::Null) => Value::Null,
                ("string", other) => json!(other.to_string()),
                ("integer" | "number" | "boolean", v) => v.clone(),
                (_, v) => v.clone(),
            }
        }
    }
}

/// A Table of objects with the version's printer columns (Name first).
pub(crate) fn table(
    version: &VersionInfo,
    objects: &[&Value],
    include: IncludeObject,
    table_version: &str,
    list_meta: Value,
) -> Value {
    let mut columns = vec![json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0,
    })];
    for c in &version.columns {
        columns.push(json!({
            "name": c.name,
            "type": c.ty,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        }));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let name = obj
                .get("metadata")
                .and_then(|m| m.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            let mut cells = vec![name];
            cells.extend(version.columns.iter().map(|c| cell(obj, &c.source, &c.ty)));
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(obj, table_version),
                IncludeObject::Object => row["object"] = (*obj).clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_negotiate_like_kube_apiserver() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(kubectl_get), Representation::Table("v1".into()));
        assert_eq!(negotiate("application/json"), Representation::Json);
        assert_eq!(
            negotiate(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"
            ),
            Representation::Json
        );
        assert_eq!(
            negotiate("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Representation::PartialMetadata("v1".into())
        );
        assert_eq!(
            negotiate("application/json;as=Bogus;g=x;v=v1"),
            Representation::Json
        );
    }
}
