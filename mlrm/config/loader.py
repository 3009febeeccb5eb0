"""Load and check a config set: YAML (safe), JSON Schema, then meaning.

Every problem is reported at once, each naming file, line, key path, what was
expected and, for a misspelt name, the closest valid one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mlrm import algorithms
from mlrm.config.model import Feature, ServiceConfig, Target, default_metric
from mlrm.config.schema import (
    ANOMALY_METRICS,
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    build_schema,
)
from mlrm.errors import ConfigError, ConfigProblem, did_you_mean

SERVICE_FILE = "service.yaml"
KeyPath = tuple[Any, ...]

# Extra semantic checks other packages add (e.g. sequence, mqtt): f(raw, report).
Check = Callable[[dict[str, Any], Callable[[KeyPath, str], None]], None]
EXTRA_CHECKS: list[Check] = []


def dotted(path: KeyPath) -> str:
    """('inputs', 'x', 'min') -> 'inputs.x.min'; list indices as [i]."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_yaml(file: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML safely; also return the 1-based line of every key path."""
    text = file.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigProblem(str(file), "", f"not valid YAML: {problem}. Check indentation and quoting.", line)]
        ) from None
    lines: dict[KeyPath, int] = {}

    def walk(n: Any, path: KeyPath) -> None:
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                sub = (*path, key.value)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return data, lines


def fill_defaults(schema: dict[str, Any], data: dict[str, Any]) -> None:
    """Fill schema defaults into data in place, creating absent sub-sections."""
    for key, sub in schema.get("properties", {}).items():
        if key not in data:
            if "default" in sub:
                data[key] = sub["default"]
            elif sub.get("type") == "object" and "properties" in sub and not sub.get("required"):
                data[key] = {}
        if isinstance(data.get(key), dict) and "properties" in sub:
            fill_defaults(sub, data[key])


def _describe(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    kind = names.get(type(value), "null" if value is None else type(value).__name__)
    shown = repr(value) if not isinstance(value, (dict, list)) else kind
    return f"{kind} {shown}" if kind not in ("list", "mapping", "null") else kind


def _schema_problem(error: jsonschema.ValidationError) -> tuple[KeyPath, str]:
    path = tuple(error.absolute_path)
    value, schema = error.instance, error.schema
    if error.validator == "additionalProperties" and isinstance(value, dict):
        allowed = list(schema.get("properties", {}))
        unknown = [k for k in value if k not in allowed]
        key = unknown[0] if unknown else ""
        return (*path, key), (
            f"unknown key '{key}'.{did_you_mean(key, allowed)} Allowed keys here: {', '.join(allowed)}."
        )
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return path, f"missing required key '{missing}'. Add it: see `mlrm schema` for what it takes."
    if error.validator == "enum":
        choices = [str(c) for c in error.validator_value]
        return path, (
            f"'{value}' is not allowed.{did_you_mean(str(value), choices)} Expected one of: {', '.join(choices)}."
        )
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return path, f"expected {expected}, got {_describe(value)}."
    if error.validator == "pattern":
        return path, f"'{value}' is not a valid name: use letters, digits, '_', '-' or '.', starting with a letter."
    return path, f"{error.message}."


class _Report:
    def __init__(self, file: Path, lines: dict[KeyPath, int]) -> None:
        self.file, self.lines, self.problems = file, lines, []  # type: tuple[Path, dict[KeyPath, int], list[ConfigProblem]]

    def __call__(self, path: KeyPath, message: str) -> None:
        line = None
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        self.problems.append(ConfigProblem(str(self.file), dotted(path), message, line))


def _check_input(name: str, spec: dict[str, Any], report: _Report) -> None:
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


def _check_algorithm(raw: dict[str, Any], task: str, report: _Report) -> None:
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
    adapter = algorithms.get(name)
    known = adapter.hyperparameters()
    reserved: dict[str, str] = getattr(adapter, "reserved", {})
    for key in params:
        if key in reserved:
            report(("algorithm", "hyperparameters", key), f"'{key}' is not set here: {reserved[key]}")
        elif key not in known:
            report(
                ("algorithm", "hyperparameters", key),
                f"unknown hyperparameter '{key}' for {name}.{did_you_mean(key, known)} "
                f"Known: {', '.join(known)}.",
            )
    if all(key in known for key in params) and params:
        for key, message in adapter.check(params):
            report(("algorithm", "hyperparameters", key) if key else ("algorithm", "hyperparameters"), message)
    metric = raw["training"]["metric"]
    allowed = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}.get(task, ANOMALY_METRICS)
    if metric not in allowed:
        report(("training", "metric"), f"'{metric}' does not fit a {task} task. Use one of: {', '.join(allowed)}.")


def _check_meaning(raw: dict[str, Any], report: _Report) -> str:
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
    _check_algorithm(raw, task, report)
    for check in EXTRA_CHECKS:
        check(raw, report)
    return task


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


def load_config_set(path: str | Path) -> ServiceConfig:
    """Load, validate and resolve the config set at path (ConfigError if unusable)."""
    folder = Path(path)
    file = folder / SERVICE_FILE
    if folder.is_file() and folder.name == SERVICE_FILE:
        folder, file = folder.parent, folder
    if not file.is_file():
        hint = "Pass the config set's folder, e.g. configs/pcb-inspection, or create one with `mlrm init NAME`."
        raise ConfigError([ConfigProblem(str(file), "", f"no {SERVICE_FILE} here. {hint}")])
    data, lines = read_yaml(file)
    report = _Report(file, lines)
    if not isinstance(data, dict):
        report((), f"expected a mapping of keys (name, inputs, algorithm, ...), got {_describe(data)}.")
        raise ConfigError(report.problems)
    schema = build_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        report(*_schema_problem(error))
    if report.problems:
        raise ConfigError(report.problems)
    fill_defaults(schema, data)
    task = _check_meaning(data, report)
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
