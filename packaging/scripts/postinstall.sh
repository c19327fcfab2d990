#!/bin/sh
# After install or upgrade: let systemd see the unit. govs is not enabled or
# started on its own: an operator configures /etc/govs/govs.yaml first, then
#   systemctl enable --now govs
# An upgrade restarts a running govs so that it runs the new binary.
set -e
# Not when installing into another root (dpkg --root, image builds).
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  if systemctl is-active --quiet govs; then
    systemctl try-restart govs || true
  fi
fi
exit 0
