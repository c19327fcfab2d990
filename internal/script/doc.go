// Package script runs the commands a configuration names (health check
// scripts, VRRP track and notify scripts, notify commands) the way
// keepalived's enable_script_security does: as an unprivileged user, only
// when the program and every directory on its path can be changed by no one
// but root and that user, in a process group of its own that is killed once
// the script returns, so nothing it started in the background outlives it.
//
// Check tells what is wrong with a command before it runs (govs check and
// every load report it with the line); Run checks again and runs it.
package script
