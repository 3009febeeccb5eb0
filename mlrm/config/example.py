"""A valid predict request for any config set, made from its inputs alone.

No sample data is needed, so it works for a set nobody has shipped data for:
the OpenAPI document shows it as the request example, and benchmarks and
smoke checks post it. Every input gets its default when it has one, else a
value inside its declared range; a set with a sequence section gets one
ready window of such records, in time order.
"""

from __future__ import annotations

import math
from typing import Any

from mlrm.config.service_config import Feature, ServiceConfig


def example_value(feature: Feature) -> Any:
    """A value the feature accepts: its default, else the middle of min..max (0 when in range)."""
    if feature.default is not None:
        return feature.default
    if feature.type == "boolean":
        return True
    if feature.type == "category":
        return (feature.values or ("",))[0]
    low, high = feature.min, feature.max
    if low is not None and high is not None:
        value = (low + high) / 2
    else:
        value = min(max(0.0, low if low is not None else -math.inf), high if high is not None else math.inf)
    if feature.type == "integer":
        # Bounds may be fractional (min: 0.5): the rounded value must still lie inside them.
        whole = round(value)
        if low is not None:
            whole = max(whole, math.ceil(low))
        if high is not None:
            whole = min(whole, math.floor(high))
        return whole
    return float(value)


def example_record(config: ServiceConfig) -> dict[str, Any]:
    return {f.name: example_value(f) for f in config.inputs}


def example_instance(config: ServiceConfig) -> dict[str, Any]:
    """One instance of /v1/predict: a record, or for a sequence set a ready window of records."""
    record = example_record(config)
    spec = config.sequence
    if spec is None:
        return record
    if spec.order_by is None:
        return {"window": [dict(record) for _ in range(spec.window)]}
    return {"window": [{**record, spec.order_by: float(i)} for i in range(spec.window)]}


def example_body(config: ServiceConfig, instances: int = 1) -> dict[str, Any]:
    """A /v1/predict request body with `instances` copies of example_instance."""
    instance = example_instance(config)
    return {"instances": [instance] * instances}
