"""`python -m phoenix wait VMID [--file FILE] [--timeout S]`: wait for one VM as the resource does.

The VM's node and deadline come from the config file; the endpoint and token from
PROXMOX_VE_ENDPOINT, PROXMOX_VE_API_TOKEN (and PROXMOX_VE_INSECURE). Progress goes to stderr,
the outputs to stdout (`--json` for scripts: a JSON object whether the VM is ready or not).
Exit 0: ready; 1: not ready, with the stage and the reason; 2: the wait could not start (config,
unknown vmid, option, endpoint or token).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from phoenix.cli_support import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_file_argument,
    add_vmid_argument,
    fail,
    load_vm_or_report,
)
from phoenix.cloudinit.first_boot import first_boot_hint
from phoenix.readiness.pve import PveCredentials, PveTransport
from phoenix.readiness.transport import TransportError
from phoenix.readiness.wait import ReadinessError, ReadyResult, wait_for_ready

EXIT_READY, EXIT_NOT_READY = EXIT_OK, EXIT_FAILED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_vmid_argument(parser)
    add_file_argument(parser)
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="seconds to wait (default: the VM's guest_agent.timeout_s)")
    parser.add_argument("--no-cloud-init", action="store_true",
                        help="only wait for the guest agent, not for cloud-init")
    parser.add_argument("--json", action="store_true", help="print the outputs as JSON")


def run(args: argparse.Namespace) -> int:
    vm = load_vm_or_report(args.file, args.vmid)
    if isinstance(vm, int):
        return vm
    timeout_s = args.timeout if args.timeout is not None else float(vm.guest_agent.timeout_s)
    if not timeout_s > 0:
        return fail(f"--timeout must be a number of seconds > 0, not {timeout_s:g}", EXIT_USAGE)
    try:
        credentials = PveCredentials.from_env()
        credentials.check()  # a malformed endpoint or token: exit 2 before any call
        transport = PveTransport(credentials, node=vm.node, vmid=vm.vmid)
    except TransportError as exc:  # missing or malformed endpoint/token: nothing was tried
        return fail(exc, EXIT_USAGE)

    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    try:
        result = wait_for_ready(transport, timeout_s=timeout_s, log=log,
                                wait_for_cloud_init=not args.no_cloud_init,
                                first_boot_hint=first_boot_hint(vm))
    except ReadinessError as exc:
        if args.json:
            print(json.dumps({"vmid": vm.vmid, "name": vm.name, "node": vm.node, "ready": False,
                              "stage": exc.stage, "error": exc.message,
                              "elapsed_s": round(exc.elapsed_s, 1)}, indent=2))
        return fail(f"VM {vm.vmid} ({vm.name}) not ready (stage: {exc.stage}): {exc.message}", EXIT_NOT_READY)
    finally:
        transport.close()
    print_result(vm.vmid, vm.name, vm.node, result, as_json=args.json)
    return EXIT_READY


def print_result(vmid: int, name: str, node: str, result: ReadyResult, *, as_json: bool) -> None:
    outputs = result.to_outputs()
    if as_json:
        print(json.dumps({"vmid": vmid, "name": name, "node": node, "ready": True, **outputs}, indent=2))
        return
    print(f"VM {vmid} ({name}) on {node} is ready")
    print(f"  seconds_to_agent: {result.seconds_to_agent}")
    print(f"  seconds_to_cloud_init: {result.seconds_to_cloud_init}")
    print(f"  cloud_init_status: {result.cloud_init_status}")
    print(f"  ipv4_addresses: {', '.join(result.ipv4_addresses) or '(none)'}")
    print("  ssh_host_keys:" + ("" if result.ssh_host_keys else " (none)"))
    for key in result.ssh_host_keys:
        print(f"    {key}")
    for warning in result.warnings:
        print(f"  warning: {warning}")
