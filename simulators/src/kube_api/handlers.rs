//! The verbs on resources: list, watch, get, create, update, patch (merge, JSON, strategic,
//! apply), delete and deletecollection, with kube-apiserver's semantics for resourceVersion,
//! generation, the status subresource, finalizers and field managers.

use super::errors::{ApiError, Cause};
use super::managed_fields::{self, Scope, Writer};
use super::patch::{PatchType, json_patch, merge_patch, strategic_merge_patch};
use super::registry::{Builtin, ResourceType, TypeKey, VersionInfo, present};
use super::request::{ResourceRequest, query_flag};
use super::schema::Schema;
use super::selector::{FieldSelector, LabelSelector};
use super::shared::Shared;
use super::store::Store;
use super::table::{IncludeObject, Representation, partial_metadata, table};
use super::util::{meta_str, metadata_mut, name_suffix, new_uid, now_rfc3339};
use super::watch::{self, WatchRequest};
use axum::body::Body;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a handler answers.
pub(crate) enum Reply {
    /// A JSON body with a status code and `Warning` headers.
    Json {
        status: u16,
        body: Value,
        warnings: Vec<String>,
    },
    /// A watch stream.
    Stream(Body),
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply::Json {
            status: 200,
            body,
            warnings: Vec::new(),
        }
    }
}

/// One resource request with what it carries.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub req: &'a ResourceRequest,
    pub query: &'a BTreeMap<String, String>,
    pub representation: Representation,
    pub user_agent: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

fn parse_rv(text: &str) -> Option<u64> {
    text.parse().ok()
}

fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized: couldn't decode JSON: {e}"
        ))
    })
}

/// A create or update body: JSON, or Kubernetes protobuf for the kinds kubectl's typed
/// clients send that way.
fn body_object(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    if ctx.content_type.starts_with(super::protobuf::CONTENT_TYPE) {
        return super::protobuf::decode(ctx.body).map_err(|e| {
            ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request could not be decoded: {e}"),
            )
        });
    }
    body_json(ctx.body)
}

fn body_json_or_yaml(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("error decoding YAML: invalid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// Handles a resource request.
pub(crate) async fn handle(ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    let (rt, version) = resolve(&ctx)?;
    match ctx.req.verb {
        "list" => list(&ctx, &rt, &version),
        "watch" => watch(&ctx, rt, version),
        "get" => get(&ctx, &rt, &version),
        "create" => create(&ctx, &rt, &version),
        "update" => update(&ctx, &rt, &version),
        "patch" => patch(&ctx, &rt, &version),
        "delete" => delete(&ctx, &rt, &version),
        "deletecollection" => delete_collection(&ctx, &rt, &version),
        _ => Err(ApiError::method_not_allowed(&ctx.req.verb.to_uppercase())),
    }
}

fn resolve(ctx: &Ctx<'_>) -> Result<(Arc<ResourceType>, String), ApiError> {
    let req = ctx.req;
    let store = ctx.shared.store();
    let rt = store
        .registry
        .get(&TypeKey::new(&req.group, &req.plural))
        .filter(|t| t.version(&req.version).is_some())
        .ok_or_else(ApiError::no_route)?;
    if req.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route());
    }
    if rt.namespaced && req.namespace.is_none() && !matches!(req.verb, "list" | "watch") {
        return Err(ApiError::no_route());
    }
    if let Some(sub) = &req.subresource {
        let has_status = rt
            .version(&req.version)
            .is_some_and(|v| v.status_subresource);
        if sub != "status" || !has_status || !matches!(req.verb, "get" | "update" | "patch") {
            return Err(ApiError::no_route());
        }
    }
    Ok((rt, req.version.clone()))
}

fn version_info<'a>(rt: &'a ResourceType, version: &str) -> Result<&'a VersionInfo, ApiError> {
    rt.version(version).ok_or_else(ApiError::no_route)
}

fn namespace_of(ctx: &Ctx<'_>) -> String {
    ctx.req.namespace.clone().unwrap_or_default()
}

fn name_of(ctx: &Ctx<'_>) -> String {
    ctx.req.name.clone().unwrap_or_default()
}

fn selectors(ctx: &Ctx<'_>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = match ctx.query.get("labelSelector") {
        Some(s) => LabelSelector::parse(s)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        None => LabelSelector::default(),
    };
    let fields = match ctx.query.get("fieldSelector") {
        Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => FieldSelector::default(),
    };
    Ok((labels, fields))
}

