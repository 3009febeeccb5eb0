"""Config sets: the YAML a person writes, checked and resolved."""

from mlrm.config.loader import load_config_set
from mlrm.config.schema import build_schema
from mlrm.config.service_config import Feature, ServiceConfig, Target

__all__ = ["Feature", "ServiceConfig", "Target", "build_schema", "load_config_set"]
