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
say "trimming first boot"
# Every clone's first boot, cut to what a Phoenix VM needs (docs/templates.md, "Faster first boot"):
# 1. The agent starts as soon as its virtio port exists (udev pulls the unit in), not after
#    basic.target: by default it waits for cloud-init's local and network stages (sysinit.target),
#    which is most of the time to agent. It needs nothing of them: a char device and /run.
mkdir -p /etc/systemd/system/qemu-guest-agent.service.d
cat > /etc/systemd/system/qemu-guest-agent.service.d/10-phoenix-early.conf <<'UNIT'
# Written by Phoenix Hypervisor's template bake: start with the virtio port, not after sysinit.
[Unit]
DefaultDependencies=no
After=local-fs.target systemd-journald.socket
Before=shutdown.target
Conflicts=shutdown.target
UNIT
# 2. cloud-init looks only for what a Proxmox VE cloud-init drive is: NoCloud (the default
#    citype) or ConfigDrive (configdrive2). No None fallback: a clone without its drive says so
#    (cloud-init disabled) instead of finishing "done" with nothing applied.
mkdir -p /etc/cloud/cloud.cfg.d
printf '%s\n' '# Written by Phoenix Hypervisor: a Proxmox VE cloud-init drive is one of these.' \
    'datasource_list: [NoCloud, ConfigDrive]' > /etc/cloud/cloud.cfg.d/90-phoenix-datasource.cfg
# 3. apt's daily timers never catch up at boot (they still run daily): a clone's first boot is
#    not raced by apt-daily for the dpkg lock and the CPU. No such timers: nothing to do.
for timer in apt-daily.timer apt-daily-upgrade.timer; do
    [ -e "/lib/systemd/system/$timer" ] || [ -e "/usr/lib/systemd/system/$timer" ] || continue
    mkdir -p "/etc/systemd/system/$timer.d"
    printf '[Timer]\nPersistent=false\n' > "/etc/systemd/system/$timer.d/10-phoenix.conf"
done
rm -f /var/lib/systemd/timers/stamp-apt-daily.timer /var/lib/systemd/timers/stamp-apt-daily-upgrade.timer
systemctl daemon-reload
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
