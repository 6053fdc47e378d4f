// argocd-lua-health runs Argo CD resource health scripts (health.lua) the way Argo CD runs a
// script configured in its argocd-cm ConfigMap, on gopher-lua (the interpreter Argo CD embeds),
// so that deploy/argocd/ can be tested without an Argo CD installation.
//
// What is reproduced from Argo CD's util/lua (read, not copied):
//   - a state created with SkipOpenLibs (argocd-cm scripts do not get the standard libraries
//     unless resource.customizations.useOpenLibs.<group>_<kind> is set), then only the package,
//     base and table libraries opened, plus a restricted os module reachable through
//     require("os"). In particular there is NO string library: s:sub(), string.format() and the
//     like fail, exactly as in Argo CD;
//   - a one second execution limit (a context on the state);
//   - the object decoded into nested tables as Argo CD does (maps -> tables keyed by string,
//     lists -> sequences, numbers -> Lua numbers, null -> nil) and set as the global `obj`;
//   - the script's return value must be a table; it goes through JSON into {status, message};
//     a status outside Healthy, Progressing, Degraded, Suspended, Missing, Unknown becomes
//     Unknown with the message "Lua returned an invalid health status".
//
// The os module offered here is a subset of Argo CD's (only os.time(), no os.date): a script
// that passes here uses nothing Argo CD lacks.
//
// Usage:
//
//	argocd-lua-health test <dir>                 every <dir>/<group>/<Kind>/health_test.yaml
//	argocd-lua-health run <health.lua> [<file>]  one object (YAML or JSON; stdin when no file
//	                                             or "-"), prints {"status":..,"message":..}
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// HealthStatus is what a health script returns (Argo CD's health.HealthStatus).
type HealthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

const scriptTimeout = time.Second

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "test":
		err = runTests(os.Args[2])
	case "run":
		file := "-"
		if len(os.Args) > 3 {
			file = os.Args[3]
		}
		err = runOne(os.Args[2], file)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua-health:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: argocd-lua-health test <dir> | run <health.lua> [<object file>|-]")
	os.Exit(2)
}

func runOne(scriptPath, objectPath string) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	var raw []byte
	if objectPath == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(objectPath)
	}
	if err != nil {
		return err
	}
	obj, err := parseObject(raw)
	if err != nil {
		return err
	}
	result, err := executeHealth(string(script), obj)
	if err != nil {
		return fmt.Errorf("%s: %w", scriptPath, err)
	}
	out, err := json.Marshal(result)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// parseObject reads YAML or JSON into the map Argo CD hands to decodeValue (numbers float64, as
// sigs.k8s.io/yaml yields them; Argo CD's own health tests read testdata the same way).
func parseObject(raw []byte) (map[string]any, error) {
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("parsing the object: %w", err)
	}
	if len(obj) == 0 {
		return nil, errors.New("the object is empty")
	}
	return obj, nil
}

// newSandbox is the state an argocd-cm health script runs in (useOpenLibs false).
func newSandbox() (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			l.Close()
			return nil, fmt.Errorf("opening %q: %w", lib.name, err)
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		mod := l.NewTable()
		l.SetField(mod, "time", l.NewFunction(func(l *lua.LState) int {
			l.Push(lua.LNumber(time.Now().Unix()))
			return 1
		}))
		l.Push(mod)
		return 1
	})
	return l, nil
}

func executeHealth(script string, obj map[string]any) (*HealthStatus, error) {
	l, err := newSandbox()
	if err != nil {
		return nil, err
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	table, ok := ret.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type().String())
	}
	encoded, err := json.Marshal(encodeValue(table, 0))
	if err != nil {
		return nil, fmt.Errorf("encoding the returned table: %w", err)
	}
	var hs HealthStatus
	if err := json.Unmarshal(encoded, &hs); err != nil {
		return nil, fmt.Errorf("the returned table %s is not {status, message}: %w", encoded, err)
	}
	if !validStatuses[hs.Status] {
		return &HealthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return &hs, nil
}

// decodeValue turns decoded YAML/JSON into Lua values the way Argo CD does.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(decodeValue(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return t
	}
	return lua.LNil
}

// encodeValue is the Lua -> JSON direction (as layeh.com/gopher-json, which Argo CD uses): a
// table with keys 1..n is an array, an empty table an empty array, others an object keyed by
// string.
func encodeValue(value lua.LValue, depth int) any {
	if depth > 64 {
		return nil
	}
	switch v := value.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LNumber:
		return float64(v)
	case lua.LString:
		return string(v)
	case *lua.LTable:
		if n := v.MaxN(); n > 0 || isEmpty(v) {
			items := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				items = append(items, encodeValue(v.RawGetInt(i), depth+1))
			}
			return items
		}
		object := map[string]any{}
		v.ForEach(func(key, item lua.LValue) {
			object[key.String()] = encodeValue(item, depth+1)
		})
		return object
	}
	return nil
}

func isEmpty(t *lua.LTable) bool {
	key, _ := t.Next(lua.LNil)
	return key == lua.LNil
}

// One health_test.yaml, in Argo CD's format.
type testFile struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

// runTests runs every health_test.yaml below root (one per <group>/<Kind> directory holding a
// health.lua). Besides the expected results it checks the layout: each script has a test file
// with at least one case, every input exists, and every file of testdata/ is used.
func runTests(root string) error {
	var scripts []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "health.lua" {
			scripts = append(scripts, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(scripts) == 0 {
		return fmt.Errorf("no health.lua below %s", root)
	}
	sort.Strings(scripts)
	var failures []string
	cases := 0
	for _, scriptPath := range scripts {
		dir := filepath.Dir(scriptPath)
		key, _ := filepath.Rel(root, dir)
		script, err := os.ReadFile(scriptPath)
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", key, err))
			continue
		}
		var tests testFile
		if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
			failures = append(failures, fmt.Sprintf("%s/health_test.yaml: %v", key, err))
			continue
		}
		if len(tests.Tests) == 0 {
			failures = append(failures, fmt.Sprintf("%s/health_test.yaml has no test", key))
		}
		used := map[string]bool{}
		for _, tc := range tests.Tests {
			cases++
			name := key + "/" + tc.InputPath
			used[filepath.Clean(tc.InputPath)] = true
			input, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			obj, err := parseObject(input)
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			if got := fmt.Sprint(obj["apiVersion"], "/", obj["kind"]); !strings.HasSuffix(got, "/"+filepath.Base(dir)) {
				failures = append(failures, fmt.Sprintf("%s: the object is a %s, not a %s", name, got, filepath.Base(dir)))
				continue
			}
			got, err := executeHealth(string(script), obj)
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: the script failed: %v", name, err))
				continue
			}
			if *got != tc.HealthStatus {
				failures = append(failures, fmt.Sprintf("%s:\n  want %s: %q\n  got  %s: %q", name,
					tc.HealthStatus.Status, tc.HealthStatus.Message, got.Status, got.Message))
				continue
			}
			fmt.Printf("ok   %-40s %-11s %s\n", name, got.Status, got.Message)
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "testdata"))
		for _, e := range entries {
			if !used[filepath.Join("testdata", e.Name())] {
				failures = append(failures, fmt.Sprintf("%s/testdata/%s is not used by health_test.yaml", key, e.Name()))
			}
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d cases (%d scripts) failed:\n%s", len(failures), cases, len(scripts),
			strings.Join(failures, "\n"))
	}
	fmt.Printf("%d cases of %d health scripts passed\n", cases, len(scripts))
	return nil
}
