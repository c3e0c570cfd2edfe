"""`GuestAgentReady`: the Pulumi dynamic resource that waits until a VM is ready.

    ready = GuestAgentReady(
        f"{name}-ready",
        GuestAgentReadyArgs(vmid=8001, node="pve", timeout_s=900, vm_resource_id=vm.id),
        opts=ResourceOptions(parent=component, depends_on=[vm]),
    )
    ready.ssh_host_keys  # Output[list[str]]: pin these, never trust a host key on first use

Type token: `pulumi-python:dynamic/phoenix:GuestAgentReady`.

Lifecycle:
- create: waits (`phoenix.readiness.wait.wait_for_ready`); on failure the update fails with the
  stage and the evidence, and the resource is not created, so the next `pulumi up` waits again.
- replaced with the VM: the program registers it with `replace_with=[vm]` and `deleted_with=vm`
  (phoenix.resources.vm.follows_vm), so a rebuilt VM is waited for again although its id (the
  vmid) does not change. A changed `vmid` or `node` input also replaces it. Other input changes
  are plain updates.
- as built: create records `ip` (the configured `expected_ip` if the agent reports it, else the
  agent's first address) and `built_username`. An update never changes them: the VM keeps the
  address and user it was built with until it is rebuilt; an edit of either logs a warning
  naming the VM and the config field. Features connect to these.
- update: no wait, except when `provider_version` changed (the waiting logic changed: check the
  VM once more with it; a ready VM answers in a second or two).
- read (refresh): one quick look, never a wait: a VM that no longer exists removes this
  resource from the state; a VM whose agent answers gets its addresses and host keys re-read;
  anything else keeps the recorded outputs.
- delete: nothing to undo.

Credentials, per field, first found wins:
1. the `endpoint` / `api_token` / `insecure` inputs (`api_token` is sent as a secret: encrypted
   in the state's inputs, never echoed into the outputs);
2. the stack config `proxmoxve:endpoint`, `proxmoxve:apiToken`, `proxmoxve:insecure`, which a
   Python dynamic provider receives in `configure()` (pulumi >= 3.139, pulumi/pulumi#17673: the
   engine passes the whole stack config, namespaces kept, secrets decrypted) - this way the token
   is in no resource state at all, so it is the recommended one;
3. the environment: PROXMOX_VE_ENDPOINT, PROXMOX_VE_API_TOKEN, PROXMOX_VE_INSECURE.

Progress lines go through `pulumi.log.info`; inside the dynamic-provider process the SDK has no
engine connection (pulumi/pulumi#6065) and writes them to stderr, which the CLI shows.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    UpdateResult,
)

from phoenix.dynamic_inputs import is_unknown
from phoenix.readiness.pve import (
    PveCredentials,
    PveTransport,
)
from phoenix.readiness.stack_credentials import MissingCredentials, PveStackProvider
from phoenix.readiness.transport import (
    AgentCommandError,
    AgentNotRunningError,
    TransientError,
    TransportError,
    VmNotFoundError,
    run_command,
)
from phoenix.readiness.wait import (
    DEFAULT_TIMEOUT_S,
    HOST_KEYS_ARGV,
    ReadinessError,
    ipv4_addresses,
    parse_host_keys,
    wait_for_ready,
)

# Bump when the waiting logic or the outputs change: every GuestAgentReady then shows a diff
# and its update checks the VM again with the new logic.
PROVIDER_VERSION = "1"

REPLACE_KEYS = ("vmid", "vm_resource_id")
UPDATE_KEYS = ("node", "timeout_s", "wait_for_cloud_init", "endpoint", "insecure", "provider_version",
               "expected_ip", "username")
# `ip` and `built_username` are the as-built facts (see as_built): what the VM really has until
# it is rebuilt, whatever the config says now.
OUTPUT_KEYS = ("seconds_to_agent", "seconds_to_cloud_init", "cloud_init_status",
               "ipv4_addresses", "ssh_host_keys", "warnings", "ip", "built_username")
# Config fields behind the as-built inputs, for the warnings.
AS_BUILT_FIELDS = {"expected_ip": ("network_config.ip", "ip"),
                   "username": ("user.name", "built_username")}
AS_BUILT_OUTPUTS = tuple(out for _, out in AS_BUILT_FIELDS.values())
READ_TIMEOUT_S = 15.0


class GuestAgentNotReady(Exception):
    """Raised by create/update: the VM did not become ready. No secret in the message."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"[stage: {stage}] {message}")
        self.stage = stage


