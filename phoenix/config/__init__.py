"""The VM configuration file: schema, checks, typed model."""

from phoenix.config.errors import ConfigError, ConfigFileError, Problem
from phoenix.config.load import SCHEMA_PATH, build_config, load_config
from phoenix.config.model import (
    Config,
    FeatureRef,
    GuestAgentConfig,
    ImageConfig,
    NetworkConfig,
    TemplateConfig,
    UserConfig,
    VmConfig,
    ZfsPropertyConfig,
)

__all__ = [
    "SCHEMA_PATH",
    "Config",
    "ConfigError",
    "ConfigFileError",
    "FeatureRef",
    "GuestAgentConfig",
    "ImageConfig",
    "NetworkConfig",
    "Problem",
    "TemplateConfig",
    "UserConfig",
    "VmConfig",
    "ZfsPropertyConfig",
    "build_config",
    "load_config",
]
