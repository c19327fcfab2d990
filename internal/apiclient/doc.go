// Package apiclient is the client side of govs's control API: the JSON
// documents the API serves and accepts (Service, RealServer, ...), its
// error codes, the default socket paths, and the Go client govsadm uses.
//
// It is apart from the server (internal/api) so that a client links none
// of the director, its dataplanes or their libraries: govsadm imports only
// this. The server serves these same types (internal/api re-exports them
// under their old names), so the two cannot drift apart.
package apiclient
