//! A Kubernetes-API-compatible server, in memory, plain HTTP on loopback.
