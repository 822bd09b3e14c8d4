package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// env is one etcd and one kube-apiserver on loopback, with the files they share.
type env struct {
	dir       string
	pki       *pki
	ids       []identity
	timeout   time.Duration
	url       string
	etcdURL   string
	etcd      *server
	apiserver *server
	configs   map[string]string
	auditLog  string       // kube-apiserver's audit log (JSON lines, Metadata level)
	ready     func() error // GET /readyz as admin until it answers 200
}

func newEnv(dir, etcdBin, apiserverBin string, ids []identity, timeout time.Duration) (_ *env, err error) {
	if dir == "" {
		if dir, err = os.MkdirTemp("", "taskreset-testenv-"); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				_ = os.RemoveAll(dir)
			}
		}()
	}
	for _, sub := range []string{"pki", "etcd", "logs", "kubeconfigs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	e := &env{
		dir:     dir,
		ids:     ids,
		timeout: timeout,
		url:     "https://127.0.0.1:" + strconv.Itoa(ports[0]),
		etcdURL: "http://127.0.0.1:" + strconv.Itoa(ports[1]),
	}
	if e.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "pki", "tokens.csv")
	if err := writeTokens(tokens, e.ids); err != nil {
		return nil, err
	}
	if e.configs, err = writeKubeconfigs(filepath.Join(dir, "kubeconfigs"), e.url, e.pki.caPEM, e.ids); err != nil {
		return nil, err
	}

	audit, auditLog, err := auditArgs(dir)
	if err != nil {
		return nil, err
	}
	e.auditLog = auditLog

	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[2])
	e.etcd = &server{
		name: "etcd",
		bin:  etcdBin,
		log:  filepath.Join(dir, "logs", "etcd.log"),
		args: []string{
			"--name=default",
			"--data-dir=" + filepath.Join(dir, "etcd"),
			"--listen-client-urls=" + e.etcdURL,
			"--advertise-client-urls=" + e.etcdURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=default=" + peerURL,
			"--unsafe-no-fsync", // test data: speed over durability
			"--log-level=warn",
		},
		ready: func() error { return expect200(http.DefaultClient, e.etcdURL+"/health", "") },
	}

	e.apiserver = &server{
		name: "kube-apiserver",
		bin:  apiserverBin,
		log:  filepath.Join(dir, "logs", "kube-apiserver.log"),
		args: []string{
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + filepath.Join(dir, "pki"),
			"--tls-cert-file=" + e.pki.serverCert,
			"--tls-private-key-file=" + e.pki.serverKey,
			"--client-ca-file=" + e.pki.caCert,
			"--etcd-servers=" + e.etcdURL,
			"--token-auth-file=" + tokens,
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + e.pki.saPub,
			"--service-account-signing-key-file=" + e.pki.saKey,
			"--service-cluster-ip-range=10.0.0.0/24",
			// No kube-controller-manager, no pods: ServiceAccount admission would only wait
			// for token controllers that do not run.
			"--disable-admission-plugins=ServiceAccount",
			// The "kubernetes" Service's endpoints would be a loopback address.
			"--endpoint-reconciler-type=none",
			"--profiling=false",
		},
	}
	e.apiserver.args = append(e.apiserver.args, audit...)
	admin := e.ids[0].token
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.pki.caPEM)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	e.apiserver.ready = func() error { return expect200(client, e.url+"/readyz", admin) }
	return e, nil
}

// start starts etcd, then kube-apiserver, each waited for.
func (e *env) start() error {
	if err := e.etcd.start(e.timeout); err != nil {
		return err
	}
	return e.apiserver.start(e.timeout)
}

// stop stops kube-apiserver, then etcd.
func (e *env) stop() {
	e.apiserver.stop()
	e.etcd.stop()
}

// command carries out one stdin command.
func (e *env) command(cmd string) error {
	switch cmd {
	case "restart-apiserver":
		e.apiserver.stop()
		return e.apiserver.start(e.timeout)
	case "restart-etcd":
		e.etcd.stop()
		if err := e.etcd.start(e.timeout); err != nil {
			return err
		}
		// Ready again means the API server answers with its storage back.
		return waitFor(e.apiserver.ready, e.timeout, "kube-apiserver after the etcd restart")
	default:
		return fmt.Errorf("unknown command %q (want restart-apiserver or restart-etcd)", cmd)
	}
}

// info is the JSON line printed when the environment is ready (again).
func (e *env) info(event string) map[string]any {
	return map[string]any{
		"event":       event,
		"url":         e.url,
		"etcd":        e.etcdURL,
		"ca":          e.pki.caCert,
		"kubeconfigs": e.configs,
		"dir":         e.dir,
		"logs":        filepath.Dir(e.apiserver.log),
		"audit":       e.auditLog,
	}
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func expect200(client *http.Client, url, token string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// waitFor polls check until it succeeds or the timeout passes.
func waitFor(check func() error, timeout time.Duration, what string) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		var stop *permanent
		if errors.As(err, &stop) {
			return stop.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
