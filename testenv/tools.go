//go:build tools

// Package testenv pins the programs the test environment builds from modules:
// go build -o BIN k8s.io/kubernetes/cmd/kube-apiserver (see README.md).
package testenv

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
