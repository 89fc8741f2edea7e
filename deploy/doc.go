// Package deploy holds the Dockerfile, Kubernetes manifests and the tests that keep them consistent with the binary.
package deploy
