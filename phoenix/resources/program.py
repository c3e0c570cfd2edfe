"""What `pulumi up` runs (via __main__.py): read settings and config, build, export.

A broken config or stack setting stops the program with pulumi.RunError, which Pulumi prints
as a plain message (no traceback), before any resource is registered.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from phoenix.config import ConfigError, ConfigFileError, load_config
from phoenix.resources.node_known_hosts import (
    KnownHostsConflict,
    default_known_hosts,
    ensure_known_hosts,
    unpinned_nodes,
)
from phoenix.resources.settings import SettingsError, check_settings_for, read_settings
from phoenix.resources.stack import Stack, build_stack


def run(project_dir: Path | None = None) -> Stack:
    try:
        settings = read_settings()
    except SettingsError as exc:
        raise pulumi.RunError(f"stack config: {exc}") from None
    path = Path(settings.vm_config_file)
    if not path.is_absolute() and project_dir is not None:
        path = project_dir / path
    try:
        config = load_config(path)
    except ConfigFileError as exc:
        raise pulumi.RunError(str(exc)) from None
    except ConfigError as exc:
        raise pulumi.RunError(f"{exc}\nnothing was created or changed.") from None
    problems = check_settings_for([(f"zfs[{i}]", z.node) for i, z in enumerate(config.zfs)], settings)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise pulumi.RunError(f"stack config does not fit {path}:\n{lines}\nnothing was created or changed.")
    # Before any resource is registered (and so before the provider's first SSH connection).
    try:
        added = ensure_known_hosts(settings.nodes)
    except KnownHostsConflict as exc:
        raise pulumi.RunError(f"{exc}\nnothing was created or changed.") from None
    except OSError as exc:
        raise pulumi.RunError(f"cannot update {default_known_hosts()} with the nodes' pinned host keys: "
                              f"{exc.strerror}") from None
    if added:
        pulumi.log.info(f"added {len(added)} pinned node host key(s) to {default_known_hosts()}")
    unpinned = unpinned_nodes({vm.node for vm in config.vms}, settings.nodes)
    if unpinned:
        pulumi.log.warn(
            f"node(s) {', '.join(unpinned)}: no pinned host key (phoenix-hypervisor:nodes.<node>.hostKeys); "
            "the proxmoxve provider trusts the key it first sees when it uploads snippets there")
    stack = build_stack(config, settings)
    for key, value in stack.outputs.items():
        pulumi.export(key, value)
    return stack
