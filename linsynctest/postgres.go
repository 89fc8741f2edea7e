package linsynctest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/postgres"
)

// DefaultTestDatabaseURL is the local trust-auth server that development machines and CI run.
const DefaultTestDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminDatabaseURL returns $TEST_DATABASE_URL or the local default: a database from which test databases are made.
func AdminDatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultTestDatabaseURL
}

// Keeper returns an envelope keeper with a fresh local key.
func Keeper(tb testing.TB) *envelope.Keeper {
	tb.Helper()
	keyURL, err := envelope.NewLocalKeyURL()
	if err != nil {
		tb.Fatal(err)
	}
	k, err := envelope.Open(context.Background(), keyURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = k.Close() })
	return k
}

// DB returns a store on a database of its own, cloned from a migrated template, dropped when the test ends.
func DB(tb testing.TB) *postgres.DB {
	tb.Helper()
	u := DatabaseURL(tb)
	db, err := postgres.Open(context.Background(), u, Keeper(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	return db
}

// DatabaseURL creates a fresh migrated database for the test and returns its URL.
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminDatabaseURL())
	if err != nil {
		tb.Fatalf("connect to test Postgres (TEST_DATABASE_URL): %v", err)
	}
	defer admin.Close(ctx)

	tmpl, err := ensureTemplate(ctx, admin)
	if err != nil {
		tb.Fatal(err)
	}
	name := "linsync_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tmpl)); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminDatabaseURL())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
	})
	return withDatabase(AdminDatabaseURL(), name)
}

// ensureTemplate creates, once per migration set, a database holding the migrated schema. Test binaries running in
// parallel serialise on an advisory lock.
func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	sum := sha256.New()
	err := fs.WalkDir(postgres.Migrations(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(postgres.Migrations(), p)
		sum.Write([]byte(p))
		sum.Write(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	tmpl := "linsync_tmpl_" + hex.EncodeToString(sum.Sum(nil))[:16]

	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(7242001)`); err != nil {
		return "", fmt.Errorf("lock template creation: %w", err)
	}
	defer admin.Exec(context.Background(), `SELECT pg_advisory_unlock(7242001)`) //nolint:errcheck

	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, tmpl).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up template database: %w", err)
	}
	if exists {
		return tmpl, nil
	}
	building := tmpl + "_build"
	_, _ = admin.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building))
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return "", fmt.Errorf("create template database: %w", err)
	}
	conn, err := pgx.Connect(ctx, withDatabase(AdminDatabaseURL(), building))
	if err != nil {
		return "", fmt.Errorf("connect to template database: %w", err)
	}
	err = postgres.MigrateConn(ctx, conn)
	conn.Close(ctx)
	if err != nil {
		return "", err
	}
	// Renaming last means a half-built template is never used.
	if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, tmpl)); err != nil {
		return "", fmt.Errorf("publish template database: %w", err)
	}
	return tmpl, nil
}

func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("TEST_DATABASE_URL is not a URL: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}
