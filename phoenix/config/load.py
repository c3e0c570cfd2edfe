"""Read phoenix_vm_configs.json, check it completely, and build the typed model.

Order: read -> JSON -> JSON Schema (types, names of fields) -> defaults merged into each VM ->
semantic rules (duplicates, subnets, keys, ...). Every problem is collected; nothing downstream
runs unless the list is empty.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from phoenix.config import data_disks as data_disk_rules
from phoenix.config import rules, schema_messages, strict_json
from phoenix.config import templates as template_rules
from phoenix.config.clone_rules import DEFAULT_CLONE_MODE, clone_mode_problems
from phoenix.config.errors import ConfigError, ConfigFileError, Problem
from phoenix.config.feature_rules import INTERNAL_FEATURES, check_feature, config_value
from phoenix.config.model import (
    EDITS_IN_PLACE,
    EDITS_REBUILD,
    Config,
    FeatureRef,
    GuestAgentConfig,
    ImageConfig,
    NetworkConfig,
    UserConfig,
    VmConfig,
    ZfsPropertyConfig,
)
from phoenix.config.ssh_keys import FIX_PLACEHOLDER, is_placeholder
from phoenix.config.zfs_rules import check_zfs_property, zfs_resource_name

SCHEMA_PATH = Path(__file__).with_name("phoenix_vm_configs.schema.json")
# An image the node downloads unverified is an explicit choice, never a silent default.
UNVERIFIED = "unverified"
CHECKSUM_REQUIRED = ('is required: "sha256:<digest>" from the image\'s SHA256SUMS (the node verifies the '
                     f'download), or "{UNVERIFIED}" to download it without verification')

# Used where neither the VM nor `defaults` sets a field.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "cores": 2,
    "memory_mb": 2048,
    "disk_gb": 32,
    "storage": "local-lvm",
    "snippet_storage": "local",
    "disk_interface": "scsi0",
    "cpu_type": "x86-64-v2-AES",
    "on_boot": True,
    "package_update": True,
    "package_upgrade": False,
    "packages": [],
    "features": [],
    "tags": [],
    "protect": False,
    # `edits` and its old spelling `recreate_on_cloud_init_change` have no built-in default
    # here: whether either was given matters (edits_policy).
    "clone_mode": DEFAULT_CLONE_MODE,
    "data_disks": [],
    "network_config": {"bridge": "vmbr0", "dns": []},
    "user": {"ssh_authorized_keys": [], "sudo": True, "shell": "/bin/bash"},
    "guest_agent": {"timeout_s": 900, "preinstalled": False},
}
REQUIRED = ("vmid", "name", "node")
_DIGEST_LENGTH = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
REQUIRED_NESTED = (("network_config", "ip"), ("user", "name"))


_EDITS_SPELLINGS = ("edits", "recreate_on_cloud_init_change")


def _vm_spelling_wins(raw: dict[str, Any], merged: dict[str, Any]) -> None:
    """A VM that states its policy in one spelling is not contradicted by the other spelling
    in `defaults`: the VM's own word wins (both on the same level must still agree)."""
    given = [key for key in _EDITS_SPELLINGS if key in raw]
    if len(given) == 1:
        other = _EDITS_SPELLINGS[1 - _EDITS_SPELLINGS.index(given[0])]
        merged.pop(other, None)


