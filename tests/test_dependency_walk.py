"""The linear dependency walk that replaces the SDK's recursive one (phoenix.resources.dependency_walk)."""

from __future__ import annotations

import logging
import random
import sys

import pulumi
import pytest
from pulumi.runtime import resource_cycle_breaker as breaker
from pulumi_harness import RecordingMocks, RecordingMonitor, fresh_mocks, run_program

from phoenix.config import build_config
from phoenix.config.sample import sample_document
from phoenix.resources import dependency_walk
from phoenix.resources import stack as stack_module


class Node:
    """Stands in for a Resource: the walk only reads `_direct_computed_dependencies`."""

    def __init__(self, label: int) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"Node({self.label})"


def random_dag(rng: random.Random, size: int, max_deps: int) -> list[Node]:
    nodes = [Node(i) for i in range(size)]
    for i, node in enumerate(nodes[1:], start=1):
        deps = {nodes[j] for j in rng.sample(range(i), min(i, rng.randint(0, max_deps)))}
        if deps:
            node._direct_computed_dependencies = deps
    return nodes


def chain(length: int) -> list[Node]:
    nodes = [Node(i) for i in range(length)]
    for prev, node in zip(nodes, nodes[1:], strict=False):
        node._direct_computed_dependencies = {prev}
    return nodes


@pytest.mark.parametrize("seed", range(30))
def test_same_resources_in_the_same_order_as_the_sdk_walk(seed):
    rng = random.Random(seed)
    nodes = random_dag(rng, size=rng.randint(1, 60), max_deps=rng.randint(1, 5))
    for start in rng.sample(nodes, min(5, len(nodes))):
        pre_visited = set(rng.sample(nodes, rng.randint(0, len(nodes) // 3)))
        ours_visited, sdk_visited = set(pre_visited), set(pre_visited)
        assert list(dependency_walk.walk_transitive_deps(start, ours_visited)) == \
            list(dependency_walk.SDK_WALK(start, sdk_visited))
        assert ours_visited == sdk_visited


def test_cycle_answers_are_unchanged():
    a, b, c = Node(0), Node(1), Node(2)
    b._direct_computed_dependencies = {a}
    c._direct_computed_dependencies = {b}
    assert list(dependency_walk.walk_transitive_deps(c, set())) == [c, b, a]
    a._direct_computed_dependencies = {c}  # a cycle: each node is still yielded once
    assert list(dependency_walk.walk_transitive_deps(c, set())) == [c, b, a]


def test_deep_chains_do_not_overflow_the_stack(monkeypatch):
    """The SDK's recursive generator dies at about the interpreter's recursion limit, i.e. a stack
    with ~1000 clones of one template could not be previewed at all."""
    # The SDK's walk recurses through the module global; once a test has built a stack,
    # install() has pointed that global at ours: put the SDK's own back for this comparison.
    monkeypatch.setattr(breaker, "_with_transitive_deps", dependency_walk.SDK_WALK)
    nodes = chain(sys.getrecursionlimit() + 500)
    with pytest.raises(RecursionError):
        list(dependency_walk.SDK_WALK(nodes[-1], set()))
    assert len(list(dependency_walk.walk_transitive_deps(nodes[-1], set()))) == len(nodes)


def test_the_pinned_sdk_walk_is_the_known_one():
    """Fails when a Pulumi upgrade changes the SDK's walk: re-check it, then update the hash."""
    assert dependency_walk.is_known_sdk_walk(), dependency_walk.sdk_walk_sha256()


def test_unknown_sdk_walk_is_left_alone(monkeypatch):
    def other_walk(r, visited):
        yield r

    monkeypatch.setattr(breaker, "_with_transitive_deps", other_walk)
    monkeypatch.setattr(dependency_walk, "KNOWN_SDK_WALK_SHA256", "0" * 64)
    assert dependency_walk.install() is False
    assert breaker._with_transitive_deps is other_walk


def test_build_stack_installs_it(monkeypatch, pulumi_private_key):
    monkeypatch.setattr(breaker, "_with_transitive_deps", dependency_walk.SDK_WALK)
    run_program(build_config(sample_document(4)), pulumi_private_key)
    assert breaker._with_transitive_deps is dependency_walk.walk_transitive_deps


def test_a_chain_deeper_than_the_recursion_limit_registers(monkeypatch):
    """Under Pulumi's mock engine: resources each depending on the previous one, deeper than the
    SDK's recursive walk can go; every one registers with its dependency."""
    monkeypatch.setattr(breaker, "_with_transitive_deps", dependency_walk.SDK_WALK)
    assert dependency_walk.install()
    depth = sys.getrecursionlimit() + 200
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    fresh_mocks(mocks, monitor, stack="chain")

    @pulumi.runtime.test
    def program():
        prev = None
        ids = []
        for i in range(depth):
            prev = pulumi.CustomResource("test:index:Link", f"link-{i}", {},
                                         pulumi.ResourceOptions(depends_on=[prev] if prev else None))
            ids.append(prev.id)
        return pulumi.Output.all(*ids)

    program()
    links = [r for r in monitor.registrations if r.type == "test:index:Link"]
    assert len(links) == depth
    assert all(links[i - 1].urn in links[i].dependencies for i in range(1, depth))


def test_long_clone_chain_without_the_linear_walk_warns(monkeypatch, caplog, pulumi_private_key):
    """An SDK other than the pinned one keeps its own walk; a long chain then gets a warning
    that says what will go wrong and what to do."""
    monkeypatch.setattr(dependency_walk, "install", lambda: False)
    monkeypatch.setattr(stack_module, "LONG_CLONE_CHAIN", 3)
    doc = sample_document(12)  # even indexes full-clone template 9000 onto local-zfs: 6 clones
    with caplog.at_level(logging.WARNING):
        run_program(build_config(doc), pulumi_private_key)  # 2 lanes (the default): chains of 3
    (warning,) = [r.getMessage() for r in caplog.records if "dependency chain" in r.getMessage()]
    assert "6 full clones onto storage local-zfs on node pve form dependency chains of 3 VMs" in warning
    assert "fullClonesPerStorage = 2" in warning and "RecursionError" in warning
    assert "requirements.txt" in warning and 'clone_mode "linked"' in warning


def test_no_warning_with_the_linear_walk_or_a_short_chain(monkeypatch, caplog, pulumi_private_key):
    monkeypatch.setattr(stack_module, "LONG_CLONE_CHAIN", 3)
    with caplog.at_level(logging.WARNING):
        run_program(build_config(sample_document(12)), pulumi_private_key)  # linear walk installed
        monkeypatch.setattr(dependency_walk, "install", lambda: False)
        run_program(build_config(sample_document(8)), pulumi_private_key)  # 4 clones, 2 lanes: short
        linked = sample_document(12)
        linked["defaults"]["clone_mode"] = "linked"
        run_program(build_config(linked), pulumi_private_key)  # linked clones: no chain at all
    assert not [r for r in caplog.records if "dependency chain" in r.getMessage()]
