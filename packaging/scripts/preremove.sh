#!/bin/sh
# Before removal (not before an upgrade): stop and disable the service.
set -e
case "$1" in
  remove|purge|0)
    if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
      systemctl disable --now govs >/dev/null 2>&1 || true
    fi ;;
esac
exit 0
