# govs: build, test, install, package.
#   make           build bin/govs and bin/govsadm, stamped with the release (git describe)
#   make test      vet, staticcheck, unit tests with -race, end-to-end tests
#   make demo      run the demo
#   make fuzz      run every fuzz target for FUZZTIME (default 30s each)
#   make bench     scheduler/codec micro-benchmarks, then bench/run.sh
#   make install   binaries, man pages, completions, systemd unit, Prometheus rules and
#                  Grafana dashboard (PREFIX/share/govs), /etc/govs/govs.yaml (kept if
#                  present) under DESTDIR/PREFIX (default /usr/local)
#   make deb rpm   packages in dist/ (nfpm, pinned in packaging/tools/go.mod)
#   make image     the container image govs:VERSION (Dockerfile, FROM scratch)
#   make notice    regenerate NOTICE and THIRD_PARTY_LICENSES from go.mod

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

# What `govs version` prints. A tag vX.Y.Z gives releases; SOURCE_DATE_EPOCH
# makes the date reproducible.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u $(if $(SOURCE_DATE_EPOCH),-d @$(SOURCE_DATE_EPOCH)) +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO  := github.com/govs-lb/govs/internal/buildinfo
LDFLAGS    := -s -w -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(BUILD_DATE)
# Static binaries: they run on any Linux and in a FROM scratch image.
CGO_ENABLED ?= 0
GOARCH     ?= $(shell $(GO) env GOARCH)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/govs
DATADIR    ?= $(PREFIX)/share
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
DESTDIR    ?=

# packaging/nfpm.yaml reads the staged man pages and completions from build/.
BUILD      := build
DIST       ?= dist
IMAGE      ?= govs
DOCKER     ?= docker

.PHONY: all build test vet staticcheck unit e2e demo fuzz bench clean man completions install uninstall \
	notice deb rpm image

all: build

build:
	CGO_ENABLED=$(CGO_ENABLED) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

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
	$(GO) test -race -count=1 -timeout 30m ./...

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

# Man pages: govs's from its command definitions (the hidden `govs man`),
# govsadm's from docs/govsadm.md.
man: build
	rm -rf $(BUILD)/man && mkdir -p $(BUILD)/man
	bin/govs man $(BUILD)/man >/dev/null
	{ printf '%% GOVSADM 8 "" "govs $(VERSION)" "govs manual"\n\n'; cat docs/govsadm.md; } > $(BUILD)/govsadm.md
	$(GO) run github.com/cpuguy83/go-md2man/v2 -in $(BUILD)/govsadm.md -out $(BUILD)/man/govsadm.8
	gzip -9nf $(BUILD)/man/*.[18]

completions: build
	mkdir -p $(BUILD)/completion
	bin/govs completion bash > $(BUILD)/completion/govs
	bin/govs completion zsh  > $(BUILD)/completion/_govs
	bin/govs completion fish > $(BUILD)/completion/govs.fish

# The configuration is installed only where there is none: an operator's
# file is never overwritten.
install: build man completions
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/govs \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d \
	  $(DESTDIR)$(DATADIR)/govs/prometheus $(DESTDIR)$(DATADIR)/govs/grafana
	install -m 0755 bin/govs bin/govsadm $(DESTDIR)$(BINDIR)/
	install -m 0644 $(BUILD)/man/*.1.gz $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(BUILD)/man/*.8.gz $(DESTDIR)$(MANDIR)/man8/
	sed -e 's|/usr/bin/govs|$(BINDIR)/govs|g' -e 's|/etc/govs/|$(SYSCONFDIR)/govs/|g' \
	  packaging/systemd/govs.service > $(DESTDIR)$(UNITDIR)/govs.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/govs.service
	install -m 0644 $(BUILD)/completion/govs $(DESTDIR)$(DATADIR)/bash-completion/completions/govs
	install -m 0644 $(BUILD)/completion/_govs $(DESTDIR)$(DATADIR)/zsh/site-functions/_govs
	install -m 0644 $(BUILD)/completion/govs.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/govs.fish
	install -m 0644 docs/prometheus/govs-rules.yaml docs/prometheus/govs-rules.test.yaml \
	  $(DESTDIR)$(DATADIR)/govs/prometheus/
	install -m 0644 docs/grafana-dashboard.json $(DESTDIR)$(DATADIR)/govs/grafana/govs-dashboard.json
	install -m 0644 README.md CHANGELOG.md LICENSE NOTICE THIRD_PARTY_LICENSES $(DESTDIR)$(DOCDIR)/
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/govs/govs.yaml ]; then \
	  echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/govs/govs.yaml"; \
	else \
	  install -m 0644 packaging/govs.yaml $(DESTDIR)$(SYSCONFDIR)/govs/govs.yaml; \
	fi

# Everything install put there but the configuration.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/govs $(DESTDIR)$(BINDIR)/govsadm $(DESTDIR)$(MANDIR)/man1/govs*.1.gz \
	  $(DESTDIR)$(MANDIR)/man8/govsadm.8.gz $(DESTDIR)$(UNITDIR)/govs.service \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions/govs $(DESTDIR)$(DATADIR)/zsh/site-functions/_govs \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/govs.fish
	rm -rf $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)/govs

notice:
	$(GO) run ./packaging/notice -notice NOTICE -licenses THIRD_PARTY_LICENSES

# nfpm is built from packaging/tools/go.mod, which pins it apart from
# govs's own dependencies; the Go build cache makes later builds instant.
$(BUILD)/tools/nfpm: packaging/tools/go.mod packaging/tools/go.sum
	cd packaging/tools && $(GO) build -o $(CURDIR)/$(BUILD)/tools/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm

PKG_VERSION = $(shell packaging/pkgversion.sh '$(VERSION)')

deb rpm: build man completions $(BUILD)/tools/nfpm
	mkdir -p $(DIST)
	GOARCH=$(GOARCH) PKG_VERSION=$(PKG_VERSION) \
	  $(BUILD)/tools/nfpm package --config packaging/nfpm.yaml --packager $@ --target $(DIST)/

# The image's context is staged in $(BUILD)/image: FROM scratch needs no
# pull, so this works offline.
image: build
	rm -rf $(BUILD)/image && mkdir -p $(BUILD)/image/run/govs
	cp bin/govs bin/govsadm packaging/govs.yaml LICENSE NOTICE THIRD_PARTY_LICENSES $(BUILD)/image/
	$(DOCKER) build -f Dockerfile -t $(IMAGE):$(VERSION) -t $(IMAGE):latest $(BUILD)/image

clean:
	rm -rf bin bench/out $(BUILD) $(DIST)
