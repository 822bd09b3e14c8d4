// Command helmcheck drives a chart through Helm's own Go SDK (helm.sh/helm/v3/pkg/action), as
// the helm CLI would, and prints one JSON object per run:
//
//	helmcheck lint      [-f VALUES]... [-set K=V]... CHART
//	helmcheck template  -kubeconfig FILE -namespace NS -release NAME [-f VALUES]... CHART
//	helmcheck install   -kubeconfig FILE -namespace NS -release NAME [-f VALUES]... CHART
//	helmcheck upgrade   -kubeconfig FILE -namespace NS -release NAME [-f VALUES]... CHART
//	helmcheck uninstall -kubeconfig FILE -namespace NS -release NAME
//
// template renders client-side for the cluster's Kubernetes version, the chart's CRDs
// included (helm template --include-crds --kube-version); install and upgrade do not wait (the test environment runs no pods).
// A failure prints {"error": ...} and exits 1.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/release"
)

// repeated collects a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// options are the flags every subcommand shares.
type options struct {
	kubeconfig string
	namespace  string
	release    string
	values     values.Options
	timeout    time.Duration
	args       []string
}

// lintMessage is one finding of helm lint.
type lintMessage struct {
	Severity string `json:"severity"`
	Path     string `json:"path"`
	Message  string `json:"message"`
}

