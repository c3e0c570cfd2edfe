"""The GitHub workflows pass actionlint (syntax, expressions, each action's inputs and runtime),
and the preview workflow passes every secret its header asks for."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


def actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is not installed: pip install -r requirements-dev.txt")
    return found


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([actionlint(), "-no-color", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    done = lint(workflow)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_wrong_input(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text((ROOT / ".github/workflows/preview.yml").read_text().replace("cloud-url:", "backend-url:"))
    done = lint(broken)
    assert done.returncode == 1
    assert 'input "backend-url" is not defined in action "pulumi/actions@v7"' in done.stdout


def test_preview_passes_every_secret_it_asks_for():
    text = (ROOT / ".github/workflows/preview.yml").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    asked = set(re.findall(r"\bPULUMI_[A-Z_]+\b", header))
    assert {"PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"} <= asked
    for name in asked:
        assert f"secrets.{name} }}}}" in body, name
    assert re.search(r"cloud-url: \$\{\{ secrets\.PULUMI_BACKEND_URL \}\}", body)
