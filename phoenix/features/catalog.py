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

_USERNAME = r"[a-z_][a-z0-9_-]{0,31}"
_PUBLIC_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|"
    r"sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n\r]*)?$"
)


@dataclass(frozen=True)
class ParamSpec:
    description: str
    default: str | None = None  # None: the parameter is required
    pattern: str = r".*"  # the whole value must match
    choices: tuple[str, ...] = ()
    secret: bool = False
    # An extra check returning problems (for values a regex cannot describe).
    validate: Callable[[str], list[str]] | None = field(default=None, compare=False, repr=False)

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


def _public_keys_problems(value: str) -> list[str]:
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    if not lines:
        return ["at least one public key line is required"]
    return [f"line {i}: not an OpenSSH public key line ('TYPE BASE64 [comment]')"
            for i, line in enumerate(lines, start=1) if not _PUBLIC_KEY.match(line)]


def _packages_problems(value: str) -> list[str]:
    from phoenix.config.rules import package_problem  # the config's own rule, one source

    return [p for p in (package_problem(name) for name in value.split()) if p]


_SECONDS = r"[1-9][0-9]{0,4}"
CONVERGE = "converge"

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
            "keys": ParamSpec("public key lines, one per line", validate=_public_keys_problems),
            "user": ParamSpec("whose authorized_keys; empty: the SSH login user",
                              default="", pattern=rf"|{_USERNAME}"),
        },
    ),
    CONVERGE: FeatureSpec(
        name=CONVERGE,
        description="Phoenix's in-place step (edits: \"in-place\", docs/edits.md): installs the "
                    "VM's missing packages, makes the admin user's authorized_keys exactly the "
                    "configured keys plus Phoenix's own, sets the timezone. Idempotent.",
        script="converge.sh",
        internal=True,
        params={
            "packages": ParamSpec("package names, space-separated (names the config checked)",
                                  default="", validate=_packages_problems),
            # Opaque lines: options such as from="..." are the config checker's business.
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
    ),
}


def check_feature(name: str, params: Mapping[str, str]) -> list[str]:
    """Problems with a VM's feature reference (unknown feature, unknown/missing params, bad
    values); empty when it is usable. For the config validator."""
    spec = FEATURES.get(name)
    if spec is None:
        known = ", ".join(sorted(n for n, f in FEATURES.items() if not f.internal))
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
