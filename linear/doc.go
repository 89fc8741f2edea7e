// Package linear wraps Linear: webhook signatures and payloads, and the GraphQL API.
package linear
