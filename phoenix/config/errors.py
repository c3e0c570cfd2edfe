"""The errors a broken configuration file produces: one line per problem, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    where: str  # e.g. "vms[0] (vmid 8001, web-01)" or "images.ubuntu"
    field: str  # dotted field path inside `where`, e.g. "network_config.gateway"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}" if self.field else f"{self.where}: {self.message}"


class ConfigError(Exception):
    """The file was read and parsed, but its content is wrong. Carries every problem found."""

    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s):\n{lines}")


class ConfigFileError(Exception):
    """The file cannot be read, or is not JSON (the message says where it broke)."""
