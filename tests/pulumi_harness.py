"""Run the Pulumi program under Pulumi's own mock engine and record every registration.

The recorder subclasses pulumi's MockMonitor so tests see the full RegisterResource request:
type, name, inputs, parent, dependencies, property dependencies and options (protect,
deleteBeforeReplace, replaceOnChanges, ignoreChanges, replaceWith, deletedWith). No engine is re-implemented here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from phoenix.config import Config
from phoenix.readiness.provider import as_built_ip
from phoenix.resources.settings import read_settings
from phoenix.resources.stack import build_stack

NODE_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC3yqQUgijZbO8zW4N+/9STP1+YVY4y8HaMpnZPHOVFm root@pve"


GUEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/jV6eMjJ2/+eGwf2WIdbYUJKgQRfNihMtYdvx9RyyF root@guest"
READY_TYPE = "pulumi-python:dynamic/phoenix:GuestAgentReady"


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    delete_before_replace: bool
    replace_on_changes: list[str]
    ignore_changes: list[str]
    additional_secret_outputs: list[str]
    provider: str
    secret_inputs: set[str] = field(default_factory=set)
    # The request's `object` as the program serialised it (secret wrappers, unknowns, and the
    # dynamic provider's `__provider` blob included): see provider_inputs().
    wire_inputs: dict[str, Any] = field(default_factory=dict)
    replace_with: list[str] = field(default_factory=list)  # urns (ResourceOptions.replace_with)

    def provider_inputs(self) -> dict[str, Any]:
        """What the engine sends a provider that does not accept secrets (dynamic providers):
        the registered inputs with secret wrappers removed, unknowns as the wire's UNKNOWN
        string, `__provider` included. Feed it to tests/plugin_process.py."""
        return _unwrap(self.wire_inputs)
    replace_with: list[str] = field(default_factory=list)  # URNs whose replacement replaces this
    deleted_with: str = ""  # URN whose deletion makes this one's Delete a no-op
    retain_on_delete: bool = False


class RecordingMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        # FileLegacy ids look like PVE volume ids; everything else gets a recognisable mock id.
        state = dict(args.inputs)
        if args.typ == READY_TYPE:  # what the provider returns once the guest is ready
            state.update(seconds_to_agent=12.5, seconds_to_cloud_init=40.0, cloud_init_status="done",
                         ipv4_addresses=[], ssh_host_keys=[GUEST_HOST_KEY], warnings=[])
            # the as-built facts, as GuestAgentReadyProvider.wait records them
            state.update(ip=as_built_ip(args.inputs.get("expected_ip"), []),
                         built_username=args.inputs.get("username"))
        if args.typ == "proxmoxve:index/vmLegacy:VmLegacy":
            # bpg reads every disk's volume back (`path_in_datastore`); PVE names a new volume
            # vm-<vmid>-disk-<n> on LVM/ZFS. Disks attached by path keep theirs.
            vmid = int(args.inputs["vmId"])
            state["disks"] = [{**d, "pathInDatastore": d.get("pathInDatastore") or f"vm-{vmid}-disk-{n}"}
                              for n, d in enumerate(args.inputs.get("disks") or [])]
        if args.typ == "proxmoxve:index/fileLegacy:FileLegacy":
            rid = f"{args.inputs['datastoreId']}:snippets/{args.inputs['sourceRaw']['fileName']}"
        else:
            rid = f"{args.name}-id"
        return [rid, state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):  # the gRPC method name
        response = super().RegisterResource(request)
        raw = rpc.deserialize_properties(request.object, keep_unknowns=True)
        secret_inputs = {k for k, v in raw.items() if _is_secret(v)}
        inputs = {k: _unwrap(v) for k, v in raw.items()}
        self.registrations.append(Registration(
            type=request.type,
            name=request.name,
            urn=response.urn,
            inputs=inputs,
            parent=request.parent,
            dependencies=list(request.dependencies),
            property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
            protect=request.protect,
            delete_before_replace=request.deleteBeforeReplace,
            replace_on_changes=list(request.replaceOnChanges),
            ignore_changes=list(request.ignoreChanges),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            provider=request.provider,
            secret_inputs=secret_inputs,
            wire_inputs=json_format.MessageToDict(request.object),
            replace_with=list(request.replace_with),
            deleted_with=request.deletedWith,
            retain_on_delete=request.retainOnDelete,
        ))
        return response


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def _unwrap(value: Any) -> Any:
    """Plain values with the secret markers removed (which keys were secret is kept apart)."""
    if _is_secret(value):
        return _unwrap(value["value"])
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


@dataclass
class ProgramRun:
    registrations: list[Registration]
    outputs: dict[str, Any]

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def named(self, name: str) -> Registration:
        (match,) = [r for r in self.registrations if r.name == name]
        return match

    def by_urn(self, urn: str) -> Registration:
        (match,) = [r for r in self.registrations if r.urn == urn]
        return match


def fresh_mocks(mocks: pulumi.runtime.Mocks, monitor: RecordingMonitor, *, stack: str, preview: bool = False) -> None:
    """set_mocks with a new root Stack resource (set_mocks keeps an earlier test's root)."""
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="phoenix-hypervisor", stack=stack, preview=preview, monitor=monitor)


# The deployable example (conftest.py example_config_path sets it for the session): the shipped
# file has a key placeholder that the program refuses.
EXAMPLE_CONFIG_FILE: str | None = None


def stack_config(private_key: str, **extra: str) -> tuple[dict[str, str], list[str]]:
    config = {
        **({"phoenix-hypervisor:vmConfigFile": EXAMPLE_CONFIG_FILE} if EXAMPLE_CONFIG_FILE else {}),
        "proxmoxve:endpoint": "https://pve.example.test:8006/",
        "proxmoxve:apiToken": "root@pam!phoenix=00000000-1111-2222-3333-444444444444",
        "proxmoxve:insecure": "true",
        "phoenix-hypervisor:sshPrivateKey": private_key,
        "phoenix-hypervisor:nodes": json.dumps({"pve": {"address": "192.0.2.10", "hostKeys": [NODE_HOST_KEY]}}),
        **extra,
    }
    return config, ["proxmoxve:apiToken", "phoenix-hypervisor:sshPrivateKey"]


def run_program(config: Config, private_key: str, *, preview: bool = False, **extra: str) -> ProgramRun:
    """Build the stack for `config` under mocks; return every registration and the outputs."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    fresh_mocks(mocks, monitor, stack="test", preview=preview)
    values, secret_keys = stack_config(private_key, **extra)
    pulumi.runtime.set_all_config(values, secret_keys)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program():
        stack = build_stack(config, read_settings())
        return pulumi.Output.from_input(stack.outputs).apply(outputs.update)

    program()
    return ProgramRun(monitor.registrations, outputs)
