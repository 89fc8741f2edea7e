package activities

import "github.com/linsync/linsync/postgres"

// Events files monitoring events as Linear issues.
type Events struct {
	DB     *postgres.DB
	Linear *LinearClients
}
