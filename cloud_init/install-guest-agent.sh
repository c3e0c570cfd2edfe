# Install and start qemu-guest-agent at first boot, before and independent of the VM's own
# packages: whatever they do, the agent answers and readiness can read why first boot failed.
# Runs from cloud-init's bootcmd (init stage, before sysinit.target) through `cloud-init-per
# instance`, so once per instance. It never fails the boot: every outcome is logged as a
# "phoenix: guest agent:" line on the console and in /var/log/cloud-init-output.log.
exec </dev/null  # nothing may wait for an answer on stdin
say() { echo "phoenix: guest agent: $*"; }
if command -v qemu-ga >/dev/null 2>&1; then
  say "already installed"
else
  export DEBIAN_FRONTEND=noninteractive
  # Wait for an apt lock held by another apt (unattended-upgrades on Ubuntu images) instead of
  # failing; give up on an unreachable mirror in bounded time; never ask about config files.
  set -- -q -o DPkg::Lock::Timeout=300 -o Acquire::http::Timeout=20 \
    -o Acquire::https::Timeout=20 -o Acquire::Retries=2 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
  # A package's own `systemctl start` would wait for sysinit.target, which waits for this
  # script: forbid service starts during the install (policy-rc.d, honoured by
  # deb-systemd-invoke and invoke-rc.d) and start the agent without blocking below.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  say "installing qemu-guest-agent from the package mirror (apt-get update, install) ..."
  timeout 300 apt-get "$@" update || say "apt-get update failed (exit $?): is the package mirror reachable (gateway, DNS, proxy)?"
  if timeout 600 apt-get "$@" install -y --no-install-recommends qemu-guest-agent; then
    say "installed"
  else
    say "FAILED to install qemu-guest-agent (exit $?): no agent, so nothing can report this boot's outcome; check the VM's route and DNS to its package mirror"
  fi
fi
systemctl enable qemu-guest-agent >/dev/null 2>&1 || true  # a static unit on Debian/Ubuntu
systemctl start --no-block qemu-guest-agent || say "could not start qemu-guest-agent"
exit 0
