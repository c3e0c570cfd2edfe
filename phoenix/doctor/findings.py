"""One problem the doctor found, with what fixes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    subject: str  # what is at fault: "token phoenix@pve!ci", "storage local", "node pve (ssh)"
    problem: str
    fix: str

    def line(self) -> str:
        return f"{self.subject}: {self.problem} -> fix: {self.fix}"
