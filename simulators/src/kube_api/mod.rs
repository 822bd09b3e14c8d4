//! A Kubernetes-API-compatible server, in memory, plain HTTP on loopback.
//!
//! Faithful enough that `kubectl` (1.32) and kube-rs 5 clients cannot tell it from a real
//! kube-apiserver for what this project does: discovery (legacy documents; aggregated discovery
//! requests get the legacy answer so clients fall back), OpenAPI v3 (so `kubectl apply` keeps
//! validation on: it sees server-side field validation and sends `fieldValidation=Strict`),
//! the built-in kinds the project needs (Namespace, Secret, ConfigMap, core/v1 and
//! events.k8s.io/v1 Event, Lease, CustomResourceDefinition), custom resources served as soon as
//! their CRD is created, validated against the CRD's `openAPIV3Schema` and its CEL rules, and
//! list/watch/get/create/update/patch/apply/delete with Kubernetes semantics.
//!
//! Deliberate simplifications (documented so nobody relies on them):
//! - No authentication or authorization: every request is allowed.
//! - Namespaces need not exist for namespaced objects to be created in them unless
//!   [`KubeApiConfig::namespaces_must_exist`] is set (the sandbox sets it; kube-apiserver
//!   always refuses with 404); `default`, `kube-system`, `kube-public` and `kube-node-lease`
//!   exist from the start, deleting a Namespace deletes the objects in it at once.
//! - One stored version per resource: objects are served with the requested version's
//!   `apiVersion`, without conversion.
//! - Server-side apply tracks `managedFields` per manager with a simple field-set model:
//!   maps merge, lists are atomic except `x-kubernetes-list-type: map` lists in CRD schemas.
//! - Strategic merge patch on built-ins is a merge patch that understands the `$patch`,
//!   `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList` directives; on custom
//!   resources it is a merge patch, as in kube-apiserver.
//! - Server-side apply after client-side apply keeps the `kubectl-client-side-apply` manager
//!   (kube-apiserver hands those fields to `kubectl-last-applied`, so no conflict there).
//! - An unknown `format` in a CRD schema draws no warning; a CRD's OpenAPI is served as soon as
//!   it is created (kube-apiserver: a moment after `Established`).
//! - Only the built-in kinds above are served (no Deployment, Service, ...).
//!
//! Like kube-apiserver, a core/v1 Event and an events.k8s.io/v1 Event are one object seen
//! through two groups. `tests/real_vs_simulator.rs` (in the main crate) compares this server's
//! answers with kube-apiserver's; testenv/README.md lists what it found.
//!
//! Test hooks: [`KubeApiHandle::request_log`], [`KubeApiHandle::counters`],
//! [`KubeApiHandle::faults`] and [`KubeApiHandle::get_json`], also over HTTP under `/_sim/`
//! (see [`KubeApiHandle`]).

mod cel;
mod config;
mod discovery;
mod errors;
mod event_twin;
mod faults;
mod handlers;
mod http;
mod jsonpath;
mod managed_fields;
mod patch;
mod protobuf;
mod registry;
mod request;
mod request_log;
mod schema;
mod selector;
mod server;
mod shared;
mod store;
mod table;
mod util;
mod validation;
mod watch;

pub use config::KubeApiConfig;
pub use faults::{FaultRule, FaultSettings, Faults};
pub use request_log::RequestRecord;
pub use server::{KubeApiHandle, KubeApiServer, StartError};
