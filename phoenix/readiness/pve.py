"""The guest-agent transport over the Proxmox VE API (proxmoxer, API-token auth).

    creds = PveCredentials.from_env()        # PROXMOX_VE_ENDPOINT, PROXMOX_VE_API_TOKEN, ...
    transport = PveTransport(creds, node="pve", vmid=8001)

Answers are mapped to the typed errors of `phoenix.readiness.transport`:
- 401 -> AuthError; 403 -> PermissionDeniedError naming the privilege the call needs;
- 500 "QEMU guest agent is not running" -> AgentNotRunningError;
- 500 "... got timeout", lock errors, 502-504, 595-599, connection errors -> TransientError
  (retried here a couple of times for one-off reads; polls are retried by the wait itself);
- 500 "VM N (is) not running" -> VmNotRunningError; "... does not exist" -> VmNotFoundError;
- 500 "Agent error: ..." (the agent answered with an error) -> AgentCommandError.
The token secret never appears in a message: only the token id (user@realm!name) does.

A VM that HA or an admin moved to another node is followed: when PVE says the VM does not exist
on the recorded node, `/cluster/resources?type=vm` is asked where it is now (as bpg's own read
does, `GetVMNodeName`), and the call is repeated there. `node` then names where the VM is.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from phoenix.readiness.api_budget import budget_for
from phoenix.readiness.qga import parse_interfaces
from phoenix.readiness.transport import (
    AgentCommandError,
    AgentNotRunningError,
    AuthError,
    ExecStatus,
    GuestTransport,
    NetworkInterface,
    PermissionDeniedError,
    TransientError,
    TransportConfigError,
    TransportError,
    VmNotFoundError,
    VmNotRunningError,
)

ENV_ENDPOINT = "PROXMOX_VE_ENDPOINT"
ENV_TOKEN = "PROXMOX_VE_API_TOKEN"
ENV_INSECURE = "PROXMOX_VE_INSECURE"

_TOKEN = re.compile(r"^(?P<user>[^@!=\s]+@[^@!=\s]+)!(?P<name>[^@!=\s]+)=(?P<secret>\S+)$")
# Delays before retrying a transient answer of a one-off call (not of polls: the wait repeats those).
RETRY_DELAYS_S = (0.5, 1.0)

# What each call needs, for 403 messages. PVE 9 split VM.Monitor into VM.GuestAgent.*.
PRIVILEGES = {
    "status": "VM.Audit",
    "locate": "VM.Audit (to see which node the VM is on)",
    "ping": "VM.GuestAgent.Audit (PVE 9) or VM.Monitor (PVE 8)",
    "network-get-interfaces": "VM.GuestAgent.Audit (PVE 9) or VM.Monitor (PVE 8)",
    "exec": "VM.GuestAgent.Unrestricted (PVE 9) or VM.Monitor (PVE 8)",
    "exec-status": "VM.GuestAgent.Unrestricted (PVE 9) or VM.Monitor (PVE 8)",
    "file-read": "VM.GuestAgent.FileRead or VM.GuestAgent.Unrestricted (PVE 9), "
                 "or VM.Monitor (PVE 8)",
}


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class PveCredentials:
    """Endpoint and API token. repr() never shows the secret.

    verify: True (system CAs, or REQUESTS_CA_BUNDLE), False (insecure), or a CA bundle path.
    """

    endpoint: str
    api_token: str
    verify: bool | str = True

    def __repr__(self) -> str:
        return f"PveCredentials(endpoint={self.endpoint!r}, token={self.token_id!r}, ***)"

    __str__ = __repr__

    @property
    def token_id(self) -> str:
        """user@realm!name: safe to show."""
        match = _TOKEN.match(self.api_token or "")
        return f"{match['user']}!{match['name']}" if match else "(malformed token)"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> PveCredentials:
        env = os.environ if environ is None else environ
        endpoint, token = env.get(ENV_ENDPOINT, ""), env.get(ENV_TOKEN, "")
        missing = [name for name, value in ((ENV_ENDPOINT, endpoint), (ENV_TOKEN, token))
                   if not value]
        if missing:
            raise TransportConfigError(f"set {' and '.join(missing)} (the same endpoint and API "
                                       "token as the proxmoxve provider)")
        return cls(endpoint, token, verify=not parse_bool(env.get(ENV_INSECURE, "false")))

    def check(self) -> None:
        """Raise TransportConfigError if the endpoint or token is malformed (value not shown)."""
        if not _TOKEN.match(self.api_token or ""):
            raise TransportConfigError("the API token must look like user@realm!tokenid=secret "
                                       "(PROXMOX_VE_API_TOKEN / proxmoxve:apiToken)")
        # As the proxmoxve provider requires (bpg `proxmox/api/client.go` NewConnection:
        # url.ParseRequestURI, then scheme == "https"): a bare `pve.example.com` is refused there,
        # so it is refused here too, not tried as a host name until a deadline.
        try:
            parts = urlsplit(self.endpoint or "")
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if parts is None or parts.scheme != "https" or not parts.hostname or not port_ok \
                or " " in self.endpoint:
            raise TransportConfigError(f"the endpoint ({ENV_ENDPOINT} / proxmoxve:endpoint) must be "
                                       f"the API's https URL, e.g. https://pve.example.com:8006/, "
                                       f"not {self.endpoint!r}")


def proxmox_client(credentials: PveCredentials, timeout_s: float = 10) -> Any:
    """A proxmoxer client for the endpoint and token (checked first); TLS as `credentials.verify`.
    Shared by everything that talks to the PVE API (readiness, `python -m phoenix doctor`)."""
    from proxmoxer import ProxmoxAPI  # imported here: the qga-only users need no proxmoxer

    credentials.check()
    parts = urlsplit(credentials.endpoint if "://" in credentials.endpoint
                     else f"https://{credentials.endpoint}")
    match = _TOKEN.match(credentials.api_token)
    assert match is not None  # check() passed
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    prefix = parts.path.strip("/")
    prefix = re.sub(r"/?api2/json$", "", prefix) or None
    return ProxmoxAPI(
        f"{host}:{parts.port or 8006}",
        user=match["user"],
        token_name=match["name"],
        token_value=match["secret"],
        verify_ssl=credentials.verify,
        path_prefix=prefix,
        timeout=timeout_s,
    )


class PveTransport(GuestTransport):
    """GuestTransport over the PVE API for one VM."""

    def __init__(
        self,
        credentials: PveCredentials,
        *,
        node: str,
        vmid: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        credentials.check()
        self.credentials = credentials
        self.node = node
        self.vmid = int(vmid)
        self.sleep = sleep
        self._calls = 0
        self._api: Any = None

    # ------------------------------------------------------------------ GuestTransport

    @property
    def calls(self) -> int:
        return self._calls

    def describe(self) -> str:
        return f"VM {self.vmid} on {self.node}"

    def vm_status(self, *, timeout_s: float) -> str:
        data = self._call("GET", ("status", "current"), "status", timeout_s, retry=False)
        return str((data or {}).get("status", "unknown"))

    def ping(self, *, timeout_s: float) -> None:
        self._call("POST", ("agent", "ping"), "ping", timeout_s, retry=False)

    def exec_start(self, argv: Sequence[str], *, timeout_s: float) -> int:
        data = self._call("POST", ("agent", "exec"), "exec", timeout_s, command=list(argv))
        return int(data["pid"])

    def exec_status(self, pid: int, *, timeout_s: float) -> ExecStatus:
        data = self._call("GET", ("agent", "exec-status"), "exec-status", timeout_s, pid=pid) or {}
        # PVE decodes out-data/err-data from base64 already. `exited` is a bool in the schema
        # and an int from some versions: any truthy value counts.
        return ExecStatus(
            exited=bool(data.get("exited")),
            exitcode=data.get("exitcode"),
            signal=data.get("signal"),
            stdout=data.get("out-data") or "",
            stderr=data.get("err-data") or "",
            truncated=bool(data.get("out-truncated") or data.get("err-truncated")),
        )

    def file_read(self, path: str, *, timeout_s: float, max_bytes: int = 1 << 20) -> bytes:
        # No `count`: PVE 8 rejects it; the whole file comes back (PVE caps it at 16 MiB).
        data = self._call("GET", ("agent", "file-read"), "file-read", timeout_s, file=path) or {}
        return str(data.get("content") or "").encode("utf-8")[:max_bytes]

    def network_interfaces(self, *, timeout_s: float) -> list[NetworkInterface]:
        data = self._call("GET", ("agent", "network-get-interfaces"), "network-get-interfaces",
                          timeout_s) or {}
        return parse_interfaces(data.get("result"))

    def close(self) -> None:
        self._api = None

    # ------------------------------------------------------------------ HTTP

    def _client(self) -> Any:
        if self._api is None:
            self._api = proxmox_client(self.credentials)
        return self._api

    def _call(self, method: str, path: tuple[str, ...], op: str, timeout_s: float, *,
              retry: bool = True, **params: Any) -> Any:
        deadline = time.monotonic() + timeout_s
        try:
            return self._call_on_node(method, path, op, timeout_s, retry=retry, **params)
        except VmNotFoundError:
            try:
                moved_to = self.locate(timeout_s=max(deadline - time.monotonic(), 0.2), strict=True)
            except TransportError as exc:
                # Not on the recorded node, and the cluster could not say where it is: that is
                # not "the VM is gone" (a refresh would drop readiness from the state, and the
                # next `up` would record the as-built facts from the *current* config; issue 18
                # case 11). Callers keep their state on a TransportError.
                raise TransportError(f"VM {self.vmid} is not on node {self.node}, and where it is "
                                     f"now could not be looked up ({exc})") from None
            if moved_to is None or moved_to == self.node:
                raise
            self.node = moved_to
            return self._call_on_node(method, path, op, max(deadline - time.monotonic(), 0.2),
                                      retry=retry, **params)

    def locate(self, *, timeout_s: float, strict: bool = False) -> str | None:
        """The node the VM is on now according to the cluster, or None if no node has it (or,
        unless `strict`, if the cluster could not be asked; strict raises the TransportError)."""
        try:
            resources = self._request("GET", (), "locate", timeout_s, {"type": "vm"}, root=("cluster", "resources"))
        except TransportError:
            if strict:
                raise
            return None
        for entry in resources or []:
            if str(entry.get("type")) == "qemu" and int(entry.get("vmid", -1)) == self.vmid:
                return str(entry.get("node")) or None
        return None

    def _call_on_node(self, method: str, path: tuple[str, ...], op: str, timeout_s: float, *,
                      retry: bool = True, **params: Any) -> Any:
        delays = RETRY_DELAYS_S if retry else ()
        deadline = time.monotonic() + timeout_s
        for attempt in range(len(delays) + 1):
            try:
                return self._request(method, path, op, max(deadline - time.monotonic(), 0.2),
                                     params)
            except TransientError:
                if attempt >= len(delays) or time.monotonic() + delays[attempt] >= deadline:
                    raise
                self.sleep(delays[attempt])
        raise AssertionError("unreachable")

    def _request(self, method: str, path: tuple[str, ...], op: str, timeout_s: float,
                 params: dict[str, Any], root: tuple[str, ...] | None = None) -> Any:
        import requests
        from proxmoxer.core import ResourceException

        # Every wait of the process shares the node's call budget (api_budget; docs/readiness.md).
        waited = budget_for(self.credentials.endpoint, self.node).take(
            max(timeout_s - 0.2, 0.0), f"node {self.node}")
        timeout_s = max(timeout_s - waited, 0.2)
        api = self._client()
        api._backend.auth.timeout = timeout_s  # proxmoxer reads the timeout per request from here
        resource = api.nodes(self.node).qemu(self.vmid)
        if root is not None:  # a cluster-wide path instead of this VM's
            resource = api
            path = root + path
        for part in path:
            resource = getattr(resource, part)
        self._calls += 1
        try:
            with warnings.catch_warnings():
                if self.credentials.verify is False:
                    # The user chose insecure; one warning per request would drown the progress.
                    warnings.simplefilter("ignore")
                if method == "GET":
                    return resource.get(**params)
                return resource.post(**params)
        except ResourceException as exc:
            raise self._map_error(op, int(exc.status_code), str(exc.content or "")) from None
        except requests.exceptions.SSLError as exc:
            raise TransportConfigError(
                f"TLS verification of {self.credentials.endpoint} failed ({_short(exc)}); give "
                f"the CA in REQUESTS_CA_BUNDLE or set {ENV_INSECURE}=true / proxmoxve:insecure"
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise TransientError(
                f"cannot reach {self.credentials.endpoint}: {type(exc).__name__}"
            ) from None

    def _map_error(self, op: str, status: int, message: str) -> TransportError:
        text = f"PVE answered {status}: {message}".strip().rstrip(":")
        where = f"/vms/{self.vmid}"
        if status == 401:
            return AuthError(
                f"PVE refused the API token {self.credentials.token_id} ({status} {message}); "
                f"check {ENV_TOKEN} / proxmoxve:apiToken"
            )
        if status == 403:
            privilege = PRIVILEGES.get(op, "a privilege")
            return PermissionDeniedError(
                f"the API token {self.credentials.token_id} lacks {privilege} on {where} "
                f"({text})",
                privilege,
            )
        if status >= 595 or status in (502, 503, 504):
            return TransientError(text)
        lowered = message.lower()
        if "guest agent is not running" in lowered:
            return AgentNotRunningError(text)
        if "no qemu guest agent" in lowered:  # "... configured" (PVE 6+), "No Qemu Guest Agent"
            return TransportConfigError(f"{text} (enable the VM's agent option)")
        if "got timeout" in lowered or "can't lock file" in lowered or "is locked" in lowered:
            return TransientError(text)
        if re.search(rf"\bvm {self.vmid} (is )?not running\b", lowered):
            return VmNotRunningError(text)
        if "does not exist" in lowered or "hostname lookup" in lowered:
            return VmNotFoundError(f"{text} (is VM {self.vmid} on node {self.node}?)")
        if lowered.startswith("agent error"):
            return AgentCommandError(text)
        if status >= 500:
            return TransientError(text)
        return TransportConfigError(text)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."
