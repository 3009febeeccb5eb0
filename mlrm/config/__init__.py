"""Config sets: the YAML a person writes, checked and resolved."""

from mlrm.config import loader
from mlrm.config.loader import load_config_set
from mlrm.config.model import Feature, ServiceConfig, Target
from mlrm.config.schema import build_schema
from mlrm.config.sequence_checks import check_sequence
from mlrm.mqtt.checks import check_mqtt

# Semantic checks of optional sections live with their feature.
loader.EXTRA_CHECKS.extend([check_mqtt, check_sequence])

__all__ = ["Feature", "ServiceConfig", "Target", "build_schema", "load_config_set"]
