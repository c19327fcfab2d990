// Command govsadm administers a running govs director the way ipvsadm(8)
// administers IPVS: same options, same messages and exit codes, and the
// same listing layout, so that scripts written for ipvsadm keep working.
// It is a client of the control API on the daemon's unix socket; see
// docs/govsadm.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/govs-lb/govs/internal/apiclient"
	"github.com/govs-lb/govs/internal/buildinfo"
)

// version is the release this binary was built from ("dev" unless the
// Makefile stamped it; see internal/buildinfo).
var version = buildinfo.Version()

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// cli is one run of govsadm.
type cli struct {
	prog           string
	socket         string
	stdin          io.Reader
	stdout, stderr io.Writer
	client         *apiclient.Client
	names          names
}

// run runs govsadm with args (args[0] is the program name) and returns its
// exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{prog: "govsadm", stdin: stdin, stdout: stdout, stderr: stderr, names: &sysNames{}}
	if len(args) > 0 {
		c.prog = args[0]
	}
	c.socket = getenv(apiclient.SocketEnv)
	if c.socket == "" {
		c.socket = apiclient.ClientSocketPath() // as govs chooses it, see docs/operations.md
	}
	// --socket PATH is govs's own global option; take it out before
	// parsing the ipvsadm command line.
	var rest []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--socket" && i+1 < len(args):
			c.socket = args[i+1]
			i++
		case strings.HasPrefix(a, "--socket="):
			c.socket = strings.TrimPrefix(a, "--socket=")
		default:
			rest = append(rest, a)
		}
	}
	bw := bufio.NewWriter(stdout)
	c.stdout = bw
	code := c.exit(c.main(rest))
	bw.Flush()
	return code
}

// exit prints an error as ipvsadm would and gives the exit status.
func (c *cli) exit(err error) int {
	if err == nil {
		return 0
	}
	if f, ok := c.stdout.(*bufio.Writer); ok {
		f.Flush()
	}
	var f *failure
	var u usageError
	switch {
	case errors.As(err, &f):
		if f.msg != "" {
			fmt.Fprintln(c.stderr, f.msg)
		}
		return f.code
	case errors.As(err, &u):
		fmt.Fprintf(c.stderr, "Try `%s -h' or '%s --help' for more information.\n", c.prog, c.prog)
		return 255
	}
	fmt.Fprintln(c.stderr, err)
	return 255
}

func (c *cli) api() *apiclient.Client {
	if c.client == nil {
		c.client = apiclient.NewUnixClient(c.socket)
	}
	return c.client
}

// main runs one command line; with no arguments it lists the table.
func (c *cli) main(args []string) error {
	if len(args) == 0 {
		return c.execute(&entry{cmd: cmdList}, false)
	}
	e, special, err := parse(args)
	if err != nil {
		return err
	}
	switch special {
	case "h":
		c.usage(c.stdout)
		return nil
	case "v":
		fmt.Fprintf(c.stdout, "govsadm %s\nipvsadm v1.31 compatible, IPVS v1.2.1 emulated by govs\n", buildinfo.Get())
		return nil
	}
	return c.execute(e, false)
}

// connError is ipvsadm's answer when it cannot reach IPVS.
func (c *cli) connError(err error) *failure {
	return fail(2, "Can't initialize ipvs: %v\nAre you sure that govs is running and serving its control socket %s?", err, c.socket)
}

// apiError turns an API error into ipvsadm's message for it (exit 255).
// dest says whether the command is about a real server.
func (c *cli) apiError(err error, dest bool) *failure {
	var e *apiclient.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail(255, "%v", err)
		}
		return c.connError(err)
	}
	switch e.Code {
	case apiclient.CodeServiceExists:
		return fail(255, "Service already exists")
	case apiclient.CodeNoService:
		if dest {
			return fail(255, "Service not defined")
		}
		return fail(255, "No such service")
	case apiclient.CodeDestExists:
		return fail(255, "Destination already exists")
	case apiclient.CodeNoDest:
		return fail(255, "No such destination")
	case apiclient.CodeInvalid:
		if e.Field == "scheduler" && strings.Contains(e.Message, "unknown scheduler") {
			return fail(255, "Scheduler or persistence engine not found")
		}
	}
	return fail(255, "%s", e.Message)
}

func (c *cli) usage(w io.Writer) {
	p := c.prog
	fmt.Fprintf(w, "govsadm %s (ipvsadm compatible administration of govs)\n", version)
	fmt.Fprintf(w, `Usage:
  %[1]s -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
  %[1]s -D virtual-service
  %[1]s -C
  %[1]s -R
  %[1]s -S [-n]
  %[1]s -a|e virtual-service -r server-address [options]
  %[1]s -d virtual-service -r server-address
  %[1]s -L|l [virtual-service] [options]
  %[1]s -Z [virtual-service]
  %[1]s --set tcp tcpfin udp
  %[1]s -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --set tcp tcpfin udp        set the timeouts of every virtual service (seconds, 0: unchanged)
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero
  --ipv6         -6                   fwmark entry uses IPv6

Options:
  --scheduler    -s scheduler         one of the govs schedulers (docs/schedulers.md),
                                      the default scheduler is wlc.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --masquerading -m                   masquerading (NAT)
  --fullnat                           full NAT (govs)
  --proxy                             userspace proxy (govs, the default)
  --gatewaying   -g                   gatewaying (direct routing, govs forwarding dr)
  --ipip         -i                   ipip encapsulation (tunneling): not supported by govs (needs IPIP)
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current connections (header only in govs)
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --agent                             output of the real servers' agent figures (govs)
  --discovery                         output of the discovery sources' status (govs)
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)

govs options:
  --socket PATH                       control socket (env %[3]s; default %[2]s as root;
                                      as another user their own govs's socket if it exists
                                      ($XDG_RUNTIME_DIR/govs.sock, else $TMPDIR/govs-UID/govs.sock),
                                      else %[2]s)
`, p, apiclient.DefaultSocket, apiclient.SocketEnv)
}
