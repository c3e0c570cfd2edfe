"""PVE API calls for the doctor (reads) and `phoenix data` (reads, and the one delete it makes
on purpose), with proxmoxer and the same credentials and TLS handling as the readiness provider
(phoenix.readiness.pve)."""

from __future__ import annotations

import warnings
from typing import Any

from phoenix.readiness.pve import ENV_INSECURE, PveCredentials, proxmox_client


class ApiError(Exception):
    """PVE answered with an error status (the message is PVE's)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"PVE answered {status}: {message}".rstrip(": "))
        self.status = status
        self.message = message


class ApiUnusable(Exception):
    """The API cannot be used at all (unreachable, TLS, token refused): the message says why."""


class ClusterApi:
    def __init__(self, credentials: PveCredentials, timeout_s: float = 10) -> None:
        self.credentials = credentials
        self._api = proxmox_client(credentials, timeout_s)

    def get(self, path: str, **params: Any) -> Any:
        return self._call("get", path, **params)

    def delete(self, path: str, **params: Any) -> Any:
        return self._call("delete", path, **params)

    def _call(self, method: str, path: str, **params: Any) -> Any:
        import requests
        from proxmoxer.core import ResourceException

        try:
            with warnings.catch_warnings():
                if self.credentials.verify is False:
                    warnings.simplefilter("ignore")  # the user chose insecure
                return getattr(self._api(path.strip("/")), method)(**params)
        except ResourceException as exc:
            status, message = int(exc.status_code), str(exc.content or "").strip()
            if status == 401:
                raise ApiUnusable(f"PVE refused the API token {self.credentials.token_id} "
                                  f"({status} {message}); check proxmoxve:apiToken") from None
            raise ApiError(status, message) from None
        except requests.exceptions.SSLError:
            raise ApiUnusable(f"TLS verification of {self.credentials.endpoint} failed; give the CA "
                              f"in REQUESTS_CA_BUNDLE or set proxmoxve:insecure true "
                              f"({ENV_INSECURE}=true)") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise ApiUnusable(f"cannot reach {self.credentials.endpoint} "
                              f"({type(exc).__name__}); check proxmoxve:endpoint") from None
