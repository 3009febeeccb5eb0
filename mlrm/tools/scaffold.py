"""`mlrm init NAME --template KIND`: a commented config set to start from.

Templates are service.yaml files shipped in mlrm/templates/. Each one is a
small, working example whose sample data `mlrm data` can make, so a new
user can train and serve before writing a line; the comments say what to
change for their own data.

Editors find the schema through the first line of every service.yaml (and
gateway manifest): `$schema=../.mlrm/service.schema.json`, one folder up from
the YAML file. A path into the installed package would break as soon as a
set is copied elsewhere, and no web host serves the schema; one folder up
stays right for a copy made beside the original (`cp -r configs/a configs/b`)
wherever the sets live, as long as the folder that holds them has the
schema in `.mlrm/`. `mlrm init` puts it there, `mlrm schema --write DIR`
refreshes it, and the project ships it in `configs/.mlrm/` and `.mlrm/`.
"""

from __future__ import annotations

import argparse
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


SCHEMA_DIR = ".mlrm"


def schema_line(kind: str = "service") -> str:
    """The first line of a service.yaml (or, kind "gateway", of a manifest): where editors find the schema."""
    return f"# yaml-language-server: $schema=../{SCHEMA_DIR}/{kind}.schema.json"


def write_schema(parent: Path, kind: str = "service") -> Path | None:
    """Put the packaged <kind>.schema.json in parent/.mlrm/, for the YAML files
    one folder below parent; returns its path, or None if it was already current."""
    schema = (resources.files("mlrm") / "schema" / f"{kind}.schema.json").read_bytes()
    target = parent / SCHEMA_DIR / f"{kind}.schema.json"
    if target.is_file() and target.read_bytes() == schema:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(schema)
    return target


def template_text(kind: str) -> str:
    """The raw template (placeholder __NAME__)."""
    return (resources.files("mlrm") / "templates" / f"{kind}.yaml").read_text(encoding="utf-8")


def render(kind: str, name: str) -> str:
    return template_text(kind).replace("__NAME__", name)


def init(name: str, kind: str, parent: Path, *, force: bool = False) -> Path:
    """Write <parent>/<name>/service.yaml from a template, and the schema its
    first line names into <parent>/.mlrm/; returns the folder.

    MlrmError when the name is not usable or the config set exists."""
    folder = parent / name
    file = folder / "service.yaml"
    if not NAME.match(name) or len(name) > 64:
        raise MlrmError(f"'{name}' is not a valid name: use letters, digits, '_', '-' or '.', starting with a letter.")
    if file.exists() and not force:
        raise MlrmError(f"{file} already exists. Pick another name, or pass --force to overwrite it.")
    from mlrm.config import load_config_set

    folder.mkdir(parents=True, exist_ok=True)
    file.write_text(render(kind, name), encoding="utf-8")
    write_schema(parent)
    load_config_set(folder)  # a template that does not validate is a bug; say so now
    return folder


def cmd_init(args: argparse.Namespace) -> int:
    template = TEMPLATES[args.template]
    folder = init(args.name, args.template, Path(args.dir), force=args.force)
    shown = str(folder)
    csv = f"{args.name}.csv"
    print(f"wrote {shown}/service.yaml: {template.kind}, {template.what}.", flush=True)
    print(f"Editors check it against {folder.parent / SCHEMA_DIR / 'service.schema.json'} (named on its first line).")
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
