package hostworker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hpcvm/hpcvm/internal/workflows"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// MissingSearchAttributesError: the namespace lacks some of hpcvm's search
// attributes and this client may not add them (a worker without operator
// rights, as on a team's Temporal). An administrator adds them once.
type MissingSearchAttributesError struct {
	Namespace string
	Missing   []string
	Err       error // the server's refusal
}

func (e *MissingSearchAttributesError) Error() string {
	return fmt.Sprintf("namespace %s lacks hpcvm's search attributes %s and this worker may not add them (%v); "+
		"an administrator of the namespace adds them once with: %s",
		e.Namespace, strings.Join(e.Missing, ", "), e.Err, AdminCommand(e.Namespace, e.Missing))
}

func (e *MissingSearchAttributesError) Unwrap() error { return e.Err }

// AdminCommand is the temporal CLI command that registers the named search
// attributes in namespace.
func AdminCommand(namespace string, names []string) string {
	types := workflows.SearchAttributeTypes()
	cmd := "temporal operator search-attribute create --namespace " + namespace
	for _, n := range names {
		cmd += " --name " + n + " --type " + typeWord(types[n])
	}
	return cmd
}

func typeWord(t enums.IndexedValueType) string {
	if t == enums.INDEXED_VALUE_TYPE_KEYWORD {
		return "Keyword"
	}
	return strings.TrimPrefix(t.String(), "INDEXED_VALUE_TYPE_")
}

// EnsureSearchAttributes makes sure hpcvm's search attributes exist in
// namespace and says which it added. It lists them first (read-only, which
// a namespace writer may do) and adds only missing ones, so a worker
// without operator rights starts as long as an administrator registered
// them; when they are missing and the server refuses to add them, the
// error is a *MissingSearchAttributesError naming them and the command
// that adds them.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) ([]string, error) {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("listing the search attributes of namespace %s: %w", namespace, err)
	}
	req := &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: map[string]enums.IndexedValueType{}}
	var missing []string
	for name, typ := range workflows.SearchAttributeTypes() {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			req.SearchAttributes[name] = typ
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	sort.Strings(missing)
	_, err = c.OperatorService().AddSearchAttributes(ctx, req)
	var exists *serviceerror.AlreadyExists
	var denied *serviceerror.PermissionDenied
	switch {
	case err == nil:
		return missing, nil
	case errors.As(err, &exists):
		return nil, nil // another worker added them meanwhile
	case errors.As(err, &denied):
		return nil, &MissingSearchAttributesError{Namespace: namespace, Missing: missing, Err: err}
	default:
		return nil, fmt.Errorf("adding search attributes %v to namespace %s: %w; an administrator can add them with: %s",
			missing, namespace, err, AdminCommand(namespace, missing))
	}
}