def edits_policy(vm: dict[str, Any]) -> tuple[str, str | None]:
    """(policy, problem) from `edits` and its old spelling `recreate_on_cloud_init_change`
    (true = "rebuild", false = not "rebuild"); both given and disagreeing is a problem."""
    edits, recreate = vm.get("edits"), vm.get("recreate_on_cloud_init_change")
    if edits is None:
        return (EDITS_REBUILD if recreate else EDITS_IN_PLACE), None
    if recreate is not None and recreate != (edits == EDITS_REBUILD):
        return edits, (f"\"edits\": {edits!r} contradicts \"recreate_on_cloud_init_change\": "
                       f"{str(recreate).lower()} (its old spelling: true means \"rebuild\"); "
                       "keep only \"edits\"")
    return edits, None


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _is_integer(_checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


# JSON Schema counts 8001.0 as an integer; every integer of this file (vmid, cores, vlan, ...) is
# an id or a count, and a float would only fail later: a whole number means no decimal point.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def read_document(path: str | Path) -> Any:
    """The parsed JSON, or ConfigFileError saying why the file cannot be used.

    Duplicate keys and non-finite numbers are not reported here but by `load_config` (with the
    other problems of the file); this returns the last value of a repeated key.
    """
    return _read(path)[0]


def _read(path: str | Path) -> tuple[Any, list[strict_json.JsonProblem]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigFileError(f"{path}: is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc}") from None
    try:
        return strict_json.parse(text)
    except json.JSONDecodeError as exc:
        line = text.splitlines()[exc.lineno - 1] if exc.lineno - 1 < len(text.splitlines()) else ""
        raise ConfigFileError(
            f"{path}: not valid JSON: line {exc.lineno}, column {exc.colno}: {_json_hint(text, exc)}\n"
            f"  {line.rstrip()}\n  {' ' * (exc.colno - 1)}^"
        ) from None


def _json_hint(text: str, exc: json.JSONDecodeError) -> str:
    """json's message, said the way a person editing the file thinks of it."""
    before = text[:exc.pos].rstrip()
    if exc.msg.startswith(("Expecting property name", "Expecting value")) and before.endswith(","):
        return "a comma before a closing } or ] (JSON allows no trailing comma)"
    if exc.msg.startswith("Expecting property name"):
        return "expected a key in double quotes (JSON has no comments and no single quotes)"
    if exc.msg.startswith("Expecting ',' delimiter"):
        return "a comma is missing between two entries"
    if exc.msg.startswith("Extra data"):
        return "more text after the end of the document (one top-level object only)"
    if exc.msg.startswith("Invalid control character"):
        return "a line break or tab inside a string (write \\n or \\t)"
    return exc.msg


def load_config(path: str | Path) -> Config:
    """Load and check the whole file. Raises ConfigFileError or ConfigError (with every problem)."""
    doc, json_problems = _read(path)
    return build_config(doc, path=Path(path), json_problems=json_problems)


def build_config(doc: Any, path: Path = Path("<config>"),
                 json_problems: list[strict_json.JsonProblem] | None = None) -> Config:
    """Check a parsed document; `json_problems` are those of its JSON text (duplicate keys, NaN)."""
    checker = _Checker(doc, json_problems or [])
    config = checker.run(path)
    if checker.problems:
        raise ConfigError(str(path), checker.problems)
    assert config is not None
    return config


def _dotted(parts: list[Any] | tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _object(vm: dict[str, Any], key: str) -> dict[str, Any]:
    """vm[key] when it is an object; {} when absent or of the wrong type (the schema said so)."""
    value = vm.get(key)
    return value if isinstance(value, dict) else {}


def _merge(defaults: dict[str, Any], vm: dict[str, Any]) -> dict[str, Any]:
    """VM fields win; objects (network_config, user, guest_agent) merge one level deep."""
    merged = copy.deepcopy(defaults)
    for key, value in vm.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class _Checker:
    def __init__(self, doc: Any, json_problems: list[strict_json.JsonProblem]):
        self.doc = doc
        self.json_problems = json_problems
        self.problems: list[Problem] = []

    # -- helpers ---------------------------------------------------------------------------
    def add(self, where: str, field: str, message: str) -> None:
        self.problems.append(Problem(where, field, message))

    @staticmethod
    def vm_label(index: int, vm: Any) -> str:
        if not isinstance(vm, dict):
            return f"vms[{index}]"
        vmid = vm.get("vmid")
        name = vm.get("name")
        bits = [f"vmid {vmid}" if isinstance(vmid, int) else None, name if isinstance(name, str) else None]
        inner = ", ".join(b for b in bits if b)
        return f"vms[{index}] ({inner})" if inner else f"vms[{index}]"

    def check_each(self, where: str, field: str, values: list[Any], rule: Callable[[str], str | None]) -> None:
        for i, value in enumerate(values):
            message = rule(value)
            if message:
                self.add(where, f"{field}[{i}]", message)

    # -- the passes ------------------------------------------------------------------------
    def locate(self, parts: list[Any]) -> tuple[str, str]:
        """(where, field) of a path in the document: a VM by index, vmid and name; an image or
        ZFS entry by key; else the top-level key."""
        doc = self.doc
        if len(parts) >= 2 and parts[0] == "vms" and isinstance(parts[1], int):
            vms = doc.get("vms") if isinstance(doc, dict) else None
            vm = vms[parts[1]] if isinstance(vms, list) and parts[1] < len(vms) else None
            return self.vm_label(parts[1], vm), _dotted(parts[2:])
        if len(parts) >= 2 and parts[0] == "templates" and isinstance(parts[1], int):
            templates = doc.get("templates") if isinstance(doc, dict) else None
            raw = templates[parts[1]] if isinstance(templates, list) and parts[1] < len(templates) else None
            return template_rules.template_label(parts[1], raw), _dotted(parts[2:])
        if parts:
            split = 2 if parts[0] in ("images", "zfs") else 1
            return _dotted(parts[:split]), _dotted(parts[split:])
        return "(top level)", ""

    def run(self, path: Path) -> Config | None:
        doc = self.doc
        reported: set[tuple[Any, ...]] = set()
        for problem in self.json_problems:
            self.add(*self.locate(list(problem.path)), problem.message)
            reported.add(problem.path)
        validator = _Validator(schema())
        schema_bad_vms: dict[int, list[list[Any]]] = {}  # VM index -> paths of its bad values
        schema_bad_templates: set[int] = set()
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
            parts = list(err.absolute_path)
            found = schema_messages.messages(err)
            if len(parts) >= 2 and parts[0] == "templates" and isinstance(parts[1], int):
                schema_bad_templates.add(parts[1])
            if len(parts) >= 2 and parts[0] == "vms" and isinstance(parts[1], int):
                schema_bad_vms.setdefault(parts[1], []).extend(parts[2:] + list(extra) for extra, _ in found)
            if tuple(parts) in reported:
                continue  # a NaN already reported where it was written
            for extra, message in found:
                self.add(*self.locate(parts + list(extra)), message)
        if not isinstance(doc, dict) or not isinstance(doc.get("vms"), list):
            return None
        if any(p.where == "defaults" for p in self.problems):
            return None  # a broken default would repeat its problem on every VM

        images = self.images(doc.get("images") or {})
        raw_templates = doc.get("templates") if isinstance(doc.get("templates"), list) else []
        templates = template_rules.build_templates(raw_templates, images, self, schema_bad_templates)
        defaults = _merge(BUILTIN_DEFAULTS, doc.get("defaults") or {})
        vms: list[VmConfig] = []
        merged_vms: list[tuple[int, dict[str, Any]]] = []
        for index, raw in enumerate(doc["vms"]):
            if not isinstance(raw, dict):
                continue
            merged = _merge(defaults, raw)
            _vm_spelling_wins(raw, merged)
            merged_vms.append((index, merged))
            if index in schema_bad_vms:
                self.check_the_rest(index, merged, defaults, schema_bad_vms[index], images)
                continue
            merged = template_rules.resolve_clone_source(self.vm_label(index, merged), merged, raw,
                                                         templates, self.add, raw_templates)
            vm = self.vm(index, merged, images)
            if vm is not None:
                vms.append(vm)
        self.duplicates(merged_vms)
        self.template_vmids(raw_templates, templates, merged_vms)
        copies = {vmid: f"{t.label}, copy on {node}" for t in templates for node, vmid in t.copies}
        for where, field, message in data_disk_rules.holder_vmid_problems(
                [(i, vm, self.vm_label(i, vm)) for i, vm in merged_vms], copies):
            self.add(where, field, message)
        self.problems.extend(clone_mode_problems(
            doc["vms"], [(i, vm, self.vm_label(i, vm)) for i, vm in merged_vms if i not in schema_bad_vms]))
        zfs = self.zfs(doc.get("zfs") or [])
        if self.problems:
            return None
        return Config(path=path, vms=tuple(vms), images=images, zfs=tuple(zfs),
                      templates=tuple(templates))

    def check_the_rest(self, index: int, vm: dict[str, Any], defaults: dict[str, Any],
                       bad_paths: list[list[Any]], images: dict[str, ImageConfig]) -> None:
        """A VM with schema problems still gets its other fields checked (all problems at once):
        each bad value is replaced by its default, or left out, and problems that only follow
        from that are dropped. Such a VM is never built."""
        checked = copy.deepcopy(vm)
        removed: set[str] = set()
        for path in bad_paths:
            if not path or not isinstance(path[0], str):
                return  # the VM itself is not an object: nothing else to check
            nested = path[0] in ("network_config", "user", "guest_agent") and len(path) > 1 \
                and isinstance(path[1], str) and isinstance(checked.get(path[0]), dict)
            target = path[:2] if nested else path[:1]
            holder, fallback = (checked[path[0]], _object(defaults, path[0])) if nested else (checked, defaults)
            holder.pop(target[-1], None)
            if target[-1] in fallback:
                holder[target[-1]] = copy.deepcopy(fallback[target[-1]])
            removed.add(_dotted(target))
        if "vmid" not in checked:
            checked["vmid"] = 0  # a stand-in, so the fields that do not depend on it get checked
        before = len(self.problems)
        self.vm(index, checked, images)
        kept = self.problems[:before]
        label, stand_in = self.vm_label(index, vm), self.vm_label(index, checked)
        for problem in self.problems[before:]:
            field = problem.field
            if not any(field == t or field.startswith((t + ".", t + "[")) or t in field.split("/")
                       for t in removed):
                kept.append(Problem(label, field, problem.message) if problem.where == stand_in else problem)
        self.problems = kept

    def images(self, raw: dict[str, Any]) -> dict[str, ImageConfig]:
        images: dict[str, ImageConfig] = {}
        for name, img in raw.items():
            if not isinstance(img, dict) or not isinstance(img.get("url"), str):
                continue  # schema already reported it
            algorithm = digest = None
            if "checksum" not in img:
                self.add(f"images.{name}", "checksum", CHECKSUM_REQUIRED)
            if isinstance(img.get("checksum"), str) and ":" in img["checksum"]:
                algorithm, digest = img["checksum"].split(":", 1)
                expected = _DIGEST_LENGTH.get(algorithm)
                if expected is None:
                    continue  # schema already reported it
                if len(digest) != expected:
                    self.add(f"images.{name}", "checksum",
                             f"a {algorithm} digest has {expected} hex digits, not {len(digest)}")
                digest = digest.lower()
            images[name] = ImageConfig(
                name=name,
                url=img["url"],
                checksum_algorithm=algorithm,
                checksum=digest,
                node=img.get("node"),
                storage=img.get("storage", "local"),
                file_name=img.get("file_name", f"{name}.img"),
            )
        return images

    def vm(self, index: int, vm: dict[str, Any], images: dict[str, ImageConfig]) -> VmConfig | None:
        where = self.vm_label(index, vm)
        before = len(self.problems)
        for key in REQUIRED:
            if key not in vm:
                self.add(where, key, "is required (set it on the VM or in defaults)")
        for outer, inner in REQUIRED_NESTED:
            if inner not in _object(vm, outer):
                self.add(where, f"{outer}.{inner}", "is required (set it on the VM or in defaults)")
        if len(self.problems) > before:
            return None

        if ("clone_from" in vm) == ("image" in vm):
            self.add(where, "clone_from/image", "set exactly one of clone_from (a template VMID) or image "
                     f"(found {'both' if 'clone_from' in vm else 'neither'})")
        if "image" in vm:
            image = images.get(vm["image"])
            if image is None:
                known = ", ".join(sorted(images)) or "none defined"
                self.add(where, "image", f"{vm['image']!r} is not in images (known: {known})")
            elif image.node and image.node != vm["node"]:
                self.add(where, "image", f"image {image.name!r} is only available on node {image.node!r}, "
                         f"but the VM is on {vm['node']!r}")
        if vm.get("clone_from") == vm["vmid"]:
            self.add(where, "clone_from", "a VM cannot be cloned from itself")

        for field, rule in (("name", rules.hostname_problem), ("node", rules.hostname_problem)):
            message = rule(vm[field])
            if message:
                self.add(where, field, message)
        if vm.get("timezone") is not None and rules.timezone_problem(vm["timezone"]):
            self.add(where, "timezone", rules.timezone_problem(vm["timezone"]) or "")
        self.check_each(where, "packages", vm["packages"], rules.package_problem)
        self.check_each(where, "tags", vm["tags"], rules.tag_problem)
        edits, message = edits_policy(vm)
        if message:
            self.add(where, "edits", message)

        disks, disk_problems = data_disk_rules.parse_data_disks(vm["data_disks"], vm["storage"])
        for field, message in disk_problems:
            self.add(where, field, message)
        network = self.network(where, vm)
        user = self.user(where, vm["user"])
        features = self.features(where, vm["features"])
        if len(self.problems) > before or network is None or user is None:
            return None
        return VmConfig(
            index=index,
            vmid=vm["vmid"],
            name=vm["name"],
            node=vm["node"],
            clone_from=vm.get("clone_from"),
            image=vm.get("image"),
            cores=vm["cores"],
            memory_mb=vm["memory_mb"],
            disk_gb=vm["disk_gb"],
            storage=vm["storage"],
            network_config=network,
            user=user,
            packages=tuple(vm["packages"]),
            features=features,
            tags=tuple(vm["tags"]),
            package_update=vm["package_update"],
            package_upgrade=vm["package_upgrade"],
            guest_agent=GuestAgentConfig(timeout_s=vm["guest_agent"]["timeout_s"],
                                         preinstalled=vm["guest_agent"]["preinstalled"]),
            snippet_storage=vm["snippet_storage"],
            disk_interface=vm["disk_interface"],
            cpu_type=vm["cpu_type"],
            on_boot=vm["on_boot"],
            protect=vm["protect"],
            edits=edits,
            timezone=vm.get("timezone"),
            clone_mode=vm["clone_mode"],
            template=vm.get("_template"),
            clone_node=vm.get("_clone_node"),
            data_disks=disks,
            data_vmid_override=vm.get("data_vmid"),
        )

    def network(self, where: str, vm: dict[str, Any]) -> NetworkConfig | None:
        net = vm["network_config"]
        ok = True
        iface, message = rules.parse_interface(net["ip"])
        if message:
            self.add(where, "network_config.ip", message)
            ok = False
        gateway = None
        if "gateway" in net:
            gateway, message = rules.parse_address(net["gateway"])
            if message:
                self.add(where, "network_config.gateway", message)
                ok = False
            elif iface is not None and gateway not in iface.network:
                self.add(where, "network_config.gateway", f"{gateway} is outside the VM's subnet {iface.network}")
                ok = False
            elif iface is not None and gateway == iface.ip:
                self.add(where, "network_config.gateway", f"{gateway} is the VM's own address")
                ok = False
        for i, server in enumerate(net["dns"]):
            _, message = rules.parse_address(server)
            if message:
                self.add(where, f"network_config.dns[{i}]", message)
                ok = False
        if "search_domain" in net and rules.domain_problem(net["search_domain"]):
            self.add(where, "network_config.search_domain", rules.domain_problem(net["search_domain"]) or "")
            ok = False
        mac = net.get("mac_address") or rules.derived_mac(vm["vmid"])
        if rules.mac_problem(mac):
            self.add(where, "network_config.mac_address", rules.mac_problem(mac) or "")
            ok = False
        if not ok or iface is None:
            return None
        return NetworkConfig(
            ip=iface,
            gateway=gateway,
            dns=tuple(net["dns"]),
            search_domain=net.get("search_domain"),
            bridge=net["bridge"],
            vlan=net.get("vlan"),
            mac_address=mac.lower(),
        )

    def user(self, where: str, user: dict[str, Any]) -> UserConfig | None:
        before = len(self.problems)
        message = rules.user_problem(user["name"])
        if message:
            self.add(where, "user.name", message)
        if rules.shell_problem(user["shell"]):
            self.add(where, "user.shell", rules.shell_problem(user["shell"]) or "")
        self.check_each(where, "user.ssh_authorized_keys", user["ssh_authorized_keys"], _admin_key_problem)
        if len(self.problems) > before:
            return None
        return UserConfig(
            name=user["name"],
            ssh_authorized_keys=tuple(k.strip() for k in user["ssh_authorized_keys"]),
            sudo=user["sudo"],
            shell=user["shell"],
        )

    def features(self, where: str, raw: list[Any]) -> tuple[FeatureRef, ...]:
        refs = []
        for i, item in enumerate(raw):
            name, given = (item, {}) if isinstance(item, str) else (item["name"], item.get("params", {}))
            if name in INTERNAL_FEATURES:
                self.add(where, f"features[{i}]", f"{name!r} is Phoenix's own in-place step, not a "
                         "feature to list: it follows packages, user.ssh_authorized_keys and "
                         "timezone when \"edits\" is \"in-place\" (the default)")
                continue
            params: dict[str, str] = {}
            unusable: set[str] = set()
            for key, value in given.items():
                text, problem = config_value(name, key, value)
                if problem:
                    self.add(where, f"features[{i}]", problem)
                    unusable.add(key)
                elif text is not None:
                    params[key] = text
            for message in check_feature(name, params):
                # "missing required parameter 'keys'" only follows from a value already reported
                if not any(f"missing required parameter {key!r}" in message for key in unusable):
                    self.add(where, f"features[{i}]", message)
            refs.append(FeatureRef(name=name, params=params))
        names = [r.name for r in refs]
        for name in sorted({n for n in names if names.count(n) > 1}):
            self.add(where, "features", f"feature {name!r} is listed more than once")
        return tuple(refs)

    def duplicates(self, vms: list[tuple[int, dict[str, Any]]]) -> None:
        """vmid, name, IP and MAC must be unique across the file (checked on every VM, even one
        with other problems, so that all problems show at once)."""

        def ip(vm: dict[str, Any]) -> Any:
            raw = _object(vm, "network_config").get("ip")
            return rules.parse_interface(raw)[0].ip if isinstance(raw, str) and rules.parse_interface(raw)[0] else None

        keys: dict[str, Callable[[dict[str, Any]], Any]] = {
            "vmid": lambda v: v.get("vmid") if isinstance(v.get("vmid"), int) else None,
            "name": lambda v: v["name"].lower() if isinstance(v.get("name"), str) else None,
            "network_config.ip": ip,
        }
        for field, key in keys.items():
            seen: dict[Any, str] = {}
            for index, vm in vms:
                k = key(vm)
                if k is None:
                    continue
                label = self.vm_label(index, vm)
                if k in seen:
                    self.add(label, field, f"{k} is already used by {seen[k]}")
                else:
                    seen[k] = label
        self.duplicate_macs(vms)
        managed = {vm["vmid"]: self.vm_label(i, vm) for i, vm in vms if isinstance(vm.get("vmid"), int)}
        for index, vm in vms:
            clone_from = vm.get("clone_from")
            if isinstance(clone_from, int) and clone_from in managed and clone_from != vm.get("vmid"):
                self.add(self.vm_label(index, vm), "clone_from",
                         f"{clone_from} is a VM of this file ({managed[clone_from]}), not a template")

    def duplicate_macs(self, vms: list[tuple[int, dict[str, Any]]]) -> None:
        """A MAC is set (network_config.mac_address) or derived from the vmid's low 24 bits, so
        two vmids 2**24 apart get the same one: name the vmids, not a field nobody set."""
        vmids = [vm.get("vmid") for _, vm in vms]
        seen: dict[str, tuple[str, str]] = {}  # mac -> (label, how it came about)
        for index, vm in vms:
            raw = _object(vm, "network_config").get("mac_address")
            vmid = vm.get("vmid")
            if isinstance(raw, str):
                mac, how, field = raw.lower(), "set in network_config.mac_address", "network_config.mac_address"
            elif isinstance(vmid, int) and vmids.count(vmid) == 1:  # a duplicate vmid is reported once
                mac, how, field = rules.derived_mac(vmid), f"derived from vmid {vmid}", "vmid"
            else:
                continue
            label = self.vm_label(index, vm)
            if mac not in seen:
                seen[mac] = (label, how)
                continue
            other, other_how = seen[mac]
            hint = ("; a derived MAC uses only the vmid's low 24 bits: set network_config.mac_address "
                    "on one of them") if "derived" in how + other_how else ""
            self.add(label, field, f"MAC address {mac} ({how}) is the same as that of {other} "
                     f"({other_how}){hint}")

    def template_vmids(self, raw_templates: list[Any], templates: list[Any],
                       vms: list[tuple[int, dict[str, Any]]]) -> None:
        """A template copy's vmid is never a VM's vmid."""
        copies = {vmid: f"{t.label}, copy on {node}" for t in templates for node, vmid in t.copies}
        for index, vm in vms:
            if isinstance(vm.get("vmid"), int) and vm["vmid"] in copies:
                self.add(self.vm_label(index, vm), "vmid", f"{vm['vmid']} is already used by "
                         f"{copies[vm['vmid']]}")

    def zfs(self, raw: list[Any]) -> list[ZfsPropertyConfig]:
        out = []
        # Pulumi resource name -> (entry label, node, dataset, property) of its first setting
        names: dict[str, tuple[str, str, str, str]] = {}
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or not {"node", "dataset", "properties"} <= entry.keys():
                continue
            before = len(self.problems)
            if rules.hostname_problem(entry["node"]):
                self.add(f"zfs[{i}]", "node", rules.hostname_problem(entry["node"]) or "")
            for prop, value in entry["properties"].items():
                for message in check_zfs_property(entry["dataset"], prop, value):
                    self.add(f"zfs[{i}]", f"properties.{prop}", message)
                name = zfs_resource_name(entry["node"], entry["dataset"], prop)
                first = names.setdefault(name, (f"zfs[{i}]", entry["node"], entry["dataset"], prop))
                if first[0] == f"zfs[{i}]":
                    continue
                if first[1:] == (entry["node"], entry["dataset"], prop):
                    self.add(f"zfs[{i}]", f"properties.{prop}",
                             f"{prop} of {entry['dataset']} on node {entry['node']} is already set by "
                             f"{first[0]}: set each property of a dataset once")
                else:
                    self.add(f"zfs[{i}]", f"properties.{prop}",
                             f"{prop} of {entry['dataset']} on node {entry['node']} and {first[0]} "
                             f"({first[3]} of {first[2]} on node {first[1]}) get the same resource "
                             f"name {name!r} ('/' becomes '-'): Pulumi cannot manage both")
            if len(self.problems) == before:
                out.append(ZfsPropertyConfig(entry["node"], entry["dataset"], dict(entry["properties"])))
        return out


def _admin_key_problem(line: str) -> str | None:
    if is_placeholder(line):
        return f"still the example's placeholder: put your own public key here ({FIX_PLACEHOLDER})"
    return rules.ssh_public_key_problem(line)