@dataclass
class GuestAgentReadyArgs:
    vmid: pulumi.Input[int]
    node: pulumi.Input[str]
    timeout_s: pulumi.Input[float] = DEFAULT_TIMEOUT_S
    # The VM resource's id: when the VM is replaced it changes, and so the wait runs again.
    vm_resource_id: pulumi.Input[str] | None = None
    # The VM's configured address and user: recorded at create as the as-built facts, which
    # later config edits do not change (they reach the VM only when it is rebuilt).
    expected_ip: pulumi.Input[str] | None = None
    username: pulumi.Input[str] | None = None
    wait_for_cloud_init: pulumi.Input[bool] = True
    endpoint: pulumi.Input[str] | None = None  # default: proxmoxve:endpoint, then the env
    api_token: pulumi.Input[str] | None = None  # default: proxmoxve:apiToken, then the env
    insecure: pulumi.Input[bool] | None = None  # default: proxmoxve:insecure, then the env
    # What this VM's first boot needs for its agent to answer and the likely causes when it does
    # not (phoenix.cloudinit.first_boot_hint): the agent-timeout message ends with it. Not part
    # of the diff: it only words a failure, so editing it never re-waits.
    first_boot_hint: pulumi.Input[str] | None = None
    provider_version: str = PROVIDER_VERSION


def _log(line: str) -> None:
    try:
        pulumi.log.info(line)
    except Exception:  # noqa: BLE001 - a log line must never fail the wait
        print(line, file=sys.stderr, flush=True)


def _warn(line: str) -> None:
    try:
        pulumi.log.warn(line)
    except Exception:  # noqa: BLE001 - a log line must never fail the update
        print(f"warning: {line}", file=sys.stderr, flush=True)


def as_built_ip(expected: Any, agent_addresses: Any) -> str | None:
    """The address features use: the configured one when the guest reports it, else the first
    address the agent reports (the VM came up with another one), else the configured one."""
    addresses = [str(a) for a in (agent_addresses or [])]
    if expected and (str(expected) in addresses or not addresses):
        return str(expected)
    return addresses[0] if addresses else None


