"""Stack configuration for a first `pulumi up`: read and write it through the Pulumi CLI
(`pulumi config get/set`), check it offline, and write it with `python -m phoenix init`."""
