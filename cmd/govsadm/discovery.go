package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/apiclient"
	"github.com/govs-lb/govs/internal/discovery/status"
)

// listDiscovery is govsadm -L --discovery: each discovery source's state
// (GET /api/v1/discovery).
func (c *cli) listDiscovery(ctx context.Context) error {
	var rep apiclient.DiscoveryReport
	if err := c.api().Do(ctx, "GET", "/api/v1/discovery", nil, &rep); err != nil {
		return c.apiError(err, false)
	}
	printDiscovery(c.stdout, rep.Sources, time.Now())
	return nil
}

// printDiscovery prints one line per source, sorted by service key as the
// API gives them, then a line with what the source is doing in words
// (its status message: the error it keeps the pool through, a held drop)
// and, if the director refused its last set, why. Times are ages as of
// now, the last success also in UTC.
func printDiscovery(w io.Writer, sources []status.Status, now time.Time) {
	fmt.Fprintf(w, "%-4s %-27s %-12s %-6s %5s %6s %5s %6s %7s %s\n",
		"Prot", "LocalAddress:Port", "Service", "State", "Found", "Active", "Drain", "Errors", "Applies", "LastSuccess")
	fmt.Fprintf(w, "  -> Origin (fail_policy): message\n")
	for _, st := range sources {
		proto, addr, _ := strings.Cut(st.Key, "/")
		state := "ok"
		switch {
		case !st.OK:
			state = "FAIL"
		case st.Held != nil:
			state = "HELD"
		case st.LastSuccess == nil:
			state = "wait"
		}
		last := "never"
		if st.LastSuccess != nil {
			last = st.LastSuccess.UTC().Format(time.RFC3339) + " (" + age(now.Sub(*st.LastSuccess)) + " ago)"
		}
		fmt.Fprintf(w, "%-4s %-27s %-12s %-6s %5d %6d %5d %6d %7d %s\n", strings.ToUpper(proto), addr, cut(st.Service, 12),
			state, st.Found, st.Active, st.Draining, st.Errors, st.Applies, last)
		fmt.Fprintf(w, "  -> %s (%s): %s\n", st.Origin, st.FailPolicy, st.Message)
		if st.ApplyError != "" {
			fmt.Fprintf(w, "  -> the director refused the last set: %s\n", st.ApplyError)
		}
	}
}

// age is a duration as people read it: 4s, 3m12s, 2h5m, 3d4h.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
