"""VM features: idempotent bash scripts in this package, run over SSH by the `Feature`
dynamic provider (phoenix.features.provider). The catalog (phoenix.features.catalog) says
which features exist and checks their parameters for the config validator."""
