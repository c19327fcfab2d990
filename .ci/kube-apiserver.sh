#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy into a cache outside the
# clone, keyed by version, so a machine builds it once (about 11 CPU-minutes,
# ~100 MB). The kubernetes discovery tests (test/discovery_k8s_test.go) find
# it at $GOVS_CI_CACHE/kube-apiserver-$VERSION.
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod
# requires the staging modules (k8s.io/api, k8s.io/client-go, ...) at
# v0.0.0 and replaces them with ./staging paths that do not apply to a
# dependent. A throwaway module pins each of them to the matching v0.X.Y
# published from that staging tree.
set -euo pipefail
version="${KUBE_VERSION:-v1.37.2}"
cache="${GOVS_CI_CACHE:-/var/cache/govs-ci}"
out="$cache/kube-apiserver-$version"
if [ -x "$out" ]; then
  echo "kube-apiserver $version: cached at $out"
  exit 0
fi
mkdir -p "$cache"
staging="v0.${version#v1.}"
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
go mod init govs-ci/kube-apiserver >/dev/null 2>&1
kmod="$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kmod"); do
  case "$m" in k8s.io/sample-cli-plugin|k8s.io/sample-controller) continue ;; esac
  go mod edit -replace "$m=$m@$staging"
done
go mod edit -require "k8s.io/kubernetes@$version"
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
go mod tidy >/dev/null
echo "kube-apiserver $version: building (slow: about 11 CPU-minutes)"
nice -n 19 go build -trimpath -ldflags=-s -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$out.tmp" "$out"
echo "kube-apiserver $version: built at $out"
