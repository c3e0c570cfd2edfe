"""One bounded retry schedule, used for every dial: total deadline, exponential jittered delay.

A booting VM first refuses (no sshd yet), then resets (sshd starting, or cloud-init regenerating
host keys), then accepts. Fixed-interval retries from many VMs at once hit the same moment;
full jitter spreads them, and the deadline bounds the whole wait, not each attempt.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass
class Backoff:
    deadline_s: float
    initial_delay_s: float = 0.25
    max_delay_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempt: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def remaining_s(self) -> float:
        return self.deadline_s - (time.monotonic() - self.started)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def next_delay(self) -> float | None:
        """Seconds to sleep before the next attempt, or None when the deadline leaves no room."""
        ceiling = min(self.max_delay_s, self.initial_delay_s * (2 ** self.attempt))
        self.attempt += 1
        # Half fixed, half random: never a zero delay (a refusing port would spin), still spread.
        delay = ceiling * (0.5 + 0.5 * self.rng.random())
        if self.remaining_s <= 0:
            return None
        return min(delay, self.remaining_s)

    def sleep(self) -> bool:
        """Sleep the next delay; False when the deadline has passed (stop retrying)."""
        delay = self.next_delay()
        if delay is None:
            return False
        time.sleep(delay)
        return self.remaining_s > 0
