"""A linear-time replacement for the Pulumi Python SDK's dependency walk (cycle check).

Before it records a dependency, the SDK (pulumi 3.272.0, `pulumi.runtime.resource_cycle_breaker`)
walks everything the target already depends on, to refuse cycles. The walk is a *recursive
generator*: every resource it yields is passed up through one generator frame per level of
depth, so walking a chain of depth d costs O(d^2), and registering a chain of n resources costs
O(n^3). Our clones of one template form exactly such a chain (each clone waits for the previous
one, see stack.py): 500 clones of one template cost ~12 s of 56 s evaluating the program under
Pulumi's mock engine (benchmarks/bench_program.py), growing with the cube of the chain, and the
recursion fails outright near the interpreter's recursion limit (~1000 clones).

`install()` swaps in an explicit-stack walk that yields the same resources in the same order
(pre-order depth first, each resource once), so the cycle check answers exactly as before. It
only does so for the SDK source it was written against: `is_known_sdk_walk` compares the SDK
function's code with the recorded one, and any other SDK version is left alone (the tests fail
then, so an upgrade is noticed rather than silently changed).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator
from typing import Any

from pulumi.runtime import resource_cycle_breaker as _breaker

# sha256 of inspect.getsource(_with_transitive_deps) in pulumi 3.272.0.
KNOWN_SDK_WALK_SHA256 = "b88d68c4472c6ab8948b0bf00ba3afd93b9d70711cac517cde1ef87524f0ec6c"
SDK_WALK = _breaker._with_transitive_deps  # the SDK's own walk, kept for the hash (and the tests)


def walk_transitive_deps(r: Any, visited: set[Any]) -> Iterator[Any]:
    """`r` and everything reachable from it through recorded dependencies, pre-order, once each."""
    stack: list[Iterator[Any]] = [iter((r,))]
    while stack:
        for x in stack[-1]:
            if x in visited:
                continue
            visited.add(x)
            yield x
            stack.append(iter(_breaker._deps(x)))
            break
        else:
            stack.pop()


def sdk_walk_sha256() -> str | None:
    try:
        return hashlib.sha256(inspect.getsource(SDK_WALK).encode()).hexdigest()
    except (OSError, TypeError):  # no source shipped (e.g. a .pyc-only install)
        return None


def is_known_sdk_walk() -> bool:
    return sdk_walk_sha256() == KNOWN_SDK_WALK_SHA256


def install() -> bool:
    """Use the linear walk if the SDK's is the known recursive one; True if it is in use."""
    if _breaker._with_transitive_deps is walk_transitive_deps:
        return True
    if not is_known_sdk_walk():
        return False
    _breaker._with_transitive_deps = walk_transitive_deps
    return True
