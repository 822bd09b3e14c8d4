//! The resource types the server knows: the built-in kinds and those of created CRDs.

use super::cel::{CelError, CelRules};
use super::jsonpath::{JsonPath, JsonPathError};
use super::schema::{Schema, SchemaError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Identifies a resource type independently of its version: (group, plural).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TypeKey {
    /// API group, "" for core.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
}

impl TypeKey {
    pub fn new(group: &str, plural: &str) -> Self {
        Self {
            group: group.to_string(),
            plural: plural.to_string(),
        }
    }

    /// `plural.group` or `plural` (core), as kubectl names resources.
    pub fn display(&self) -> String {
        super::errors::group_resource(&self.group, &self.plural)
    }
}

/// Built-in kinds with special semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    /// A custom resource.
    None,
    Namespace,
    Secret,
    ConfigMap,
    CoreEvent,
    Event,
    Lease,
    Crd,
}

/// A printer column for Table output.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub ty: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub source: ColumnSource,
}

/// Where a column's cell comes from.
#[derive(Debug, Clone)]
pub(crate) enum ColumnSource {
    /// A JSONPath into the object (CRD `additionalPrinterColumns`).
    Path(JsonPath),
    /// The number of keys of a map field (Secret and ConfigMap `Data`).
    CountKeys(Vec<&'static str>),
}

/// One served version of a resource type.
#[derive(Debug)]
pub(crate) struct VersionInfo {
    pub name: String,
    pub storage: bool,
    pub schema: Option<Arc<Schema>>,
    pub raw_schema: Option<Value>,
    pub cel: Option<Arc<CelRules>>,
    pub columns: Vec<Column>,
    pub status_subresource: bool,
}

/// A resource type.
#[derive(Debug)]
pub(crate) struct ResourceType {
    pub key: TypeKey,
    pub kind: String,
    pub list_kind: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub versions: Vec<VersionInfo>,
    /// Whether `metadata.generation` is maintained (custom resources and CRDs).
    pub has_generation: bool,
    pub builtin: Builtin,
}

impl ResourceType {
    /// The served version named `version`.
    pub fn version(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == version)
    }

    /// The storage version (the first one when none is marked).
    pub fn storage_version(&self) -> &VersionInfo {
        // A ResourceType always has at least one version: builtin() and from_crd() ensure it.
        #[allow(clippy::indexing_slicing)]
        self.versions
            .iter()
            .find(|v| v.storage)
            .unwrap_or(&self.versions[0])
    }

    /// `group/version` or `version` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.key.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.key.group)
        }
    }

    /// Whether writes through the main resource ignore `.status` (a status subresource exists).
    pub fn status_is_subresource(&self) -> bool {
        self.storage_version().status_subresource
    }

    /// The verbs served, for discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// An object as served in a version: `apiVersion` and `kind` of that version.
pub(crate) fn present(obj: &Value, rt: &ResourceType, version: &str) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            serde_json::json!(rt.api_version(version)),
        );
        map.insert("kind".into(), serde_json::json!(rt.kind));
    }
    out
}

// One call per built-in kind reads as a table; a parameter struct would only add noise.
#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short_names: &[&str],
    builtin: Builtin,
    columns: Vec<Column>,
    status_subresource: bool,
) -> ResourceType {
    ResourceType {
        key: TypeKey::new(group, plural),
        kind: kind.to_string(),
        list_kind: format!("{kind}List"),
        singular: kind.to_lowercase(),
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        namespaced,
        versions: vec![VersionInfo {
            name: version.to_string(),
            storage: true,
            schema: None,
            raw_schema: None,
            cel: None,
            columns,
            status_subresource,
        }],
        has_generation: builtin == Builtin::Crd,
        builtin,
    }
}

fn path_column(name: &str, ty: &str, path: &str, description: &str) -> Column {
    Column {
        name: name.to_string(),
        ty: ty.to_string(),
        format: String::new(),
        description: description.to_string(),
        priority: 0,
        source: ColumnSource::Path(JsonPath::parse(path).unwrap_or_default()),
    }
}

