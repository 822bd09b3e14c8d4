package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// identity is one user of the static token file, with a kubeconfig of its own.
type identity struct {
	Name   string // kubeconfig name, a key of "kubeconfigs" in the JSON line
	User   string
	Groups []string
	token  string
}

// serviceAccount is the identity a ServiceAccount token would authenticate as. Without
// kube-controller-manager there are no token controllers: a static token stands in for it.
func serviceAccount(name, namespace, account string) identity {
	return identity{
		Name: name,
		User: fmt.Sprintf("system:serviceaccount:%s:%s", namespace, account),
		Groups: []string{
			"system:serviceaccounts",
			"system:serviceaccounts:" + namespace,
			"system:authenticated",
		},
	}
}

// writeTokens gives each identity a random token and writes the --token-auth-file (CSV:
// token,user,uid,"group1,group2").
func writeTokens(path string, ids []identity) error {
	var b strings.Builder
	for i := range ids {
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return err
		}
		ids[i].token = hex.EncodeToString(raw)
		fmt.Fprintf(&b, "%s,%s,%s,%q\n", ids[i].token, ids[i].User, ids[i].User, strings.Join(ids[i].Groups, ","))
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// writeKubeconfigs writes dir/NAME.kubeconfig for each identity and returns name -> path.
func writeKubeconfigs(dir, url string, caPEM []byte, ids []identity) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	paths := make(map[string]string, len(ids))
	ca := base64.StdEncoding.EncodeToString(caPEM)
	for _, id := range ids {
		path := filepath.Join(dir, id.Name+".kubeconfig")
		// JSON is YAML: quoting every value keeps names with colons safe.
		config := fmt.Sprintf(`{"apiVersion": "v1", "kind": "Config",
  "clusters": [{"name": "testenv", "cluster": {"server": %q, "certificate-authority-data": %q}}],
  "users": [{"name": %q, "user": {"token": %q}}],
  "contexts": [{"name": %q, "context": {"cluster": "testenv", "user": %q}}],
  "current-context": %q}
`, url, ca, id.Name, id.token, id.Name, id.Name, id.Name)
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			return nil, err
		}
		paths[id.Name] = path
	}
	return paths, nil
}
