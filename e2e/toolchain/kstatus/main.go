// kstatus-check computes the kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status, what Flux's
// kustomize-controller and helm-controller use to wait for custom resources) of Kubernetes
// objects read from stdin, so that the end-to-end tests can check live Jobsmith objects.
//
// With --flux-exprs FILE it instead evaluates Flux's `healthCheckExprs` of FILE (a YAML map
// with a `healthCheckExprs` list, as in a Kustomization's spec) the way Flux's StatusEvaluator
// (fluxcd/pkg runtime/cel, RFC 0009) does: InProgress when status.observedGeneration differs
// from metadata.generation; else the first of inProgress, failed, current that is true; else
// InProgress. The expressions are parsed (not type-checked) in a cel-go environment with the
// options Flux sets, and evaluated with the object's top-level fields as variables. Objects of
// a kind without expressions get kstatus, as in Flux. An evaluation error is reported as
// status Unknown with the error as message (Flux keeps waiting then).
//
// Input: one object, or a JSON/YAML list of objects, or a `kind: List` with `items`.
// Output (stdout, one line of JSON): {"status":"InProgress","message":"..."} for one object, an
// array of those for a list, in input order. status is one of InProgress, Failed, Current,
// Terminating, NotFound, Unknown (kstatus' own names).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

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

// One entry of healthCheckExprs.
type healthCheckExprs struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Current    string `json:"current"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
}

// The expressions by "apiVersion/kind" when --flux-exprs is given.
var fluxExprs map[string]healthCheckExprs

func run() error {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "--flux-exprs":
		raw, err := os.ReadFile(os.Args[2])
		if err != nil {
			return err
		}
		var file struct {
			HealthCheckExprs []healthCheckExprs `json:"healthCheckExprs"`
		}
		if err := yaml.UnmarshalStrict(raw, &file); err != nil {
			return fmt.Errorf("parsing %s: %w", os.Args[2], err)
		}
		if len(file.HealthCheckExprs) == 0 {
			return fmt.Errorf("%s has no healthCheckExprs", os.Args[2])
		}
		fluxExprs = map[string]healthCheckExprs{}
		for _, e := range file.HealthCheckExprs {
			if e.Current == "" {
				return fmt.Errorf("%s/%s: current is required", e.APIVersion, e.Kind)
			}
			fluxExprs[e.APIVersion+"/"+e.Kind] = e
		}
	case len(os.Args) > 1:
		return fmt.Errorf("usage: kstatus-check [--flux-exprs FILE] < objects (got %q)", os.Args[1:])
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
	if exprs, ok := fluxExprs[fmt.Sprint(obj["apiVersion"], "/", obj["kind"])]; ok {
		return evaluateFlux(exprs, obj), nil
	}
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

// evaluateFlux is Flux's StatusEvaluator.Evaluate for one object.
func evaluateFlux(exprs healthCheckExprs, obj map[string]any) result {
	u := &unstructured.Unstructured{Object: obj}
	observed, found, err := unstructured.NestedInt64(obj, "status", "observedGeneration")
	if err != nil {
		return result{Status: "Unknown", Message: err.Error()}
	}
	if found && observed != u.GetGeneration() {
		return result{Status: "InProgress", Message: "observedGeneration differs from generation"}
	}
	for _, e := range []struct{ expr, status string }{
		{exprs.InProgress, "InProgress"},
		{exprs.Failed, "Failed"},
		{exprs.Current, "Current"},
	} {
		if e.expr == "" {
			continue
		}
		ok, err := evaluateBool(e.expr, obj)
		if err != nil {
			return result{Status: "Unknown", Message: err.Error()}
		}
		if ok {
			return result{Status: e.status, Message: e.expr}
		}
	}
	return result{Status: "InProgress", Message: "no expression is true"}
}

// evaluateBool parses and evaluates one expression in the environment Flux builds
// (fluxcd/pkg runtime/cel NewExpression without WithCompile).
func evaluateBool(expr string, obj map[string]any) (bool, error) {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return false, err
	}
	ast, issues := env.Parse(expr)
	if issues != nil && issues.Err() != nil {
		return false, fmt.Errorf("parsing %q: %s", expr, issues.String())
	}
	prog, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
	if err != nil {
		return false, err
	}
	val, _, err := prog.ContextEval(context.Background(), obj)
	if err != nil {
		return false, fmt.Errorf("evaluating %q: %w", expr, err)
	}
	b, ok := val.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%q is not a boolean", expr)
	}
	return bool(b), nil
}
