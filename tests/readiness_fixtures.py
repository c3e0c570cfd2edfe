"""Test helpers for the readiness tests: a small QEMU guest-agent socket peer, fakepve setup."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from dataclasses import dataclass, field

TOKEN_ID = "phoenix@pve!ci"
TOKEN_SECRET = "0b7c3f1e-6d2a-4c55-9e8f-2a1d9c4b7e60"


def add_token(pve, token_id: str = TOKEN_ID, secret: str = TOKEN_SECRET) -> str:
    """Register an API token with fakepve; returns the PROXMOX_VE_API_TOKEN form of it."""
    pve.apitokens[token_id] = secret
    return f"{token_id}={secret}"


@dataclass
class ExecAnswer:
    exitcode: int = 0
    stdout: str = ""
    stderr: str = ""
    # exec-status answers "exited": false this many times first
    running_polls: int = 0


@dataclass
class AgentPeer:
    """Plays the QEMU side of a guest-agent chardev socket, with an agent that may or may not run.

    answering=False: the guest has no agent yet; bytes are read and swallowed, nothing answers.
    stale_replies: JSON lines sent before the sync answer (replies to old commands, noise).
    """

    path: str
    answering: bool = True
    stale_replies: list[bytes] = field(default_factory=list)
    execs: dict[str, ExecAnswer] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    interfaces: list = field(default_factory=list)
    received: list[dict] = field(default_factory=list)
    delimiters_seen: int = 0

    def __post_init__(self) -> None:
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._pids: dict[int, tuple[str, int]] = {}
        self._handles: dict[int, list] = {}
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)

    def commands(self) -> list[str]:
        return [m.get("execute") for m in self.received]

    # ------------------------------------------------------------------ server

    def _serve(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self.delimiters_seen += line.count(b"\xff")
                line = line.replace(b"\xff", b"")
                if not self.answering or not line.strip():
                    continue
                message = json.loads(line)
                self.received.append(message)
                for out in self._answer(message):
                    conn.sendall(out)

    def _answer(self, message: dict) -> list[bytes]:
        name = message.get("execute")
        args = message.get("arguments") or {}
        if name == "guest-sync-delimited":
            stale, self.stale_replies = self.stale_replies, []
            return stale + [b"\xff" + json.dumps({"return": args["id"]}).encode() + b"\n"]
        if name == "guest-shutdown":
            return []  # the real agent never answers a successful shutdown
        try:
            result = self._result(name, args)
        except KeyError as exc:
            return [json.dumps({"error": {"class": "GenericError", "desc": str(exc)}}).encode()
                    + b"\n"]
        return [json.dumps({"return": result}).encode() + b"\n"]

    def _result(self, name: str, args: dict):
        if name == "guest-ping":
            return {}
        if name == "guest-exec":
            key = " ".join([args["path"], *args.get("arg", [])])
            if key not in self.execs:
                raise KeyError(f"Failed to execute child process \u201c{args['path']}\u201d")
            pid = 4000 + len(self._pids)
            self._pids[pid] = (key, self.execs[key].running_polls)
            return {"pid": pid}
        if name == "guest-exec-status":
            key, running = self._pids[args["pid"]]
            if running > 0:
                self._pids[args["pid"]] = (key, running - 1)
                return {"exited": False}
            answer = self.execs[key]
            return {"exited": True, "exitcode": answer.exitcode,
                    "out-data": base64.b64encode(answer.stdout.encode()).decode(),
                    "err-data": base64.b64encode(answer.stderr.encode()).decode()}
        if name == "guest-file-open":
            if args["path"] not in self.files:
                raise KeyError(f"failed to open file '{args['path']}': No such file or directory")
            handle = 100 + len(self._handles)
            self._handles[handle] = [self.files[args["path"]], 0]
            return handle
        if name == "guest-file-read":
            data, pos = self._handles[args["handle"]]
            piece = data[pos:pos + args.get("count", 4096)]
            self._handles[args["handle"]][1] = pos + len(piece)
            return {"count": len(piece), "buf-b64": base64.b64encode(piece).decode(),
                    "eof": pos + len(piece) >= len(data)}
        if name == "guest-file-close":
            self._handles.pop(args["handle"])
            return {}
        if name == "guest-network-get-interfaces":
            return self.interfaces
        raise KeyError(f"The command {name} has not been found")


# ---------------------------------------------------------------------------- fakepve helpers

CLOUD_INIT_LOG = "/var/log/cloud-init-output.log"
HOST_KEYS_COMMAND = "sh -c cat /etc/ssh/ssh_host_*_key.pub"


def openssh_public_keys() -> list[str]:
    """Fresh host public keys (ed25519, ecdsa, rsa) as OpenSSH lines with a comment."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    keys = [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1()),
            rsa.generate_private_key(public_exponent=65537, key_size=2048)]
    return [k.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
            + " root@vm8001" for k in keys]


