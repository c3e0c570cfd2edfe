"""A per-node budget of PVE API calls per second, shared by every wait in one process.

The dynamic-provider plugin runs every readiness wait of a stack in one process, at once
(phoenix.dynamic_workers). Each wait polls at 40 calls a minute (phoenix.readiness.wait); fifty
waits on one node would be 33 calls a second, on top of the proxmoxve provider's own calls.
pveproxy and pvedaemon serve the API with 3 workers each by default, so the calls of all waits to
one node share one budget: `DEFAULT_CALLS_PER_S` a second, with bursts of up to
`DEFAULT_BURST` calls. When the budget is used up, a call waits for its slot (first come, first
served); when its slot is further away than the time the call may take, it is not made and a
`TransientError` says so (the wait retries it as it retries any transient answer). Waits that
are not polling any more cost nothing, so a stuck VM uses one wait's share, never more.

`PHOENIX_PVE_CALLS_PER_S` (environment of the process that runs the waits, i.e. of `pulumi up`)
changes the rate; the burst is one second's worth. docs/readiness.md states the budget.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from phoenix.readiness.transport import TransientError

DEFAULT_CALLS_PER_S = 20.0
ENV_CALLS_PER_S = "PHOENIX_PVE_CALLS_PER_S"


def calls_per_s_from_env(environ: dict[str, str] | None = None) -> float:
    raw = (os.environ if environ is None else environ).get(ENV_CALLS_PER_S, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_CALLS_PER_S
    return value if 0.1 <= value <= 1000 else DEFAULT_CALLS_PER_S


class CallBudget:
    """A token bucket as a schedule (GCRA): each call reserves the next free slot."""

    def __init__(self, calls_per_s: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / calls_per_s
        self.tolerance = (max(burst, 1) - 1) * self.interval
        self.clock, self.sleep = clock, sleep
        self._next = clock()  # theoretical time of the next call at the steady rate
        self._lock = threading.Lock()

    def reserve(self, max_wait_s: float) -> float | None:
        """The delay before a call may go (its slot is then taken), or None if it is further
        than max_wait_s away (nothing is taken)."""
        with self._lock:
            now = self.clock()
            start = max(now, self._next - self.tolerance)
            if start - now > max_wait_s:
                return None
            self._next = max(self._next, start) + self.interval
            return start - now

    def take(self, max_wait_s: float, what: str) -> float:
        """Wait for a slot (at most max_wait_s); returns the time waited."""
        delay = self.reserve(max_wait_s)
        if delay is None:
            raise TransientError(f"the API budget for {what} is used up by other waits for the next "
                                 f"{max_wait_s:.1f} s ({1 / self.interval:g} calls/s; "
                                 f"{ENV_CALLS_PER_S})")
        if delay > 0:
            self.sleep(delay)
        return delay


_budgets: dict[tuple[str, str], CallBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(endpoint: str, node: str) -> CallBudget:
    """The process-wide budget of one node of one cluster."""
    key = (endpoint.rstrip("/").lower(), node)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            rate = calls_per_s_from_env()
            budget = _budgets[key] = CallBudget(rate, burst=max(int(rate), 1))
        return budget
