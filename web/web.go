// Package web is govs's dashboard: a static page (HTML, CSS and JavaScript,
// no build step, nothing fetched from elsewhere) that polls the control API
// every second and shows the virtual services, their real servers, rates,
// VRRP state and health transitions. internal/api serves it at "/".
//
// The files hold no data and no secret: everything the page shows it reads
// from the API with the bearer token the operator gives it. docs/dashboard.md
// describes it for users.
//
// This package must not import any other package of govs.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the dashboard's files, with index.html at its root.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // "static" is embedded above: cannot happen
	}
	return sub
}