// result is the output of every subcommand; fields not set are omitted.
type result struct {
	Command  string        `json:"command"`
	Release  string        `json:"release,omitempty"`
	Revision int           `json:"revision,omitempty"`
	Status   string        `json:"status,omitempty"`
	Manifest string        `json:"manifest,omitempty"`
	Info     string        `json:"info,omitempty"`
	Linted   int           `json:"linted,omitempty"`
	Messages []lintMessage `json:"messages,omitempty"`
	Error    string        `json:"error,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helmcheck lint|template|install|upgrade|uninstall [flags] [CHART]")
		os.Exit(64)
	}
	command := os.Args[1]
	fs := flag.NewFlagSet(command, flag.ExitOnError)
	var o options
	var files, sets repeated
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster")
	fs.StringVar(&o.namespace, "namespace", "default", "release namespace")
	fs.StringVar(&o.release, "release", "taskreset", "release name")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "timeout of each Kubernetes operation")
	fs.Var(&files, "f", "values file (repeatable)")
	fs.Var(&sets, "set", "a value KEY=VALUE (repeatable), as helm --set")
	// Only the subcommand is positional before the flags.
	_ = fs.Parse(os.Args[2:])
	o.values = values.Options{ValueFiles: files, Values: sets}
	o.args = fs.Args()

	res, err := run(command, &o)
	res.Command = command
	if err != nil {
		res.Error = err.Error()
	}
	if encodeErr := json.NewEncoder(os.Stdout).Encode(res); encodeErr != nil {
		fmt.Fprintln(os.Stderr, "helmcheck:", encodeErr)
		os.Exit(1)
	}
	if err != nil {
		os.Exit(1)
	}
}

func run(command string, o *options) (result, error) {
	switch command {
	case "lint":
		return lint(o)
	case "uninstall":
		return uninstall(o)
	case "template", "install", "upgrade":
	default:
		return result{}, fmt.Errorf("unknown command %q", command)
	}
	if len(o.args) != 1 {
		return result{}, errors.New("want exactly one CHART argument")
	}
	chrt, err := loader.Load(o.args[0])
	if err != nil {
		return result{}, fmt.Errorf("loading the chart: %w", err)
	}
	vals, err := o.values.MergeValues(getter.All(cli.New()))
	if err != nil {
		return result{}, fmt.Errorf("values: %w", err)
	}
	var cfg *action.Configuration
	if command != "template" {
		if cfg, err = configuration(o); err != nil {
			return result{}, err
		}
	}
	var rel *release.Release
	switch command {
	case "template":
		rel, err = template(o, chrt, vals)
	case "install":
		install := action.NewInstall(cfg)
		install.ReleaseName, install.Namespace = o.release, o.namespace
		install.Timeout = o.timeout
		rel, err = install.Run(chrt, vals)
	case "upgrade":
		upgrade := action.NewUpgrade(cfg)
		upgrade.Namespace = o.namespace
		upgrade.Timeout = o.timeout
		rel, err = upgrade.Run(o.release, chrt, vals)
	}
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", command, err)
	}
	res := result{Release: rel.Name, Revision: rel.Version, Manifest: rel.Manifest}
	if rel.Info != nil {
		res.Status = rel.Info.Status.String()
	}
	return res, nil
}

// template renders the chart as `helm template --include-crds --kube-version V` does, V being
// the cluster's version. (Rendering against the cluster itself, Helm maps every kind through
// discovery and refuses kinds the cluster does not serve, such as a ServiceMonitor.)
func template(o *options, chrt *chart.Chart, vals map[string]interface{}) (*release.Release, error) {
	if o.kubeconfig == "" {
		return nil, errors.New("-kubeconfig is required")
	}
	discovery, err := kube.GetConfig(o.kubeconfig, "", o.namespace).ToDiscoveryClient()
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	info, err := discovery.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("the server's version: %w", err)
	}
	version, err := chartutil.ParseKubeVersion(info.GitVersion)
	if err != nil {
		return nil, fmt.Errorf("the server's version %q: %w", info.GitVersion, err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...interface{}) {}})
	install.ReleaseName, install.Namespace = o.release, o.namespace
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.IncludeCRDs = true
	install.KubeVersion = version
	return install.Run(chrt, vals)
}

// configuration is Helm's action configuration for the cluster of o.kubeconfig, storing
// releases in Secrets (Helm's default driver).
func configuration(o *options) (*action.Configuration, error) {
	if o.kubeconfig == "" {
		return nil, errors.New("-kubeconfig is required")
	}
	cfg := new(action.Configuration)
	flags := kube.GetConfig(o.kubeconfig, "", o.namespace)
	quiet := func(string, ...interface{}) {}
	if err := cfg.Init(flags, o.namespace, "secret", quiet); err != nil {
		return nil, fmt.Errorf("helm configuration: %w", err)
	}
	return cfg, nil
}

func lint(o *options) (result, error) {
	if len(o.args) != 1 {
		return result{}, errors.New("want exactly one CHART argument")
	}
	vals, err := o.values.MergeValues(getter.All(cli.New()))
	if err != nil {
		return result{}, fmt.Errorf("values: %w", err)
	}
	l := action.NewLint()
	l.Namespace = o.namespace
	l.Strict = true
	out := l.Run(o.args, vals)
	res := result{Linted: out.TotalChartsLinted}
	for _, m := range out.Messages {
		res.Messages = append(res.Messages, lintMessage{
			Severity: severity(m.Severity),
			Path:     m.Path,
			Message:  m.Err.Error(),
		})
	}
	if len(out.Errors) > 0 {
		return res, fmt.Errorf("lint (strict): %w", errors.Join(out.Errors...))
	}
	return res, nil
}

func severity(s int) string {
	switch s {
	case support.InfoSev:
		return "INFO"
	case support.WarningSev:
		return "WARNING"
	case support.ErrorSev:
		return "ERROR"
	default:
		return "UNKNOWN"
	}
}

func uninstall(o *options) (result, error) {
	cfg, err := configuration(o)
	if err != nil {
		return result{}, err
	}
	u := action.NewUninstall(cfg)
	u.Timeout = o.timeout
	resp, err := u.Run(o.release)
	if err != nil {
		return result{}, fmt.Errorf("uninstall: %w", err)
	}
	res := result{Release: o.release, Info: resp.Info}
	if resp.Release != nil && resp.Release.Info != nil {
		res.Status = resp.Release.Info.Status.String()
	}
	return res, nil
}
