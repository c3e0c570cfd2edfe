"""Inputs of a dynamic provider as the engine sends them: what is unknown, what changed.

Two facts of the dynamic-provider process (`pulumi/dynamic/__main__.py`) shape every
check/diff/update of Phoenix's providers:
- every call carries `__provider`, the dill blob of the provider object: it changes without any
  change of behaviour (pickle protocol 5 under Python 3.14, a dill or SDK upgrade), so it is
  never a reason to act: compare the resource's declared inputs only;
- preview-time calls (check, diff) deserialise with `keep_unknowns=True`: an unknown input is a
  `pulumi.output.Unknown` object, while the mock engine shows the wire's `UNKNOWN` string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def is_unknown(value: Any) -> bool:
    """True for a value the engine will only know at apply time (either spelling)."""
    from pulumi.output import Unknown  # lazily: importing this module stays cheap
    from pulumi.runtime.rpc import UNKNOWN

    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def contains_unknown(value: Any) -> bool:
    """True if `value` or anything inside it (lists, maps) is unknown."""
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_unknown(v) for v in value)
    return False


def changed_inputs(olds: Mapping[str, Any], news: Mapping[str, Any],
                   keys: Iterable[str]) -> list[str]:
    """The declared input `keys` whose value differs (or is not known yet) between olds and
    news. Numbers compare by value (the wire turns every int into a float)."""
    return [k for k in keys
            if contains_unknown(news.get(k)) or olds.get(k) != news.get(k)]
