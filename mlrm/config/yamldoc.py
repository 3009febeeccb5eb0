"""Reading YAML that people write, and reporting its problems well.

Shared by config sets (loader.py) and gateway manifests (mlrm.gateway):
YAML read safely with the line of every key, JSON Schema errors turned into
messages with file, line, key path and, for a misspelt name, the closest
valid one.

Reading is bounded, because a config file may come from anyone who can write
to the gateway: at most MAX_BYTES, nested at most MAX_DEPTH levels, and
aliases may add at most MAX_ALIAS_NODES nodes to the document. A 2.7 KB
"billion laughs" alias bomb used to take seconds and gigabytes to walk; it
now fails while it is parsed, naming the line of the alias.
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


MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_NODES = 10_000


class _Refused(Exception):
    """A bound of BoundedLoader was passed at `line`."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and alias expansion past small bounds.

    A node an alias refers to is shared, not copied, so parsing a bomb is
    cheap; what costs is every later walk over the data (line map, schema
    checks, defaults). So each alias is charged the size of the node it
    expands to, measured once per node, and the total is bounded.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._alias_nodes = 0
        self._open: set[str] = set()  # anchors whose node is still being composed
        self._measured: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) once expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                why = f"alias *{event.anchor} refers to a node that holds it, so it never ends"
                raise _Refused(line, f"{why}. Write the values out instead of the alias")
            node: yaml.Node = super().compose_node(parent, index)
            nodes, depth = self._measure(node)
            self._alias_nodes += nodes
            if self._alias_nodes > MAX_ALIAS_NODES:
                why = f"alias *{event.anchor} expands the document past {MAX_ALIAS_NODES:,} nodes added by aliases"
                raise _Refused(line, f"{why} (an alias bomb?). Write the values out, or use fewer aliases")
            self._check_depth(self._depth + depth, line)
            return node
        self._depth += 1
        self._check_depth(self._depth, line)
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.discard(anchor)

    def _check_depth(self, depth: int, line: int) -> None:
        if depth > MAX_DEPTH:
            raise _Refused(line, f"nested more than {MAX_DEPTH} levels deep (aliases expanded). Flatten it")

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        known = self._measured.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        # Recursion is bounded: every node composed so far is at most MAX_DEPTH deep, expanded.
        sizes = [self._measure(child) for child in children]
        result = (1 + sum(n for n, _ in sizes), 1 + max((d for _, d in sizes), default=0))
        self._measured[id(node)] = result
        return result


def _text(file: Path) -> str:
    with open(file, "rb") as stream:
        raw = stream.read(MAX_BYTES + 1)  # not stat(): a FIFO or /dev/zero has no size to ask
    if len(raw) > MAX_BYTES:
        why = f"the file is larger than {MAX_BYTES:,} bytes, the limit for a YAML file mlrm reads"
        fix = "Config sets and manifests are a few KB: keep data (training rows, models) in files of their own"
        raise ConfigError([ConfigProblem(str(file), "", f"{why}. {fix}.")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigProblem(str(file), "", f"not UTF-8 text (byte {exc.start}): save it as UTF-8")]
        ) from None


def read_yaml(file: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML safely and within bounds; also return the 1-based line of every key path."""
    loader = BoundedLoader(_text(file))
    try:
        node = loader.get_single_node()
        lines = _lines(node)
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise ConfigError([ConfigProblem(str(file), "", f"{exc.message}.", exc.line)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigProblem(str(file), "", f"not valid YAML: {problem}. Check indentation and quoting.", line)]
        ) from None
    finally:
        loader.dispose()
    return data, lines


def _lines(node: yaml.Node | None) -> dict[KeyPath, int]:
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
    return lines


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
