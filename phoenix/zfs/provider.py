"""Dynamic provider `ZfsProperty` (type `pulumi-python:dynamic/phoenix:ZfsProperty`).

One ZFS property on one dataset of a Proxmox node, over SSH (the PVE API cannot set it):
- create records what was there (value and source), then `zfs set`s the desired value if the
  effective value differs;
- read (`pulumi refresh`) reports the value actually on the node, so drift shows as a diff;
- update sets the value again when it differs;
- delete restores the recorded value, or `zfs inherit`s when it was inherited/default.

Only the declared inputs (`INPUT_KEYS`) are compared, never the `__provider` blob (see
`phoenix.dynamic_inputs`). A node that cannot be reached: refresh keeps the recorded state with
a warning; delete FAILS with what was not restored and how to go on. Unlike a VM, the node
outlives the stack, and the property set on its dataset stays until someone restores it: a
destroy that quietly completed would forget that for good. An unreachable node also blocks the
deletion of its VMs by the Proxmox provider, so failing here holds up nothing that could go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from phoenix.config.zfs_rules import check_zfs_property, normalize
from phoenix.dynamic_inputs import changed_inputs, is_unknown
from phoenix.remote.errors import SshError
from phoenix.remote.provider_glue import (
    RECORD_ONLY_KEYS,
    connect_or_warn,
    pulumi_progress,
    target_from_props,
    unreachable_after,
)
from phoenix.remote.ssh import SshSession, connect
from phoenix.zfs.remote_zfs import (
    ZfsError,
    get_property,
    inherit_property,
    set_property,
)

PROVIDER_VERSION = "1"
# The setting's identity is the dataset and the property (and the node, in the resource name);
# the node's SSH address and port are only how to reach it. A node whose address changed is
# reached at the new one by an update (which converges and keeps the recorded original value),
# never replaced delete-first at the old address (issue 18 case 7: `up` blocked when the old
# address is gone, the property flipped back when it is not). Old state keeps working: the
# resource name never held the address, and an update carries `original_*` over.
_REPLACE_KEYS = ("dataset", "property")
_OUTPUT_KEYS = ("original_value", "original_source", "source")
# What `ZfsProperty.__init__` registers as inputs: the only keys diff and update compare.
INPUT_KEYS = ("host", "port", "username", "private_key", "host_keys", "dataset", "property",
              "value", "sudo", "connect_timeout_s", "provider_version")


def _prefix(props: dict[str, Any]) -> str:
    return f"[zfs {props.get('dataset')} {props.get('property')} on {props.get('host')}]"


def _session(props: dict[str, Any], deadline_s: float | None = None) -> SshSession:
    return connect(target_from_props(props, deadline_s=deadline_s),
                   pulumi_progress(_prefix(props)))


def _converge(session: SshSession, props: dict[str, Any]) -> str:
    """Set the desired value if the effective one differs; the source afterwards."""
    dataset, prop, value = props["dataset"], props["property"], props["value"]
    sudo = bool(props.get("sudo"))
    current = get_property(session, dataset, prop, sudo)
    if normalize(prop, current.value) == normalize(prop, value):
        pulumi.log.info(f"{_prefix(props)} already {current.value} ({current.source})")
        return current.source
    set_property(session, dataset, prop, value, sudo)
    after = get_property(session, dataset, prop, sudo)
    if normalize(prop, after.value) != normalize(prop, value):
        raise ZfsError(f"{_prefix(props)} set to {value!r} but the node reports "
                       f"{after.value!r}")
    pulumi.log.info(f"{_prefix(props)} {current.value} -> {after.value}")
    return after.source


class ZfsPropertyProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        values = [news.get(k) for k in ("dataset", "property", "value")]
        failures = []
        if all(isinstance(v, str) for v in values):
            failures = [CheckFailure("value", p) for p in check_zfs_property(*values)]
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_inputs(olds, news, _REPLACE_KEYS)
        changed = [k for k in changed_inputs(olds, news, INPUT_KEYS) if k != "value"]
        prop = str(news.get("property"))
        if is_unknown(news.get("value")) or \
                normalize(prop, str(olds.get("value"))) != normalize(prop, str(news.get("value"))):
            changed.append("value")  # includes drift that `read` found on the node
        return DiffResult(changes=bool(changed or replaces), replaces=replaces, stables=[],
                          delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        with _session(props) as session:
            before = get_property(session, props["dataset"], props["property"],
                                  bool(props.get("sudo")))
            source = _converge(session, props)
        outs = {**props, "original_value": before.value, "original_source": before.source,
                "source": source}
        return CreateResult(f"{props['dataset']}:{props['property']}", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not props.get("host"):
            raise ValueError("ZfsProperty resources cannot be imported: create them instead")
        session = connect_or_warn(target_from_props(props, deadline_s=unreachable_after(props)),
                                  _prefix(props), "refresh keeps the recorded state")
        if session is None:
            return ReadResult(id_, dict(props))
        with session:
            try:
                now = get_property(session, props["dataset"], props["property"],
                                   bool(props.get("sudo")))
            except ZfsError as exc:
                if "does not exist" in str(exc):
                    return ReadResult(None, {})  # the dataset is gone: so is this resource
                raise
        return ReadResult(id_, {**props, "value": now.value, "source": now.source})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        keep = {k: olds.get(k) for k in ("original_value", "original_source")}
        if not [k for k in changed_inputs(olds, news, INPUT_KEYS) if k not in RECORD_ONLY_KEYS]:
            return UpdateResult({**news, **keep, "source": olds.get("source")})
        with _session(news) as session:
            source = _converge(session, news)
        return UpdateResult({**news, **keep, "source": source})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        dataset, prop = props["dataset"], props["property"]
        sudo = bool(props.get("sudo"))
        original, source = props.get("original_value"), str(props.get("original_source") or "")
        try:
            session = _session(props)
        except SshError as exc:
            if exc.step == "run":
                raise
            raise ZfsError(
                f"{_prefix(props)} not restored (recorded: {original!r}, source {source!r}): "
                f"the node cannot be reached: {exc}. Run `pulumi destroy` again once the node "
                "is back, or `pulumi state delete` this resource to forget it (the property "
                "then stays as set)") from None
        with session:
            try:
                get_property(session, dataset, prop, sudo)
            except ZfsError as exc:
                if "does not exist" in str(exc):
                    pulumi.log.info(f"{_prefix(props)} dataset gone; nothing to restore")
                    return
                raise
            if source == "local" and original is not None:
                set_property(session, dataset, prop, original, sudo)
            elif source.startswith("inherited") or source == "default":
                inherit_property(session, dataset, prop, sudo)
            elif source == "received":
                inherit_property(session, dataset, prop, sudo, received=True)
            else:  # "-" or "temporary": nothing persistent to go back to
                pulumi.log.info(f"{_prefix(props)} original source {source!r}: left as is")


class ZfsPropertyArgs:
    """Inputs of a `ZfsProperty`.

    host, port, username: the Proxmox node's SSH address and user (from stack config
        `phoenix-hypervisor:nodes`); private_key: the key text (stack secret
        `phoenix-hypervisor:sshPrivateKey`); host_keys: the node's pinned host keys.
    dataset, property, value: e.g. "quickOS/vm-disks", "compression", "lz4" (checked by
        `phoenix.zfs.check_zfs_property`).
    sudo: run zfs through `sudo -n` (default False: Proxmox nodes are reached as root).
    connect_timeout_s: total connect deadline (default 60).
    """

    def __init__(
        self,
        *,
        host: pulumi.Input[str],
        username: pulumi.Input[str],
        private_key: pulumi.Input[str],
        host_keys: pulumi.Input[Sequence[pulumi.Input[str]]],
        dataset: str,
        property: str,  # noqa: A002 - the ZFS term
        value: str,
        port: pulumi.Input[int] = 22,
        sudo: bool = False,
        connect_timeout_s: float = 60.0,
    ) -> None:
        self.host, self.port, self.username = host, port, username
        self.private_key, self.host_keys = private_key, host_keys
        self.dataset, self.property, self.value = dataset, property, value
        self.sudo, self.connect_timeout_s = sudo, connect_timeout_s


class ZfsProperty(Resource, module="phoenix", name="ZfsProperty"):
    """Outputs: value (as on the node after refresh), source, original_value, original_source."""

    value: pulumi.Output[str]
    source: pulumi.Output[str]
    original_value: pulumi.Output[str]
    original_source: pulumi.Output[str]

    def __init__(self, name: str, args: ZfsPropertyArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        problems = check_zfs_property(args.dataset, args.property, args.value)
        if problems:
            raise ValueError("; ".join(problems))
        props = {
            "host": args.host, "port": args.port, "username": args.username,
            "private_key": pulumi.Output.secret(args.private_key), "host_keys": args.host_keys,
            "dataset": args.dataset, "property": args.property, "value": args.value,
            "sudo": args.sudo, "connect_timeout_s": args.connect_timeout_s,
            "provider_version": PROVIDER_VERSION,
            **{k: None for k in _OUTPUT_KEYS},
        }
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["private_key"])
        super().__init__(ZfsPropertyProvider(), name, props,
                         pulumi.ResourceOptions.merge(opts, secret_opts))
