"""Topic templates: how service.yaml names MQTT topics.

A template is a topic whose levels (the parts between '/') are one of:

- literal text, e.g. `plant` or `measurements`;
- `{service}`: the service name;
- `{name}` (in an *in* topic): a wildcard level, subscribed as `+`, whose
  value is kept under that name, e.g. `plant/{device}/pcb/measurements`;
- `+` (in topic only): a wildcard level whose value is not kept;
- `#` (in topic only, last level): any number of levels, not kept.

An *out* topic (predictions, errors) may use `{service}` and the names its in
topic keeps, e.g. `plant/{device}/pcb/predictions`, so an answer goes to the
device that asked. A placeholder always fills a whole level.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

SERVICE = "service"
_PLACEHOLDER = re.compile(r"^\{([^{}]*)\}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Keys of an answer payload: a kept level of this name would be ambiguous there.
RESERVED = frozenset(
    {"id", "timestamp", "instances", "records", "prediction", "predictions", "probabilities", "scores", "score",
     "model", "took_ms", "topic", "error", "errors", "type", "title", "status", "detail", "payload"}
)  # fmt: skip


class TemplateError(ValueError):
    """A topic template that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class TopicTemplate:
    """A parsed topic template (see the module docstring for the syntax)."""

    text: str
    levels: tuple[str, ...]
    inbound: bool

    @property
    def names(self) -> tuple[str, ...]:
        """The wildcard names this template keeps, in order (not {service})."""
        out = []
        for level in self.levels:
            m = _PLACEHOLDER.match(level)
            if m and m.group(1) != SERVICE:
                out.append(m.group(1))
        return tuple(out)

    def filter(self, service: str) -> str:
        """The subscription filter: {service} filled in, every {name} as '+'."""
        return "/".join(self._level_filter(level, service) for level in self.levels)

    @staticmethod
    def _level_filter(level: str, service: str) -> str:
        m = _PLACEHOLDER.match(level)
        if not m:
            return level
        return service if m.group(1) == SERVICE else "+"

    def match(self, topic: str, service: str) -> dict[str, str] | None:
        """The kept wildcard values if topic matches this (in) template, else None."""
        parts = topic.split("/")
        kept: dict[str, str] = {}
        for i, level in enumerate(self.levels):
            if level == "#":
                return kept
            if i >= len(parts):
                return None
            part = parts[i]
            m = _PLACEHOLDER.match(level)
            if m:
                if m.group(1) == SERVICE:
                    if part != service:
                        return None
                else:
                    kept[m.group(1)] = part
            elif level != "+" and level != part:
                return None
        return kept if len(parts) == len(self.levels) else None

    def render(self, service: str, values: dict[str, str]) -> str:
        """This (out) template with {service} and the kept values filled in."""
        out = []
        for level in self.levels:
            m = _PLACEHOLDER.match(level)
            if not m:
                out.append(level)
            elif m.group(1) == SERVICE:
                out.append(service)
            else:
                out.append(values[m.group(1)])
        return "/".join(out)


def parse(text: str, *, inbound: bool) -> TopicTemplate:
    """Parse and check a template; TemplateError says what is wrong and how to fix it."""
    if not isinstance(text, str) or not text:
        raise TemplateError("a topic cannot be empty.")
    if text.startswith("$"):
        raise TemplateError(f"'{text}' starts with '$': such topics belong to the broker ($SYS). Pick another name.")
    if "\x00" in text:
        raise TemplateError("a topic cannot contain the NUL character.")
    levels = tuple(text.split("/"))
    seen: set[str] = set()
    for i, level in enumerate(levels):
        where = f"level {i + 1} ('{level}') of '{text}'"
        m = _PLACEHOLDER.match(level)
        if m:
            name = m.group(1)
            if name == SERVICE:
                continue
            if not _NAME.match(name):
                raise TemplateError(
                    f"{where}: '{{{name}}}' is not a valid name. Use letters, digits and '_', e.g. {{device}}."
                )
            if not inbound:
                continue  # out topics: names are checked against the in topic by the caller
            if name in RESERVED:
                raise TemplateError(
                    f"{where}: '{name}' is a key of the answer payload. Name the level something else, "
                    f"e.g. {{device}} or {{line}}."
                )
            if name in seen:
                raise TemplateError(f"{where}: '{{{name}}}' appears twice. Give each kept level its own name.")
            seen.add(name)
            continue
        if "{" in level or "}" in level:
            raise TemplateError(
                f"{where}: a placeholder must fill a whole level, e.g. 'plant/{{device}}/data', "
                f"not 'plant/dev-{{device}}/data'."
            )
        if level in ("+", "#") or "+" in level or "#" in level:
            if not inbound:
                raise TemplateError(
                    f"{where}: an out topic is where mlrm publishes, so it cannot contain the wildcards + or #. "
                    f"To send the answer where the question came from, name the level in the in topic, "
                    f"e.g. plant/{{device}}/in, and use {{device}} here."
                )
            if level not in ("+", "#"):
                raise TemplateError(f"{where}: '+' and '#' must stand alone in a level, e.g. 'plant/+/data'.")
            if level == "#" and i != len(levels) - 1:
                raise TemplateError(f"{where}: '#' may only be the last level, e.g. 'plant/#'.")
    return TopicTemplate(text, levels, inbound)


def check_out(template: TopicTemplate, sources: dict[str, TopicTemplate]) -> str | None:
    """Why an out template uses a name some in template does not keep, or None.

    sources: key name -> in template that can lead to this out topic.
    """
    for name in template.names:
        for key, source in sources.items():
            if name not in source.names:
                kept = ", ".join(f"{{{n}}}" for n in source.names) or "nothing"
                hint = f" Did you mean {{{_closest(name, source.names)}}}?" if _closest(name, source.names) else ""
                return (
                    f"'{template.text}' uses {{{name}}}, but {key} ('{source.text}') keeps {kept}.{hint} "
                    f"Name the level in {key}, e.g. plant/{{{name}}}/data (a bare + matches but is not kept)."
                )
    return None


def _closest(word: str, choices: tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None
