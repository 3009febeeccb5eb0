"""`mlrm init NAME --template KIND`: a commented config set to start from.

Templates are service.yaml files shipped in mlrm/templates/. Each one is a
small, working example whose sample data `mlrm data` can make, so a new
user can train and serve before writing a line; the comments say what to
change for their own data.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlrm.errors import MlrmError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Template:
    """A template and the `mlrm data` generator whose rows fit it."""

    kind: str
    data: str
    what: str


TEMPLATES = {
    t.kind: t
    for t in (
        Template("classification", "machine-condition", "a pump motor's condition from six sensor readings"),
        Template("regression", "machine-temperature", "a motor's expected bearing temperature"),
        Template("forecast", "air-quality", "a room's CO2 one hour ahead, from readings and their recent changes"),
        Template("anomaly", "machine-sensor", "abnormal readings of a pump motor, without labels"),
        Template("sequence", "machine-windows", "a motor's condition from half-minute windows, as window features"),
    )
}


def template_text(kind: str) -> str:
    """The raw template (placeholders __NAME__ and __SCHEMA__)."""
    return (resources.files("mlrm") / "templates" / f"{kind}.yaml").read_text(encoding="utf-8")


def schema_path(folder: Path) -> str:
    """The shipped service.yaml schema for editors: relative to folder when
    both share a project (configs/x -> ../../mlrm/schema/...), else absolute."""
    schema = Path(str(resources.files("mlrm") / "schema" / "service.schema.json")).resolve()
    here = folder.resolve()
    if os.path.commonpath([schema, here]) == here.anchor:
        return str(schema)
    return os.path.relpath(schema, here)


def render(kind: str, name: str, folder: Path) -> str:
    return template_text(kind).replace("__SCHEMA__", schema_path(folder)).replace("__NAME__", name)


def init(name: str, kind: str, parent: Path, *, force: bool = False) -> Path:
    """Write <parent>/<name>/service.yaml from a template; returns the folder.

    MlrmError when the name is not usable or the config set exists."""
    folder = parent / name
    file = folder / "service.yaml"
    if not NAME.match(name) or len(name) > 64:
        raise MlrmError(f"'{name}' is not a valid name: use letters, digits, '_', '-' or '.', starting with a letter.")
    if file.exists() and not force:
        raise MlrmError(f"{file} already exists. Pick another name, or pass --force to overwrite it.")
    from mlrm.config import load_config_set

    folder.mkdir(parents=True, exist_ok=True)
    file.write_text(render(kind, name, folder), encoding="utf-8")
    load_config_set(folder)  # a template that does not validate is a bug; say so now
    return folder


def cmd_init(args: argparse.Namespace) -> int:
    template = TEMPLATES[args.template]
    folder = init(args.name, args.template, Path(args.dir), force=args.force)
    shown = str(folder)
    csv = f"{args.name}.csv"
    print(f"wrote {shown}/service.yaml: {template.kind}, {template.what}.", flush=True)
    print("Change its inputs and target to your own data (mlrm validate checks it). Next:")
    print(f"  mlrm data {template.data} --output {csv}     # sample rows that fit this template, or your own CSV")
    print(f"  mlrm train {shown} --data {csv}")
    print(f"  mlrm serve {shown} --port 8000")
    return 0


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `mlrm init` to the command line."""
    s = add(
        "init",
        "Start a new config set from a commented template, and print the next commands.",
        "mlrm init my-pump --template classification",
        cmd_init,
    )
    s.add_argument("name", metavar="NAME", help="name of the config set (and its folder)")
    s.add_argument(
        "--template",
        "-t",
        choices=list(TEMPLATES),
        default="classification",
        help="what it predicts (default: classification)",
    )
    s.add_argument("--dir", default="configs", help="folder to create it in (default: configs)")
    s.add_argument("--force", action="store_true", help="overwrite an existing service.yaml")
