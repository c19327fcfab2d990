package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func execute(cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as the root command
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

const natConf = `global_defs {
    router_id lb1
}
virtual_server 192.0.2.10 80 {
    delay_loop 5
    lb_algo wrr
    lb_kind NAT
    real_server 10.0.0.11 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
`

func TestConvertAndCheck(t *testing.T) {
	dir := t.TempDir()
	ka := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(ka, []byte(natConf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := execute(convertCmd(), "-c", ka)
	if err != nil {
		t.Fatalf("convert: %v\n%s", err, errOut)
	}
	if want := ka + ":2:5: warning: router_id has no govs equivalent (ignored): keepalived sends no alert mail without both notification_email and smtp_server\n"; errOut != want {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
	for _, s := range []string{"# govs configuration converted from " + ka, "address: 192.0.2.10:80", "forwarding: nat", "scheduler: wrr", "type: tcp", "timeout: 2s"} {
		if !strings.Contains(out, s) {
			t.Errorf("YAML lacks %q:\n%s", s, out)
		}
	}

	// The YAML checks OK, and so does the keepalived.conf itself, whose
	// warnings go to stderr.
	yml := filepath.Join(dir, "govs.yaml")
	if err := os.WriteFile(yml, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{yml, ka} {
		out, errOut, err := execute(checkCmd(), "-c", file)
		if err != nil || out != "configuration OK\n" {
			t.Errorf("check %s: %v %q %q", file, err, out, errOut)
		}
	}
	// Converting the YAML again is refused.
	if _, _, err := execute(convertCmd(), "-c", yml); err == nil || !strings.Contains(err.Error(), "looks like govs YAML already") {
		t.Errorf("convert of YAML: %v", err)
	}
	// A forced format that does not fit fails with the file's errors.
	if _, errOut, err := execute(checkCmd(), "-c", ka, "--format", "yaml"); err == nil || !strings.Contains(errOut, ka+":") {
		t.Errorf("check --format yaml of a keepalived.conf: %v %q", err, errOut)
	}
}

// TestConvertDR: lb_kind DR converts to forwarding: dr, and check accepts
// the keepalived.conf; TUN stays refused at its word.
func TestConvertDR(t *testing.T) {
	ka := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(ka, []byte(strings.Replace(natConf, "lb_kind NAT", "lb_kind DR", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := execute(convertCmd(), "-c", ka)
	if err != nil || !strings.Contains(out, "    forwarding: dr\n") {
		t.Fatalf("convert of DR: err %v, stdout %q, stderr %q", err, out, errOut)
	}
	if _, errOut, err := execute(checkCmd(), "-c", ka); err != nil {
		t.Errorf("check of DR: %v %q", err, errOut)
	}
	if err := os.WriteFile(ka, []byte(strings.Replace(natConf, "lb_kind NAT", "lb_kind TUN", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = execute(convertCmd(), "-c", ka)
	var ec exitCode
	if !asExit(err, &ec) || ec != 1 || out != "" {
		t.Fatalf("convert of TUN: err %v, stdout %q", err, out)
	}
	if !strings.Contains(errOut, ka+":7:13: lb_kind TUN: govs has no IP tunnelling (it needs IPIP tunnels") {
		t.Errorf("stderr = %q", errOut)
	}
}