fn respond_object(
    ctx: &Ctx<'_>,
    rt: &ResourceType,
    version: &str,
    obj: &Value,
    status: u16,
) -> Result<Reply, ApiError> {
    let obj = present(obj, rt, version);
    let body = match &ctx.representation {
        Representation::Json => obj,
        Representation::PartialMetadata(v) => partial_metadata(&obj, v),
        Representation::Table(v) => table(
            version_info(rt, version)?,
            &[&obj],
            IncludeObject::parse(ctx.query.get("includeObject")),
            v,
            json!({"resourceVersion": meta_str(&obj, "resourceVersion")}),
        ),
    };
    Ok(Reply::Json {
        status,
        body,
        warnings: Vec::new(),
    })
}

fn get(ctx: &Ctx<'_>, rt: &ResourceType, version: &str) -> Result<Reply, ApiError> {
    let obj = ctx
        .shared
        .store()
        .get(&rt.key, &namespace_of(ctx), &name_of(ctx))
        .ok_or_else(|| ApiError::not_found(&rt.key.group, &rt.key.plural, &name_of(ctx)))?;
    respond_object(ctx, rt, version, &obj, 200)
}

/// A continue token: the list's resourceVersion and the last (namespace, name) returned,
/// hex-encoded.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    hex_encode(format!("{rv}/{ns}/{name}").as_bytes())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or(""), 16))
        .collect();
    let text = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let (rv, rest) = text.split_once('/').ok_or_else(bad)?;
    let rv = rv.parse::<u64>().map_err(|_| bad())?;
    let (ns, name) = rest.split_once('/').ok_or_else(bad)?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

fn list(ctx: &Ctx<'_>, rt: &ResourceType, version: &str) -> Result<Reply, ApiError> {
    let (labels, fields) = selectors(ctx)?;
    let limit = ctx
        .query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let after = ctx
        .query
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(|c| decode_continue(c))
        .transpose()?;
    let namespace = ctx.req.namespace.as_deref();
    let store = ctx.shared.store();
    // Every page of a list carries the first page's resourceVersion, as in kube-apiserver, so
    // a watch from it replays whatever changed while the pages were read. (kube-apiserver also
    // serves the later pages as of that version; here they show the objects as they are now,
    // and the replayed events bring a cache to the same state.)
    let rv = match &after {
        Some((rv, _)) if *rv < store.compacted_rv() => {
            return Err(ApiError::new(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter.",
            ));
        }
        Some((rv, _)) => *rv,
        None => store.current_rv(),
    };
    let after = after.map(|(_, key)| key);
    let pinned = fields.pinned_name().map(str::to_string);
    let mut items: Vec<Value> = Vec::new();
    let mut next: Option<String> = None;
    let iter = match &after {
        Some(after) => store.list_after(&rt.key, namespace, after),
        None => store.list(&rt.key, namespace),
    };
    let mut remaining = 0usize;
    for ((ns, name), obj) in iter {
        if pinned.as_deref().is_some_and(|p| p != name) {
            continue;
        }
        if !(labels.matches(obj) && fields.matches(obj)) {
            continue;
        }
        if next.is_some() {
            remaining += 1;
            continue;
        }
        items.push(present(obj, rt, version));
        if limit.is_some_and(|l| items.len() >= l) {
            next = Some(encode_continue(rv, ns, name));
        }
    }
    drop(store);
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = &next
        && remaining > 0
    {
        meta["continue"] = json!(token);
        meta["remainingItemCount"] = json!(remaining);
    }
    let body = match &ctx.representation {
        Representation::Json => json!({
            "apiVersion": rt.api_version(version),
            "kind": rt.list_kind,
            "metadata": meta,
            "items": items,
        }),
        Representation::PartialMetadata(v) => json!({
            "apiVersion": format!("meta.k8s.io/{v}"),
            "kind": "PartialObjectMetadataList",
            "metadata": meta,
            "items": items.iter().map(|o| partial_metadata(o, v)).collect::<Vec<_>>(),
        }),
        Representation::Table(v) => {
            let refs: Vec<&Value> = items.iter().collect();
            table(
                version_info(rt, version)?,
                &refs,
                IncludeObject::parse(ctx.query.get("includeObject")),
                v,
                meta,
            )
        }
    };
    Ok(Reply::ok(body))
}

