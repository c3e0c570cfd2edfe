"""Collects a remote stream while it runs: lines to a log callback, a bounded tail kept."""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Callable

from phoenix.remote.errors import Redactor

LogFn = Callable[[str, str], None]  # (stream name "stdout"/"stderr", one redacted line)


class StreamCollector:
    """Feeds bytes in, emits whole lines; memory stays bounded however much the command prints."""

    def __init__(self, name: str, redactor: Redactor, log: LogFn | None,
                 tail_chars: int = 64 * 1024) -> None:
        self.name = name
        self.total_bytes = 0
        self.truncated = False
        self._redact = redactor
        self._log = log
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._tail: deque[str] = deque()
        self._tail_chars = 0
        self._tail_limit = tail_chars

    def feed(self, data: bytes) -> None:
        self.total_bytes += len(data)
        text = self._partial + self._decoder.decode(data)
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._emit(line)
        # A line without a newline must not grow without bound either.
        if len(self._partial) > self._tail_limit:
            self._emit(self._partial)
            self._partial = ""

    def finish(self) -> None:
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        if rest:
            self._emit(rest)

    def _emit(self, line: str) -> None:
        line = self._redact(line.rstrip("\r"))
        if self._log is not None:
            self._log(self.name, line)
        self._tail.append(line)
        self._tail_chars += len(line) + 1
        while self._tail_chars > self._tail_limit and len(self._tail) > 1:
            self._tail_chars -= len(self._tail.popleft()) + 1
            self.truncated = True

    def lines(self, last: int | None = None) -> list[str]:
        items = list(self._tail)
        return items if last is None else items[-last:]

    def text(self) -> str:
        return "\n".join(self._tail) + ("\n" if self._tail else "")
