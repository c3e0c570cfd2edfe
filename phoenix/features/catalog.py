"""The feature catalog: which scripts exist, paired with the parameters each takes (declared,
with their defaults and checks, in phoenix/config/feature_rules.py).

A feature is a bash script shipped in this package plus declared parameters with defaults.
Parameters reach the script as environment variables `PHOENIX_<NAME>` (upper-cased); secret
ones travel on the script's stdin instead of the command line (see phoenix.remote.ssh).
The provider always sets `PHOENIX_SSH_USER` (the login user) for scripts that default to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

# The parameters and their checks are config-layer rules; re-exported for the catalog's users
# (and so a pickled ParamSpec reference by this module's name still resolves).
from phoenix.config.feature_rules import CONVERGE, FEATURE_PARAMS, ParamSpec, check_feature, config_value

__all__ = ["CONVERGE", "FEATURES", "FeatureError", "FeatureSpec", "ParamSpec", "check_feature", "config_value",
           "env_name"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    description: str
    script: str  # file name inside phoenix/features
    params: Mapping[str, ParamSpec]
    delete_script: str | None = None  # run by the provider's delete, if any
    needs_root: bool = True  # run through `sudo -n` unless told otherwise
    # Phoenix's own step, made from other config fields (not listable in a VM's `features`).
    internal: bool = False

    def script_text(self) -> str:
        return _read(self.script)

    def delete_script_text(self) -> str | None:
        return _read(self.delete_script) if self.delete_script else None

    def script_hash(self) -> str:
        """sha256 of everything that runs (create and delete scripts): a change re-runs."""
        digest = hashlib.sha256(self.script_text().encode())
        if self.delete_script:
            digest.update(b"\0delete\0" + (self.delete_script_text() or "").encode())
        return digest.hexdigest()

    def resolve(self, params: Mapping[str, str]) -> dict[str, str]:
        """Parameters with defaults filled in; raises FeatureError listing every problem."""
        problems = check_feature(self.name, params)
        if problems:
            raise FeatureError(problems)
        resolved = {k: spec.default for k, spec in self.params.items() if spec.default is not None}
        resolved.update(params)
        return resolved

    def environment(self, params: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """(plain env, secret env) for a resolved parameter set."""
        env: dict[str, str] = {}
        secret_env: dict[str, str] = {}
        for name, value in params.items():
            target = secret_env if self.params[name].secret else env
            target[env_name(name)] = value
        return env, secret_env

    def secret_values(self, params: Mapping[str, str]) -> list[str]:
        return [v for k, v in params.items() if k in self.params and self.params[k].secret and v]


class FeatureError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def env_name(param: str) -> str:
    return "PHOENIX_" + param.upper()


def _read(filename: str) -> str:
    return resources.files("phoenix.features").joinpath(filename).read_text(encoding="utf-8")


FEATURES: dict[str, FeatureSpec] = {
    "docker": FeatureSpec(
        name="docker",
        description="Docker Engine from the distribution's docker.io package; the user joins "
                    "the docker group. Idempotent: a second run changes nothing.",
        script="docker.sh",
        params=FEATURE_PARAMS["docker"],
    ),
    "authorized-keys": FeatureSpec(
        name="authorized-keys",
        description="Keeps a managed block of public keys in a user's authorized_keys "
                    "(keys outside the block, e.g. cloud-init's, are left alone). The way to "
                    "rotate admin keys without rebuilding the VM.",
        script="authorized_keys.sh",
        delete_script="authorized_keys_delete.sh",
        params=FEATURE_PARAMS["authorized-keys"],
    ),
    CONVERGE: FeatureSpec(
        name=CONVERGE,
        description="Phoenix's in-place step (edits: \"in-place\", docs/edits.md): installs the "
                    "VM's missing packages, makes the admin user's authorized_keys exactly the "
                    "configured keys plus Phoenix's own, sets the timezone. Idempotent.",
        script="converge.sh",
        internal=True,
        params=FEATURE_PARAMS[CONVERGE],
    ),
}
