"""Baking a template on Proxmox VE: start once with the bake seed, wait for the guest to seal
itself and power off, convert to a template; roll the disk back when anything fails."""
