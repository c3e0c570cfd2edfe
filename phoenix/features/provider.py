"""Dynamic provider `Feature` (type `pulumi-python:dynamic/phoenix:Feature`): one VM feature.

Re-runs the feature's script only when something that defines the run changes: the script's
content hash, the parameters, the triggers, or the machine (host, its pinned host keys, user) —
always as an update, never a replace. An unchanged `pulumi up` runs nothing (diff is pure).
`read` (pulumi refresh) looks for the run marker on the host; a missing or different marker
makes the next `up` run the script again. A new private key alone only updates the state.

Only the declared inputs (`INPUT_KEYS`) are compared: the `__provider` blob every call carries
is never a reason to run anything (see `phoenix.dynamic_inputs`).

A host that cannot be reached (connect, host key or login fails within
`provider_glue.UNREACHABLE_AFTER_S`, e.g. a stopped or deleted VM) never blocks the lifecycle:
- read keeps the recorded state and warns;
- delete completes and warns what was not undone (the delete script that did not run).
A feature without a delete script has nothing to undo: delete opens no connection at all (its
run marker, a hash of what ran, stays on the host and stays true).

A VM being rebuilt: its features are deleted *before* the VM in a delete-first replacement, and
released CLIs (<= v3.259.0) run their provider Delete then (the VM is not yet in the step
generator's `deletes` map that `deletedWith` consults: pulumi pkg/resource/deploy/
step_generator.go :2081-2146 and step.go :603/:663 at v3.259.0; #23818 changes it later). The
`authorized-keys` delete script would strip the admin keys, and a VM whose delete then failed
would run on without them. So delete runs no script for a VM listed in PHOENIX_REPLACING, which
`python -m phoenix up` sets to every VM the checked plan replaces (the engine starts this
process with the CLI's environment: sdk/go/common/resource/plugin/plugin.go :500 at v3.254.0).
The rebuild erases the disk anyway; a VM that survives keeps what its features set up.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from phoenix.dynamic_inputs import changed_inputs, contains_unknown
from phoenix.features.catalog import CONVERGE, FEATURES, FeatureSpec, check_feature
from phoenix.features.first_boot_only import first_boot_warnings
from phoenix.remote.provider_glue import (
    RECORD_ONLY_KEYS,
    connect_or_warn,
    pulumi_log,
    pulumi_progress,
    pulumi_warn,
    target_from_props,
    unreachable_after,
)
from phoenix.remote.ssh import connect

# Bump when the provider's behaviour changes: Pulumi does not notice code changes.
PROVIDER_VERSION = "1"
DEFAULT_MARKER_DIR = "/var/lib/phoenix/features"
STDOUT_TAIL_CHARS = 4000
_OUTPUT_KEYS = ("exit_code", "stdout_tail", "changes", "marker")
# What `Feature.__init__` registers as inputs: the only keys diff and update compare.
INPUT_KEYS = ("host", "port", "username", "private_key", "host_keys", "feature", "params",
              "sudo", "triggers", "connect_timeout_s", "run_timeout_s", "marker_dir",
              "script_hash", "provider_version")

_WRITE_MARKER = """\
umask 077
install -d -m 0700 "$PHOENIX_MARKER_DIR"
printf '%s\\n' "$PHOENIX_MARKER" > "$PHOENIX_MARKER_DIR/.$PHOENIX_MARKER_ID.tmp"
mv -f "$PHOENIX_MARKER_DIR/.$PHOENIX_MARKER_ID.tmp" "$PHOENIX_MARKER_DIR/$PHOENIX_MARKER_ID"
"""
_READ_MARKER = 'cat -- "$PHOENIX_MARKER_DIR/$PHOENIX_MARKER_ID" 2>/dev/null || true\n'
_REMOVE_MARKER = 'rm -f -- "$PHOENIX_MARKER_DIR/$PHOENIX_MARKER_ID"\n'


def run_fingerprint(feature: str, script_hash: str, params: Mapping[str, str],
                    triggers: Sequence[str] = ()) -> str:
    """What the marker on the host records: which script ran with which parameters.

    A hash, so the marker (readable by root on the VM) does not spell out secret parameters.
    """
    blob = json.dumps([feature, script_hash, sorted(params.items()), list(triggers)],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _spec(props: Mapping[str, Any]) -> FeatureSpec:
    return FEATURES[props["feature"]]


def _params(props: Mapping[str, Any]) -> dict[str, str]:
    return _spec(props).resolve(dict(props.get("params") or {}))


# Parameters that describe, not run: a change is recorded (and warned about), never run.
_RECORD_ONLY_PARAMS = {CONVERGE: ("first_boot",)}


def _run_params(props: Mapping[str, Any]) -> dict[str, str]:
    """The parameters that define a run (what the marker fingerprints)."""
    params = _params(props)
    for name in _RECORD_ONLY_PARAMS.get(props["feature"], ()):
        params.pop(name, None)
    return params


def _expected_marker(props: Mapping[str, Any]) -> str:
    return run_fingerprint(props["feature"], props["script_hash"], _run_params(props),
                           props.get("triggers") or ())


def _marker_env(props: Mapping[str, Any], id_: str) -> dict[str, str]:
    return {"PHOENIX_MARKER_DIR": props.get("marker_dir") or DEFAULT_MARKER_DIR,
            "PHOENIX_MARKER_ID": id_}


def _sudo(props: Mapping[str, Any]) -> bool:
    value = props.get("sudo")
    return _spec(props).needs_root if value is None else bool(value)


def _warnings_from(stdout: str) -> list[str]:
    """Lines a script marks `PHOENIX_WARNING: ...` (e.g. packages left installed): shown as
    warnings of the run, not only in the log."""
    return [line.split(":", 1)[1].strip() for line in stdout.splitlines()
            if line.startswith("PHOENIX_WARNING:")]


def _changes_from(stdout: str) -> int | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("PHOENIX_CHANGES="):
            try:
                return int(line.split("=", 1)[1])
            except ValueError:
                return None
    return None


REPLACING_ENV = "PHOENIX_REPLACING"


def vm_being_replaced(props: Mapping[str, Any]) -> str | None:
    """The VM (its id, the vmid: the feature's trigger) if this `up` replaces it."""
    replacing = {w.strip() for w in os.environ.get(REPLACING_ENV, "").split(",") if w.strip()}
    return next((str(t) for t in props.get("triggers") or () if str(t) in replacing), None)


class FeatureProvider(ResourceProvider):
    """Stateless: everything it needs is in the resource's inputs (pickled by reference)."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        feature, params = news.get("feature"), news.get("params") or {}
        if isinstance(feature, str) and isinstance(params, Mapping) \
                and all(isinstance(v, str) for v in params.values()):  # unknowns: check later
            for problem in check_feature(feature, params):
                failures.append(CheckFailure("params" if feature in FEATURES else "feature",
                                             problem))
        if isinstance(feature, str) and feature in FEATURES \
                and news.get("script_hash") not in (None, FEATURES[feature].script_hash()):
            # The program and the provider saw different package versions.
            failures.append(CheckFailure("script_hash", "the feature script changed since the "
                                         "program computed its hash; run again"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = changed_inputs(olds, news, INPUT_KEYS)
        if olds.get("marker") != _safe_expected_marker(news):
            changed.append("marker")  # refresh found the marker gone or different
        replaces = ["feature"] if olds.get("feature") != news.get("feature") else []
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[],
                          delete_before_replace=bool(replaces))

    def create(self, props: dict[str, Any]) -> CreateResult:
        id_ = uuid.uuid4().hex
        return CreateResult(id_, self._run(id_, props))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if news.get("feature") == CONVERGE:  # fields the running VM cannot follow: say so
            for warning in first_boot_warnings((olds.get("params") or {}).get("first_boot"),
                                               (news.get("params") or {}).get("first_boot")):
                pulumi_warn(warning)
        rerun = [k for k in changed_inputs(olds, news, INPUT_KEYS) if k not in RECORD_ONLY_KEYS]
        if rerun == ["params"] and olds.get("feature") == news.get("feature") \
                and _run_params(olds) == _run_params(news):
            rerun = []  # only a record-only parameter changed (its warning is above)
        if not rerun and olds.get("marker") == _expected_marker(news):
            # Only credentials, timeouts or the provider version changed: record, run nothing.
            return UpdateResult({**news, **{k: olds.get(k) for k in _OUTPUT_KEYS}})
        return UpdateResult(self._run(id_, news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not props.get("host"):
            raise ValueError("Feature resources cannot be imported: create them instead")
        spec, params = _spec(props), _params(props)
        target = target_from_props(props, spec.secret_values(params),
                                   deadline_s=unreachable_after(props))
        session = connect_or_warn(target, _prefix(props),
                                  "refresh keeps the recorded state (run marker not checked)")
        if session is None:
            return ReadResult(id_, dict(props))
        with session:
            result = session.run(_READ_MARKER, env=_marker_env(props, id_), sudo=_sudo(props),
                                 timeout_s=60)
        return ReadResult(id_, {**props, "marker": result.stdout.strip()})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        rebuilt = vm_being_replaced(props)
        if rebuilt is not None:
            pulumi_progress(_prefix(props))(
                f"VM {rebuilt} is being rebuilt: the delete script is not run (the rebuild erases the "
                "disk; if the VM's delete fails, the VM keeps what this feature set up)")
            return
        spec, params = _spec(props), _params(props)
        delete_script = spec.delete_script_text()
        if not delete_script:
            # Nothing to undo; the marker records a run that did happen. Not worth a
            # connection (and a stopped VM must not hold up destroy).
            pulumi_progress(_prefix(props))("no delete script: nothing to undo on the host")
            return
        target = target_from_props(props, spec.secret_values(params),
                                   deadline_s=unreachable_after(props))
        session = connect_or_warn(
            target, _prefix(props),
            f"NOT UNDONE: the delete script {spec.delete_script} did not run; the resource "
            "leaves the state anyway (run it by hand if the VM comes back)")
        if session is None:
            return
        env, secret_env = spec.environment(params)
        env["PHOENIX_SSH_USER"] = target.username
        with session:
            session.run(delete_script, env=env, secret_env=secret_env, sudo=_sudo(props),
                        timeout_s=float(props.get("run_timeout_s") or 1800),
                        log=pulumi_log(_prefix(props)))
            session.run(_REMOVE_MARKER, env=_marker_env(props, id_), sudo=_sudo(props),
                        timeout_s=60)

    def _run(self, id_: str, props: dict[str, Any]) -> dict[str, Any]:
        spec, params = _spec(props), _params(props)
        if spec.script_hash() != props["script_hash"]:
            raise ValueError(f"feature {spec.name!r}: the script changed since the program "
                             "computed its hash; run `pulumi up` again")
        target = target_from_props(props, spec.secret_values(params))
        env, secret_env = spec.environment(params)
        env["PHOENIX_SSH_USER"] = target.username
        marker = _expected_marker(props)
        prefix = _prefix(props)
        with connect(target, pulumi_progress(prefix)) as session:
            result = session.run(spec.script_text(), env=env, secret_env=secret_env,
                                 sudo=_sudo(props),
                                 timeout_s=float(props.get("run_timeout_s") or 1800),
                                 log=pulumi_log(prefix))
            session.run(_WRITE_MARKER, env={**_marker_env(props, id_), "PHOENIX_MARKER": marker},
                        sudo=_sudo(props), timeout_s=60)
        for warning in _warnings_from(result.stdout):
            pulumi_warn(f"{prefix} {warning}")
        return {
            **props,
            "exit_code": result.exit_code,
            "stdout_tail": result.stdout[-STDOUT_TAIL_CHARS:],
            "changes": _changes_from(result.stdout),
            "marker": marker,
        }


def _safe_expected_marker(props: Mapping[str, Any]) -> str | None:
    if contains_unknown([props.get(k) for k in ("feature", "script_hash", "params", "triggers")]):
        return None  # preview: the marker cannot be known yet
    try:
        return _expected_marker(props)
    except (KeyError, ValueError, TypeError):  # unknown values during preview
        return None


def _prefix(props: Mapping[str, Any]) -> str:
    return f"[feature {props.get('feature')} on {props.get('host')}]"


class FeatureArgs:
    """Inputs of a `Feature`. Every argument may be a plain value or a Pulumi Output.

    host, port, username: where to SSH (the VM's address, usually port 22, the VM's user).
    private_key: the key text (the stack secret `phoenix-hypervisor:sshPrivateKey`); stored in
        state only as a secret.
    host_keys: pinned host keys ("ssh-ed25519 AAAA..." lines or known_hosts text), usually the
        readiness resource's output; a change (a rebuilt VM) re-runs the feature.
    feature: a name from `phoenix.features.catalog.FEATURES` (plain str, not an Output).
    params: the feature's parameters (defaults filled in from the catalog).
    sudo: run through `sudo -n`; default: the feature's `needs_root`.
    triggers: extra strings whose change re-runs the feature (e.g. the VM's id).
    connect_timeout_s: total connect deadline (default 300: the VM may still be booting).
    run_timeout_s: the script's deadline (default 1800).
    marker_dir: where the run marker lives on the host (default /var/lib/phoenix/features).
    """

    def __init__(
        self,
        *,
        host: pulumi.Input[str],
        username: pulumi.Input[str],
        private_key: pulumi.Input[str],
        host_keys: pulumi.Input[Sequence[pulumi.Input[str]]],
        feature: str,
        params: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        port: pulumi.Input[int] = 22,
        sudo: bool | None = None,
        triggers: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        connect_timeout_s: float = 300.0,
        run_timeout_s: float = 1800.0,
        marker_dir: str = DEFAULT_MARKER_DIR,
    ) -> None:
        self.host = host
        self.username = username
        self.private_key = private_key
        self.host_keys = host_keys
        self.feature = feature
        self.params = params or {}
        self.port = port
        self.sudo = sudo
        self.triggers = triggers or []
        self.connect_timeout_s = connect_timeout_s
        self.run_timeout_s = run_timeout_s
        self.marker_dir = marker_dir


class Feature(Resource, module="phoenix", name="Feature"):
    """One feature on one VM. Outputs: exit_code, stdout_tail (secret), changes, marker."""

    exit_code: pulumi.Output[int]
    stdout_tail: pulumi.Output[str]
    changes: pulumi.Output[int | None]
    marker: pulumi.Output[str]

    def __init__(self, name: str, args: FeatureArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        spec = FEATURES.get(args.feature)
        if spec is None:
            raise ValueError(check_feature(args.feature, {})[0])
        if isinstance(args.params, Mapping) and all(isinstance(v, str)
                                                     for v in args.params.values()):
            problems = check_feature(args.feature, args.params)
            if problems:
                raise ValueError("; ".join(problems))
        props: dict[str, Any] = {
            "host": args.host,
            "port": args.port,
            "username": args.username,
            "private_key": pulumi.Output.secret(args.private_key),
            "host_keys": args.host_keys,
            "feature": args.feature,
            "params": args.params,
            "sudo": args.sudo,
            "triggers": args.triggers,
            "connect_timeout_s": args.connect_timeout_s,
            "run_timeout_s": args.run_timeout_s,
            "marker_dir": args.marker_dir,
            "script_hash": spec.script_hash(),
            "provider_version": PROVIDER_VERSION,
            **{k: None for k in _OUTPUT_KEYS},
        }
        # stdout may echo anything the script saw: always secret (known secrets are also
        # redacted before it is stored).
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["private_key",
                                                                        "stdout_tail"])
        super().__init__(FeatureProvider(), name, props,
                         pulumi.ResourceOptions.merge(opts, secret_opts))
