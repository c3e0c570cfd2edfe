"""`python -m phoenix doctor`: check the cluster with the stack's token and SSH key before the
first `pulumi up`. One `error:` line per problem on stderr, each with its fix; exit 0 when nothing was found.

Credentials come from the stack config (`pulumi config get`, so PULUMI_CONFIG_PASSPHRASE must
be set for a passphrase-protected stack); PROXMOX_VE_ENDPOINT / PROXMOX_VE_API_TOKEN /
PROXMOX_VE_INSECURE, when set, take precedence, as for `python -m phoenix wait`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from phoenix.cli_support import EXIT_FAILED, EXIT_OK, fail, load_stack_and_config
from phoenix.config import Config
from phoenix.doctor import cluster, data_disks
from phoenix.doctor.api import ApiError, ApiUnusable, ClusterApi
from phoenix.doctor.findings import Finding
from phoenix.doctor.nodes_ssh import check_ssh
from phoenix.pulumi_version import cli_version, version_problem
from phoenix.readiness.pve import ENV_ENDPOINT, ENV_INSECURE, ENV_TOKEN, PveCredentials, parse_bool
from phoenix.readiness.transport import TransportConfigError
from phoenix.stackinit.pulumi_cli import PROJECT, parse_object

DEFAULT_STACK = os.environ.get("PHOENIX_STACK", "dev")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default=DEFAULT_STACK, help=f"the Pulumi stack (default {DEFAULT_STACK})")
    parser.add_argument("--file", help="the VM config file (default: the stack's vmConfigFile)")


def _credentials(values: dict[str, str | None]) -> PveCredentials:
    endpoint = os.environ.get(ENV_ENDPOINT) or values.get("proxmoxve:endpoint") or ""
    token = os.environ.get(ENV_TOKEN) or values.get("proxmoxve:apiToken") or ""
    insecure = os.environ.get(ENV_INSECURE) or values.get("proxmoxve:insecure") or "false"
    if not endpoint or not token:
        raise TransportConfigError("proxmoxve:endpoint and proxmoxve:apiToken must be set "
                                   "(python -m phoenix init --check says how)")
    creds = PveCredentials(endpoint, token, verify=not parse_bool(insecure))
    creds.check()
    return creds


def api_findings(creds: PveCredentials, config: Config) -> tuple[list[Finding], int]:
    """Every API check; -> (findings, number of checks run)."""
    api = ClusterApi(creds)
    findings: list[Finding] = []
    try:
        major = cluster.pve_major(api)
    except ApiUnusable as exc:
        return [Finding("API", str(exc), "fix the endpoint/token, then run the doctor again")], 1
    except ApiError as exc:
        return [Finding("API", f"GET /version failed ({exc})", "check proxmoxve:endpoint")], 1
    checks: list[Callable[[], list[Finding]]] = [
        lambda: cluster.check_token(api, config, major),
        lambda: cluster.check_storages(api, config),
        lambda: cluster.check_templates(api, config),
        lambda: cluster.check_networks(api, config),
        lambda: cluster.check_vmids(api, config),
        lambda: data_disks.check_data_holders(api, config),
    ]
    for check in checks:
        try:
            findings.extend(check())
        except ApiUnusable as exc:
            findings.append(Finding("API", str(exc), "fix the endpoint/token, then run the doctor again"))
            break
        except ApiError as exc:
            findings.append(Finding("API", str(exc), "see the message; the token may lack Sys.Audit on /"))
    return findings, len(checks)


def run(args: argparse.Namespace) -> int:
    loaded = load_stack_and_config(args.stack, args.file)
    if isinstance(loaded, int):
        return loaded
    values, config = loaded
    findings: list[Finding] = []
    # The same minimum as scripts/up.sh and `python -m phoenix up` (phoenix/pulumi_version.py).
    cli_problem = version_problem(cli_version(os.environ.get("PULUMI_BINARY", "pulumi")))
    if cli_problem:
        findings.append(Finding("Pulumi CLI", cli_problem, "https://www.pulumi.com/docs/install/"))
    try:
        creds = _credentials(values)
    except TransportConfigError as exc:
        findings.append(Finding("stack config", str(exc), "python -m phoenix init"))
        checks = 0
    else:
        found, checks = api_findings(creds, config)
        findings += found
    from phoenix.resources.settings import SettingsError, _nodes  # imports pulumi: only here

    try:
        nodes = _nodes(parse_object(values.get(f"{PROJECT}:nodes")))
    except SettingsError as exc:
        findings.append(Finding(f"{PROJECT}:nodes", str(exc), "python -m phoenix init --node NAME ..."))
        nodes = {}
    findings += check_ssh(config, nodes, values.get(f"{PROJECT}:sshPrivateKey"),
                          values.get(f"{PROJECT}:sshUsername") or "root")
    # Problems are failure lines: on stderr, each `error: ` (docs/cli.md "Messages"); the pass
    # line is the result, on stdout.
    for finding in findings:
        fail(finding.line(), EXIT_FAILED)
    if findings:
        return fail(f"doctor: {len(findings)} problem(s); fix them before `pulumi up`.", EXIT_FAILED)
    print(f"doctor: {checks + 1} checks passed (token privileges, datastores, templates, bridges, "
          "free vmids, data holders, SSH and ZFS datasets)")
    return EXIT_OK
