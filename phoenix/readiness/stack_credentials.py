"""Proxmox credentials for the dynamic providers that call the PVE API (GuestAgentReady,
TemplateBake): per field, the resource's inputs, then the stack config the engine passes to
`configure()` (secrets decrypted), then the environment. The token is never stored on the
pickled provider: `configure()` runs on the unpickled copy inside the provider process."""

from __future__ import annotations

import os
from typing import Any

from pulumi.dynamic import ConfigureRequest, ResourceProvider

from phoenix.readiness.pve import ENV_ENDPOINT, ENV_INSECURE, ENV_TOKEN, PveCredentials, parse_bool


class MissingCredentials(Exception):
    """No endpoint or API token anywhere. The message names what is missing, never a value."""


class PveStackProvider(ResourceProvider):
    """Base of the providers that read the PVE endpoint/token from inputs, stack config or env."""

    serialize_as_secret_always = False  # nothing secret is captured in the pickled provider

    def configure(self, req: ConfigureRequest) -> None:
        self._stack_settings = {
            "endpoint": req.config.get("proxmoxve:endpoint"),
            "api_token": req.config.get("proxmoxve:apiToken"),
            "insecure": req.config.get("proxmoxve:insecure"),
        }

    def resolve_credentials(self, props: dict[str, Any]) -> PveCredentials:
        stack = getattr(self, "_stack_settings", {}) or {}
        env = {"endpoint": os.environ.get(ENV_ENDPOINT), "api_token": os.environ.get(ENV_TOKEN),
               "insecure": os.environ.get(ENV_INSECURE)}

        def pick(key: str) -> Any:
            for source in (props, stack, env):
                value = source.get(key)
                if value not in (None, ""):
                    return value
            return None

        endpoint, token, insecure = pick("endpoint"), pick("api_token"), pick("insecure")
        if not endpoint or not token:
            missing = [what for what, value in (("endpoint", endpoint), ("API token", token))
                       if not value]
            raise MissingCredentials(
                f"no Proxmox {' or '.join(missing)}: set the stack config proxmoxve:endpoint / "
                f"proxmoxve:apiToken (secret), or {ENV_ENDPOINT} / {ENV_TOKEN}")
        return PveCredentials(str(endpoint), str(token),
                              verify=not parse_bool(insecure) if insecure is not None else True)
