// Package postgres stores linsync's state in PostgreSQL through pgx, with migrations embedded in the binary. It holds
// SQL only: the types it reads and writes, and the rules on them, are the root package's (package linsync).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/linsync/linsync"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded migration files.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// Cipher seals secrets before they are stored and opens them after they are read (see package envelope).
type Cipher interface {
	Encrypt(ctx context.Context, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error)
}

// DB is linsync's store.
type DB struct {
	pool   *pgxpool.Pool
	cipher Cipher
}

// defaultMaxConns is the pool size unless the URL sets pool_max_conns.
const defaultMaxConns = 20

// Open connects to the database at url. It does not migrate.
func Open(ctx context.Context, url string, cipher Cipher) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", redactURLError(err))
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default (4, or one per CPU) makes concurrent requests queue for a connection: ingress writes the
		// inbox in several groups at once while the dispatcher marks starts and the API serves other requests.
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return &DB{pool: pool, cipher: cipher}, nil
}

// Close closes every connection.
func (db *DB) Close() { db.pool.Close() }

// Pool exposes the connection pool for tests and admin tasks.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Migrate brings the schema up to date. Concurrent callers serialise on tern's advisory lock.
func (db *DB) Migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection for migrations: %w", err)
	}
	defer conn.Release()
	return MigrateConn(ctx, conn.Conn())
}

// MigrateConn runs the embedded migrations on one connection.
func MigrateConn(ctx context.Context, conn *pgx.Conn) error {
	m, err := migrate.NewMigrator(ctx, conn, "linsync_schema_version")
	if err != nil {
		return fmt.Errorf("create migrator: %w", err)
	}
	if err := m.LoadMigrations(Migrations()); err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("run migrations: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is a unique-constraint violation, optionally on the named constraint.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

// notFound turns pgx.ErrNoRows into an ENOTFOUND error and wraps anything else.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return linsync.Errorf(linsync.ENOTFOUND, "%s not found", what)
	}
	return fmt.Errorf("query %s: %w", what, err)
}

// redactURLError drops the URL (which may hold a password) from a parse error.
func redactURLError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string")
	}
	return err
}

// isCheckViolation reports whether err is a check-constraint violation.
func isCheckViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514"
}

// IsRejected reports whether Postgres refused the data itself (a data exception or an integrity constraint
// violation, SQLSTATE classes 22 and 23): the same write would be refused again, so retrying it cannot help.
func IsRejected(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

// IsUnavailable reports whether err means the database could not be reached or did not answer in time: the caller
// should be told to retry (503), not that linsync failed.
func IsUnavailable(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded)
}
