"""Kubernetes objects for a gateway manifest (`mlrm export kubernetes`).

Each enabled ML service becomes a Deployment and a Service (with
`training.mode: remote`, its pod also runs `mlrm follow` on its config sets'
volumes, as `mlrm up` follows the centre); a local training service becomes a Deployment (its store URL from a Secret when it is
PostgreSQL) and a Service. The command lines come from mlrm.gateway.commands,
the one place that knows how services are called; how each object looks,
and where config sets live in a pod: mlrm.gateway.kubernetes_pods.

Secrets are referenced, never written: API tokens (pods listen beyond their
loopback, so they need them, docs/security.md), the client token, the TLS
pair and the PostgreSQL URL are created by the operator (docs/deployment.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlrm.errors import ConfigError, ConfigProblem
from mlrm.gateway.kubernetes_pods import (
    DEFAULT_IMAGE,
    DRAIN_S,
    IMAGE_PROJECT,
    UID,
    WORKDIR,
    Builder,
    Options,
)
from mlrm.gateway.manifest import TRAINING, Manifest

__all__ = ["DEFAULT_IMAGE", "DRAIN_S", "IMAGE_PROJECT", "UID", "WORKDIR", "Export", "Options", "export", "header"]

LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class _Dumper(yaml.SafeDumper):
    """Block style for text of several lines (a ConfigMap's service.yaml reads as the file does), no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


@dataclass(frozen=True)
class Export:
    """The objects, in the order they are written, and what a person should know."""

    objects: list[dict[str, Any]]
    warnings: list[str]
    secrets: dict[str, list[str]]  # Secret name -> the keys the pods read

    def yaml(self, header: str) -> str:
        docs = [yaml.dump(o, Dumper=_Dumper, sort_keys=False, allow_unicode=True) for o in self.objects]
        return header + "---\n" + "---\n".join(docs)


def _name_problems(manifest: Manifest) -> list[ConfigProblem]:
    """Names that cannot become Kubernetes object names (lowercase DNS labels of 63 characters at most)."""
    problems = []
    enabled = manifest.enabled()
    names = [TRAINING, "training-store", "credentials", *(s.name for s in enabled), *(s.process or "" for s in enabled)]
    longest = max(len(n) for n in [*names, *(s.config_set.name for s in enabled)])
    fix = "Use lowercase letters, digits and '-', starting with a letter (e.g. line-3)."
    if not LABEL.match(manifest.name) or len(manifest.name) + 1 + longest > 63:
        problems.append(
            manifest.problem(
                ("name",),
                f"'{manifest.name}' cannot prefix Kubernetes names (<name>-<service>, at most 63 characters). {fix}",
            )
        )
    for spec in enabled:
        if not LABEL.match(spec.name):
            problems.append(manifest.problem(("services", spec.name), f"'{spec.name}' is no Kubernetes name. {fix}"))
        if spec.process is not None and not LABEL.match(spec.process):
            where = ("services", spec.name, "process")
            problems.append(
                manifest.problem(where, f"'{spec.process}' names a Deployment, and is no Kubernetes name. {fix}")
            )
        folder = spec.config_set.name
        if not LABEL.match(folder):
            problems.append(
                manifest.problem(
                    ("services", spec.name, "config_set"),
                    f"the folder name '{folder}' names the config set's volume and ConfigMap, and is no Kubernetes "
                    f"name. Rename the folder: {fix}",
                )
            )
    return problems


def _config_sets(manifest: Manifest) -> dict[str, Path]:
    """The enabled services' config sets by folder name (the name of their volume and ConfigMap)."""
    sets: dict[str, Path] = {}
    problems = []
    for spec in manifest.enabled():
        other = sets.setdefault(spec.config_set.name, spec.config_set)
        if other != spec.config_set:
            problems.append(
                manifest.problem(
                    ("services", spec.name, "config_set"),
                    f"{spec.config_set} and {other} have the same folder name, which names their volume in the "
                    "pods. Rename one of the folders.",
                )
            )
    if problems:
        raise ConfigError(problems)
    return sets


def _warnings(manifest: Manifest) -> list[str]:
    """What exports but will not work as the manifest intends inside a cluster."""
    found = []
    loopback = re.compile(r"^[a-z]+://(localhost|127\.[0-9.]+|\[::1\])(:|/|$)")
    if manifest.mqtt_broker and loopback.match(manifest.mqtt_broker) and any(s.mqtt for s in manifest.enabled()):
        found.append(
            f"mqtt.broker {manifest.mqtt_broker} is this machine; in a pod it is the pod itself. "
            "Give the broker's address in the cluster (e.g. mqtt://mosquitto:1883)."
        )
    url = manifest.training.url
    if manifest.training.mode == "remote" and url and loopback.match(url):
        found.append(f"training.url {url} is this machine; in a pod it is the pod itself. Give the central address.")
    if getattr(manifest, "dashboard", None) is not None:
        found.append("dashboard: left out: it reads the state file of `mlrm up`, which a cluster has not.")
    if manifest.insecure and manifest.tokens is None:
        found.append("credentials.insecure: true: every pod listens with every route open (docs/security.md).")
    return found


def export(manifest: Manifest, options: Options) -> Export:
    """The Kubernetes objects for a loaded manifest (ConfigError naming the key when it cannot be exported)."""
    problems = _name_problems(manifest)
    if problems:
        raise ConfigError(problems)
    builder = Builder(manifest, options, _config_sets(manifest))
    objects = builder.build()
    return Export(objects, _warnings(manifest), dict(sorted(builder.secrets.items())))


def header(manifest_arg: str, manifest: Manifest, result: Export, options: Options) -> str:
    """The comment that opens the file: where it came from and what it needs that it does not hold."""
    lines = [
        f"# Kubernetes objects for gateway '{manifest.name}', written by `mlrm export kubernetes {manifest_arg}`.",
        "# Do not edit: change the manifest (or the config sets' service.yaml) and export again.",
        f"# Needs the image {options.image} (docker build -t {options.image} .) and these Secrets, never written here:",
    ]
    for secret, keys in result.secrets.items():
        lines.append(f"#   {secret}: {', '.join(keys)}")
    skipped = [s.name for s in manifest.services if not s.enabled]
    if skipped:
        lines.append(f"# Left out (enabled: false): {', '.join(skipped)}")
    lines.append("# Walk-through: docs/deployment.md")
    return "\n".join(lines) + "\n"
