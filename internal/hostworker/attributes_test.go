package hostworker

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/api/serviceerror"
)

func TestMissingSearchAttributesErrorTellsTheAdminWhatToRun(t *testing.T) {
	denied := serviceerror.NewPermissionDenied("Request unauthorized.", "")
	err := error(&MissingSearchAttributesError{Namespace: "team-ns", Missing: []string{"HpcvmCluster", "HpcvmHost"}, Err: denied})
	assert.Equal(t, "namespace team-ns lacks hpcvm's search attributes HpcvmCluster, HpcvmHost and this worker may not add them (Request unauthorized.); "+
		"an administrator of the namespace adds them once with: temporal operator search-attribute create --namespace team-ns --name HpcvmCluster --type Keyword --name HpcvmHost --type Keyword",
		err.Error())
	var pd *serviceerror.PermissionDenied
	assert.True(t, errors.As(err, &pd), "the server's refusal stays reachable")
}
