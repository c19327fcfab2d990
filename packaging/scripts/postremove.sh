#!/bin/sh
# After removal: forget the unit.
set -e
# Not when installing into another root (dpkg --root, image builds).
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