class GuestAgentReadyProvider(PveStackProvider):
    """The CRUD of GuestAgentReady. Pickled by reference: keep it in this module, keep its name.

    Nothing is stored on `self` at construction (the pickled object stays empty); configure()
    keeps the stack's Proxmox settings on the unpickled copy inside the provider process.
    """

    # ------------------------------------------------------------------ credentials

    def credentials(self, props: dict[str, Any]) -> PveCredentials:
        try:
            return self.resolve_credentials(props)
        except MissingCredentials as exc:
            raise GuestAgentNotReady("vm-status", str(exc)) from None

    def transport(self, props: dict[str, Any]) -> PveTransport:
        try:
            return PveTransport(self.credentials(props), node=str(props["node"]),
                                vmid=int(props["vmid"]))
        except TransportError as exc:
            raise GuestAgentNotReady("vm-status", str(exc)) from None

    # ------------------------------------------------------------------ CRUD

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        vmid = news.get("vmid")
        if not is_unknown(vmid) and (not isinstance(vmid, (int, float)) or int(vmid) != vmid
                                      or not 100 <= int(vmid) <= 999_999_999):
            failures.append(CheckFailure("vmid", f"vmid must be an integer 100-999999999, "
                                                 f"not {vmid!r}"))
        node = news.get("node")
        if not is_unknown(node) and (not isinstance(node, str) or not node):
            failures.append(CheckFailure("node", "node must be a non-empty string"))
        timeout = news.get("timeout_s")
        if not is_unknown(timeout) and (not isinstance(timeout, (int, float)) or timeout <= 0):
            failures.append(CheckFailure("timeout_s", f"timeout_s must be > 0, not {timeout!r}"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_KEYS if olds.get(k) != news.get(k)]
        changed = [k for k in UPDATE_KEYS if olds.get(k) != news.get(k)]
        # An update never changes the as-built facts: a preview keeps them known, so features
        # that connect to them show no change.
        return DiffResult(changes=bool(replaces or changed), replaces=replaces,
                          stables=[] if replaces else list(AS_BUILT_OUTPUTS),
                          delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self.wait(props)
        # Numbers arrive as floats over the RPC; a fresh suffix keeps a replacement's id distinct.
        return CreateResult(f"{props['node']}/{int(props['vmid'])}/{uuid.uuid4().hex[:8]}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if olds.get("provider_version") != news.get("provider_version"):
            outs = self.wait(news)
        else:
            outs = self.inputs_for_outputs(news)
            outs.update({k: olds.get(k) for k in OUTPUT_KEYS})
        outs.update(self.keep_as_built(olds, news))
        return UpdateResult(outs)

    @staticmethod
    def keep_as_built(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        """The VM keeps the address and user it was built with until it is rebuilt (its seed is
        only read at first boot): an edit changes nothing recorded, and says so once, at the
        update that brings it."""
        kept: dict[str, Any] = {}
        vmid = news.get("vmid")
        vm = f"VM {int(vmid) if isinstance(vmid, (int, float)) else vmid}"
        for key, (field, out) in AS_BUILT_FIELDS.items():
            built = olds.get(out)
            if built in (None, ""):  # state from before as-built outputs: what the VM has now
                built = as_built_ip(olds.get(key) or news.get(key), olds.get("ipv4_addresses")) \
                    if key == "expected_ip" else (olds.get(key) or news.get(key))
            kept[out] = built
            new = news.get(key)
            if new not in (None, "") and olds.get(key) != new and new != built:
                _warn(f"{vm}: {field} changed to {new} but the VM still has {built}; it applies "
                      "when the VM is rebuilt: set \"edits\": \"rebuild\" (old spelling "
                      "recreate_on_cloud_init_change: true), or "
                      "`scripts/up.sh --rebuild VMID`. Features keep using "
                      f"{built}.")
        return kept

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        outs = dict(props)
        try:
            transport = self.transport(props)
        except GuestAgentNotReady:
            return ReadResult(id_, outs)  # no credentials here: keep what the state says
        try:
            if transport.vm_status(timeout_s=READ_TIMEOUT_S) != "running":
                return ReadResult(id_, outs)
            transport.ping(timeout_s=READ_TIMEOUT_S)
            outs["ipv4_addresses"] = list(ipv4_addresses(
                transport.network_interfaces(timeout_s=READ_TIMEOUT_S)))
            keys = parse_host_keys(run_command(transport, HOST_KEYS_ARGV,
                                               timeout_s=READ_TIMEOUT_S).stdout)
            if keys:  # a VM rebuilt behind Pulumi's back shows up as new host keys
                outs["ssh_host_keys"] = list(keys)
        except VmNotFoundError:
            return ReadResult("", {})  # the VM is gone: so is its readiness
        except (TransientError, AgentNotRunningError, AgentCommandError, TransportError):
            return ReadResult(id_, outs)
        finally:
            transport.close()
        return ReadResult(id_, outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None

    # ------------------------------------------------------------------ the wait

    @staticmethod
    def inputs_for_outputs(props: dict[str, Any]) -> dict[str, Any]:
        """The inputs echoed into the outputs (diff compares against them). Never the token."""
        return {k: props.get(k) for k in REPLACE_KEYS + UPDATE_KEYS}

    def wait(self, props: dict[str, Any]) -> dict[str, Any]:
        transport = self.transport(props)
        try:
            result = wait_for_ready(
                transport,
                timeout_s=float(props.get("timeout_s") or DEFAULT_TIMEOUT_S),
                log=_log,
                wait_for_cloud_init=bool(props.get("wait_for_cloud_init", True)),
                first_boot_hint=str(props.get("first_boot_hint") or ""),
            )
        except ReadinessError as exc:
            raise GuestAgentNotReady(exc.stage, exc.message) from None
        finally:
            transport.close()
        for warning in result.warnings:
            _log(f"{transport.describe()}: warning: {warning}")
        outs = {**self.inputs_for_outputs(props), **result.to_outputs()}
        outs["ip"] = as_built_ip(props.get("expected_ip"), outs.get("ipv4_addresses"))
        if props.get("expected_ip") and outs["ip"] != str(props["expected_ip"]):
            _warn(f"{transport.describe()}: network_config.ip is {props['expected_ip']} but the guest "
                  f"reports {', '.join(outs.get('ipv4_addresses') or [])}; features use {outs['ip']}")
        outs["built_username"] = props.get("username")
        return outs


class GuestAgentReady(pulumi.dynamic.Resource, module="phoenix", name="GuestAgentReady"):
    """Ready when the VM runs, its guest agent answers and cloud-init is done (see the module)."""

    seconds_to_agent: pulumi.Output[float]
    seconds_to_cloud_init: pulumi.Output[float | None]
    cloud_init_status: pulumi.Output[str]
    ipv4_addresses: pulumi.Output[list[str]]
    ssh_host_keys: pulumi.Output[list[str]]
    warnings: pulumi.Output[list[str]]
    ip: pulumi.Output[str]  # the address the VM really has (as built)
    built_username: pulumi.Output[str]  # the user the VM was built with

    def __init__(self, name: str, args: GuestAgentReadyArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "vmid": args.vmid,
            "node": args.node,
            "timeout_s": args.timeout_s,
            "vm_resource_id": args.vm_resource_id,
            "expected_ip": args.expected_ip,
            "username": args.username,
            "wait_for_cloud_init": args.wait_for_cloud_init,
            "endpoint": args.endpoint,
            "insecure": args.insecure,
            "provider_version": args.provider_version,
            "first_boot_hint": args.first_boot_hint,
            **{k: None for k in OUTPUT_KEYS},
        }
        secret_opts = pulumi.ResourceOptions()
        if args.api_token is not None:
            props["api_token"] = pulumi.Output.secret(args.api_token)
            # The provider never returns it, but should a preview echo the inputs as outputs,
            # the value stays a secret.
            secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["api_token"])
        super().__init__(GuestAgentReadyProvider(), name, props,
                         pulumi.ResourceOptions.merge(opts, secret_opts))
