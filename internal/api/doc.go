// Package api is govs's control API: a REST interface under /api/v1/ on a
// unix socket (and, when configured, on TCP behind a bearer token and
// optionally TLS) and the Prometheus exposition at /metrics. Its documents
// and the Go client that govsadm uses are internal/apiclient's (client.go
// re-exports them), so that a client links none of the server.
// docs/api.md describes it for users and docs/openapi.yaml lists every
// route; a test keeps the two in step.
//
// Every change goes through the director's runtime change methods
// (director.Change and friends): the running configuration is copied, the
// change made on the copy, the copy validated exactly as a configuration
// file is, and applied as a whole. Request bodies are decoded by the
// configuration decoder itself (JSON is YAML), so the API accepts exactly
// the keys of the configuration file, and validation errors are reported
// with the path of the offending field in the request body.
//
// This package may import config and director; it must not import a
// dataplane.
package api
