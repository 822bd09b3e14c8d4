package main

import (
	"os"
	"path/filepath"
)

// auditPolicy records every request at Metadata level (who, verb, resource, name, status;
// never a body), once it has completed: what tests read to see the requests an identity made.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: Metadata
`

// auditArgs writes the audit policy into pki/ and returns the kube-apiserver flags that log
// audit events as JSON lines to logs/audit.log, written before each response is sent.
func auditArgs(dir string) ([]string, string, error) {
	policy := filepath.Join(dir, "pki", "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, "", err
	}
	log := filepath.Join(dir, "logs", "audit.log")
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + log,
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
	}, log, nil
}
