package activities

import "github.com/linsync/linsync/postgres"

// Access keeps connections healthy: OAuth refreshes, revocations, webhook registrations.
type Access struct {
	DB     *postgres.DB
	Linear *LinearClients
}
