"""The STAND-IN Pulumi CLI (tests/standin_pulumi/pulumi) for tests of scripts/up.sh,
`python -m phoenix init` and `python -m phoenix doctor`: a state file holding a stack's config,
and the calls made. It is not Pulumi (no program runs, nothing is encrypted)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STANDIN_DIR = Path(__file__).resolve().parent / "standin_pulumi"
SECRET_KEYS = ("proxmoxve:apiToken", "phoenix-hypervisor:sshPrivateKey")


@dataclass
class StandinPulumi:
    state_file: Path

    @classmethod
    def create(cls, directory: Path, config: dict | None = None, *, url: str | None = "file://~",
               stacks: tuple[str, ...] = ("dev",), plaintext: tuple[str, ...] = ()) -> StandinPulumi:
        """`plaintext`: secret keys stored as if set without --secret (the others were)."""
        config = config or {}
        secret = [k for k in SECRET_KEYS if k in config and k not in plaintext]
        state = {"config": config, "url": url, "stacks": list(stacks), "calls": [], "secret_keys": secret}
        path = directory / "standin-pulumi-state.json"
        path.write_text(json.dumps(state))
        return cls(path)

    @property
    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    @property
    def config(self) -> dict:
        return self.state["config"]

    @property
    def calls(self) -> list[list[str]]:
        return self.state["calls"]

    def env(self, base: dict | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{STANDIN_DIR}:{env.get('PATH', '')}"
        env["FAKE_PULUMI_STATE"] = str(self.state_file)
        return env
