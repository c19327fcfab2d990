# govs: build, test and benchmark.
#   make           build bin/govs (and bin/govsadm once it exists)
#   make test      vet, staticcheck, unit tests with -race, end-to-end tests
#   make demo      run the demo
#   make fuzz      run every fuzz target for FUZZTIME (default 30s each)
#   make bench     scheduler/codec micro-benchmarks, then bench/run.sh

GO        ?= go
FUZZTIME  ?= 30s
# Go minimises every input that finds new coverage for up to 60s by default,
# and a quadratic pass over a few hundred bytes at a YAML round trip per try
# (FuzzImport) takes all of that: the target then barely fuzzes. 5s keeps the
# cheap minimisation passes; a saved crasher can be minimised later with
# go test -run 'FuzzX/NAME' or -fuzzminimizetime 60s.
FUZZMINIMIZETIME ?= 5s
STATICCHECK_VERSION ?= v0.8.2
export PATH := $(PATH):$(shell $(GO) env GOPATH)/bin

.PHONY: all build test vet staticcheck unit e2e demo fuzz bench clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

test: vet staticcheck unit

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# staticcheck is fetched through the Go module proxy on first use.
staticcheck:
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

# Unit and end-to-end tests in one run (test/ builds the real binaries).
# Tests that need root and network namespaces skip with a message otherwise.
unit:
	$(GO) test -race -count=1 -timeout 15m ./...

demo:
	$(GO) run ./cmd/govs demo

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run XXX -bench . -benchmem ./internal/sched/ ./internal/persist/ ./internal/vrrp/
	bash bench/run.sh

clean:
	rm -rf bin bench/out
