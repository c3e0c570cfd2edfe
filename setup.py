"""Packaging beyond what pyproject.toml can say: the cloud-init templates live at the top level
(cloud_init/, next to the Pulumi program) and ship inside the package as
phoenix.cloud_init_templates, where phoenix/cloudinit/render.py finds them once installed."""

from setuptools import find_namespace_packages, setup

TEMPLATES = "phoenix.cloud_init_templates"

setup(
    # Namespace-aware: a sub-package without __init__.py (phoenix/resources) must ship too.
    packages=[*find_namespace_packages(include=["phoenix", "phoenix.*"], exclude=["*.__pycache__"]),
              TEMPLATES],
    package_dir={TEMPLATES: "cloud_init"},
    package_data={TEMPLATES: ["*.j2"]},
)
