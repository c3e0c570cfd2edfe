"""`TemplateBake`: the Pulumi dynamic resource that bakes a template VM and converts it.

Create runs `phoenix.templatebake.bake.bake_on_pve` (bounded by `timeout_s`, by stage, all or
nothing). A template is immutable: its `definition` (a digest of what the template is made of)
cannot change under the same vmid; `diff` refuses it with a message that says what to do
instead, so a template that clones pin is never rebuilt in place. Delete does nothing: the
template VM itself (the VmLegacy this depends on) is deleted by its own resource.

Pickled by reference: keep the provider class in this module and keep its name.
"""

from __future__ import annotations

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

from phoenix.readiness.provider import _log
from phoenix.readiness.stack_credentials import MissingCredentials, PveStackProvider
from phoenix.readiness.transport import TransportError, VmNotFoundError
from phoenix.templatebake.bake import BakeFailed, bake_on_pve
from phoenix.templatebake.pve_control import PveVmControl

PROVIDER_VERSION = "1"
REPLACE_KEYS = ("vmid", "node", "vm_resource_id")
UPDATE_KEYS = ("timeout_s", "endpoint", "insecure", "provider_version", "template_name", "recipe",
               "definition")
READ_TIMEOUT_S = 15.0


class TemplateDefinitionChanged(Exception):
    pass


@dataclass
class TemplateBakeArgs:
    vmid: pulumi.Input[int]
    node: pulumi.Input[str]
    template_name: pulumi.Input[str]
    definition: pulumi.Input[str]  # sha256 of the template's definition (immutable per vmid)
    recipe: pulumi.Input[str] | None = None  # the same without the image's version
    timeout_s: pulumi.Input[float] = 1800
    vm_resource_id: pulumi.Input[str] | None = None
    endpoint: pulumi.Input[str] | None = None
    insecure: pulumi.Input[bool] | None = None
    provider_version: str = PROVIDER_VERSION


def definition_changed_message(props: dict[str, Any]) -> str:
    return (f"template {props.get('template_name')!r} (vmid {int(props.get('vmid') or 0)} on "
            f"{props.get('node')}) was baked from another definition. A template is immutable "
            "(linked clones pin it): keep this entry as it was, and add the new definition as a "
            "new entry with a new vmid (and a new name); VMs move to it when their clone_from "
            "names it and they are rebuilt (scripts/up.sh --rebuild VMID). Remove the old "
            "entry once no VM clones it.")


class TemplateBakeProvider(PveStackProvider):

    def control(self, props: dict[str, Any]) -> PveVmControl:
        try:
            credentials = self.resolve_credentials(props)  # the same sources as GuestAgentReady
        except MissingCredentials as exc:
            raise BakeFailed("prepare", str(exc)) from None
        try:
            return PveVmControl(credentials, node=str(props["node"]), vmid=int(props["vmid"]))
        except TransportError as exc:
            raise BakeFailed("prepare", str(exc)) from None

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        timeout = news.get("timeout_s")
        if isinstance(timeout, (int, float)) and timeout <= 0:
            failures.append(CheckFailure("timeout_s", f"timeout_s must be > 0, not {timeout!r}"))
        definition = news.get("definition")
        if isinstance(definition, str) and len(definition) != 64:
            failures.append(CheckFailure("definition", "definition must be a sha256 hex digest"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """A changed definition under the same vmid is refused, except a new version of the
        image alone (issue 18 case 5): the user changed the image for new VMs, not this
        template, which stays as it was baked (its VM ignores its disks: resources/templates.py)
        exactly as VMs made from the old image do. `recipe` is the definition without the
        image's version; state from before it existed compares the whole definition once."""
        replaces = [k for k in REPLACE_KEYS if olds.get(k) != news.get(k)]
        if olds.get("recipe") and news.get("recipe"):
            changed_definition = olds.get("recipe") != news.get("recipe")
        else:
            changed_definition = olds.get("definition") != news.get("definition")
        if not replaces and changed_definition:
            raise TemplateDefinitionChanged(definition_changed_message(news))
        changed = [k for k in UPDATE_KEYS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces or changed), replaces=replaces,
                          delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        control = self.control(props)
        try:
            outcome = bake_on_pve(control, timeout_s=float(props.get("timeout_s") or 1800),
                                  log=_log)
        finally:
            control.close()
        outs = {**props, "seconds": outcome.seconds, "stages": outcome.stages, "is_template": True}
        outs.pop("api_token", None)
        return CreateResult(f"{props['node']}/{int(props['vmid'])}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({**news, **{k: olds.get(k) for k in ("seconds", "stages", "is_template")}})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        outs = dict(props)
        try:
            control = self.control(props)
        except BakeFailed:
            return ReadResult(id_, outs)  # no credentials here: keep what the state says
        try:
            config = control.config(timeout_s=READ_TIMEOUT_S)
            outs["is_template"] = str(config.get("template", 0)) in ("1", "True", "true")
        except VmNotFoundError:
            return ReadResult("", {})  # the template VM is gone: so is its bake
        except TransportError:
            return ReadResult(id_, outs)  # unreachable: keep the state
        finally:
            control.close()
        return ReadResult(id_, outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class TemplateBake(pulumi.dynamic.Resource, module="phoenix", name="TemplateBake"):
    """The bake and conversion of one template VM (see the module)."""

    seconds: pulumi.Output[float]
    stages: pulumi.Output[dict]
    is_template: pulumi.Output[bool]

    def __init__(self, name: str, args: TemplateBakeArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "vmid": args.vmid,
            "node": args.node,
            "template_name": args.template_name,
            "definition": args.definition,
            "recipe": args.recipe,
            "timeout_s": args.timeout_s,
            "vm_resource_id": args.vm_resource_id,
            "endpoint": args.endpoint,
            "insecure": args.insecure,
            "provider_version": args.provider_version,
            "seconds": None,
            "stages": None,
            "is_template": None,
        }
        super().__init__(TemplateBakeProvider(), name, props, opts)


__all__ = ["TemplateBake", "TemplateBakeArgs", "TemplateBakeProvider", "TemplateDefinitionChanged"]
