"""Drive the real dynamic-provider plugin process the way the Pulumi engine does.

The CLI runs every Python dynamic provider of a stack in one process, started by its
`pulumi-resource-pulumi-python` shim as `<venv>/bin/python -u -m pulumi.dynamic` (no PYTHONPATH),
which prints the port of a gRPC `pulumirpc.ResourceProvider` server. This module starts that same
process and speaks the same protocol to it (stubs from `pulumi.runtime.proto`), so tests see what
mocks cannot: unpickling of the registered `__provider` blob in a fresh interpreter, diffs that see
`__provider`, unknowns arriving as `pulumi.output.Unknown` objects, errors as the user reads them.

Usage (a test module's fixture; the process is killed at the end, its stderr printed so pytest
shows it for a failing test):

    from plugin_process import UNKNOWN, PluginProcess, running_plugin

    @pytest.fixture
    def plugin():
        yield from running_plugin(config={"proxmoxve:endpoint": url, ...})

    def test_x(plugin):
        inputs = registration_inputs  # e.g. pulumi_harness Registration.provider_inputs()
        checked = plugin.check({}, inputs)            # -> Checked(inputs, failures)
        id_, outs = plugin.create(checked.inputs)
        diff = plugin.diff(id_, outs, checked.inputs)  # -> Diff(changes, replaces, ...)
        assert diff.changes == "DIFF_NONE"
        id_, outs, _ = plugin.read(id_, outs, checked.inputs)
        plugin.delete(id_, outs)
        assert "warning:" in plugin.stderr()           # what the user would see

Properties are plain dicts (as the engine sends them to a provider that does not accept
secrets: secrets unwrapped). Numbers become floats, as on the wire. Put `UNKNOWN` (the engine's
unknown sentinel) in a property for preview-time calls (check/diff). A provider exception comes
back as `PluginCallError` with the plugin's traceback text and the tail of its stderr.

Working directory: by default a fresh temporary directory, not the project: the CLI uses the
project directory, where `python -m` would also find `phoenix` through the current directory;
a temporary directory proves the package is importable from the virtualenv itself (requirements'
`-e .`), which is what a stack run from anywhere relies on. Pass `cwd=` to use another one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

UNKNOWN = rpc.UNKNOWN  # the engine's "computed later" value, as it travels in a Struct
VENV_PYTHON = Path(sys.executable)  # the interpreter running the tests: the project's venv
START_DEADLINE_S = 30.0
CALL_DEADLINE_S = 120.0
_URN_PREFIX = "urn:pulumi:test::phoenix-hypervisor::pulumi-python:dynamic:Resource"


class PluginCallError(Exception):
    """A call failed inside the plugin: `details` is what the engine would show the user."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str, stderr_tail: str) -> None:
        super().__init__(f"{method} failed ({code.name}):\n{details}\n"
                         f"--- plugin stderr (tail) ---\n{stderr_tail}")
        self.method, self.code, self.details = method, code, details


@dataclass
class Checked:
    inputs: dict[str, Any]
    failures: list[tuple[str, str]]  # (property, reason)


@dataclass
class Diff:
    changes: str  # "DIFF_NONE", "DIFF_SOME" or "DIFF_UNKNOWN"
    replaces: list[str]
    delete_before_replace: bool


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """Plain values as the engine puts them on the wire (ints become floats)."""
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)


