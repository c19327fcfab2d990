// Package test holds govs's end-to-end tests: they build the real binaries
// and drive them as an operator would (files, signals, sockets). Tests that
// need root and network namespaces skip with a message when not root.
package test
