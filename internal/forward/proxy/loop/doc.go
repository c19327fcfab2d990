// Package loop is an edge-triggered epoll event loop: one goroutine waits in
// epoll_wait for the descriptors registered with it (holding a P of its own
// while it runs: GOMAXPROCS grows by one per running loop, see wait.go) and
// calls their handlers,
// runs the functions other goroutines post to it, and fires its timers. A
// descriptor is registered once, for reading and writing, edge-triggered:
// its handler keeps track of what it may do (read until a short read, write
// until a short write) and the loop never changes its registration again.
//
// Everything a handler does runs on the loop's goroutine, so handlers need
// no locks among themselves; other goroutines reach them only through Post.
// The package knows nothing of proxies: internal/forward/proxy builds its
// TCP data path on it.
package loop
