"""Readiness: a bounded wait for a VM's guest agent and cloud-init that says why it failed.

- `transport`: the `GuestTransport` interface and its typed errors.
- `pve`: the transport over the Proxmox VE API (proxmoxer).
- `qga`: the transport straight over a QEMU guest-agent unix socket.
- `wait`: `wait_for_ready(transport, timeout_s=..., log=...) -> ReadyResult`.
- `provider`: the Pulumi dynamic resource `GuestAgentReady`.
- `cli`: `python -m phoenix wait VMID`.

Importing this package imports nothing heavy (no pulumi, no proxmoxer): the localboot tests use
`qga` and `wait` alone.
"""