fn watch(ctx: &Ctx<'_>, rt: Arc<ResourceType>, version: String) -> Result<Reply, ApiError> {
    let (labels, mut fields) = selectors(ctx)?;
    if let Some(name) = &ctx.req.name {
        let pinned = format!("metadata.name={name}");
        fields = match ctx.query.get("fieldSelector") {
            Some(f) if !f.is_empty() => FieldSelector::parse(&format!("{f},{pinned}")),
            _ => FieldSelector::parse(&pinned),
        }
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let rv = ctx
        .query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && v.as_str() != "0")
        .map(|v| {
            parse_rv(v)
                .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {v}")))
        })
        .transpose()?;
    let timeout = ctx
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(ctx.shared.config.default_watch_timeout);
    let send_initial_events = query_flag(ctx.query, "sendInitialEvents");
    let bookmarks = query_flag(ctx.query, "allowWatchBookmarks");
    if send_initial_events && !bookmarks {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            &[Cause::forbidden(
                "allowWatchBookmarks",
                "allowWatchBookmarks must be set to true when sendInitialEvents is set",
            )],
        ));
    }
    let request = WatchRequest {
        rt,
        version,
        namespace: ctx.req.namespace.clone(),
        labels,
        fields,
        resource_version: rv,
        send_initial_events,
        bookmarks,
        timeout,
        representation: ctx.representation.clone(),
        include: IncludeObject::parse(ctx.query.get("includeObject")),
    };
    Ok(Reply::Stream(watch::start(ctx.shared.clone(), request)))
}

/// The field manager of a write: `fieldManager`, else the user agent's program name.
fn manager(ctx: &Ctx<'_>) -> String {
    match ctx.query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ => {
            let ua = ctx.user_agent.split('/').next().unwrap_or("").trim();
            if ua.is_empty() {
                "unknown".to_string()
            } else {
                ua.to_string()
            }
        }
    }
}

fn dry_run(ctx: &Ctx<'_>) -> bool {
    ctx.query.get("dryRun").is_some_and(|d| d == "All")
}

/// Prunes unknown fields and applies defaults; `fieldValidation` decides what unknown fields do.
fn prune_and_default(
    ctx: &Ctx<'_>,
    rt: &ResourceType,
    version: &str,
    obj: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    let Some(schema) = version_info(rt, version)?.schema.clone() else {
        return Ok(());
    };
    let unknown = schema.default_and_prune(obj, true);
    if unknown.is_empty() {
        return Ok(());
    }
    match ctx.query.get("fieldValidation").map(String::as_str) {
        Some("Strict") => {
            let list: Vec<String> = unknown
                .iter()
                .map(|u| format!("unknown field {u:?}"))
                .collect();
            let detail = if list.len() == 1 {
                list.concat()
            } else {
                format!("[{}]", list.join(", "))
            };
            Err(ApiError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {detail}",
                kind = rt.kind
            )))
        }
        Some("Ignore") => Ok(()),
        _ => {
            warnings.extend(unknown.iter().map(|u| format!("unknown field {u:?}")));
            Ok(())
        }
    }
}

/// Built-in write-time conversions: Secret `stringData` into `data`.
fn prepare_builtin(rt: &ResourceType, obj: &mut Value) {
    if rt.builtin == Builtin::Secret
        && let Some(map) = obj.as_object_mut()
    {
        if let Some(Value::Object(string_data)) = map.remove("stringData") {
            let data = map.entry("data").or_insert_with(|| json!({}));
            if !data.is_object() {
                *data = json!({});
            }
            if let Some(data) = data.as_object_mut() {
                for (k, v) in string_data {
                    let text = v.as_str().unwrap_or_default().to_string();
                    data.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(text)),
                    );
                }
            }
        }
        let ty = map.entry("type").or_insert_with(|| json!("Opaque"));
        if ty.as_str().is_none_or(str::is_empty) {
            *ty = json!("Opaque");
        }
    }
}

fn check_invalid(
    rt: &ResourceType,
    version: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let causes = super::validation::validate(rt, version_info(rt, version)?, obj, old);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &rt.key.group,
            &rt.kind,
            meta_str(obj, "name"),
            &causes,
        ))
    }
}

fn check_envelope(rt: &ResourceType, version: &str, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is not a JSON object",
        ));
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized: kind {kind:?} does not match the expected kind {:?}",
            rt.kind
        )));
    }
    if let Some(api_version) = obj.get("apiVersion").and_then(Value::as_str)
        && !api_version.is_empty()
        && api_version != rt.api_version(version)
        && !rt
            .versions
            .iter()
            .any(|v| rt.api_version(&v.name) == api_version)
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version(version)
        )));
    }
    Ok(())
}

