"""Load and check a config set: YAML (safe), JSON Schema, then meaning.

Every problem is reported at once, each naming file, line, key path, what was
expected and, for a misspelt name, the closest valid one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlrm import algorithms
from mlrm.config.mqtt_checks import check_mqtt
from mlrm.config.schema import (
    ANOMALY_METRICS,
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    build_schema,
)
from mlrm.config.sequence_checks import check_sequence
from mlrm.config.service_config import Feature, ServiceConfig, Target, default_metric
from mlrm.config.yamldoc import KeyPath, Report, check_schema, describe, dotted, fill_defaults, read_yaml  # noqa: F401
from mlrm.errors import ConfigError, ConfigProblem, did_you_mean

SERVICE_FILE = "service.yaml"

# Semantic checks of optional sections, each living beside the feature's schema: f(raw, report).
# An explicit list, not registration by import side effect (import order cannot change what is checked).
Check = Callable[[dict[str, Any], Callable[[KeyPath, str], None]], None]
SECTION_CHECKS: tuple[Check, ...] = (check_mqtt, check_sequence)


def _check_input(name: str, spec: dict[str, Any], report: Report) -> None:
    kind, at = spec["type"], ("inputs", name)
    numeric = kind in ("number", "integer")
    for key in ("min", "max"):
        if key in spec and not numeric:
            report((*at, key), f"'{key}' applies to number and integer inputs, not {kind}. Remove it.")
    if "values" in spec and kind != "category":
        report((*at, "values"), f"'values' applies to category inputs, not {kind}. Remove it or set type: category.")
    if kind == "category" and "values" not in spec:
        report(at, "a category input needs 'values': the list of allowed values, e.g. values: [A, B].")
    if numeric and "min" in spec and "max" in spec and spec["min"] > spec["max"]:
        report((*at, "min"), f"min ({spec['min']}) is greater than max ({spec['max']}).")
    if spec.get("required") and "default" in spec:
        report((*at, "required"), "a required input cannot have a default. Remove one of them.")
    if "default" in spec:
        default = spec["default"]
        ok = {
            "number": isinstance(default, (int, float)) and not isinstance(default, bool),
            "integer": isinstance(default, int) and not isinstance(default, bool),
            "boolean": isinstance(default, bool),
            "category": default in spec.get("values", [default]),
        }[kind]
        if not ok:
            report((*at, "default"), f"default {default!r} is not a valid {kind} value for this input.")
        elif numeric and not (spec.get("min", default) <= default <= spec.get("max", default)):
            report((*at, "default"), f"default {default} lies outside min..max.")


def _check_algorithm(raw: dict[str, Any], task: str, report: Report, deep: bool = True) -> None:
    name = raw["algorithm"]["name"]
    params = raw["algorithm"].get("hyperparameters") or {}
    extra = algorithms.requirement_of(name)
    if extra and importlib.util.find_spec(extra) is None:
        report(
            ("algorithm", "name"),
            f"'{name}' needs the optional extra '{extra}', which is not installed. "
            f"Install it with: pip install 'mlrm[{extra}]'",
        )
        return
    if deep:
        _check_hyperparameters(name, params, report)
    metric = raw["training"]["metric"]
    allowed = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}.get(task, ANOMALY_METRICS)
    if metric not in allowed:
        report(("training", "metric"), f"'{metric}' does not fit a {task} task. Use one of: {', '.join(allowed)}.")


def _check_hyperparameters(name: str, params: dict[str, Any], report: Report) -> None:
    """Asks the estimator (so imports scikit-learn, about 100 MB): load_config_set(deep=False) skips it."""
    known = algorithms.hyperparameters(name)
    reserved = algorithms.reserved(name)
    for key in params:
        if key in reserved:
            report(("algorithm", "hyperparameters", key), f"'{key}' is not set here: {reserved[key]}")
        elif key not in known:
            report(
                ("algorithm", "hyperparameters", key),
                f"unknown hyperparameter '{key}' for {name}.{did_you_mean(key, known)} Known: {', '.join(known)}.",
            )
    if all(key in known for key in params) and params:
        for key, message in algorithms.check(name, params):
            report(("algorithm", "hyperparameters", key) if key else ("algorithm", "hyperparameters"), message)


def _check_meaning(raw: dict[str, Any], report: Report, deep: bool = True) -> str:
    for name, spec in raw["inputs"].items():
        _check_input(name, spec, report)
    name = raw["algorithm"]["name"]
    task = algorithms.task_of(name)
    target = raw.get("target")
    if task == "anomaly":
        if target:
            report(("target",), f"'{name}' detects anomalies without a target. Remove the 'target' section.")
    elif not target:
        report(("target",), f"'{name}' does {task}: add a 'target' section with name and kind: {task}.")
    else:
        if target["kind"] != task:
            report(
                ("algorithm", "name"),
                f"'{name}' does {task} but target.kind is {target['kind']}. "
                f"Pick a {target['kind']} algorithm or change target.kind.",
            )
        if target["kind"] == "classification" and "labels" not in target:
            report(("target",), "a classification target needs 'labels', e.g. labels: [OK, error].")
        if target["kind"] == "regression" and "labels" in target:
            report(("target", "labels"), "a regression target has no labels. Remove 'labels'.")
        # Forecasting a series from its own past is the exception (sequence checks guard the leak).
        forecast = "sequence" in raw and target["kind"] == "regression"
        if target["name"] in raw["inputs"] and not forecast:
            report(("target", "name"), f"'{target['name']}' is also an input. The target must not be an input.")
    raw["training"].setdefault("metric", default_metric(task))
    _check_algorithm(raw, task, report, deep)
    for check in SECTION_CHECKS:
        check(raw, report)
    return task


def _check_data_files(folder: Path, raw: dict[str, Any], report: Report) -> None:
    """training.data.files: CSV files inside the config set (they travel with it), present now."""
    inside = folder.resolve()
    for n, name in enumerate(raw["training"]["data"]["files"]):
        at = ("training", "data", "files", n)
        path = (folder / name).resolve()
        if Path(name).is_absolute() or not path.is_relative_to(inside):
            report(at, f"'{name}' is outside the config set. Copy the file into {folder} and name it relative to it.")
        elif not path.is_file():
            report(
                at,
                f"no file '{name}' in {folder}. Put the CSV there (e.g. mlrm data NAME --output {folder / name}) or remove the entry.",
            )
        elif path.suffix.lower() != ".csv":
            report(at, f"'{name}' is not a .csv file. Base data files are CSV with the config set's columns.")


def _features(raw: dict[str, Any]) -> tuple[Feature, ...]:
    out = []
    for name, spec in raw["inputs"].items():
        required = spec.get("required", "default" not in spec)
        spec["required"] = required
        values = tuple(spec["values"]) if "values" in spec else None
        out.append(
            Feature(
                name=name,
                type=spec["type"],
                required=required,
                default=spec.get("default"),
                unit=spec.get("unit"),
                min=spec.get("min"),
                max=spec.get("max"),
                values=values,
                description=spec.get("description", ""),
            )
        )
    return tuple(out)


def load_config_set(path: str | Path, *, deep: bool = True) -> ServiceConfig:
    """Load, validate and resolve the config set at path (ConfigError if unusable).

    deep=False skips the hyperparameter checks, which ask scikit-learn: for a process that must stay
    small and has had the set checked elsewhere (training_service.services checks in a forked child)."""
    folder = Path(path)
    file = folder / SERVICE_FILE
    if folder.is_file() and folder.name == SERVICE_FILE:
        folder, file = folder.parent, folder
    if not file.is_file():
        hint = "Pass the config set's folder, e.g. configs/pcb-inspection, or create one with `mlrm init NAME`."
        raise ConfigError([ConfigProblem(str(file), "", f"no {SERVICE_FILE} here. {hint}")])
    data, lines = read_yaml(file)
    report = Report(file, lines)
    if not isinstance(data, dict):
        report((), f"expected a mapping of keys (name, inputs, algorithm, ...), got {describe(data)}.")
        raise ConfigError(report.problems)
    schema = build_schema()
    check_schema(schema, data, report)
    if report.problems:
        raise ConfigError(report.problems)
    fill_defaults(schema, data)
    task = _check_meaning(data, report, deep)
    _check_data_files(folder, data, report)
    if report.problems:
        raise ConfigError(report.problems)
    target = data.get("target")
    return ServiceConfig(
        path=folder.resolve(),
        raw=data,
        inputs=_features(data),
        target=Target(target["name"], target["kind"], tuple(target.get("labels", ())), target.get("unit"))
        if target
        else None,
        task=task,
        algorithm=data["algorithm"]["name"],
        hyperparameters=dict(data["algorithm"].get("hyperparameters") or {}),
    )
