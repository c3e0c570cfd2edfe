"""Check rendered seeds with cloud-init itself, in both generations users' images run.

- cloud-init 22.4 (Debian 12; the host's package `cloud-init`, installed by
  scripts/setup-test-env.sh): user-data with `cloud-init schema --config-file FILE` (rc 0 =
  valid); network-config with its own v2 parser (`cloudinit.net.network_state`), since its
  `schema` cannot check network-config.
- cloud-init 25.1 (Debian 13, the generation of Ubuntu 24.04's images): the trixie package
  unpacked by scripts/fetch-cloud-init.sh (setup-test-env.sh runs it; so does the first check
  here on a machine where it is missing), run with the host's python3 and cloud-init's
  dependencies: `cloud-init schema` for user-data and for network-config.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
REPO = Path(__file__).resolve().parents[1]
NEWER_SUITE = "trixie"

_PARSE_NETWORK = """
import json, sys, yaml
from cloudinit.net.network_state import parse_net_config_data
ns = parse_net_config_data(yaml.safe_load(sys.stdin.read()), skip_broken=False)
print(json.dumps({"interfaces": list(ns.iter_interfaces()), "dns": ns.dns_nameservers,
                  "search": ns.dns_searchdomains}, default=str))
"""


def _require_cloud_init() -> str:
    exe = shutil.which("cloud-init")
    assert exe, "cloud-init is not installed: `apt-get install -y cloud-init` (setup-test-env.sh)"
    return exe


def newer_cloud_init_dir() -> Path:
    cache = os.environ.get("PHOENIX_CACHE_DIR") or str(Path.home() / ".cache" / "phoenix")
    return Path(cache) / "cloud-init" / NEWER_SUITE


@functools.lru_cache(maxsize=1)
def newer_cloud_init() -> tuple[Path, str]:
    """(the unpacked package's python path, its version), fetched once if missing."""
    dest = newer_cloud_init_dir()
    done = subprocess.run(["bash", str(REPO / "scripts" / "fetch-cloud-init.sh"), NEWER_SUITE,
                           str(dest)], capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, f"could not fetch cloud-init from {NEWER_SUITE}:\n{done.stderr}"
    return dest / "root" / "usr" / "lib" / "python3" / "dist-packages", \
        (dest / "VERSION").read_text().strip()


def _schema_argv(version: str, path: Path, schema_type: str) -> tuple[list[str], dict]:
    if version == "22.4":
        assert schema_type == "cloud-config", "cloud-init 22.4 cannot check network-config"
        return [_require_cloud_init(), "schema", "--config-file", str(path)], dict(os.environ)
    pythonpath, _ = newer_cloud_init()
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return [SYSTEM_PYTHON, "-m", "cloudinit.cmd.main", "schema", "--schema-type", schema_type,
            "--config-file", str(path)], env


GENERATIONS = ("22.4", "25.1")


def cloud_init_schema(document: str, *, version: str = "22.4",
                      schema_type: str = "cloud-config") -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "document"
        path.write_text(document)
        argv, env = _schema_argv(version, path, schema_type)
        return subprocess.run(argv, capture_output=True, text=True, check=False, env=env)


def assert_valid_user_data(user_data: str) -> None:
    """Valid under every generation's `cloud-init schema`."""
    for version in GENERATIONS:
        result = cloud_init_schema(user_data, version=version)
        assert result.returncode == 0, (
            f"cloud-init {version} schema rejected the user-data:\n{result.stdout}"
            f"{result.stderr}\n{user_data}")


def assert_valid_network_config(network_config: str) -> None:
    """Parsed by 22.4's v2 parser and valid under 25.1's network-config schema."""
    parse_network_config(network_config)
    result = cloud_init_schema(network_config, version="25.1", schema_type="network-config")
    assert result.returncode == 0, (
        f"cloud-init 25.1 schema rejected the network-config:\n{result.stdout}{result.stderr}"
        f"\n{network_config}")


def parse_network_config(network_config: str) -> dict:
    _require_cloud_init()
    result = subprocess.run([SYSTEM_PYTHON, "-c", _PARSE_NETWORK], input=network_config,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"cloud-init could not parse the network-config:\n{result.stderr}\n{network_config}"
    return json.loads(result.stdout)
