"""The Dockerfile, checked without building it (CI has no Docker engine): what it copies exists and
reaches the build, it runs as the user the exported pods expect, torch stays optional, no dev tools."""

from __future__ import annotations

import fnmatch
import re

from mlrm.gateway.kubernetes import IMAGE_PROJECT, UID, WORKDIR
from tests.toolkit.files import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
IGNORED = [
    line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(s for s in DOCKERFILE.splitlines() if not s.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for step in instructions():
        if step[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(step)
    return found


def ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, p.removeprefix("**/")) or path.split("/")[0] == p for p in IGNORED)


def test_every_file_it_copies_exists_and_is_not_left_out_of_the_context() -> None:
    copies = [args.split() for step, args in instructions() if step == "COPY" and "--from" not in args]
    assert copies
    for *sources, _ in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source), f"{source} is in .dockerignore"


def test_what_never_belongs_in_an_image_is_left_out() -> None:
    for path in (".venv", "var", ".git", ".pytest_cache", "tests", "secrets", "configs/x/feedback-outbox.sqlite"):
        assert ignored(path), path


def test_the_final_stage_runs_as_the_user_the_pods_run_as() -> None:
    final = stages()[-1]
    users = [args for step, args in final if step == "USER"]
    assert users[-1] == f"{UID}:{UID}"  # numeric, so Kubernetes' runAsNonRoot can check it
    run = " ".join(args for step, args in final if step == "RUN")
    assert f"--uid {UID}" in run and str(WORKDIR) in run and "chown" in run
    assert ("WORKDIR", str(WORKDIR)) in final
    # The seed init container copies learned/ from the project folder in the image.
    assert ("COPY", f"configs {IMAGE_PROJECT}/configs") in final
    assert not [args for step, args in final if step == "FROM" and "AS build" in args]


def test_torch_is_installed_only_when_asked_and_everything_through_constraints() -> None:
    build = stages()[0]
    assert ("ARG", "TORCH=0") in build
    [install] = [args for step, args in build if step == "RUN" and "pip install" in args]
    assert re.search(r'if \[ "\$TORCH" = "1" \]; then extras="\$extras,torch"', install)
    assert "torch" not in install.replace('extras="$extras,torch"', "").replace("TORCH", "")
    assert "--constraint constraints.txt" in install
    assert not re.search(r"\bdev\b", install)  # pytest, ruff, mypy and friends stay out
    assert DOCKERFILE.splitlines()[0].startswith("#") and "slim" in stages()[-1][0][1]
