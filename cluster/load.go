package cluster

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
)

// Load reads cluster.yaml from path, applies defaults and validates it.
// Every error it returns names the file and is an *InputError or a
// ValidationError (errors.As finds either), and nothing outside the process
// has been touched when it returns.
func Load(path string) (Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, &InputError{Msg: fmt.Sprintf("cannot read cluster file: %v", err)}
	}
	spec, err := Parse(data)
	if err != nil {
		var in *InputError
		if errors.As(err, &in) {
			in.Msg = path + ": " + in.Msg
			return Spec{}, err
		}
		return Spec{}, fmt.Errorf("%s: %w", path, err)
	}
	return spec, nil
}

// Parse decodes YAML bytes, applies defaults to the settings the file leaves
// out and validates the result. A setting the file gives, even as 0 or "",
// is never replaced by a default: it is checked, and refused if it is not
// acceptable. All problems found (unknown keys, values of the wrong type,
// values out of range) come back together in one ValidationError; only a
// file that is not YAML at all gives an *InputError.
func Parse(data []byte) (Spec, error) {
	doc, err := decodeYAML(data)
	if err != nil {
		return Spec{}, err
	}
	spec, given, problems := readInput(doc)
	applyDefaults(&spec, func(path string) bool { return given[path] })
	var invalid ValidationError
	if errors.As(Validate(spec), &invalid) {
		problems = append(problems, notCoveredBy(problems, invalid)...)
	}
	if len(problems) > 0 {
		inFileOrder(problems)
		return Spec{}, problems
	}
	return spec, nil
}

// inFileOrder groups problems by the top-level section they are in, in the
// order of a cluster.yaml (cluster, network, controller, compute_nodes),
// keeping the order found within a section; unknown sections come last.
func inFileOrder(problems ValidationError) {
	rank := map[string]int{}
	for i, f := range settingFields(reflect.TypeOf(Spec{})) {
		rank[f.key] = i
	}
	sectionRank := func(path string) int {
		section, _, _ := strings.Cut(path, ".")
		section, _, _ = strings.Cut(section, "[")
		if r, ok := rank[section]; ok {
			return r
		}
		return len(rank)
	}
	sort.SliceStable(problems, func(i, j int) bool { return sectionRank(problems[i].Path) < sectionRank(problems[j].Path) })
}

// notCoveredBy drops the Validate findings about settings that already have
// a problem from reading the file: a `memory_mb: lots` was not stored, and
// "controller.memory_mb is out of range" about the value left in its place
// would only confuse.
func notCoveredBy(reading, validating ValidationError) ValidationError {
	var out ValidationError
	for _, v := range validating {
		covered := false
		for _, r := range reading {
			if v.Path == r.Path || strings.HasPrefix(v.Path, r.Path+".") || strings.HasPrefix(v.Path, r.Path+"[") {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, v)
		}
	}
	return out
}

// InputError is bad input that is not tied to one field: an unreadable file
// or one that is not YAML.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }
