"""Feature and ZfsProperty as Pulumi resources under the mock engine: type tokens, inputs,
secrets, eager validation, and a provider that pickles by reference (small, stable)."""

from __future__ import annotations

import dill
import pulumi
import pytest

from phoenix.features.catalog import FEATURES
from phoenix.features.provider import Feature, FeatureArgs, FeatureProvider
from phoenix.zfs.provider import ZfsProperty, ZfsPropertyArgs, ZfsPropertyProvider

created: list[pulumi.runtime.MockResourceArgs] = []


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        created.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture(autouse=True)
def mocks():
    # Set per test: other test modules install their own mocks, and the last set_mocks wins.
    created.clear()
    pulumi.runtime.set_mocks(Mocks(), preview=False)

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH PRIVATE KEY-----\n"


@pulumi.runtime.test
def test_feature_resource_inputs():
    feature = Feature("vm1-feature-docker", FeatureArgs(
        host="10.0.0.5", username="dev", private_key=pulumi.Output.secret(KEY),
        host_keys=["ssh-ed25519 AAAA"], feature="docker", params={"user": "dev"}))

    def check(_):
        args = next(a for a in created if a.name == "vm1-feature-docker")
        assert args.typ == "pulumi-python:dynamic/phoenix:Feature"
        assert args.inputs["script_hash"] == FEATURES["docker"].script_hash()
        assert args.inputs["params"] == {"user": "dev"}
        assert "sudo" not in args.inputs and args.inputs["port"] == 22  # None is not sent

    return feature.urn.apply(check)


@pulumi.runtime.test
def test_zfs_resource_inputs():
    prop = ZfsProperty("zfs-compression", ZfsPropertyArgs(
        host="192.168.1.10", username="root", private_key=KEY, host_keys=["ssh-ed25519 AAAA"],
        dataset="quickOS/vm-disks", property="compression", value="lz4"))

    def check(_):
        args = next(a for a in created if a.name == "zfs-compression")
        assert args.typ == "pulumi-python:dynamic/phoenix:ZfsProperty"
        assert args.inputs["dataset"] == "quickOS/vm-disks" and args.inputs["value"] == "lz4"

    return prop.urn.apply(check)


def test_bad_feature_or_zfs_value_fails_at_construction():
    with pytest.raises(ValueError, match="unknown feature 'dockr'"):
        Feature("x", FeatureArgs(host="h", username="u", private_key=KEY, host_keys=[],
                                 feature="dockr"))
    with pytest.raises(ValueError, match="parameter 'user'"):
        Feature("y", FeatureArgs(host="h", username="u", private_key=KEY, host_keys=[],
                                 feature="docker", params={"user": "Bad User"}))
    with pytest.raises(ValueError, match="expected one of"):
        ZfsProperty("z", ZfsPropertyArgs(host="h", username="root", private_key=KEY,
                                         host_keys=[], dataset="tank", property="compression",
                                         value="fast"))


def test_providers_pickle_by_reference():
    for provider in (FeatureProvider(), ZfsPropertyProvider()):
        blob = dill.dumps(provider, recurse=True)
        assert len(blob) < 200, len(blob)  # a reference to the class, not its code
        assert type(dill.loads(blob)) is type(provider)
