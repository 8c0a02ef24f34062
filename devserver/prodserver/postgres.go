package prodserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	postgresplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	postgresschema "go.temporal.io/server/schema/postgresql/v12"
	"go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
)

// Postgres is how to reach the PostgreSQL that holds Temporal's state.
type Postgres struct {
	Addr     string // host:port, loopback in tests
	User     string
	Password string
	// AdminDatabase is a database the user may connect to while it creates
	// and drops the server's own databases.
	AdminDatabase string
}

// DefaultPostgresEnvFile is where scripts/postgres-up.sh describes the
// project's PostgreSQL.
const DefaultPostgresEnvFile = "/var/tmp/hpcvm-postgres/postgres.env"

// PostgresFromEnvFile reads the file scripts/postgres-up.sh writes.
func PostgresFromEnvFile(path string) (Postgres, error) {
	f, err := os.Open(path)
	if err != nil {
		return Postgres{}, fmt.Errorf("reading the PostgreSQL description %s: %w; start the project's PostgreSQL with `make postgres` (scripts/postgres-up.sh)", path, err)
	}
	defer func() { _ = f.Close() }()
	kv := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), "=")
		if ok && !strings.HasPrefix(k, "#") {
			kv[k] = v
		}
	}
	if err := s.Err(); err != nil {
		return Postgres{}, err
	}
	p := Postgres{
		Addr: net.JoinHostPort(kv["HPCVM_PG_HOST"], kv["HPCVM_PG_PORT"]),
		User: kv["HPCVM_PG_USER"], Password: kv["HPCVM_PG_PASSWORD"], AdminDatabase: kv["HPCVM_PG_DATABASE"],
	}
	if kv["HPCVM_PG_HOST"] == "" || kv["HPCVM_PG_PORT"] == "" || p.User == "" || p.AdminDatabase == "" {
		return Postgres{}, fmt.Errorf("%s lacks HPCVM_PG_HOST, _PORT, _USER or _DATABASE; run scripts/postgres-up.sh again", path)
	}
	return p, nil
}

func (p Postgres) sqlConfig(database string) *config.SQL {
	return &config.SQL{
		PluginName:      postgresplugin.PluginName,
		DatabaseName:    database,
		ConnectAddr:     p.Addr,
		ConnectProtocol: "tcp",
		User:            p.User,
		Password:        p.Password,
		MaxConns:        20,
		MaxIdleConns:    20,
	}
}

// The schemas inside go.temporal.io/server's embedded schema directory.
const (
	mainSchema       = "postgresql/v12/temporal"
	visibilitySchema = "postgresql/v12/visibility"
)

// createDatabase creates database and sets its schema up the way
// temporal-sql-tool does (create-database, setup-schema -v 0.0,
// update-schema to the newest version), with the tool's own code and the
// server's embedded schema files, so the result is what an operator's
// upgrade path starts from.
func (p Postgres) createDatabase(database, schemaName, wantVersion string, logger log.Logger) error {
	if err := sqltool.DoCreateDatabase(p.sqlConfig(database), p.AdminDatabase, logger); err != nil {
		return fmt.Errorf("creating database %s on %s as %s: %w (is the project's PostgreSQL running? `make postgres` starts it)", database, p.Addr, p.User, err)
	}
	conn, err := sqltool.NewConnection(p.sqlConfig(database), logger)
	if err != nil {
		return fmt.Errorf("connecting to database %s: %w", database, err)
	}
	defer conn.Close()
	if err := schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger).Run(); err != nil {
		return fmt.Errorf("setting up the schema version tables in %s: %w", database, err)
	}
	if err := schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{DBName: database, SchemaName: schemaName}, logger).Run(); err != nil {
		return fmt.Errorf("updating %s to schema %s: %w", database, schemaName, err)
	}
	got, err := conn.ReadSchemaVersion()
	if err != nil {
		return err
	}
	if got != wantVersion {
		return fmt.Errorf("database %s is at schema version %s after the update, the server expects %s", database, got, wantVersion)
	}
	return nil
}

// createDatabases makes the server's two databases (state and visibility).
func (p Postgres) createDatabases(main, visibility string, logger log.Logger) error {
	if err := p.createDatabase(main, mainSchema, postgresschema.Version, logger); err != nil {
		return err
	}
	return p.createDatabase(visibility, visibilitySchema, postgresschema.VisibilityVersion, logger)
}

// dropDatabases removes what createDatabases made; a database that is not
// there is not an error.
func (p Postgres) dropDatabases(logger log.Logger, names ...string) error {
	var errs []error
	for _, name := range names {
		if err := sqltool.DoDropDatabase(p.sqlConfig(name), p.AdminDatabase, logger); err != nil {
			errs = append(errs, fmt.Errorf("dropping database %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
