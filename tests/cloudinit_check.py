"""Check rendered seeds with cloud-init itself (Debian package `cloud-init`, installed by .ci/run).

- user-data: `cloud-init schema --config-file FILE` (rc 0 = valid).
- network-config: cloud-init's own v2 parser (`cloudinit.net.network_state`), run with the
  system python that the package installs into; `cloud-init schema` cannot check it in 22.4.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"

_PARSE_NETWORK = """
import json, sys, yaml
from cloudinit.net.network_state import parse_net_config_data
ns = parse_net_config_data(yaml.safe_load(sys.stdin.read()), skip_broken=False)
print(json.dumps({"interfaces": list(ns.iter_interfaces()), "dns": ns.dns_nameservers,
                  "search": ns.dns_searchdomains}, default=str))
"""


def _require_cloud_init() -> str:
    exe = shutil.which("cloud-init")
    assert exe, "cloud-init is not installed: `apt-get install -y cloud-init` (.ci/run does this)"
    return exe


def cloud_init_schema(user_data: str) -> subprocess.CompletedProcess:
    exe = _require_cloud_init()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user-data"
        path.write_text(user_data)
        return subprocess.run([exe, "schema", "--config-file", str(path)], capture_output=True, text=True, check=False)


def assert_valid_user_data(user_data: str) -> None:
    result = cloud_init_schema(user_data)
    assert result.returncode == 0, (
        f"cloud-init schema rejected the user-data:\n{result.stdout}{result.stderr}\n{user_data}")


def parse_network_config(network_config: str) -> dict:
    _require_cloud_init()
    result = subprocess.run([SYSTEM_PYTHON, "-c", _PARSE_NETWORK], input=network_config,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"cloud-init could not parse the network-config:\n{result.stderr}\n{network_config}"
    return json.loads(result.stdout)
