"""Pulumi entry point: everything lives in the phoenix package (tests import it under mocks)."""

from pathlib import Path

from phoenix.resources.program import run

run(Path(__file__).resolve().parent)
