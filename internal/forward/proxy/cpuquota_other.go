//go:build !linux

package proxy

// cgroupQuota: cgroups are Linux's.
func cgroupQuota() (float64, bool) { return 0, false }
