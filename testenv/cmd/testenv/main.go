// Command testenv runs a real etcd and kube-apiserver on loopback for tests.
//
// It picks free ports, generates a CA, a serving certificate, a service-account key and one
// static token per identity, starts both servers as child processes, waits for /readyz, writes
// one kubeconfig per identity and prints one JSON line on stdout. Then it reads commands on
// stdin, one per line: restart-apiserver, restart-etcd. EOF on stdin, SIGTERM or SIGINT stop
// everything and remove the working directory.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// identityFlags collects repeated -identity NAME=USER[:GROUP,GROUP...] flags.
type identityFlags []identity

func (f *identityFlags) String() string { return fmt.Sprint(*f) }

func (f *identityFlags) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" || rest == "" {
		return fmt.Errorf("want NAME=USER[:GROUP,GROUP...], got %q", v)
	}
	user, groups, _ := strings.Cut(rest, ":")
	id := identity{Name: name, User: user}
	if groups != "" {
		id.Groups = strings.Split(groups, ",")
	}
	*f = append(*f, id)
	return nil
}

func main() {
	self, _ := os.Executable()
	binDir := filepath.Dir(self)
	var (
		etcdBin      = flag.String("etcd", filepath.Join(binDir, "etcd"), "etcd binary")
		apiserverBin = flag.String("kube-apiserver", filepath.Join(binDir, "kube-apiserver"), "kube-apiserver binary")
		dir          = flag.String("dir", "", "working directory (default: a new temporary directory, removed on exit)")
		keep         = flag.Bool("keep", false, "keep the working directory (logs, data) on exit")
		namespace    = flag.String("namespace", "taskreset-system", "namespace of the controller's ServiceAccount identity")
		account      = flag.String("serviceaccount", "taskreset-controller", "name of the controller's ServiceAccount identity")
		timeout      = flag.Duration("timeout", 2*time.Minute, "how long to wait for each server to become ready")
		extra        identityFlags
	)
	flag.Var(&extra, "identity", "an extra identity NAME=USER[:GROUP,GROUP...] (repeatable)")
	flag.Parse()

	ids := append([]identity{
		{Name: "admin", User: "admin", Groups: []string{"system:masters"}},
		serviceAccount("controller", *namespace, *account),
	}, extra...)
	env, err := newEnv(*dir, *etcdBin, *apiserverBin, ids, *timeout)
	if err != nil {
		fatal(err)
	}
	code := run(env)
	env.stop()
	// A failed start keeps the directory: its logs/ say why.
	if code == 0 && !*keep && *dir == "" {
		_ = os.RemoveAll(env.dir)
	}
	os.Exit(code)
}

// run starts the servers, reports them and serves commands until stdin closes or a signal.
func run(env *env) int {
	// The reader of our stdout may be gone when we stop: a write must fail, not kill us.
	signal.Ignore(syscall.SIGPIPE)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	if err := env.start(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n(kept %s)\n", err, env.dir)
		return 1
	}
	report(env.info("ready"))

	commands := make(chan string)
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			commands <- strings.TrimSpace(scanner.Text())
		}
		close(commands)
	}()
	parent := os.Getppid()
	orphaned := time.NewTicker(time.Second)
	defer orphaned.Stop()
	for {
		select {
		case <-signals:
			return 0
		case <-orphaned.C:
			// The process that started us died without closing our stdin (e.g. it forked).
			if os.Getppid() != parent {
				return 0
			}
		case cmd, ok := <-commands:
			if !ok {
				return 0
			}
			if cmd == "" {
				continue
			}
			if err := env.command(cmd); err != nil {
				report(map[string]string{"event": "error", "command": cmd, "error": err.Error()})
				continue
			}
			report(env.info(cmd))
		}
	}
}

func report(v any) {
	line, _ := json.Marshal(v)
	fmt.Println(string(line))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "testenv:", err)
	os.Exit(1)
}