fn age_column() -> Column {
    path_column(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

/// All resource types, by (group, plural).
#[derive(Debug)]
pub(crate) struct Registry {
    types: BTreeMap<TypeKey, Arc<ResourceType>>,
}

impl Registry {
    /// The built-in kinds.
    pub fn with_builtins() -> Self {
        let data = Column {
            name: "Data".to_string(),
            ty: "string".to_string(),
            format: String::new(),
            description: "Number of keys".to_string(),
            priority: 0,
            source: ColumnSource::CountKeys(vec!["data", "binaryData"]),
        };
        let types = [
            builtin(
                "",
                "v1",
                "Namespace",
                "namespaces",
                false,
                &["ns"],
                Builtin::Namespace,
                vec![
                    path_column(
                        "Status",
                        "string",
                        ".status.phase",
                        "The phase of the namespace",
                    ),
                    age_column(),
                ],
                true,
            ),
            builtin(
                "",
                "v1",
                "Secret",
                "secrets",
                true,
                &[],
                Builtin::Secret,
                vec![
                    path_column("Type", "string", ".type", "The type of the secret"),
                    data.clone(),
                    age_column(),
                ],
                false,
            ),
            builtin(
                "",
                "v1",
                "ConfigMap",
                "configmaps",
                true,
                &["cm"],
                Builtin::ConfigMap,
                vec![data, age_column()],
                false,
            ),
            builtin(
                "",
                "v1",
                "Event",
                "events",
                true,
                &["ev"],
                Builtin::CoreEvent,
                vec![
                    path_column("Type", "string", ".type", "Type of this event"),
                    path_column("Reason", "string", ".reason", "Reason of this event"),
                    path_column(
                        "Object",
                        "string",
                        ".involvedObject.name",
                        "The object this event is about",
                    ),
                    path_column("Message", "string", ".message", "Message of this event"),
                ],
                false,
            ),
            builtin(
                "events.k8s.io",
                "v1",
                "Event",
                "events",
                true,
                &["ev"],
                Builtin::Event,
                vec![
                    path_column("Type", "string", ".type", "Type of this event"),
                    path_column("Reason", "string", ".reason", "Reason of this event"),
                    path_column(
                        "Object",
                        "string",
                        ".regarding.name",
                        "The object this event is about",
                    ),
                    path_column("Note", "string", ".note", "Note of this event"),
                ],
                false,
            ),
            builtin(
                "coordination.k8s.io",
                "v1",
                "Lease",
                "leases",
                true,
                &[],
                Builtin::Lease,
                vec![
                    path_column(
                        "Holder",
                        "string",
                        ".spec.holderIdentity",
                        "The holder of the lease",
                    ),
                    age_column(),
                ],
                false,
            ),
            builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                &["crd", "crds"],
                Builtin::Crd,
                // kube-apiserver prints the timestamp itself here, not an age.
                vec![path_column(
                    "Created At",
                    "string",
                    ".metadata.creationTimestamp",
                    "Creation time",
                )],
                true,
            ),
        ];
        Self {
            types: types
                .into_iter()
                .map(|t| (t.key.clone(), Arc::new(t)))
                .collect(),
        }
    }

    /// The type of (group, plural), if served.
    pub fn get(&self, key: &TypeKey) -> Option<Arc<ResourceType>> {
        self.types.get(key).cloned()
    }

    /// All types.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Adds or replaces the type a CRD defines. Returns its key.
    pub fn register_crd(&mut self, crd: &Value) -> Result<TypeKey, CrdError> {
        let t = from_crd(crd)?;
        let key = t.key.clone();
        if self
            .types
            .get(&key)
            .is_some_and(|existing| existing.builtin != Builtin::None)
        {
            return Err(CrdError::BuiltIn(key.display()));
        }
        self.types.insert(key.clone(), Arc::new(t));
        Ok(key)
    }

    /// Removes the type of a deleted CRD.
    pub fn unregister(&mut self, key: &TypeKey) {
        if self
            .types
            .get(key)
            .is_some_and(|t| t.builtin == Builtin::None)
        {
            self.types.remove(key);
        }
    }
}

/// The (group, plural) a CRD object defines, without compiling it.
pub(crate) fn crd_key(crd: &Value) -> Option<TypeKey> {
    let spec = crd.get("spec")?;
    Some(TypeKey::new(
        spec.get("group")?.as_str()?,
        spec.get("names")?.get("plural")?.as_str()?,
    ))
}

/// Why a CRD defines no servable type; the messages are kube-apiserver's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CrdError {
    /// A required field is missing.
    #[error("{0}: Required value")]
    Required(&'static str),
    /// No served version.
    #[error(
        "spec.versions: Invalid value: must have exactly one version marked as storage version"
    )]
    NoVersion,
    /// The CRD names a built-in resource.
    #[error("{0} is a built-in resource")]
    BuiltIn(String),
    /// An `openAPIV3Schema` that does not compile.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A CEL rule that does not compile.
    #[error(transparent)]
    Cel(#[from] CelError),
    /// A printer column's `jsonPath` that does not parse.
    #[error("jsonPath {path:?}: {source}")]
    JsonPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        #[source]
        source: JsonPathError,
    },
}

