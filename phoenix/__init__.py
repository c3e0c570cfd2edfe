"""Phoenix Hypervisor: Proxmox VE virtual machines as code.

Data flows one way through the sub-packages:
config -> cloudinit -> resources -> readiness -> features.
Importing this package has no side effects (dynamic providers are pickled by reference).
"""

__version__ = "0.1.0"
