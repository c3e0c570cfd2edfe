"""JSON as the config file needs it: what Python's `json` accepts silently is reported instead.

- A key given twice in one object: `json` keeps the last value, so a file with two "vms" arrays
  would lose the first one, and `pulumi up` would destroy those VMs.
- `NaN`, `Infinity`, `-Infinity` (not JSON at all) and numbers too large for a float (`1e400`
  reads as infinity).

`parse(text)` returns the document (plain dicts and lists, last value wins, a non-finite number
replaced by None) and the problems, each with the path of the value at fault.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class JsonProblem:
    path: Path  # e.g. ("vms",) or ("vms", 0, "network_config")
    message: str


class _Object(dict):  # type: ignore[type-arg]
    """A parsed object that remembers the keys it saw more than once (and how often)."""

    repeated: dict[str, int]


class _NonFinite:
    def __init__(self, text: str):
        self.text = text


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.repeated = {}
    for key, value in pairs:
        if key in obj:
            obj.repeated[key] = obj.repeated.get(key, 1) + 1
        obj[key] = value
    return obj


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def parse(text: str) -> tuple[Any, list[JsonProblem]]:
    """Parse JSON text. Raises json.JSONDecodeError for text that is not JSON at all."""
    raw = json.loads(text, object_pairs_hook=_object, parse_constant=_NonFinite, parse_float=_float)
    problems: list[JsonProblem] = []
    return _plain(raw, (), problems), problems


def _plain(value: Any, path: Path, problems: list[JsonProblem]) -> Any:
    """The same value as plain dicts/lists, collecting the problems found on the way."""
    if isinstance(value, _Object):
        for key, count in value.repeated.items():
            problems.append(JsonProblem(path + (key,), (
                f"the key {key!r} appears {count} times in the same object; JSON keeps only the last "
                "one and silently drops the others: merge them into one")))
        return {key: _plain(item, path + (key,), problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, path + (i,), problems) for i, item in enumerate(value)]
    if isinstance(value, _NonFinite):
        problems.append(JsonProblem(path, (
            f"{value.text} is not a number JSON allows (no NaN, Infinity or numbers beyond "
            "1.8e308)")))
        return None
    return value
