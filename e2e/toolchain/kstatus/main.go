// kstatus-check computes the kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status, what Flux's
// kustomize-controller and helm-controller use to wait for custom resources) of Kubernetes
// objects read from stdin, so that the end-to-end tests can check live Jobsmith objects.
//
// Input: one object, or a JSON/YAML list of objects, or a `kind: List` with `items`.
// Output (stdout, one line of JSON): {"status":"InProgress","message":"..."} for one object, an
// array of those for a list, in input order. status is one of InProgress, Failed, Current,
// Terminating, NotFound, Unknown (kstatus' own names).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus-check:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 {
		return fmt.Errorf("usage: kstatus-check < objects (no arguments; got %q)", os.Args[1:])
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	// YAML -> JSON -> values with integers as int64, as the API machinery decodes objects
	// (kstatus reads metadata.generation and status.observedGeneration as int64).
	asJSON, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("parsing stdin: %w", err)
	}
	var input any
	if err := utiljson.Unmarshal(asJSON, &input); err != nil {
		return fmt.Errorf("parsing stdin: %w", err)
	}
	var out any
	switch v := input.(type) {
	case []any:
		results, err := computeAll(v)
		if err != nil {
			return err
		}
		out = results
	case map[string]any:
		if items, ok := v["items"].([]any); ok && v["kind"] == "List" {
			results, err := computeAll(items)
			if err != nil {
				return err
			}
			out = results
		} else {
			r, err := compute(v)
			if err != nil {
				return err
			}
			out = r
		}
	default:
		return fmt.Errorf("stdin holds neither an object nor a list (%T)", input)
	}
	encoded, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Println(string(encoded))
	return nil
}

func computeAll(items []any) ([]result, error) {
	results := make([]result, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is not an object", i)
		}
		r, err := compute(obj)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		results = append(results, r)
	}
	return results, nil
}

func compute(obj map[string]any) (result, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return result{}, fmt.Errorf("computing the status of %v/%v: %w", obj["kind"], name(obj), err)
	}
	return result{Status: res.Status.String(), Message: res.Message}, nil
}

func name(obj map[string]any) any {
	if meta, ok := obj["metadata"].(map[string]any); ok {
		return meta["name"]
	}
	return nil
}
