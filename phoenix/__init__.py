"""Phoenix Hypervisor: Proxmox VE virtual machines as code.

Data flows one way through the sub-packages:
config -> cloudinit -> resources -> readiness -> features.
Importing this package has no side effects (dynamic providers are pickled by reference), with
one exception: inside the dynamic-provider plugin process of the pinned Pulumi SDK, the first
import lifts that process's limit of four calls at once (phoenix.dynamic_workers).
"""

from phoenix.dynamic_workers import lift_worker_limit as _lift_worker_limit

__version__ = "0.1.0"

_lift_worker_limit()
