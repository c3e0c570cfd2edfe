"""`pip install .` as a real wheel (not `-e .`): it carries every sub-package, the JSON schema,
the feature scripts and the cloud-init templates of the top-level cloud_init/ directory, and
`python -m phoenix` works from any directory with nothing of the source tree in reach.

The wheel is built from a copy of the sources (the checkout stays clean) and installed with
--no-deps into a fresh virtualenv; its dependencies come from this run's own virtualenv through
a .pth line (offline, and no copy of phoenix rides along: that directory's .pth files, such as
an editable install's, are not processed from there).
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("phoenix", "cloud_init", "pyproject.toml", "setup.py", "README.md")


def run(*args: str | Path, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    done = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work / "dist", "./src", cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = (work / "dist").glob("phoenix_hypervisor-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed; -> its python."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    done = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    done = run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
               wheel, cwd=venv.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                  cwd=venv.parent).stdout.strip()
    (Path(purelib) / "phoenix-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PHOENIX_"))}
    env["PATH"] = "/usr/bin:/bin"
    return env


def test_wheel_holds_every_package_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "cloud_init").glob("*.j2"):
        assert f"phoenix/cloud_init_templates/{template.name}" in names
    assert "phoenix/config/phoenix_vm_configs.schema.json" in names
    for script in (ROOT / "phoenix" / "features").glob("*.sh"):
        assert f"phoenix/features/{script.name}" in names
    source_modules = {str(p.relative_to(ROOT)) for p in (ROOT / "phoenix").rglob("*.py")}
    assert source_modules <= names, sorted(source_modules - names)  # incl. packages without __init__.py


def test_wheel_requires_what_requirements_txt_pins(wheel):
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(meta_name))
    requires = sorted(meta.get_all("Requires-Dist") or [])
    pins = sorted(line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if re.match(r"^[A-Za-z]", line))
    assert requires == pins


def test_render_from_any_directory_uses_the_installed_templates(installed, tmp_path, example_config_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = tmp_path / "vms.json"
    shutil.copy(example_config_path, config)
    where = run(installed, "-c", "import phoenix, phoenix.cloudinit.render as r; print(phoenix.__file__); "
                "print(r.TEMPLATE_DIR)", cwd=elsewhere, env=clean_env())
    module_file, template_dir = where.stdout.split()
    assert module_file.startswith(str(installed.parents[1])), module_file  # not the source tree
    assert template_dir.endswith("site-packages/phoenix/cloud_init_templates")

    done = run(installed, "-m", "phoenix", "render", "8001", "--file", config, cwd=elsewhere, env=clean_env())
    assert done.returncode == 0, done.stderr
    source = run(sys.executable, "-m", "phoenix", "render", "8001", "--file", config, cwd=ROOT)
    assert done.stdout == source.stdout and "#cloud-config" in done.stdout

    for args in (["validate", str(config)], ["schema"], ["init", "--help"], ["doctor", "--help"]):
        done = run(installed, "-m", "phoenix", *args, cwd=elsewhere, env=clean_env())
        assert done.returncode == 0, (args, done.stderr)


def test_source_tree_templates_are_the_fallback():
    """A checkout (and `pip install -e .`) has no phoenix/cloud_init_templates: the top-level
    cloud_init/ is used, which is what the Pulumi program in the project directory renders."""
    from phoenix.cloudinit import render

    assert not (ROOT / "phoenix" / "cloud_init_templates").exists()
    assert render.TEMPLATE_DIR == ROOT / "cloud_init"
