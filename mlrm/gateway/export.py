"""`mlrm export kubernetes|systemd MANIFEST`: run a gateway manifest under Kubernetes or systemd."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlrm import __version__
from mlrm.errors import MlrmError

KUBERNETES_EXAMPLE = (
    "mlrm export kubernetes services/central.yaml --image registry.example.com/mlrm:0.1.0 -o central.k8s.yaml"
)
SYSTEMD_EXAMPLE = "mlrm export systemd services/demo.yaml --user mlrm -o mlrm-demo.service"


def _write(text: str, output: str | None, what: str) -> None:
    if not output:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MlrmError(
            f"--output {output}: cannot write it ({exc.strerror}). Fix: name a file in a folder you can write"
        ) from None
    print(f"wrote {output} ({what})", flush=True)


def cmd_kubernetes(args: argparse.Namespace) -> int:
    from mlrm.gateway.kubernetes import DEFAULT_IMAGE, Options, export, header
    from mlrm.gateway.manifest import load_manifest

    manifest = load_manifest(args.manifest)  # with its config sets: a set that does not load is not exported
    options = Options(
        image=args.image or DEFAULT_IMAGE,
        namespace=args.namespace,
        storage_class=args.storage_class,
        storage_size=args.storage_size,
    )
    result = export(manifest, options)
    for warning in result.warnings:
        print(f"mlrm export: warning: {args.manifest}: {warning}", file=sys.stderr)
    kinds = sorted({o["kind"] for o in result.objects})
    _write(
        result.yaml(header(args.manifest, manifest, result, options)),
        args.output,
        f"{len(result.objects)} objects: {', '.join(kinds)}",
    )
    return 0


def cmd_systemd(args: argparse.Namespace) -> int:
    from mlrm.gateway.manifest import load_manifest
    from mlrm.gateway.systemd import unit, unit_name

    manifest = load_manifest(args.manifest, config_sets=False)  # the unit needs paths and timeouts only
    _write(
        unit(manifest, args.manifest, args.user),
        args.output,
        f"install it as /etc/systemd/system/{unit_name(manifest)}",
    )
    return 0


def _target_needed(args: argparse.Namespace) -> int:  # not reached: argparse asks for TARGET first
    raise MlrmError("name what to export: mlrm export kubernetes MANIFEST, or mlrm export systemd MANIFEST")


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `mlrm export kubernetes` and `mlrm export systemd` to the command line."""
    s = add(
        "export",
        "Write what runs a gateway manifest elsewhere: Kubernetes objects (kubernetes) or a systemd unit for "
        "`mlrm up` (systemd). See docs/deployment.md.",
        f"{KUBERNETES_EXAMPLE}\n  {SYSTEMD_EXAMPLE}",
        _target_needed,
    )
    targets = s.add_subparsers(dest="target", metavar="TARGET", required=True)

    def target(name: str, help: str, example: str, handler: Callable[[argparse.Namespace], int]) -> Any:
        t = targets.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                               formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        t.set_defaults(handler=handler)
        t.add_argument("manifest", metavar="MANIFEST", help="gateway manifest, e.g. services/demo.yaml")
        t.add_argument("--output", "-o", metavar="FILE", help="write to this file instead of stdout")
        return t

    t = target(
        "kubernetes",
        "Kubernetes objects for a manifest, as one multi-document YAML file for `kubectl apply -f`: per ML "
        "service (or `process` of services) a Deployment (probes on its health routes, graceful stop, resources, "
        "non-root, read-only root file system) and a Service, with `training.mode: remote` a second container running "
        "`mlrm follow` on its config sets (new versions from the centre, live); per config set a ConfigMap with its service.yaml "
        "and a volume for its learned state; a local training service as a Deployment and a Service, its "
        "PostgreSQL URL from a Secret. Secrets are named, never written.",
        KUBERNETES_EXAMPLE,
        cmd_kubernetes,
    )
    t.add_argument("--image", help=f"the image built from the Dockerfile (default mlrm:{__version__})")
    t.add_argument(
        "--namespace", metavar="NS", help="put every object in this namespace (default: kubectl's current one)"
    )
    t.add_argument("--storage-class", metavar="NAME",
                   help="storage class of the config sets' volumes (default: the cluster's); with a local training "
                   "service they are ReadWriteMany, shared with it")  # fmt: skip
    t.add_argument(
        "--storage-size", default="1Gi", metavar="SIZE", help="size of each config set's volume (default 1Gi)"
    )
    t = target(
        "systemd",
        "A systemd unit that runs `mlrm up MANIFEST` with this Python: stops it with SIGTERM (the gateway stops "
        "in order), reloads the manifest with SIGHUP (systemctl reload), restarts it after a crash but not after "
        "a config error (exit status 2).",
        SYSTEMD_EXAMPLE,
        cmd_systemd,
    )
    t.add_argument("--user", default="mlrm", help="the user the gateway runs as (default mlrm); it must own data_dir")
