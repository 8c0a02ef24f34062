package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/viper"
)

// Load reads cluster.yaml from path, applies defaults and validates it.
// Every error it returns is a *ValidationError or wraps a read/parse error,
// and nothing outside the process has been touched when it returns.
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
		}
		return Spec{}, err
	}
	return spec, nil
}

// Parse decodes YAML bytes, applies defaults and validates the result.
func Parse(data []byte) (Spec, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return Spec{}, &InputError{Msg: fmt.Sprintf("not valid YAML: %v", err)}
	}
	if unknown := unknownKeys(v.AllSettings(), reflect.TypeOf(Spec{}), ""); len(unknown) > 0 {
		errs := make(ValidationError, 0, len(unknown))
		for _, k := range unknown {
			errs = append(errs, FieldError{Path: k, Problem: "is not a known setting", Want: "check its spelling against the configuration reference in README.md"})
		}
		return Spec{}, errs
	}
	var spec Spec
	if err := v.Unmarshal(&spec); err != nil {
		return Spec{}, &InputError{Msg: fmt.Sprintf("a value has the wrong type: %v", err)}
	}
	ApplyDefaults(&spec)
	if err := Validate(spec); err != nil {
		return Spec{}, err
	}
	return spec, nil
}

// InputError is bad input that is not tied to one field (unreadable file,
// broken YAML, a list where a number belongs).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// unknownKeys walks the decoded YAML against the Spec's mapstructure tags and
// returns the dotted paths of keys that Spec does not have, so a typo such as
// `memroy_mb` is refused instead of silently ignored.
func unknownKeys(settings map[string]any, t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]; tag != "" {
			fields[tag] = f.Type
		}
	}
	var out []string
	for key, val := range settings {
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		ft, ok := fields[key]
		if !ok {
			out = append(out, path)
			continue
		}
		switch child := val.(type) {
		case map[string]any:
			if ft.Kind() == reflect.Map { // free-form sections are accepted as they are
				continue
			}
			out = append(out, unknownKeys(child, ft, path)...)
		case []any:
			if ft.Kind() != reflect.Slice {
				continue
			}
			for i, item := range child {
				if m, ok := item.(map[string]any); ok {
					out = append(out, unknownKeys(m, ft.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
