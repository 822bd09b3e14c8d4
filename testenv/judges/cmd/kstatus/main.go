// Command kstatus prints the verdict of kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status,
// the library behind Flux's health checks and `kubectl wait`-like tools) for objects, one
// JSON line per object.
//
// With -kubeconfig it reads the objects from the cluster: the named ones, every one in the
// namespace, or (-watch) every version of every object as the watch delivers it, after a
// {"event":"WATCHING"} line. Without -kubeconfig it reads JSON objects (or Lists) from stdin.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// verdict is one output line.
type verdict struct {
	Event           string `json:"event,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Generation      int64  `json:"generation"`
	// The object's .status as read, so a caller can pair the verdict with what it judged.
	ObjectStatus any    `json:"objectStatus"`
	Status       string `json:"status"`
	Message      string `json:"message"`
	Error        string `json:"error,omitempty"`
}

func judge(event string, u *unstructured.Unstructured) verdict {
	v := verdict{
		Event:           event,
		Namespace:       u.GetNamespace(),
		Name:            u.GetName(),
		ResourceVersion: u.GetResourceVersion(),
		Generation:      u.GetGeneration(),
		ObjectStatus:    u.Object["status"],
	}
	res, err := status.Compute(u)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Status = res.Status.String()
	v.Message = res.Message
	return v
}

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "read the objects from this cluster (default: JSON objects on stdin)")
		namespace  = flag.String("namespace", "", "namespace of the objects (with -kubeconfig)")
		resource   = flag.String("resource", "fdi.roma.io/v1alpha1/taskresets", "GROUP/VERSION/RESOURCE of the objects (with -kubeconfig)")
		watchFlag  = flag.Bool("watch", false, "print a line for every version the watch delivers until stopped (with -kubeconfig)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-kubeconfig FILE -namespace NS [-resource G/V/R] [-watch] [NAME...]] [< objects.json]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := json.NewEncoder(os.Stdout)
	var err error
	if *kubeconfig == "" {
		err = fromStdin(out)
	} else {
		err = fromCluster(ctx, out, *kubeconfig, *namespace, *resource, *watchFlag, flag.Args())
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func fromStdin(out *json.Encoder) error {
	dec := json.NewDecoder(os.Stdin)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
		// Kubernetes' own decoding: integers stay int64, Lists become UnstructuredList.
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(raw, nil, nil)
		if err != nil {
			return fmt.Errorf("decoding an object: %w", err)
		}
		switch o := obj.(type) {
		case *unstructured.Unstructured:
			err = out.Encode(judge("", o))
		case *unstructured.UnstructuredList:
			for i := range o.Items {
				if err = out.Encode(judge("", &o.Items[i])); err != nil {
					break
				}
			}
		default:
			err = fmt.Errorf("unexpected object %T", obj)
		}
		if err != nil {
			return err
		}
	}
}

func fromCluster(ctx context.Context, out *json.Encoder, kubeconfig, namespace, resource string, watchAll bool, names []string) error {
	parts := strings.Split(resource, "/")
	if len(parts) != 3 {
		return fmt.Errorf("-resource %q: want GROUP/VERSION/RESOURCE", resource)
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return err
	}
	api := client.Resource(schema.GroupVersionResource{Group: parts[0], Version: parts[1], Resource: parts[2]}).Namespace(namespace)
	if watchAll {
		return watchEvery(ctx, out, api)
	}
	if len(names) == 0 {
		list, err := api.List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for i := range list.Items {
			if err := out.Encode(judge("", &list.Items[i])); err != nil {
				return err
			}
		}
		return nil
	}
	for _, name := range names {
		u, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := out.Encode(judge("", u)); err != nil {
			return err
		}
	}
	return nil
}

// watchEvery prints every ADDED, MODIFIED and DELETED object until ctx ends, resuming from the
// last resourceVersion when the server closes the watch.
func watchEvery(ctx context.Context, out *json.Encoder, api dynamic.ResourceInterface) error {
	rv := ""
	announced := false
	for {
		w, err := api.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			return err
		}
		if !announced {
			if err := out.Encode(map[string]string{"event": "WATCHING"}); err != nil {
				return err
			}
			announced = true
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Error:
				w.Stop()
				return fmt.Errorf("watch: %v", ev.Object)
			case watch.Bookmark:
				if u, ok := ev.Object.(*unstructured.Unstructured); ok {
					rv = u.GetResourceVersion()
				}
				continue
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			rv = u.GetResourceVersion()
			if err := out.Encode(judge(string(ev.Type), u)); err != nil {
				w.Stop()
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