/// Side effects of a committed CRD or Namespace write.
fn after_write(store: &mut Store, rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    if rt.builtin == Builtin::Crd {
        store.registry.register_crd(obj).map_err(|e| {
            ApiError::invalid(
                &rt.key.group,
                &rt.kind,
                meta_str(obj, "name"),
                &[Cause::invalid("spec", "\"object\"", e.to_string())],
            )
        })?;
    }
    Ok(())
}

fn after_delete(store: &mut Store, rt: &ResourceType, obj: &Value) {
    match rt.builtin {
        Builtin::Crd => {
            if let Some(key) = super::registry::crd_key(obj) {
                store.remove_type(&key);
                store.registry.unregister(&key);
            }
        }
        Builtin::Namespace => store.remove_namespace_contents(meta_str(obj, "name")),
        _ => {}
    }
}

fn crd_status(obj: &mut Value) {
    let now = now_rfc3339();
    let names = obj
        .get("spec")
        .and_then(|s| s.get("names"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let stored: Vec<Value> = obj
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut accepted = names;
    if accepted.get("listKind").is_none()
        && let Some(kind) = accepted
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_string)
    {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    if accepted.get("singular").is_none()
        && let Some(kind) = accepted
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
    {
        accepted["singular"] = json!(kind);
    }
    obj["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored,
    });
}

fn scope_of(rt: &ResourceType, subresource: Option<&str>) -> Scope {
    match subresource {
        Some("status") => Scope::Status,
        _ if rt.status_is_subresource() => Scope::Main,
        _ => Scope::All,
    }
}

fn create(ctx: &Ctx<'_>, rt: &ResourceType, version: &str) -> Result<Reply, ApiError> {
    let mut obj = body_object(ctx)?;
    check_envelope(rt, version, &obj)?;
    let namespace = namespace_of(ctx);
    let meta = metadata_mut(&mut obj);
    let body_ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if rt.namespaced && !body_ns.is_empty() && body_ns != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
        && let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
    {
        let name = format!("{prefix}{}", name_suffix());
        meta.insert("name".into(), json!(name));
    }
    let mut warnings = Vec::new();
    let writer_name = manager(ctx);
    let now = now_rfc3339();
    let result = create_object(
        ctx,
        rt,
        version,
        obj,
        &mut warnings,
        Ownership::Update(&writer_name),
        &now,
    )?;
    Ok(Reply::Json {
        status: 201,
        body: present(&result, rt, version),
        warnings,
    })
}

/// Creates an object (shared by POST and apply-creates).
fn create_object(
    ctx: &Ctx<'_>,
    rt: &ResourceType,
    version: &str,
    mut obj: Value,
    warnings: &mut Vec<String>,
    creation: Ownership<'_>,
    now: &str,
) -> Result<Value, ApiError> {
    let namespace = namespace_of(ctx);
    if let Some(map) = obj.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            json!(rt.api_version(&rt.storage_version().name)),
        );
        map.insert("kind".into(), json!(rt.kind));
    }
    let has_generation = rt.has_generation;
    let status_subresource = rt.status_is_subresource();
    {
        let meta = metadata_mut(&mut obj);
        if rt.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("managedFields");
        meta.remove("selfLink");
        if has_generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    if status_subresource
        && rt.builtin == Builtin::None
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    match rt.builtin {
        Builtin::Namespace => {
            obj["status"] = json!({"phase": "Active"});
            let name = meta_str(&obj, "name").to_string();
            let meta = metadata_mut(&mut obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        Builtin::Crd => crd_status(&mut obj),
        _ => {}
    }
    prepare_builtin(rt, &mut obj);
    prune_and_default(ctx, rt, version, &mut obj, warnings)?;
    check_invalid(rt, version, &obj, None)?;
    let schema = version_info(rt, version)?.schema.clone();
    let api_version = rt.api_version(version);
    let writer = Writer {
        manager: "",
        api_version: &api_version,
        subresource: "",
        time: now,
    };
    let entries = creation.into_entries(writer, None, &obj, schema.as_deref(), scope_of(rt, None));
    managed_fields::write_entries(&mut obj, &entries);
    let name = meta_str(&obj, "name").to_string();
    let mut store = ctx.shared.store();
    // kube-apiserver's NamespaceLifecycle admission, after validation.
    if rt.namespaced
        && ctx.shared.config.namespaces_must_exist
        && store
            .get(&TypeKey::new("", "namespaces"), "", &namespace)
            .is_none()
    {
        return Err(ApiError::not_found("", "namespaces", &namespace));
    }
    if store
        .get(&rt.key, &namespace_for(rt, &namespace), &name)
        .is_some()
    {
        return Err(ApiError::already_exists(
            &rt.key.group,
            &rt.key.plural,
            &name,
        ));
    }
    if rt.builtin == Builtin::Crd
        && let Some(key) = super::registry::crd_key(&obj)
        && store.registry.get(&key).is_some()
    {
        return Err(ApiError::invalid(
            &rt.key.group,
            &rt.kind,
            &name,
            &[Cause::invalid(
                "spec.names.plural",
                &format!("{:?}", key.plural),
                "already served",
            )],
        ));
    }
    if dry_run(ctx) {
        return Ok(obj);
    }
    if rt.builtin == Builtin::Crd {
        // Compile before storing so a bad schema is a 422, not a stored broken CRD.
        let mut probe = super::registry::Registry::with_builtins();
        probe.register_crd(&obj).map_err(|e| {
            ApiError::invalid(
                &rt.key.group,
                &rt.kind,
                &name,
                &[Cause::invalid("spec.versions", "\"object\"", e.to_string())],
            )
        })?;
    }
    let stored = store.put(&rt.key, obj);
    after_write(&mut store, rt, &stored)?;
    Ok((*stored).clone())
}

fn namespace_for(rt: &ResourceType, namespace: &str) -> String {
    if rt.namespaced {
        namespace.to_string()
    } else {
        String::new()
    }
}

/// How the managed fields of a write are computed.
enum Ownership<'a> {
    /// An update (or create) by this manager: it owns the fields it changed.
    Update(&'a str),
    /// An apply: its entries are already computed.
    Applied(Vec<managed_fields::Entry>),
}

impl Ownership<'_> {
    /// The managed-field entries after `old` (none on a create) became `new`; `writer` says
    /// how and when (its manager is this ownership's).
    fn into_entries(
        self,
        writer: Writer<'_>,
        old: Option<&Value>,
        new: &Value,
        schema: Option<&Schema>,
        scope: Scope,
    ) -> Vec<managed_fields::Entry> {
        match self {
            Ownership::Update(manager) => {
                let mut entries = old.map(managed_fields::read_entries).unwrap_or_default();
                let writer = Writer { manager, ..writer };
                managed_fields::record_update(&mut entries, &writer, old, new, schema, scope);
                entries
            }
            Ownership::Applied(entries) => entries,
        }
    }
}

/// The shared tail of update, patch and apply: scope, immutable metadata, defaults,
/// validation, generation, finalizers, no-op detection, managed fields, commit.
fn commit_update(
    ctx: &Ctx<'_>,
    rt: &ResourceType,
    version: &str,
    old: &Value,
    mut candidate: Value,
    ownership: Ownership<'_>,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let scope = scope_of(rt, ctx.req.subresource.as_deref());
    let name = name_of(ctx);
    check_envelope(rt, version, &candidate)?;
    let body_name = meta_str(&candidate, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    candidate = match scope {
        Scope::Status => {
            let mut next = old.clone();
            match candidate.get("status") {
                Some(status) => next["status"] = status.clone(),
                None => {
                    if let Some(map) = next.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            next
        }
        Scope::Main => {
            match old.get("status") {
                Some(status) => candidate["status"] = status.clone(),
                None => {
                    if let Some(map) = candidate.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            candidate
        }
        Scope::All => candidate,
    };
    if let Some(map) = candidate.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            json!(rt.api_version(&rt.storage_version().name)),
        );
        map.insert("kind".into(), json!(rt.kind));
    }
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    {
        let meta = metadata_mut(&mut candidate);
        for key in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            match old_meta.get(key) {
                Some(v) => meta.insert(key.to_string(), v.clone()),
                None => meta.remove(key),
            };
        }
    }
    if rt.builtin == Builtin::Crd {
        crd_status(&mut candidate);
    }
    prepare_builtin(rt, &mut candidate);
    prune_and_default(ctx, rt, version, &mut candidate, warnings)?;
    check_invalid(rt, version, &candidate, Some(old))?;
    if old_meta.get("deletionTimestamp").is_some() {
        let old_finalizers = finalizers(old);
        let new_finalizers = finalizers(&candidate);
        if new_finalizers.iter().any(|f| !old_finalizers.contains(f)) {
            return Err(ApiError::invalid(
                &rt.key.group,
                &rt.kind,
                &name,
                &[Cause::forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                )],
            ));
        }
    }
    let status_counts = scope == Scope::All;
    if rt.has_generation && spec_part(old, status_counts) != spec_part(&candidate, status_counts) {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        metadata_mut(&mut candidate).insert("generation".into(), json!(generation));
    }
    if without_volatile(&candidate) == without_volatile(old) {
        return Ok(old.clone());
    }
    let schema = version_info(rt, version)?.schema.clone();
    let api_version = rt.api_version(version);
    let now = now_rfc3339();
    let writer = Writer {
        manager: "",
        api_version: &api_version,
        subresource: ctx.req.subresource.as_deref().unwrap_or(""),
        time: &now,
    };
    let entries = ownership.into_entries(writer, Some(old), &candidate, schema.as_deref(), scope);
    managed_fields::write_entries(&mut candidate, &entries);
    if dry_run(ctx) {
        return Ok(candidate);
    }
    let namespace = namespace_for(rt, &namespace_of(ctx));
    let mut store = ctx.shared.store();
    let current = store
        .get(&rt.key, &namespace, &name)
        .ok_or_else(|| ApiError::not_found(&rt.key.group, &rt.key.plural, &name))?;
    if meta_str(&current, "resourceVersion") != meta_str(old, "resourceVersion") {
        // Someone wrote in between: the caller's view is stale.
        return Err(ApiError::stale(&rt.key.group, &rt.key.plural, &name));
    }
    if candidate
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some()
        && finalizers(&candidate).is_empty()
    {
        metadata_mut(&mut candidate).remove("resourceVersion");
        store.put(&rt.key, candidate);
        let last = store
            .remove(&rt.key, &namespace, &name)
            .ok_or_else(|| ApiError::internal("object vanished while being finalized"))?;
        after_delete(&mut store, rt, &last);
        return Ok((*last).clone());
    }
    let stored = store.put(&rt.key, candidate);
    after_write(&mut store, rt, &stored)?;
    Ok((*stored).clone())
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything outside metadata (and status, when it is a subresource): what `generation`
/// tracks.
fn spec_part(obj: &Value, with_status: bool) -> Value {
    let mut map: Map<String, Value> = obj.as_object().cloned().unwrap_or_default();
    for key in ["metadata", "apiVersion", "kind"] {
        map.remove(key);
    }
    if !with_status {
        map.remove("status");
    }
    Value::Object(map)
}

/// The object without what changes on every write (resourceVersion, managedFields).
fn without_volatile(obj: &Value) -> Value {
    let mut copy = obj.clone();
    let meta = metadata_mut(&mut copy);
    meta.remove("resourceVersion");
    meta.remove("managedFields");
    copy
}

fn current(ctx: &Ctx<'_>, rt: &ResourceType) -> Option<Arc<Value>> {
    ctx.shared.store().get(
        &rt.key,
        &namespace_for(rt, &namespace_of(ctx)),
        &name_of(ctx),
    )
}

fn update(ctx: &Ctx<'_>, rt: &ResourceType, version: &str) -> Result<Reply, ApiError> {
    let candidate = body_object(ctx)?;
    let name = name_of(ctx);
    let old = current(ctx, rt)
        .ok_or_else(|| ApiError::not_found(&rt.key.group, &rt.key.plural, &name))?;
    let body_rv = meta_str(&candidate, "resourceVersion");
    if body_rv.is_empty() {
        if rt.builtin == Builtin::None {
            return Err(ApiError::invalid(
                &rt.key.group,
                &rt.kind,
                &name,
                &[Cause::invalid(
                    "metadata.resourceVersion",
                    "0x0",
                    "must be specified for an update",
                )],
            ));
        }
    } else if body_rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(&rt.key.group, &rt.key.plural, &name));
    }
    let mut warnings = Vec::new();
    let manager = manager(ctx);
    let result = commit_update(
        ctx,
        rt,
        version,
        &old,
        candidate,
        Ownership::Update(&manager),
        &mut warnings,
    )?;
    Ok(Reply::Json {
        status: 200,
        body: present(&result, rt, version),
        warnings,
    })
}

fn patch(ctx: &Ctx<'_>, rt: &ResourceType, version: &str) -> Result<Reply, ApiError> {
    let patch_type = PatchType::from_content_type(ctx.content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(ctx.content_type))?;
    let name = name_of(ctx);
    let body = if patch_type == PatchType::Apply {
        body_json_or_yaml(ctx.body)?
    } else {
        body_json(ctx.body)?
    };
    let old = current(ctx, rt);
    let mut warnings = Vec::new();
    if patch_type == PatchType::Apply {
        return apply(ctx, rt, version, old, body, &mut warnings).map(|(status, obj)| {
            Reply::Json {
                status,
                body: present(&obj, rt, version),
                warnings,
            }
        });
    }
    let old = old.ok_or_else(|| ApiError::not_found(&rt.key.group, &rt.key.plural, &name))?;
    let mut patched = (*old).clone();
    match patch_type {
        PatchType::Merge => merge_patch(&mut patched, &body),
        PatchType::Strategic if rt.builtin == Builtin::None => merge_patch(&mut patched, &body),
        PatchType::Strategic => strategic_merge_patch(&mut patched, &body)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        PatchType::Json => json_patch(&mut patched, &body)
            .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
        PatchType::Apply => {}
    }
    // A resourceVersion the patch sets is a precondition.
    let patched_rv = meta_str(&patched, "resourceVersion");
    if !patched_rv.is_empty() && patched_rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(&rt.key.group, &rt.key.plural, &name));
    }
    let manager = manager(ctx);
    let result = commit_update(
        ctx,
        rt,
        version,
        &old,
        patched,
        Ownership::Update(&manager),
        &mut warnings,
    )?;
    Ok(Reply::Json {
        status: 200,
        body: present(&result, rt, version),
        warnings,
    })
}