class PluginProcess:
    """One `python -u -m pulumi.dynamic` process and a gRPC stub to it. Use `start()`."""

    def __init__(self, process: subprocess.Popen, port: int, stderr_path: Path,
                 workdir: tempfile.TemporaryDirectory | None) -> None:
        self.process, self.port, self.stderr_path = process, port, stderr_path
        self._workdir = workdir
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    @classmethod
    def start(cls, *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
              python: Path = VENV_PYTHON) -> PluginProcess:
        """Start the plugin like the CLI: no PYTHONPATH; `env` entries are added to os.environ."""
        # Tagged with the test run's pid ("phoenix-<kind>-<pid>-"): runs side by side on one
        # machine can tell their temporary entries apart.
        workdir = tempfile.TemporaryDirectory(prefix=f"phoenix-plugin-{os.getpid()}-")
        run_dir = Path(cwd) if cwd is not None else Path(workdir.name)
        stderr_path = Path(workdir.name) / "plugin.stderr"
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        environment.update(env or {})
        process = subprocess.Popen(
            [str(python), "-u", "-m", "pulumi.dynamic"], cwd=run_dir, env=environment,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_path.open("wb"))
        port = _read_port(process, stderr_path)
        return cls(process, port, stderr_path, workdir)

    # ------------------------------------------------------------------ engine calls

    def get_plugin_info(self) -> str:
        return self._call("GetPluginInfo", empty_pb2.Empty()).version

    def configure(self, config: Mapping[str, str]) -> None:
        """The whole stack config as strings ("project:key" names), secrets in plain text."""
        self._call("Configure", provider_pb2.ConfigureRequest(
            variables=dict(config), args=to_struct(config), acceptSecrets=True,
            acceptResources=True))

    def check(self, olds: Mapping[str, Any], news: Mapping[str, Any], *,
              name: str = "res") -> Checked:
        response = self._call("Check", provider_pb2.CheckRequest(
            urn=_urn(name), olds=to_struct(olds), news=to_struct(news)))
        return Checked(from_struct(response.inputs),
                       [(f.property, f.reason) for f in response.failures])

    def diff(self, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any], *,
             name: str = "res") -> Diff:
        """`olds` are the old outputs (what the state holds), `news` the checked inputs."""
        response = self._call("Diff", provider_pb2.DiffRequest(
            id=id_, urn=_urn(name), olds=to_struct(olds), news=to_struct(news),
            old_inputs=to_struct(olds)))
        return Diff(provider_pb2.DiffResponse.DiffChanges.Name(response.changes),
                    list(response.replaces), response.deleteBeforeReplace)

    def create(self, props: Mapping[str, Any], *, name: str = "res") -> tuple[str, dict]:
        response = self._call("Create", provider_pb2.CreateRequest(
            urn=_urn(name), properties=to_struct(props)))
        return response.id, from_struct(response.properties)

    def read(self, id_: str, props: Mapping[str, Any], inputs: Mapping[str, Any] | None = None,
             *, name: str = "res") -> tuple[str, dict, dict | None]:
        """Refresh: (id, outputs, inputs or None). An empty id means "the resource is gone"."""
        response = self._call("Read", provider_pb2.ReadRequest(
            id=id_, urn=_urn(name), properties=to_struct(props),
            inputs=to_struct(inputs or {})))
        inputs_out = from_struct(response.inputs) if response.HasField("inputs") else None
        return response.id, from_struct(response.properties), inputs_out

    def update(self, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any], *,
               name: str = "res") -> dict:
        response = self._call("Update", provider_pb2.UpdateRequest(
            id=id_, urn=_urn(name), olds=to_struct(olds), news=to_struct(news),
            old_inputs=to_struct(olds)))
        return from_struct(response.properties)

    def delete(self, id_: str, props: Mapping[str, Any], *, name: str = "res") -> None:
        self._call("Delete", provider_pb2.DeleteRequest(
            id=id_, urn=_urn(name), properties=to_struct(props),
            old_inputs=to_struct(props)))

    # ------------------------------------------------------------------ process

    def stderr(self) -> str:
        """Everything the plugin wrote to stderr so far (the CLI shows these lines)."""
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _call(self, method: str, request: Any, deadline_s: float = CALL_DEADLINE_S) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=deadline_s)
        except grpc.RpcError as exc:
            raise PluginCallError(method, exc.code(), exc.details() or "",
                                  self.stderr()[-4000:]) from None


def running_plugin(config: Mapping[str, str] | None = None, **start_args: Any
                   ) -> Iterator[PluginProcess]:
    """Body of a fixture: `yield from running_plugin(config)`. GetPluginInfo and Configure (with
    `config`, default empty) are done as the engine does them; at the end the process is killed
    and its stderr printed (pytest shows it when the test failed)."""
    plugin = PluginProcess.start(**start_args)
    try:
        plugin.get_plugin_info()
        plugin.configure(config or {})
        yield plugin
    finally:
        text = plugin.stderr()
        plugin.close()
        if text:
            print(f"--- dynamic-provider plugin stderr ---\n{text}", file=sys.stderr)


def _urn(name: str) -> str:
    # The dynamic provider finds its code through `__provider`, never through the URN.
    return f"{_URN_PREFIX}::{name}"


def _read_port(process: subprocess.Popen, stderr_path: Path) -> int:
    """The first stdout line is the port; bounded, with the plugin's stderr if it died."""
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    deadline, buffer = time.monotonic() + START_DEADLINE_S, b""
    while time.monotonic() < deadline:
        chunk = process.stdout.read()
        if chunk:
            buffer += chunk
            if b"\n" in buffer:
                return int(buffer.split(b"\n", 1)[0])
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait(5)
    raise RuntimeError(f"the dynamic-provider plugin printed no port within {START_DEADLINE_S} s "
                       f"(exit {process.returncode}):\n{stderr_path.read_text(errors='replace')}")
