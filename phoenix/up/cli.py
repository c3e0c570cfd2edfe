"""`python -m phoenix up [--rebuild VMID]... [--delete VMID]... [PULUMI UP OPTIONS]`.

1. the Pulumi CLI is new enough (phoenix.pulumi_version);
2. `pulumi preview --json --save-plan PLAN`, with PHOENIX_REBUILD and `--replace <VM URN>` for
   each VM named with --rebuild (the program then registers it with its current source);
3. the guard (phoenix.up.guard) reads the engine's preview: a VM or a VM's data that would be
   replaced or deleted without being named stops everything here (exit 1, nothing applied);
4. `pulumi up --plan PLAN` with the same --replace options: the engine refuses to do more than
   the plan that was checked (pkg/cmd/pulumi/operations/up.go, `opts.Engine.Plan`).

Exit codes (docs/cli.md): 0 applied; 1 refused by the guard, or the preview/up failed; 2 could
not start (no or too old CLI, config problems, a named VM unknown).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from phoenix.cli_support import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, load_or_report, vmid_argument
from phoenix.config import Config
from phoenix.pulumi_version import cli_version, version_problem
from phoenix.stackinit.pulumi_cli import PROJECT, PulumiCliError, PulumiStackConfig
from phoenix.up import guard

DEFAULT_STACK = os.environ.get("PHOENIX_STACK", "dev")
REBUILD_ENV = "PHOENIX_REBUILD"  # read by phoenix/resources/settings.py (contract C3)
KEEP_ENV = "PHOENIX_KEEP"  # likewise
PREVIEW_TIMEOUT_S = 3600  # a preview runs the program: minutes for a thousand VMs, never hours
ACCEPTS_EXTRA_ARGS = True  # unknown options go to `pulumi up` (phoenix.cli)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default=DEFAULT_STACK, help=f"the Pulumi stack (default {DEFAULT_STACK})")
    parser.add_argument("--rebuild", action="append", type=vmid_argument, default=[], metavar="VMID",
                        help="rebuild this VM from the template/image the config names now (repeatable)")
    parser.add_argument("--delete", action="append", type=vmid_argument, default=[], metavar="VMID",
                        help="allow deleting this VM, removed from the config (repeatable)")
    parser.add_argument("--keep", action="append", type=vmid_argument, default=[], metavar="VMID",
                        help="keep this VM as it is in this up, even if it opted in to rebuilds (repeatable)")
    parser.add_argument("--refresh", action="store_true", help="refresh the state first (preview and up)")
    parser.add_argument("--target", action="append", default=[], metavar="URN",
                        help="only this resource (preview and up; repeatable)")
    parser.add_argument("--no-plan", action="store_true",
                        help="apply without `--plan` (the guard still checks the preview): for a CLI "
                             "whose update plan refuses a deployment the preview allowed")
    parser.epilog = "Other options (e.g. --yes) are passed to `pulumi up`."


def _binary() -> str:
    return os.environ.get("PULUMI_BINARY", "pulumi")


def _wanted_sources(config: Config) -> dict[int, str]:
    from phoenix.resources.images import versioned_file_name  # imports pulumi: only here

    wanted = {}
    for vm in config.vms:
        if vm.clone_from is not None:
            wanted[vm.vmid] = f"clone {vm.clone_from}"
        elif vm.image and vm.image in config.images:
            wanted[vm.vmid] = f"image {versioned_file_name(config.images[vm.image])}"
    return wanted


def _state_urns(stack: str) -> dict[int, str]:
    """vmid -> URN of its VmLegacy in the stack's state (`pulumi stack export`)."""
    done = subprocess.run([_binary(), "stack", "export", "--stack", stack], capture_output=True,
                          text=True, check=False, timeout=PREVIEW_TIMEOUT_S)
    if done.returncode != 0:
        raise PulumiCliError(done.stderr.strip().splitlines()[0] if done.stderr.strip()
                             else "`pulumi stack export` failed")
    resources = (json.loads(done.stdout or "{}").get("deployment") or {}).get("resources") or []
    urns = {}
    for res in resources:
        plan = guard.ResourcePlan(res.get("urn", ""), old_inputs=res.get("inputs"))
        if plan.type == guard.VM_TYPE and plan.vmid is not None:
            urns[plan.vmid] = plan.urn
    return urns


def _config_file(stack: str) -> str:
    return PulumiStackConfig(stack).get(f"{PROJECT}:vmConfigFile") or "phoenix_vm_configs.json"


