"""Boot a VM's first boot locally in qemu: image, NoCloud seed, qemu process, report."""
