"""What `pulumi up` runs (via __main__.py): read settings and config, build, export.

A broken config or stack setting stops the program with pulumi.RunError, which Pulumi prints
as a plain message (no traceback), before any resource is registered.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from phoenix.config import ConfigError, ConfigFileError, load_config
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
    stack = build_stack(config, settings)
    for key, value in stack.outputs.items():
        pulumi.export(key, value)
    return stack
