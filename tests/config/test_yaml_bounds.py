"""YAML that people write is read within bounds: size, nesting, alias expansion (issue 13).

A 2.7 KB alias bomb made `mlrm validate` take 14.7 s and 2.25 GB; it now
fails while it is parsed, naming the file, the line of the alias and the fix.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlrm.config import load_config_set
from mlrm.config.yamldoc import MAX_BYTES, read_yaml
from mlrm.errors import ConfigError
from mlrm.gateway.manifest import load_manifest
from tests.toolkit.files import ROOT, copy_config_set
from tests.toolkit.processes import env, mlrm_args


def bomb(levels: int) -> str:
    """Billion laughs: each level is nine aliases of the one before."""
    lines = ["name: bomb", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


# The bomb's alias *a3 on line 6 (a4's line) is the one that passes the bound.
BOMB_PROBLEM = (
    ":6: alias *a3 expands the document past 10,000 nodes added by aliases (an alias bomb?). "
    "Write the values out, or use fewer aliases."
)


@pytest.mark.parametrize("levels", [6, 9])
def test_an_alias_bomb_is_refused_with_the_line_of_the_alias(tmp_path: Path, levels: int) -> None:
    (tmp_path / "service.yaml").write_text(bomb(levels))
    with pytest.raises(ConfigError) as caught:
        load_config_set(tmp_path)
    assert str(caught.value.problems[0]) == f"{tmp_path / 'service.yaml'}{BOMB_PROBLEM}"


def test_mlrm_validate_refuses_the_bomb_with_status_2(tmp_path: Path) -> None:
    (tmp_path / "service.yaml").write_text(bomb(9))
    result = subprocess.run(mlrm_args("validate", str(tmp_path)), capture_output=True, text=True, env=env(), cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert f"{tmp_path / 'service.yaml'}{BOMB_PROBLEM}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_gateway_manifest_is_read_within_the_same_bounds(tmp_path: Path) -> None:
    manifest = tmp_path / "gw.yaml"
    manifest.write_text(bomb(9).replace("name: bomb", "root: ."))
    with pytest.raises(ConfigError) as caught:
        load_manifest(manifest, config_sets=False)
    assert str(caught.value.problems[0]) == f"{manifest}{BOMB_PROBLEM}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: &x [1, *x]\n", ":1: alias *x refers to a node that holds it, so it never ends. Write the values out"),
        ("a: " + "[" * 70 + "]" * 70 + "\n", ":1: nested more than 64 levels deep (aliases expanded). Flatten it."),
        (  # shallow nodes, but aliases of aliases stack them deeper than the bound
            "a: &a " + "[" * 40 + "]" * 40 + "\nb: &b [*a]\nc: [[[[[[[[[[[[[[[[[[[[[[[[[*b]]]]]]]]]]]]]]]]]]]]]]]]]\n",
            ":3: nested more than 64 levels deep (aliases expanded). Flatten it.",
        ),
        (b"name: caf\xe9\n".decode("latin-1"), ": not UTF-8 text (byte 9): save it as UTF-8"),
    ],
)
def test_files_past_a_bound_name_the_file_line_and_fix(tmp_path: Path, text: str, problem: str) -> None:
    file = tmp_path / "service.yaml"
    file.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        read_yaml(file)
    assert str(caught.value.problems[0]).startswith(f"{file}{problem}")


def test_a_file_over_a_mebibyte_is_not_read(tmp_path: Path) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path)
    with open(folder / "service.yaml", "a") as f:
        f.write("#" * MAX_BYTES + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config_set(folder)
    assert str(caught.value.problems[0]) == (
        f"{folder / 'service.yaml'}: the file is larger than 1,048,576 bytes, the limit for a YAML file mlrm reads. "
        "Config sets and manifests are a few KB: keep data (training rows, models) in files of their own."
    )


def test_anchors_and_merge_keys_within_the_bounds_still_load(tmp_path: Path) -> None:
    file = tmp_path / "service.yaml"
    file.write_text("base: &base {type: number, min: 0}\nx: *base\ny:\n  <<: *base\n  max: 5\nz: [*base, *base]\n")
    data, lines = read_yaml(file)
    assert data["x"] == {"type": "number", "min": 0}
    assert data["y"] == {"type": "number", "min": 0, "max": 5}
    assert lines[("y", "max")] == 5 and lines[("z",)] == 6
