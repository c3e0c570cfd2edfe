set -u
# Phoenix data disks (docs/data.md). Runs at EVERY boot from cloud-init's bootcmd (init stage:
# before users, packages, runcmd, and so before readiness and the features). Arguments, after
# $0: SERIAL FILESYSTEM MOUNT, once per disk; they are data (argv), never code.
# For each disk:
#  - find it by the serial PVE gives it (/dev/disk/by-id, exact names; never /dev/sdb);
#  - make a filesystem ONLY if `blkid -p` finds no signature at all on the whole disk (exit 2):
#    a disk with a filesystem, a partition table or anything else is never formatted;
#  - mount it by filesystem UUID at MOUNT through an fstab line with `nofail` (so every later
#    boot mounts it in local-fs.target, and a missing disk does not stop the boot);
#  - grow the filesystem to the disk (a larger size_gb; no-op otherwise).
# Exits non-zero if any disk could not be mounted: it is bootcmd's last command, so cloud-init
# then reports an error and readiness fails with this script's lines as the evidence.
rc=0
say() { echo "phoenix: data disk $*" >&2; }
find_disk() {
  for link in "/dev/disk/by-id/virtio-$1" "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_$1" \
              "/dev/disk/by-id/ata-QEMU_HARDDISK_$1"; do
    if [ -b "$link" ]; then readlink -f "$link"; return 0; fi
  done
  return 1
}
while [ "$#" -ge 3 ]; do
  serial=$1 fs=$2 mnt=$3
  shift 3
  dev=
  i=0
  while [ "$i" -lt 30 ]; do
    dev=$(find_disk "$serial") && break
    udevadm settle -t 2 >/dev/null 2>&1 || sleep 1
    i=$((i + 1))
  done
  if [ -z "$dev" ]; then
    say "$serial: no disk with this serial after 30 s (is it attached to the VM?)"; rc=1; continue
  fi
  blkid -p "$dev" >/dev/null 2>&1
  probe=$?
  if [ "$probe" -eq 2 ]; then
    say "$serial: $dev is blank: making $fs"
    case "$fs" in
      ext4) mkfs.ext4 -q "$dev" ;;
      xfs) mkfs.xfs -q "$dev" ;;
      *) false ;;
    esac || { say "$serial: mkfs.$fs on $dev failed (xfs needs xfsprogs in the image)"; rc=1; continue; }
  elif [ "$probe" -ne 0 ]; then
    say "$serial: blkid -p $dev failed (exit $probe): not touching it"; rc=1; continue
  fi
  uuid=$(blkid -p -o value -s UUID "$dev" 2>/dev/null)
  found=$(blkid -p -o value -s TYPE "$dev" 2>/dev/null)
  if [ -z "$uuid" ] || [ "$found" != "$fs" ]; then
    say "$serial: $dev holds '${found:-no filesystem}' (a partition table?), not $fs: not formatting it, not mounting it"
    rc=1; continue
  fi
  tag="# phoenix-data $serial"
  grep -v -F -e " $tag" /etc/fstab > /etc/fstab.phoenix
  echo "UUID=$uuid $mnt $fs defaults,nofail 0 2 $tag" >> /etc/fstab.phoenix
  cat /etc/fstab.phoenix > /etc/fstab && rm -f /etc/fstab.phoenix
  mkdir -p "$mnt"
  if ! mountpoint -q "$mnt"; then
    mount "$mnt" || { say "$serial: mount UUID=$uuid at $mnt failed"; rc=1; continue; }
  fi
  case "$fs" in
    ext4) resize2fs "$dev" >/dev/null 2>&1 ;;
    xfs) xfs_growfs "$mnt" >/dev/null 2>&1 ;;
  esac
  say "$serial: UUID=$uuid mounted at $mnt"
done
exit "$rc"
