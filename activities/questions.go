package activities

import "github.com/linsync/linsync/postgres"

// Questions syncs Q&A questions and replies with Linear issues and comments.
type Questions struct {
	DB     *postgres.DB
	Linear *LinearClients
}
