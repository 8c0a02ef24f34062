package prodserver

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/dynamicconfig"
	"google.golang.org/protobuf/types/known/durationpb"
)

// testPostgres is the project's PostgreSQL (make postgres); missing, the
// test fails and says how to start it.
func testPostgres(t *testing.T) Postgres {
	path := os.Getenv("HPCVM_TEST_POSTGRES_ENV")
	if path == "" {
		path = DefaultPostgresEnvFile
	}
	p, err := PostgresFromEnvFile(path)
	require.NoError(t, err)
	return p
}

func TestServerEnforcesMTLSAndRoles(t *testing.T) {
	ctx := context.Background()
	pki, err := NewPKI(t.TempDir())
	require.NoError(t, err)
	admin, err := pki.IssueClient("hpcvm-admin")
	require.NoError(t, err)
	writer, err := pki.IssueClient("hpcvm-worker")
	require.NoError(t, err)
	stranger, err := pki.IssueClient("someone-else")
	require.NoError(t, err)
	pg := testPostgres(t)
	ns := "hpcvm-ci-" + randomHex(3)

	srv, err := Start(ctx, Options{Postgres: pg, PKI: pki, Namespace: ns,
		Access:    Access{Admins: []string{admin.CN}, Writers: []string{writer.CN}},
		AdminCert: admin, Dynamic: dynamicconfig.StaticClient{}, LogLevel: "error"})
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Stop()
		}
	})
	databases := srv.databases

	// The admin step registered the namespace; the admin may add search
	// attributes to it.
	ac, err := srv.Dial(ctx, admin, nil)
	require.NoError(t, err)
	defer ac.Close()
	_, err = ac.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: map[string]enums.IndexedValueType{"ProdserverTest": enums.INDEXED_VALUE_TYPE_KEYWORD}})
	require.NoError(t, err)

	// The writer runs workflows in the namespace and reads its search
	// attributes, but administers nothing.
	wc, err := srv.Dial(ctx, writer, nil)
	require.NoError(t, err)
	defer wc.Close()
	list, err := wc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	require.NoError(t, err)
	assert.Contains(t, list.GetCustomAttributes(), "ProdserverTest")
	_, err = wc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "wf-" + randomHex(3), TaskQueue: "nobody-polls"}, "SomeWorkflow")
	require.NoError(t, err, "a namespace writer starts workflows")
	var denied *serviceerror.PermissionDenied
	_, err = wc.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: map[string]enums.IndexedValueType{"Other": enums.INDEXED_VALUE_TYPE_KEYWORD}})
	require.True(t, errors.As(err, &denied), "a writer adds no search attribute: %v", err)
	_, err = wc.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: "other-" + randomHex(3), WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
	require.True(t, errors.As(err, &denied), "a writer registers no namespace: %v", err)

	// A certificate the CA signed but with no role: denied.
	sc, err := srv.Dial(ctx, stranger, nil)
	require.NoError(t, err)
	defer sc.Close()
	_, err = sc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	require.True(t, errors.As(err, &denied), "no role, no access: %v", err)

	// No client certificate: the TLS handshake fails.
	tlsCfg, err := srv.ClientTLS(writer)
	require.NoError(t, err)
	tlsCfg.Certificates = []tls.Certificate{}
	dialCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := client.DialContext(dialCtx, client.Options{HostPort: srv.FrontendAddr(), Namespace: ns,
		ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg}, Logger: quietLogger{}})
	if err == nil {
		_, err = nc.WorkflowService().DescribeNamespace(dialCtx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
		nc.Close()
	}
	require.Error(t, err, "a client without a certificate is refused")

	// Stop drops the databases the server made.
	require.NoError(t, srv.Stop())
	stopped = true
	db, err := sql.Open("postgres", "postgres://"+pg.User+":"+pg.Password+"@"+pg.Addr+"/"+pg.AdminDatabase+"?sslmode=disable") // lib/pq, which the server's plugin registers
	require.NoError(t, err)
	defer db.Close()
	for _, name := range databases {
		var n int
		require.NoError(t, db.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
		assert.Zero(t, n, "database %s is gone", name)
	}
}
