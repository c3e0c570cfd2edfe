"""One error type for everything the SSH layer does, and the redaction that keeps secrets out.

Pulumi shows a dynamic provider's exception text (with its traceback) to the user and may store
outputs in state, so every message and every captured output line passes through `Redactor`
before it leaves this package.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

STEPS = ("connect", "auth", "host-key", "run")
REDACTED = "[redacted]"
# Lines shorter than this inside a multi-line secret (a PEM's "-----END ...-----" excepted) are
# too common to redact on their own; the whole secret is always redacted regardless.
_MIN_FRAGMENT = 12


class Redactor:
    """Replaces every known secret value (and its shell-quoted and per-line forms) in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        needles: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            needles.add(secret)
            # The command line carries parameters shell-quoted: redact that spelling too.
            needles.add(shlex.quote(secret))
            # A private key may leak one line at a time (e.g. an error echoing part of a file).
            for line in secret.splitlines():
                line = line.strip()
                if len(line) >= _MIN_FRAGMENT and not line.startswith("-----"):
                    needles.add(line)
        # Longest first, so a secret containing another is replaced as a whole.
        self._needles = sorted(needles, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    def __bool__(self) -> bool:
        return bool(self._needles)

    def extended(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._needles, *secrets])


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value replaced by "[redacted]"."""
    return Redactor(secrets)(text)


class SshError(Exception):
    """A failed SSH step. `.step` is one of connect, auth, host-key, run.

    `.exit_code` is the remote exit status for a command that ran and failed (None otherwise);
    `.stderr_tail` the last lines of its stderr, already redacted.
    """

    def __init__(
        self,
        host: str,
        port: int,
        step: str,
        detail: str,
        *,
        exit_code: int | None = None,
        stderr_tail: Sequence[str] = (),
        redactor: Redactor | None = None,
    ) -> None:
        if step not in STEPS:
            raise ValueError(f"unknown SSH step {step!r}")
        clean = redactor or Redactor()
        self.host = host
        self.port = port
        self.step = step
        self.exit_code = exit_code
        self.detail = clean(detail)
        self.stderr_tail = [clean(line) for line in stderr_tail]
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"ssh {self.host}:{self.port}: {self.step} failed: {self.detail}"
        if self.exit_code is not None:
            text += f" (exit code {self.exit_code})"
        if self.stderr_tail:
            text += "\nlast lines of stderr:\n" + "\n".join(f"  {line}" for line in self.stderr_tail)
        return text

    def __reduce__(self):  # exceptions cross process boundaries in Pulumi: keep them picklable
        return (_rebuild, (self.host, self.port, self.step, self.detail, self.exit_code,
                           tuple(self.stderr_tail)))


def _rebuild(host, port, step, detail, exit_code, stderr_tail) -> SshError:
    return SshError(host, port, step, detail, exit_code=exit_code, stderr_tail=stderr_tail)
