// helm-render renders a Helm 3 chart the way `helm template` does, for machines without a Helm
// binary: Go's text/template with the sprig v3 function library (Debian's
// golang-github-masterminds-sprig-dev, the version Helm 3 vendors) plus Helm's own functions
// (include, tpl, required, toYaml, fromYaml, toJson, fromJson, lookup, ...), values merged from
// values.yaml, -f files and --set, the built-in objects (.Values, .Release, .Chart, .Capabilities,
// .Template, .Files), templates parsed as one set so partials in _*.tpl are shared, "missingkey=zero"
// with "<no value>" removed, and values decoded through JSON (numbers are float64) as Helm does.
// Subcharts, hooks and lookup against a live cluster are not supported (lookup returns an empty map,
// as in `helm template`). Output: `---` separated documents with `# Source:` comments.
//
//	helm-render [-f values.yaml]... [--set a.b=c]... [--name release] [--namespace ns] [--values-out merged.json] CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	yamlv2 "gopkg.in/yaml.v2"
	yamlv3 "gopkg.in/yaml.v3"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// Files is .Files: the chart's non-template files.
type Files map[string][]byte

func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}
func (f Files) AsConfig() string {
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = string(data)
	}
	s, _ := toYAML(m)
	return s
}
func (f Files) Lines(name string) []string {
	return strings.Split(strings.TrimSuffix(string(f[name]), "\n"), "\n")
}

// toYAML is Helm's toYaml: JSON first (so struct tags and number forms match), then YAML (yaml.v2,
// sorted keys), without the trailing newline.
func toYAML(v interface{}) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var obj interface{}
	if err := yamlv2.Unmarshal(j, &obj); err != nil {
		return "", err
	}
	out, err := yamlv2.Marshal(obj)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

// jsonify decodes YAML and re-encodes it through JSON, so values have the types Helm gives them.
func jsonify(data []byte) (map[string]interface{}, error) {
	var raw interface{}
	if err := yamlv3.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	j, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	return out, json.Unmarshal(j, &out)
}

// merge copies src into dst, recursing into maps (later files win, like Helm's coalescing).
func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// set applies one --set a.b.c=value (values parsed as bool, int or string, as Helm's strvals does).
func set(values map[string]interface{}, expr string) error {
	eq := strings.Index(expr, "=")
	if eq < 0 {
		return fmt.Errorf("--set %q: no '='", expr)
	}
	keys := strings.Split(expr[:eq], ".")
	raw := expr[eq+1:]
	var value interface{} = raw
	if raw == "true" || raw == "false" {
		value = raw == "true"
	} else if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		value = float64(n)
	} else if raw == "null" {
		value = nil
	}
	m := values
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = value
	return nil
}

func main() {
	var valueFiles, sets multi
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "a.b=c (repeatable)")
	name := flag.String("name", "cortex", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.30.0", "Kubernetes version for .Capabilities")
	valuesOut := flag.String("values-out", "", "also write the merged values as JSON to this file (to check against values.schema.json, as helm install does)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [-f values.yaml]... [--set a=b]... [--name n] [--namespace ns] CHART_DIR")
		os.Exit(2)
	}
	if err := render(flag.Arg(0), valueFiles, sets, *name, *namespace, *kubeVersion, *valuesOut, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func render(dir string, valueFiles, sets []string, name, namespace, kubeVersion, valuesOut string, w *os.File) error {
	chartData, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return err
	}
	chartMeta, err := jsonify(chartData)
	if err != nil {
		return fmt.Errorf("Chart.yaml: %w", err)
	}
	chart := map[string]interface{}{}
	for k, v := range chartMeta {
		// Helm exposes Chart.yaml with Go field names: .Chart.Name, .Chart.AppVersion.
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}
	chartName, _ := chart["Name"].(string)

	values := map[string]interface{}{}
	for _, file := range append([]string{filepath.Join(dir, "values.yaml")}, valueFiles...) {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		v, err := jsonify(data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		merge(values, v)
	}
	for _, s := range sets {
		if err := set(values, s); err != nil {
			return err
		}
	}

	if valuesOut != "" {
		j, err := json.MarshalIndent(values, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(valuesOut, j, 0o644); err != nil {
			return err
		}
	}

	files := Files{}
	var templates []string
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "templates/") {
			templates = append(templates, rel)
		} else if rel != "Chart.yaml" && rel != "values.yaml" && rel != "values.schema.json" && !strings.HasPrefix(rel, "ci/") {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[rel] = data
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(templates)

	root := template.New("gotpl")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env") // Helm removes these two: a chart must not read the renderer's environment.
	delete(funcs, "expandenv")
	includeDepth := 0
	funcs["toYaml"] = func(v interface{}) string { s, _ := toYAML(v); return s }
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m, err := jsonify([]byte(s))
		if err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string { b, _ := json.Marshal(v); return string(b) }
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) { return map[string]interface{}{}, nil }
	root.Funcs(funcs).Option("missingkey=zero")

	for _, t := range templates {
		data, err := os.ReadFile(filepath.Join(dir, t))
		if err != nil {
			return err
		}
		if _, err := root.New(chartName + "/" + t).Parse(string(data)); err != nil {
			return err
		}
	}

	major, minor := "1", "30"
	if parts := strings.Split(strings.TrimPrefix(kubeVersion, "v"), "."); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	top := map[string]interface{}{
		"Values":  values,
		"Chart":   chart,
		"Files":   files,
		"Release": map[string]interface{}{"Name": name, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": kubeVersion, "GitVersion": kubeVersion, "Major": major, "Minor": minor},
			"APIVersions": apiVersions{"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"},
			"HelmVersion": map[string]interface{}{"Version": "v3.14.0"},
		},
	}
	for _, t := range templates {
		base := path.Base(t)
		if strings.HasPrefix(base, "_") {
			continue // partials
		}
		full := chartName + "/" + t
		scope := map[string]interface{}{}
		for k, v := range top {
			scope[k] = v
		}
		scope["Template"] = map[string]interface{}{"Name": full, "BasePath": chartName + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, scope); err != nil {
			return err
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			fmt.Fprintf(os.Stderr, "%s", out)
			continue
		}
		for _, doc := range strings.Split(out, "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			fmt.Fprintf(w, "---\n# Source: %s\n%s\n", full, strings.TrimLeft(strings.TrimPrefix(doc, "---"), "\n"))
		}
	}
	return nil
}

type apiVersions []string

// Has is .Capabilities.APIVersions.Has: the built-in groups; CRDs (monitoring.coreos.com/v1) only
// when the chart is told they exist through values, as with `helm template --api-versions`.
func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v || strings.HasPrefix(v, x+"/") {
			return true
		}
	}
	return false
}

func stripComments(doc string) string {
	var keep []string
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
