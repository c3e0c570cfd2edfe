"""Data flows one way (docs: style): the config layer depends on nothing above it, so
`phoenix.config` imports only itself (and the standard library / third-party packages)."""

from __future__ import annotations

import ast
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "phoenix" / "config"


def phoenix_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions too
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("phoenix"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("phoenix")}
    return found


def test_the_config_layer_imports_nothing_above_it():
    above = {f"{path.name}: {module}" for path in CONFIG.glob("*.py") for module in phoenix_imports(path)
             if module != "phoenix.config" and not module.startswith("phoenix.config.")}
    assert above == set()