fn apply(
    ctx: &Ctx<'_>,
    rt: &ResourceType,
    version: &str,
    old: Option<Arc<Value>>,
    config: Value,
    warnings: &mut Vec<String>,
) -> Result<(u16, Value), ApiError> {
    let name = name_of(ctx);
    let manager = match ctx.query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "PATCH request with apply content-type requires a fieldManager: fieldManager is required for apply requests",
            ));
        }
    };
    check_envelope(rt, version, &config)?;
    if config.get("apiVersion").is_none() || config.get("kind").is_none() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply request",
        ));
    }
    let config_name = meta_str(&config, "name");
    if !config_name.is_empty() && config_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({config_name}) does not match the name on the URL ({name})"
        )));
    }
    let force = query_flag(ctx.query, "force");
    let scope = scope_of(rt, ctx.req.subresource.as_deref());
    let schema = version_info(rt, version)?.schema.clone();
    let api_version = rt.api_version(version);
    let now = now_rfc3339();
    let writer = Writer {
        manager: &manager,
        api_version: &api_version,
        subresource: ctx.req.subresource.as_deref().unwrap_or(""),
        time: &now,
    };
    let conflict_error = |conflicts: Vec<managed_fields::Conflict>| {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|c| {
                format!(
                    "conflict with {:?} using {}: {}",
                    c.manager, c.api_version, c.field
                )
            })
            .collect();
        let mut err = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                lines.join("\n")
            ),
        );
        err.details = Some(json!({
            "name": name,
            "group": rt.key.group,
            "kind": rt.key.plural,
            "causes": conflicts.iter().map(|c| json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {:?} using {}", c.manager, c.api_version),
                "field": c.field,
            })).collect::<Vec<_>>(),
        }));
        err
    };
    match old {
        None => {
            if scope == Scope::Status {
                return Err(ApiError::not_found(&rt.key.group, &rt.key.plural, &name));
            }
            let mut entries = Vec::new();
            let base = json!({});
            let mut created = managed_fields::apply(
                &mut entries,
                &writer,
                &base,
                &config,
                schema.as_deref(),
                scope,
                force,
            )
            .map_err(conflict_error)?;
            let meta = metadata_mut(&mut created);
            meta.insert("name".into(), json!(name));
            if let Some(gn) = config.get("metadata").and_then(|m| m.get("generateName")) {
                meta.insert("generateName".into(), gn.clone());
            }
            let obj = create_object(
                ctx,
                rt,
                version,
                created,
                warnings,
                Ownership::Applied(entries),
                &now,
            )?;
            Ok((201, obj))
        }
        Some(old) => {
            let config_rv = meta_str(&config, "resourceVersion");
            if !config_rv.is_empty() && config_rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::stale(&rt.key.group, &rt.key.plural, &name));
            }
            let mut entries = managed_fields::read_entries(&old);
            let result = managed_fields::apply(
                &mut entries,
                &writer,
                &old,
                &config,
                schema.as_deref(),
                scope,
                force,
            )
            .map_err(conflict_error)?;
            let obj = commit_update(
                ctx,
                rt,
                version,
                &old,
                result,
                Ownership::Applied(entries),
                warnings,
            )?;
            Ok((200, obj))
        }
    }
}

