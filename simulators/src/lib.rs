//! Loopback simulators: a Kubernetes-API-compatible server and a ROMA Connect FDI server, for
//! the tests, the benchmarks and `taskreset-controller sandbox`.

pub mod kube_api;
pub mod roma;
