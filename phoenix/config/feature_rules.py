"""The feature rules of the config layer: which parameters each feature takes, their defaults,
and the checks on their values. The config loader checks a VM's `features` with them; the
feature catalog (phoenix/features/catalog.py) adds the scripts and runs them. Here so the
config layer imports nothing above it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from phoenix.config.rules import package_problem
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


def _packages_problems(value: str) -> list[str]:
    return [p for p in (package_problem(name) for name in value.split()) if p]


_SECONDS = r"[1-9][0-9]{0,4}"
CONVERGE = "converge"
# Phoenix's own steps: in the catalog, never listed in a VM's `features`.
INTERNAL_FEATURES = frozenset({CONVERGE})

# Each feature's parameters; the feature catalog pairs them with the scripts.
FEATURE_PARAMS: dict[str, dict[str, ParamSpec]] = {
    "docker": {
        "user": ParamSpec(
            "account added to the docker group; empty: the SSH login user; '-': nobody",
            default="", pattern=rf"|-|{_USERNAME}\$?"),
        "package": ParamSpec(
            "the distribution package to install when `docker` is missing",
            default="docker.io", choices=("docker.io",)),
    },
    "authorized-keys": {
        "keys": ParamSpec("public key lines: a JSON list of lines, or one string with one per line",
                          validate=_public_keys_problems, list_joined=True),
        "user": ParamSpec("whose authorized_keys; empty: the SSH login user",
                          default="", pattern=rf"|{_USERNAME}"),
    },
    # edits: "in-place" (docs/edits.md); the program fills these in from the VM's config.
    CONVERGE: {
        "packages": ParamSpec("package names, space-separated (names the config checked)",
                              default="", validate=_packages_problems),
        # Opaque lines: the config checked each one (phoenix/config/ssh_keys.py).
        "keys": ParamSpec("the admin user's public key lines, one per line", default=""),
        "login_key": ParamSpec("the public key line Phoenix logs in with (always kept)",
                               default=""),
        "timezone": ParamSpec("an IANA timezone name; empty: not managed", default="",
                              pattern=r"|[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*"),
        "user": ParamSpec("whose authorized_keys; empty: the SSH login user",
                          default="", pattern=rf"|{_USERNAME}"),
        "lock_timeout_s": ParamSpec("how long to wait for another apt/dpkg's lock",
                                    default="300", pattern=_SECONDS),
        "apt_timeout_s": ParamSpec("deadline of one apt-get call", default="600",
                                   pattern=_SECONDS),
        # Not used by the script: a change updates the step, whose provider warns
        # (phoenix.features.first_boot_only).
        "first_boot": ParamSpec("JSON of the VM's first-boot-only values", default=""),
        "state_dir": ParamSpec("where the last converged package list is kept",
                               default="/var/lib/phoenix/converge",
                               pattern=r"/[A-Za-z0-9_./-]+"),
    },
}


def config_value(feature: str, name: str, value: object) -> tuple[str | None, str | None]:
    """A parameter's value from the JSON config as the string the script gets -> (value, problem).
    true/false and whole numbers become their text; a list of strings is accepted where the
    parameter says so (joined one per line); anything else is a problem about this parameter
    only, so the entry's other parameters are still checked."""
    where = f"feature {feature!r} parameter {name!r}"
    spec = FEATURE_PARAMS[feature].get(name) if feature in FEATURE_PARAMS else None
    if feature in FEATURE_PARAMS and spec is None:
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
    spec_params = FEATURE_PARAMS.get(name)
    if spec_params is None:
        known = ", ".join(sorted(n for n in FEATURE_PARAMS if n not in INTERNAL_FEATURES))
        return [f"unknown feature {name!r} (known: {known})"]
    if not isinstance(params, Mapping):
        return [f"feature {name!r}: params must be an object of strings"]
    problems: list[str] = []
    for key in params:
        if key not in spec_params:
            known = ", ".join(sorted(spec_params)) or "none"
            problems.append(f"feature {name!r}: unknown parameter {key!r} (known: {known})")
    for key, param in spec_params.items():
        if key in params:
            problems.extend(param.problems(name, key, params[key]))
        elif param.default is None:
            problems.append(f"feature {name!r}: missing required parameter {key!r}")
    return problems
