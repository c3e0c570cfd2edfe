"""More than four calls at once in the dynamic-provider plugin process.

The Pulumi CLI runs every Python dynamic resource of a stack in one process,
`python -u -m pulumi.dynamic`, whose gRPC server has `ThreadPoolExecutor(max_workers=4)`
(`pulumi/dynamic/__main__.py`, pulumi 3.272.0, `main()`). Our creates are long (a readiness wait
holds its worker until the guest answers or its deadline passes; a feature run holds one for the
whole script), so with more than four VMs they go in rounds, and four VMs that never answer block
every other readiness, feature and ZFS call of the stack until their deadlines pass.

`lift_worker_limit()` raises that executor's limit. `ThreadPoolExecutor` reads `_max_workers`
each time it considers adding a thread (`_adjust_thread_count`, on every `submit`), so a higher
value takes effect at the next call; calls already queued get their threads at once. It runs
when a phoenix module is first imported inside the plugin process (the SDK unpickles our
providers on a worker thread of that executor, which is how it is found), and only when:
- the process is the SDK's plugin (`__main__` is `pulumi.dynamic.__main__`), and
- that file's sha256 is the one this was checked against (`KNOWN_SDK_SERVER_SHA256`), so a
  Pulumi upgrade that changes the server leaves it alone, warns on stderr (the CLI shows it),
  and fails `tests/test_fleet_workers.py` until someone re-checks it.
Anywhere else (the Pulumi program, the CLI commands, tests) it does nothing.

The PVE API stays gentle however many waits run: their calls share a per-node budget
(`phoenix.readiness.api_budget`).
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

SDK_SERVER_MODULE = "pulumi.dynamic.__main__"
# sha256 of pulumi/dynamic/__main__.py in pulumi 3.272.0 (the pinned SDK: requirements.txt).
KNOWN_SDK_SERVER_SHA256 = "c99d671c026cf91ed5a31ad457dc018735e173ccba924dea898a42ae774f19f6"
SDK_WORKERS = 4
# Each waiting call is a sleeping thread (~64 KiB resident); the engine's default parallelism
# is unbounded, so this is sized for a large stack rather than for the machine's cores.
DEFAULT_WORKERS = 512
ENV_WORKERS = "PHOENIX_PLUGIN_WORKERS"

_lock = threading.Lock()
_state: dict[str, str] = {}  # "result": what the first attempt in this process did


def sdk_server_path() -> Path | None:
    spec = find_spec(SDK_SERVER_MODULE)  # finds the file without running it
    return Path(spec.origin) if spec is not None and spec.origin else None


def sdk_server_sha256() -> str | None:
    path = sdk_server_path()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def is_known_sdk_server() -> bool:
    return sdk_server_sha256() == KNOWN_SDK_SERVER_SHA256


def in_plugin_process() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == SDK_SERVER_MODULE


def worker_limit() -> int:
    raw = os.environ.get(ENV_WORKERS, "")
    return int(raw) if raw.isdigit() and int(raw) >= SDK_WORKERS else DEFAULT_WORKERS


def serving_executor() -> ThreadPoolExecutor | None:
    """The executor whose worker thread runs this code, if any."""
    me = threading.current_thread()
    for obj in gc.get_objects():
        if isinstance(obj, ThreadPoolExecutor) and me in getattr(obj, "_threads", ()):
            return obj
    return None


def raise_limit(executor: ThreadPoolExecutor, workers: int) -> None:
    """Let `executor` run up to `workers` calls at once, starting threads for calls already queued."""
    with executor._shutdown_lock:  # what submit() holds around _adjust_thread_count
        executor._max_workers = max(executor._max_workers, workers)
        for _ in range(executor._work_queue.qsize()):
            executor._adjust_thread_count()


def lift_worker_limit() -> str:
    """Once per process: "lifted", "not-plugin", "unknown-sdk" or "no-executor"."""
    with _lock:
        if "result" in _state:
            return _state["result"]
        if not in_plugin_process():
            result = "not-plugin"
        elif not is_known_sdk_server():
            result = "unknown-sdk"
            print(f"warning: phoenix: this pulumi SDK's dynamic-provider server ({sdk_server_path()}) "
                  "is not the one phoenix checked (pulumi 3.272.0): its limit of 4 calls at once is "
                  "kept, so readiness waits and features of more than 4 VMs go in rounds. Use the "
                  "pinned requirements.txt.", file=sys.stderr, flush=True)
        else:
            executor = serving_executor()
            if executor is None:
                result = "no-executor"
            else:
                raise_limit(executor, worker_limit())
                result = "lifted"
        _state["result"] = result
        return result
