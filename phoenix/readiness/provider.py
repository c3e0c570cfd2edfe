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
- diff: a new `vm_resource_id` (the VM was replaced), `vmid` or `node` replaces this resource,
  so a replaced VM is waited for again. Other input changes are plain updates.
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

import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from phoenix.readiness.pve import (
    ENV_ENDPOINT,
    ENV_INSECURE,
    ENV_TOKEN,
    PveCredentials,
    PveTransport,
    parse_bool,
)
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

REPLACE_KEYS = ("vmid", "node", "vm_resource_id")
UPDATE_KEYS = ("timeout_s", "wait_for_cloud_init", "endpoint", "insecure", "provider_version")
OUTPUT_KEYS = ("seconds_to_agent", "seconds_to_cloud_init", "cloud_init_status",
               "ipv4_addresses", "ssh_host_keys", "warnings")
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


def _is_unknown(value: Any) -> bool:
    from pulumi.runtime import rpc

    return isinstance(value, str) and value == rpc.UNKNOWN


class GuestAgentReadyProvider(ResourceProvider):
    """The CRUD of GuestAgentReady. Pickled by reference: keep it in this module, keep its name.

    Nothing is stored on `self` at construction (the pickled object stays empty); configure()
    keeps the stack's Proxmox settings on the unpickled copy inside the provider process.
    """

    serialize_as_secret_always = False  # nothing secret is captured in the pickled provider

    def configure(self, req: ConfigureRequest) -> None:
        self._stack_settings = {
            "endpoint": req.config.get("proxmoxve:endpoint"),
            "api_token": req.config.get("proxmoxve:apiToken"),
            "insecure": req.config.get("proxmoxve:insecure"),
        }

    # ------------------------------------------------------------------ credentials

    def credentials(self, props: dict[str, Any]) -> PveCredentials:
        stack = getattr(self, "_stack_settings", {}) or {}
        env = {"endpoint": os.environ.get(ENV_ENDPOINT), "api_token": os.environ.get(ENV_TOKEN),
               "insecure": os.environ.get(ENV_INSECURE)}

        def pick(key: str) -> Any:
            for source in (props, stack, env):
                value = source.get(key)
                if value not in (None, ""):
                    return value
            return None

        endpoint, token, insecure = pick("endpoint"), pick("api_token"), pick("insecure")
        if not endpoint or not token:
            missing = [what for what, value in (("endpoint", endpoint), ("API token", token))
                       if not value]
            raise GuestAgentNotReady(
                "vm-status",
                f"no Proxmox {' or '.join(missing)}: set the stack config proxmoxve:endpoint / "
                f"proxmoxve:apiToken (secret), or {ENV_ENDPOINT} / {ENV_TOKEN}",
            )
        return PveCredentials(str(endpoint), str(token),
                              verify=not parse_bool(insecure) if insecure is not None else True)

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
        if not _is_unknown(vmid) and (not isinstance(vmid, (int, float)) or int(vmid) != vmid
                                      or not 100 <= int(vmid) <= 999_999_999):
            failures.append(CheckFailure("vmid", f"vmid must be an integer 100-999999999, "
                                                 f"not {vmid!r}"))
        node = news.get("node")
        if not _is_unknown(node) and (not isinstance(node, str) or not node):
            failures.append(CheckFailure("node", "node must be a non-empty string"))
        timeout = news.get("timeout_s")
        if not _is_unknown(timeout) and (not isinstance(timeout, (int, float)) or timeout <= 0):
            failures.append(CheckFailure("timeout_s", f"timeout_s must be > 0, not {timeout!r}"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_KEYS if olds.get(k) != news.get(k)]
        changed = [k for k in UPDATE_KEYS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces or changed), replaces=replaces,
                          delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self.wait(props)
        # Numbers arrive as floats over the RPC; a fresh suffix keeps a replacement's id distinct.
        return CreateResult(f"{props['node']}/{int(props['vmid'])}/{uuid.uuid4().hex[:8]}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if olds.get("provider_version") != news.get("provider_version"):
            return UpdateResult(self.wait(news))
        outs = self.inputs_for_outputs(news)
        outs.update({k: olds.get(k) for k in OUTPUT_KEYS})
        return UpdateResult(outs)

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
        return {**self.inputs_for_outputs(props), **result.to_outputs()}


class GuestAgentReady(pulumi.dynamic.Resource, module="phoenix", name="GuestAgentReady"):
    """Ready when the VM runs, its guest agent answers and cloud-init is done (see the module)."""

    seconds_to_agent: pulumi.Output[float]
    seconds_to_cloud_init: pulumi.Output[float | None]
    cloud_init_status: pulumi.Output[str]
    ipv4_addresses: pulumi.Output[list[str]]
    ssh_host_keys: pulumi.Output[list[str]]
    warnings: pulumi.Output[list[str]]

    def __init__(self, name: str, args: GuestAgentReadyArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "vmid": args.vmid,
            "node": args.node,
            "timeout_s": args.timeout_s,
            "vm_resource_id": args.vm_resource_id,
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
