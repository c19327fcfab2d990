// Command notice writes govs's NOTICE and THIRD_PARTY_LICENSES from the
// modules linked into the govs binaries: `go list -deps ./cmd/...` names
// them and the module cache holds their license and NOTICE files, so the
// lists follow go.mod without anyone keeping them by hand. `make notice`
// runs it; its test fails when the checked-in files are stale.
//
//	go run ./packaging/notice [-notice NOTICE] [-licenses THIRD_PARTY_LICENSES]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
)

func main() {
	noticePath := flag.String("notice", "NOTICE", "where to write the NOTICE file")
	licensesPath := flag.String("licenses", "THIRD_PARTY_LICENSES", "where to write the full license texts")
	flag.Parse()
	if err := run(*noticePath, *licensesPath); err != nil {
		fmt.Fprintln(os.Stderr, "notice:", err)
		os.Exit(1)
	}
}

func run(noticePath, licensesPath string) error {
	mods, err := listModules(".")
	if err != nil {
		return err
	}
	notice, licenses, err := render(mods)
	if err != nil {
		return err
	}
	if err := os.WriteFile(noticePath, notice, 0o644); err != nil {
		return err
	}
	return os.WriteFile(licensesPath, licenses, 0o644)
}

// goList runs the go command in dir; a var so that nothing else is needed
// to test render.
var goList = func(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	return cmd.Output()
}
