#!/bin/sh
# Seal a baked template: run once, after cloud-init's last stage, by the bake seed.
# Arguments: the packages that must be installed. Progress and failure go to the console and to
# STATUS_FILE (the host reads it through the guest agent); success ends in poweroff.
STATUS_FILE=/run/phoenix-bake.status
say() { echo "phoenix-bake: $*" | tee /dev/console "$STATUS_FILE" >/dev/null 2>&1; echo "phoenix-bake: $*"; }
failed() { say "failed: $*"; exit 1; }

say "waiting for cloud-init"
cloud-init status --wait >/dev/null 2>&1
rc=$?
# 0 done, 2 degraded (cloud-init >= 23.4, recoverable); 1 is an error.
[ "$rc" = 1 ] && failed "cloud-init reported an error (cloud-init status --long)"
for package in "$@"; do
    name=${package%%=*}
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' \
        || failed "package $name is not installed"
done
systemctl enable qemu-guest-agent >/dev/null 2>&1 || true
state=$(systemctl is-enabled qemu-guest-agent 2>/dev/null)
case "$state" in
    enabled|static|indirect|alias) ;;
    *) failed "qemu-guest-agent is not enabled (systemctl is-enabled: ${state:-unknown})" ;;
esac
say "sealing"
apt-get clean
rm -rf /var/lib/apt/lists/*
rm -f /etc/ssh/ssh_host_*
cloud-init clean --logs --machine-id || cloud-init clean --logs || failed "cloud-init clean failed"
# The network config cloud-init rendered for the bake VM (its MAC, its DHCP): each clone's
# cloud-init renders its own; a stale one could match nothing or the wrong NIC.
rm -f /etc/systemd/network/10-cloud-init-*.network /etc/netplan/50-cloud-init.yaml \
      /etc/network/interfaces.d/50-cloud-init /etc/network/interfaces.d/50-cloud-init.cfg
# An empty machine-id is the image state systemd expects: the next boot makes a new one.
rm -f /etc/machine-id
: > /etc/machine-id
[ -L /var/lib/dbus/machine-id ] || rm -f /var/lib/dbus/machine-id
rm -f "$0"
sync
say "sealed, powering off"
systemctl poweroff
