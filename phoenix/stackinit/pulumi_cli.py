"""The stack's configuration, read and written through the Pulumi CLI.

Pulumi owns the stack file and the encryption of secrets, so nothing here edits
Pulumi.<stack>.yaml directly: values go through `pulumi config set` (secrets with `--secret`,
their value on standard input so it never shows in a process list) and come back through
`pulumi config get`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PROJECT = "phoenix-hypervisor"

# Every stack config key the program reads (see phoenix/resources/settings.py).
KEYS = (
    "proxmoxve:endpoint",
    "proxmoxve:apiToken",
    "proxmoxve:insecure",
    f"{PROJECT}:vmConfigFile",
    f"{PROJECT}:sshPrivateKey",
    f"{PROJECT}:sshUsername",
    f"{PROJECT}:nodes",
)
SECRET_KEYS = frozenset({"proxmoxve:apiToken", f"{PROJECT}:sshPrivateKey"})
CLI_TIMEOUT_S = 60


class PulumiCliError(Exception):
    """The Pulumi CLI is missing or failed (the message is its own first error line)."""


@dataclass(frozen=True)
class PulumiStackConfig:
    stack: str
    binary: str = os.environ.get("PULUMI_BINARY", "pulumi")
    cwd: str | None = None

    def _run(self, args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([self.binary, *args, "--stack", self.stack], input=stdin,
                                  capture_output=True, text=True, check=False, cwd=self.cwd,
                                  timeout=CLI_TIMEOUT_S)
        except FileNotFoundError:
            raise PulumiCliError(f"the Pulumi CLI ({self.binary}) is not installed: "
                                 "https://www.pulumi.com/docs/install/") from None
        except subprocess.TimeoutExpired:
            raise PulumiCliError(f"`pulumi {args[0]}` did not answer within {CLI_TIMEOUT_S} s "
                                 "(is it asking for a passphrase? set PULUMI_CONFIG_PASSPHRASE)") from None

    def get(self, key: str) -> str | None:
        """The value as `pulumi config get` prints it (objects as JSON), or None when unset."""
        done = self._run(["config", "get", key])
        if done.returncode == 0:
            return done.stdout.removesuffix("\n")
        if "not found" in done.stderr:
            return None
        raise PulumiCliError(_first_line(done.stderr) or f"`pulumi config get {key}` failed")

    def get_all(self) -> dict[str, str | None]:
        return {key: self.get(key) for key in KEYS}

    def read(self) -> tuple[dict[str, str | None], set[str]]:
        """Every key the program reads, and which of the secret ones are stored in plain text.
        One `pulumi config --json --show-secrets` ({key: {value, secret, objectValue}}); a CLI
        that cannot answer it is asked key by key (secrecy then unknown)."""
        done = self._run(["config", "--json", "--show-secrets"])
        try:
            data = json.loads(done.stdout) if done.returncode == 0 else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            return self.get_all(), set()
        values = {key: _text(data[key]) if isinstance(data.get(key), dict) else None for key in KEYS}
        plain = {key for key in SECRET_KEYS if isinstance(data.get(key), dict) and data[key].get("secret") is False}
        return values, plain

    def set(self, key: str, value: str, *, secret: bool = False, path: bool = False) -> None:
        """`pulumi config set KEY` with the value on standard input (never on the command line)."""
        args = ["config", "set", key]
        if secret:
            args.append("--secret")
        if path:
            args.append("--path")
        done = self._run(args, stdin=value)
        if done.returncode != 0:
            raise PulumiCliError(_first_line(done.stderr) or f"`pulumi config set {key}` failed")


def _text(entry: dict) -> str | None:
    """A `config --json` entry as `config get` prints it (objects as JSON)."""
    if "objectValue" in entry and not isinstance(entry.get("value"), str):
        return json.dumps(entry["objectValue"])
    value = entry.get("value")
    return None if value is None else str(value)


def parse_object(text: str | None) -> Any:
    """An object value as `pulumi config get` prints it (JSON), or None."""
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def remove(config: PulumiStackConfig, key: str, *, path: bool = False) -> None:
    """`pulumi config rm KEY` (no error when it was not set)."""
    done = config._run(["config", "rm", key, *(["--path"] if path else [])])
    if done.returncode != 0 and "not found" not in done.stderr:
        raise PulumiCliError(_first_line(done.stderr) or f"`pulumi config rm {key}` failed")


def select_or_create(config: PulumiStackConfig) -> None:
    """Select the stack, creating it when it does not exist yet."""
    done = config._run(["stack", "select", "--create"])
    if done.returncode != 0:
        raise PulumiCliError(_first_line(done.stderr) or f"cannot select or create stack {config.stack}")
