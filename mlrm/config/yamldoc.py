"""Reading YAML that people write, and reporting its problems well.

Shared by config sets (loader.py) and gateway manifests (mlrm.gateway):
YAML read safely with the line of every key, JSON Schema errors turned into
messages with file, line, key path and, for a misspelt name, the closest
valid one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mlrm.errors import ConfigError, ConfigProblem, did_you_mean

KeyPath = tuple[Any, ...]


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


def describe(value: Any) -> str:
    """A value as a person reads it in an error message: "string 'x'", "mapping"."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    kind = names.get(type(value), "null" if value is None else type(value).__name__)
    shown = repr(value) if not isinstance(value, (dict, list)) else kind
    return f"{kind} {shown}" if kind not in ("list", "mapping", "null") else kind


def schema_problem(error: jsonschema.ValidationError, schema_command: str = "mlrm schema") -> tuple[KeyPath, str]:
    """A JSON Schema error as (key path, message naming the fix)."""
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
        return path, f"missing required key '{missing}'. Add it: see `{schema_command}` for what it takes."
    if error.validator == "enum":
        choices = [str(c) for c in error.validator_value]
        return path, (
            f"'{value}' is not allowed.{did_you_mean(str(value), choices)} Expected one of: {', '.join(choices)}."
        )
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return path, f"expected {expected}, got {describe(value)}."
    if error.validator == "pattern":
        return path, f"'{value}' is not a valid name: use letters, digits, '_', '-' or '.', starting with a letter."
    return path, f"{error.message}."


class Report:
    """Collects ConfigProblems: report(key path, message) finds the line itself."""

    def __init__(self, file: Path, lines: dict[KeyPath, int]) -> None:
        self.file, self.lines, self.problems = file, lines, []  # type: tuple[Path, dict[KeyPath, int], list[ConfigProblem]]

    def __call__(self, path: KeyPath, message: str) -> None:
        line = None
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        self.problems.append(ConfigProblem(str(self.file), dotted(path), message, line))


def check_schema(schema: dict[str, Any], data: Any, report: Report, schema_command: str = "mlrm schema") -> None:
    """Report every JSON Schema error of data, in key order; schema_command prints the schema."""
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        report(*schema_problem(error, schema_command))