def run(args: argparse.Namespace) -> int:
    problem = version_problem(cli_version(_binary()))
    if problem:
        return fail(problem if cli_version(_binary()) else
                    "the Pulumi CLI is not installed (or `pulumi version` failed): "
                    "https://www.pulumi.com/docs/install/", EXIT_USAGE)
    try:
        path = _config_file(args.stack)
    except PulumiCliError as exc:
        return fail(exc, EXIT_USAGE)
    config = load_or_report(path)
    if isinstance(config, int):
        return config
    in_file = {vm.vmid for vm in config.vms}
    unknown = [v for v in args.rebuild + args.keep if v not in in_file]
    still_there = [v for v in args.delete if v in in_file]
    for vmid in unknown:
        flag = "--rebuild" if vmid in args.rebuild else "--keep"
        fail(f"{flag} {vmid}: no VM with vmid {vmid} in {path}", EXIT_USAGE)
    for vmid in still_there:
        fail(f"--delete {vmid}: VM {vmid} is still in {path}: remove its entry first", EXIT_USAGE)
    if unknown or still_there:
        return EXIT_USAGE
    replace_args: list[str] = []
    if args.rebuild:
        try:
            urns = _state_urns(args.stack)
        except (PulumiCliError, json.JSONDecodeError, subprocess.TimeoutExpired) as exc:
            return fail(f"cannot read the stack's state to find the VMs to rebuild: {exc}", EXIT_USAGE)
        missing = [v for v in args.rebuild if v not in urns]
        for vmid in missing:
            fail(f"--rebuild {vmid}: VM {vmid} is not in the stack's state yet (a plain `up` creates it)",
                 EXIT_USAGE)
        if missing:
            return EXIT_USAGE
        for vmid in sorted(set(args.rebuild)):
            replace_args += ["--replace", urns[vmid]]
    shared = (["--refresh"] if args.refresh else []) + [a for t in args.target for a in ("--target", t)]
    both = set(args.rebuild) & set(args.keep)
    if both:
        return fail(f"VM {min(both)} is named both with --rebuild and --keep", EXIT_USAGE)
    env = dict(os.environ, **{REBUILD_ENV: ",".join(str(v) for v in sorted(set(args.rebuild))),
                              KEEP_ENV: ",".join(str(v) for v in sorted(set(args.keep)))})

    with tempfile.TemporaryDirectory(prefix="phoenix-plan-") as tmp:
        plan_file = str(Path(tmp) / "plan.json")
        print(f"up: pulumi preview (stack {args.stack}), then the rebuild guard", file=sys.stderr)
        try:
            # --show-sames: unchanged VMs too (their recorded source, for the warnings);
            # --show-replacement-steps: every step of a replacement. Without them the JSON
            # leaves both out (pkg/backend/display/display.go `shouldShow`, :308 at v3.254.0).
            save = [] if args.no_plan else ["--save-plan", plan_file]
            done = subprocess.run([_binary(), "preview", "--json", "--stack", args.stack,
                                   "--show-sames", "--show-replacement-steps",
                                   *save, *replace_args, *shared],
                                  capture_output=True, text=True, check=False, env=env,
                                  timeout=PREVIEW_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return fail(f"`pulumi preview` did not finish within {PREVIEW_TIMEOUT_S} s; nothing was applied",
                        EXIT_FAILED)
        try:
            digest = json.loads(done.stdout) if done.stdout.strip() else {}
        except json.JSONDecodeError:
            digest = None
        if done.returncode != 0 or not isinstance(digest, dict):
            for diag in (digest or {}).get("diagnostics") or [] if isinstance(digest, dict) else []:
                if diag.get("severity") == "error":
                    print(f"error: {str(diag.get('message', '')).strip()}", file=sys.stderr)
            sys.stderr.write(done.stderr)
            return fail("`pulumi preview` failed; nothing was applied", EXIT_FAILED)
        try:
            refusals = guard.check(digest, rebuild=args.rebuild, delete=args.delete,
                                   opted_in={vm.vmid for vm in config.vms if vm.recreate_on_cloud_init_change})
            notes = guard.source_changes(digest, _wanted_sources(config))
            untouched = guard.named_but_untouched(digest, args.rebuild)
        except guard.PreviewUnreadable as exc:
            return fail(f"the preview's JSON is not what this phoenix understands ({exc}); nothing was applied",
                        EXIT_FAILED)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        for vmid in untouched:
            print(f"warning: --rebuild {vmid}: the preview does not rebuild VM {vmid}", file=sys.stderr)
        if refusals:
            for refusal in refusals:
                fail(refusal.line(), EXIT_FAILED)
            return fail(f"{len(refusals)} VM(s) would be rebuilt or deleted without being named; "
                        "nothing was applied", EXIT_FAILED)
        # Features of a VM being rebuilt run no delete script (phoenix.features.provider)
        env["PHOENIX_REPLACING"] = ",".join(str(v) for v in guard.replaced_vmids(digest))
        # Update plans are marked experimental upstream; --no-plan lets the engine plan again
        # (what it applies can then differ from what was checked if the config or the cluster
        # changed in between: say so).
        if args.no_plan:
            print("warning: --no-plan: `pulumi up` plans again; it applies what was checked only if "
                  "nothing changed since the preview", file=sys.stderr)
        applied_plan = [] if args.no_plan else ["--plan", plan_file]
        up = [_binary(), "up", "--stack", args.stack, *applied_plan, *replace_args, *shared,
              *args.extra]
        if subprocess.run(up, env=env, check=False).returncode == 0:
            return EXIT_OK
        if not args.no_plan:
            print("hint: if `pulumi up` refused the checked plan (\"violates plan\") although nothing "
                  "changed, run this again with --no-plan (the guard still checks the preview)",
                  file=sys.stderr)
        return EXIT_FAILED
