"""The feature catalog: which scripts exist, which parameters each takes, and checks on them.

A feature is a bash script shipped in this package plus declared parameters with defaults.
Parameters reach the script as environment variables `PHOENIX_<NAME>` (upper-cased); secret
ones travel on the script's stdin instead of the command line (see phoenix.remote.ssh).
The provider always sets `PHOENIX_SSH_USER` (the login user) for scripts that default to it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from phoenix.config.ssh_keys import public_key_problem

_USERNAME = r"[a-z_][a-z0-9_-]{0,31}"


@dataclass(frozen=True)
class ParamSpec:
    description: str
    default: str | None = None  # None: the parameter is required
    pattern: str = r".*"  # the whole value must match
    choices: tuple[str, ...] = ()
    secret: bool = False
    # An extra check returning problems (for values a regex cannot describe).
    validate: Callable[[str], list[str]] | None = field(default=None, compare=False, repr=False)
    # The config may give a JSON list of strings, joined one per line (e.g. `keys`).
    list_joined: bool = False

    def problems(self, feature: str, name: str, value: str) -> list[str]:
        where = f"feature {feature!r} parameter {name!r}"
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {type(value).__name__}"]
        shown = "(secret)" if self.secret else repr(value)
        if "\0" in value:
            return [f"{where}: NUL characters are not allowed"]
        if self.choices and value not in self.choices:
            return [f"{where}: {shown} is not one of {', '.join(self.choices)}"]
        if not re.fullmatch(self.pattern, value, flags=re.DOTALL):
            return [f"{where}: {shown} does not match {self.pattern}"]
        if self.validate is not None:
            return [f"{where}: {p}" for p in self.validate(value)]
        return []


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    description: str
    script: str  # file name inside phoenix/features
    params: Mapping[str, ParamSpec]
    delete_script: str | None = None  # run by the provider's delete, if any
    needs_root: bool = True  # run through `sudo -n` unless told otherwise

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


def _public_keys_problems(value: str) -> list[str]:
    """Each line a public key line as sshd reads it, options allowed (phoenix/config/ssh_keys.py):
    the script writes them into authorized_keys as they are."""
    if "\r" in value:
        return ["carriage returns are not allowed (one key per line, LF line ends)"]
    lines = [line.strip() for line in value.split("\n") if line.strip()]
    if not lines:
        return ["at least one public key line is required"]
    return [f"line {i}: {problem}" for i, line in enumerate(lines, start=1)
            if (problem := public_key_problem(line)) is not None]


FEATURES: dict[str, FeatureSpec] = {
    "docker": FeatureSpec(
        name="docker",
        description="Docker Engine from the distribution's docker.io package; the user joins "
                    "the docker group. Idempotent: a second run changes nothing.",
        script="docker.sh",
        params={
            "user": ParamSpec(
                "account added to the docker group; empty: the SSH login user; '-': nobody",
                default="", pattern=rf"|-|{_USERNAME}\$?"),
            "package": ParamSpec(
                "the distribution package to install when `docker` is missing",
                default="docker.io", choices=("docker.io",)),
        },
    ),
    "authorized-keys": FeatureSpec(
        name="authorized-keys",
        description="Keeps a managed block of public keys in a user's authorized_keys "
                    "(keys outside the block, e.g. cloud-init's, are left alone). The way to "
                    "rotate admin keys without rebuilding the VM.",
        script="authorized_keys.sh",
        delete_script="authorized_keys_delete.sh",
        params={
            "keys": ParamSpec("public key lines: a JSON list of lines, or one string with one per line",
                              validate=_public_keys_problems, list_joined=True),
            "user": ParamSpec("whose authorized_keys; empty: the SSH login user",
                              default="", pattern=rf"|{_USERNAME}"),
        },
    ),
}


def config_value(feature: str, name: str, value: object) -> tuple[str | None, str | None]:
    """A parameter's value from the JSON config as the string the script gets -> (value, problem).
    true/false and whole numbers become their text; a list of strings is accepted where the
    parameter says so (joined one per line); anything else is a problem about this parameter
    only, so the entry's other parameters are still checked."""
    where = f"feature {feature!r} parameter {name!r}"
    spec = FEATURES[feature].params.get(name) if feature in FEATURES else None
    if feature in FEATURES and spec is None:
        return "", None  # check_feature names the unknown parameter: that is the problem
    if isinstance(value, bool):
        return str(value).lower(), None
    if isinstance(value, (str, int)):
        return str(value), None
    if isinstance(value, list) and spec is not None and spec.list_joined:
        if all(isinstance(item, str) for item in value):
            return "\n".join(value), None
        bad = next(type(item).__name__ for item in value if not isinstance(item, str))
        return None, f"{where}: every list item must be a string, not {bad}"
    kind = {list: "a list", dict: "an object", float: "a number with a decimal point",
            type(None): "null"}.get(type(value), type(value).__name__)
    takes = "a string or a list of strings" if spec is not None and spec.list_joined else "a string"
    return None, f"{where}: must be {takes}, not {kind}"


def check_feature(name: str, params: Mapping[str, str]) -> list[str]:
    """Problems with a VM's feature reference (unknown feature, unknown/missing params, bad
    values); empty when it is usable. For the config validator."""
    spec = FEATURES.get(name)
    if spec is None:
        known = ", ".join(sorted(FEATURES))
        return [f"unknown feature {name!r} (known: {known})"]
    if not isinstance(params, Mapping):
        return [f"feature {name!r}: params must be an object of strings"]
    problems: list[str] = []
    for key in params:
        if key not in spec.params:
            known = ", ".join(sorted(spec.params)) or "none"
            problems.append(f"feature {name!r}: unknown parameter {key!r} (known: {known})")
    for key, param in spec.params.items():
        if key in params:
            problems.extend(param.problems(name, key, params[key]))
        elif param.default is None:
            problems.append(f"feature {name!r}: missing required parameter {key!r}")
    return problems