fn delete(ctx: &Ctx<'_>, rt: &ResourceType, version: &str) -> Result<Reply, ApiError> {
    let name = name_of(ctx);
    let options: Value =
        if ctx.body.is_empty() || ctx.content_type.starts_with(super::protobuf::CONTENT_TYPE) {
            json!({})
        } else {
            body_json(ctx.body)?
        };
    let namespace = namespace_for(rt, &namespace_of(ctx));
    let mut store = ctx.shared.store();
    let old = store
        .get(&rt.key, &namespace, &name)
        .ok_or_else(|| ApiError::not_found(&rt.key.group, &rt.key.plural, &name))?;
    if let Some(pre) = options.get("preconditions") {
        if let Some(uid) = pre.get("uid").and_then(Value::as_str)
            && uid != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &rt.key.group,
                &rt.key.plural,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid")
                ),
            ));
        }
        if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str)
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.key.group,
                &rt.key.plural,
                &name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion")
                ),
            ));
        }
    }
    let dry = dry_run(ctx)
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    let result = delete_one(&mut store, rt, &old, dry);
    drop(store);
    respond_object(ctx, rt, version, &result, 200)
}

/// Deletes an object, or marks it for deletion when finalizers remain.
fn delete_one(store: &mut Store, rt: &ResourceType, old: &Arc<Value>, dry: bool) -> Value {
    let namespace = meta_str(old, "namespace").to_string();
    let name = meta_str(old, "name").to_string();
    if dry {
        return (**old).clone();
    }
    if !finalizers(old).is_empty() {
        if old
            .get("metadata")
            .and_then(|m| m.get("deletionTimestamp"))
            .is_some()
        {
            return (**old).clone();
        }
        let mut marked = (**old).clone();
        let meta = metadata_mut(&mut marked);
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        return (*store.put(&rt.key, marked)).clone();
    }
    match store.remove(&rt.key, &namespace, &name) {
        Some(last) => {
            after_delete(store, rt, &last);
            (*last).clone()
        }
        None => (**old).clone(),
    }
}

