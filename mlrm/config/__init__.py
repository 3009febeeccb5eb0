"""Config sets: the YAML a person writes, checked and resolved."""

from mlrm.config.loader import load_config_set
from mlrm.config.model import Feature, ServiceConfig, Target
from mlrm.config.schema import build_schema

__all__ = ["Feature", "ServiceConfig", "Target", "build_schema", "load_config_set"]