# fakepve's own answer to network-get-interfaces when a test sets none (fakepve/agent.py).
FAKEPVE_INTERFACES = [
    {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4",
                                     "prefix": 8}]},
    {"name": "eth0", "ip-addresses": [{"ip-address": "192.0.2.10", "ip-address-type": "ipv4",
                                       "prefix": 24}]},
]


def ip_addr_lines(interfaces: list) -> str:
    """What `ip -o -4 addr show` prints in a guest with these interfaces (agent JSON shape)."""
    lines = []
    for n, interface in enumerate(interfaces, start=1):
        for address in interface.get("ip-addresses") or []:
            if address.get("ip-address-type") != "ipv4":
                continue
            scope = "host" if address["ip-address"].startswith("127.") else "global"
            lines.append(f"{n}: {interface['name']}    inet {address['ip-address']}/"
                         f"{address.get('prefix', 24)} scope {scope} {interface['name']}\\"
                         "       valid_lft forever preferred_lft forever")
    return "".join(line + "\n" for line in lines)


def probe_output(status_stdout: str, host_keys: list[str] | None,
                 interfaces: list | None) -> str:
    """What the readiness probe (phoenix.readiness.wait.PROBE_SCRIPT) prints in such a guest."""
    from phoenix.readiness.wait import PROBE_ADDRESSES_LINE, PROBE_KEYS_LINE

    keys = "".join(key + "\n" for key in host_keys or [])
    return (f"{status_stdout}{PROBE_KEYS_LINE}\n{keys}{PROBE_ADDRESSES_LINE}\n"
            + ip_addr_lines(FAKEPVE_INTERFACES if interfaces is None else interfaces))


def probe_key() -> str:
    from phoenix.readiness.wait import PROBE_ARGV

    return " ".join(PROBE_ARGV)


def agent_answers(*, cloud_init_exit: int = 0, cloud_init_status: str = "done",
                  host_keys: list[str] | None = None, interfaces: list | None = None,
                  long_status: str = "", log: str = "") -> dict:
    """A fakepve vm.agent dict: what the readiness probe, `cloud-init status`, the host-key cat
    and file-read answer."""
    answers: dict = {
        "exec": {
            probe_key(): {"exitcode": cloud_init_exit,
                          "out-data": probe_output(f"status: {cloud_init_status}\n",
                                                   host_keys, interfaces)},
            "cloud-init status": {"exitcode": cloud_init_exit,
                                  "out-data": f"status: {cloud_init_status}\n"},
            "cloud-init status --long": {"exitcode": cloud_init_exit, "out-data": long_status},
            HOST_KEYS_COMMAND: {"exitcode": 0, "out-data": "\n".join(host_keys or []) + "\n"},
        },
        "files": {CLOUD_INIT_LOG: log},
    }
    if interfaces is not None:
        answers["interfaces"] = interfaces
    return answers


def add_vm(pve, vmid: int = 8001, node: str = "pve", status: str = "running"):
    return pve.add_vm(vmid, f"vm{vmid}", node=node, status=status, config={"agent": "1"})


def fast_polling(monkeypatch) -> None:
    """For tests that check what happens, not when: poll every 0.1 s instead of 1.5 s."""
    monkeypatch.setattr("phoenix.readiness.wait.POLL_INTERVAL_S", 0.1)
    monkeypatch.setattr("phoenix.readiness.transport.EXEC_POLL_DELAYS_S", (0.02, 0.05, 0.1))
