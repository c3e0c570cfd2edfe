"""The few PVE API calls a bake needs beyond the guest agent: power, snapshots, tasks, template.

Built on the readiness transport (same credentials, error mapping, secret-free messages).
PVE endpoints (qemu-server `PVE/API2/Qemu.pm`): `POST status/start|stop`, `POST snapshot`,
`POST snapshot/{name}/rollback`, `DELETE snapshot/{name}`, `POST template` (refused while the VM
has snapshots or runs), and `GET /nodes/{node}/tasks/{upid}/status` for the worker tasks.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from phoenix.readiness.pve import PveTransport
from phoenix.readiness.transport import TransientError, TransportConfigError

TASK_POLL_S = 0.5


class TaskFailed(Exception):
    def __init__(self, what: str, exitstatus: str) -> None:
        super().__init__(f"{what} failed: {exitstatus}")
        self.exitstatus = exitstatus


class PveVmControl(PveTransport):
    """Power, snapshots and template conversion of one VM (plus the agent calls it inherits)."""

    def config(self, *, timeout_s: float = 15.0) -> dict[str, Any]:
        return self._call("GET", ("config",), "config", timeout_s) or {}

    def snapshot_names(self, *, timeout_s: float = 15.0) -> list[str]:
        data = self._call("GET", ("snapshot",), "snapshot", timeout_s) or []
        return [s["name"] for s in data if s.get("name") != "current"]

    def start(self, *, timeout_s: float = 120.0) -> None:
        self._task("POST", ("status", "start"), "start", "start", timeout_s)

    def stop(self, *, timeout_s: float = 120.0) -> None:
        self._task("POST", ("status", "stop"), "stop", "stop", timeout_s)

    def snapshot(self, name: str, *, timeout_s: float = 600.0) -> None:
        self._task("POST", ("snapshot",), "snapshot", f"snapshot {name}", timeout_s,
                   snapname=name, description="phoenix: the template's disk before its bake")

    def rollback(self, name: str, *, timeout_s: float = 600.0) -> None:
        self._task("POST", ("snapshot", name, "rollback"), "snapshot", f"rollback to {name}",
                   timeout_s)

    def delete_snapshot(self, name: str, *, timeout_s: float = 600.0) -> None:
        self._task("DELETE", ("snapshot", name), "snapshot", f"delete snapshot {name}", timeout_s)

    def convert_to_template(self, *, timeout_s: float = 600.0) -> None:
        self._task("POST", ("template",), "template", "convert to template", timeout_s)

    # ------------------------------------------------------------------ tasks

    def _task(self, method: str, path: tuple[str, ...], op: str, what: str, timeout_s: float,
              **params: Any) -> None:
        deadline = time.monotonic() + timeout_s
        if method == "DELETE":
            upid = self._delete(path, op, timeout_s)
        else:
            upid = self._call(method, path, op, timeout_s, retry=False, **params)
        if not isinstance(upid, str) or not upid.startswith("UPID:"):
            return  # answered synchronously
        while True:
            status = self._task_status(upid, max(deadline - time.monotonic(), 1.0))
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", ""))
                if exit_status != "OK" and not exit_status.startswith("WARNINGS"):
                    raise TaskFailed(f"{what} of VM {self.vmid} on {self.node}", exit_status)
                return
            if time.monotonic() > deadline:
                raise TransientError(f"{what} of VM {self.vmid} on {self.node} did not finish "
                                     f"within {timeout_s:.0f} s (task {upid})")
            self.sleep(TASK_POLL_S)

    def _task_status(self, upid: str, timeout_s: float) -> dict[str, Any]:
        return self._raw(lambda api: api.nodes(self.node).tasks(upid).status.get(), "task",
                         timeout_s) or {}

    def _delete(self, path: tuple[str, ...], op: str, timeout_s: float) -> Any:
        def call(api: Any) -> Any:
            resource = api.nodes(self.node).qemu(self.vmid)
            for part in path:
                resource = getattr(resource, part)
            return resource.delete()
        return self._raw(call, op, timeout_s)

    def _raw(self, call: Any, op: str, timeout_s: float) -> Any:
        import requests
        from proxmoxer.core import ResourceException

        api = self._client()
        api._backend.auth.timeout = timeout_s
        self._calls += 1
        try:
            with warnings.catch_warnings():
                if self.credentials.verify is False:
                    warnings.simplefilter("ignore")
                return call(api)
        except ResourceException as exc:
            raise self._map_error(op, int(exc.status_code), str(exc.content or "")) from None
        except requests.exceptions.SSLError:
            raise TransportConfigError(f"TLS verification of {self.credentials.endpoint} failed") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise TransientError(f"cannot reach {self.credentials.endpoint}: {type(exc).__name__}") from None
