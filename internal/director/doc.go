// Package director owns the truth of a running govs: the virtual service
// table built from the configuration, the runtime state that health checks,
// VRRP and operators change (effective weights, which real servers are in
// service), the statistics the dataplanes feed back, and the reconciliation
// that applies the desired state to a Dataplane.
//
// Data flows one way: configuration -> director -> dataplane. The director
// hands its dataplane immutable snapshots of the desired state
// (internal/desired, through the Dataplane interface of snapshot.go: a
// prepared and committed transaction per reload, Apply after health
// decisions), all from one goroutine. Dataplanes call back into
// VirtualService and RealServer only to schedule and account connections;
// they never change the table. This package must not import a dataplane.
package director