fn from_crd(crd: &Value) -> Result<ResourceType, CrdError> {
    let required = CrdError::Required;
    let spec = crd.get("spec").ok_or(required("spec"))?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let group = s(spec.get("group")).ok_or(required("spec.group"))?;
    let names = spec.get("names").ok_or(required("spec.names"))?;
    let plural = s(names.get("plural")).ok_or(required("spec.names.plural"))?;
    let kind = s(names.get("kind")).ok_or(required("spec.names.kind"))?;
    let list_kind = s(names.get("listKind")).unwrap_or_else(|| format!("{kind}List"));
    let singular = s(names.get("singular")).unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let scope = s(spec.get("scope")).unwrap_or_else(|| "Namespaced".to_string());
    let mut versions = Vec::new();
    for v in spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or(required("spec.versions"))?
    {
        let name = s(v.get("name")).ok_or(required("spec.versions[].name"))?;
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let raw_schema = v
            .get("schema")
            .and_then(|s| s.get("openAPIV3Schema"))
            .cloned();
        let schema = match &raw_schema {
            Some(raw) => Some(Arc::new(Schema::compile(raw)?)),
            None => None,
        };
        let cel = match &raw_schema {
            Some(raw) => CelRules::compile(raw)?.map(Arc::new),
            None => None,
        };
        let mut columns = Vec::new();
        for c in v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let path = s(c.get("jsonPath")).unwrap_or_default();
            columns.push(Column {
                name: s(c.get("name")).unwrap_or_default(),
                ty: s(c.get("type")).unwrap_or_else(|| "string".to_string()),
                format: s(c.get("format")).unwrap_or_default(),
                description: s(c.get("description")).unwrap_or_default(),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                source: ColumnSource::Path(JsonPath::parse(&path).map_err(|source| {
                    CrdError::JsonPath {
                        path: path.clone(),
                        source,
                    }
                })?),
            });
        }
        if v.get("additionalPrinterColumns").is_none() {
            columns.push(age_column());
        }
        versions.push(VersionInfo {
            name,
            storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
            schema,
            raw_schema,
            cel,
            columns,
            status_subresource: v
                .get("subresources")
                .and_then(|s| s.get("status"))
                .is_some(),
        });
    }
    if versions.is_empty() {
        return Err(CrdError::NoVersion);
    }
    Ok(ResourceType {
        key: TypeKey::new(&group, &plural),
        kind,
        list_kind,
        singular,
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        namespaced: scope == "Namespaced",
        versions,
        has_generation: true,
        builtin: Builtin::None,
    })
}
