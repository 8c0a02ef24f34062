package hostworker

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/hpcvm/hpcvm/workflows"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// EnsureSearchAttributes registers hpcvm's search attributes in namespace
// when they are missing, and says which it added. A namespace this worker
// may not change (a managed Temporal) is an error naming the command an
// administrator runs; runs work without the attributes.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) ([]string, error) {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("listing the search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]bool{}
	for name := range workflows.SearchAttributeTypes() {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = true
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	req := &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: map[string]enums.IndexedValueType{}}
	var added []string
	for name, typ := range workflows.SearchAttributeTypes() {
		if missing[name] {
			req.SearchAttributes[name] = typ
			added = append(added, name)
		}
	}
	sort.Strings(added)
	_, err = c.OperatorService().AddSearchAttributes(ctx, req)
	var exists *serviceerror.AlreadyExists
	if errors.As(err, &exists) {
		return nil, nil // another worker added them meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("adding search attributes %v to namespace %s: %w; an administrator can add them with: temporal operator search-attribute create --namespace %s --name HpcvmCluster --type Keyword --name HpcvmOperation --type Keyword --name HpcvmHost --type Keyword", added, namespace, err, namespace)
	}
	return added, nil
}