fn delete_collection(ctx: &Ctx<'_>, rt: &ResourceType, version: &str) -> Result<Reply, ApiError> {
    let (labels, fields) = selectors(ctx)?;
    let mut store = ctx.shared.store();
    let victims: Vec<Arc<Value>> = store
        .list(&rt.key, ctx.req.namespace.as_deref())
        .filter(|(_, obj)| labels.matches(obj) && fields.matches(obj))
        .map(|(_, obj)| obj.clone())
        .collect();
    let dry = dry_run(ctx);
    let items: Vec<Value> = victims
        .iter()
        .map(|old| present(&delete_one(&mut store, rt, old, dry), rt, version))
        .collect();
    let rv = store.current_rv();
    Ok(Reply::ok(json!({
        "apiVersion": rt.api_version(version),
        "kind": rt.list_kind,
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "ns", "name-1");
        assert_eq!(
            decode_continue(&token).ok(),
            Some((42, ("ns".to_string(), "name-1".to_string())))
        );
        assert!(decode_continue("zz").is_err());
        assert!(decode_continue(&hex_encode(b"ns/name-1")).is_err());
    }

    #[test]
    fn generation_tracks_only_the_spec_part() {
        let a = json!({"metadata": {"labels": {"x": "1"}}, "spec": {"a": 1}, "status": {"s": 1}});
        let b = json!({"metadata": {"labels": {"x": "2"}}, "spec": {"a": 1}, "status": {"s": 2}});
        let c = json!({"metadata": {}, "spec": {"a": 2}});
        assert_eq!(spec_part(&a, false), spec_part(&b, false));
        assert_ne!(spec_part(&a, true), spec_part(&b, true));
        assert_ne!(spec_part(&a, false), spec_part(&c, false));
    }
}
