#!/bin/sh
# Prints the package version (deb and rpm) for a `git describe --tags
# --always --dirty` release string given as $1:
#   v1.2.3                 -> 1.2.3
#   v1.2.3-4-gabcdef-dirty -> 1.2.3+4.gabcdef.dirty   (sorts after 1.2.3)
#   abcdef (no tag yet)    -> 0.0.0+git.abcdef
#   dev                    -> 0.0.0+dev
set -eu
v=${1:-dev}
case "$v" in
v[0-9]*)
  v=${v#v}
  base=${v%%-*}
  rest=${v#"$base"}
  rest=$(printf '%s' "${rest#-}" | tr -- '-' '.')
  if [ -n "$rest" ]; then echo "$base+$rest"; else echo "$base"; fi ;;
dev) echo "0.0.0+dev" ;;
*) echo "0.0.0+git.$(printf '%s' "$v" | tr -- '-' '.')" ;;
esac
