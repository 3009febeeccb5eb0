"""`python -m mlrm.gateway.seed FILES DEST [--learned DIR]`: a pod's init container step.

Makes DEST a working copy of a config set, as `working_copies: true` does on a
gateway (mlrm.gateway.workspace): every file in FILES (a ConfigMap's mount,
holding the service.yaml a person wrote) is copied in again when it changed,
atomically; DIR, the learned/ built into the image, is copied to DEST/learned
only when there is none yet, because from then on learned/ is the volume's
state. Two pods seeding the same volume at once cannot leave half a copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from mlrm.storage.versions import write_atomic

LEARNED = "learned"


def copy_files(source: Path, dest: Path) -> list[str]:
    """Copy source's regular files (not its hidden ones: a ConfigMap mount's ..data) into dest when changed."""
    written = []
    for item in sorted(source.iterdir()):
        if item.name.startswith(".") or not item.is_file():
            continue
        data = item.read_bytes()
        target = dest / item.name
        if not target.is_file() or target.read_bytes() != data:
            write_atomic(target, data)  # a running service never reads half a service.yaml
            written.append(item.name)
    return written


def copy_learned_once(source: Path, dest: Path) -> bool:
    """Copy source to dest/learned unless that exists; True if copied."""
    target = dest / LEARNED
    if target.exists() or not source.is_dir():
        return False
    staging = dest / f".{LEARNED}.{uuid.uuid4().hex}.tmp"
    shutil.copytree(source, staging)
    try:
        os.rename(staging, target)  # atomic; fails if another pod's copy got there first
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlrm.gateway.seed", description=__doc__.split("\n")[0])
    p.add_argument("files", type=Path, help="folder whose files (service.yaml) are copied in at every start")
    p.add_argument("dest", type=Path, help="the config set's working copy (a volume)")
    p.add_argument("--learned", type=Path, help="learned/ to start from when dest has none")
    args = p.parse_args(argv)
    if not (args.files / "service.yaml").is_file():
        print(
            f"seed: {args.files}/service.yaml: no such file. Fix: mount the config set's ConfigMap there",
            file=sys.stderr,
        )
        return 2
    args.dest.mkdir(parents=True, exist_ok=True)
    written = copy_files(args.files, args.dest)
    print(f"seed: {args.dest}: {', '.join(written) or 'files unchanged'}", flush=True)
    if args.learned is not None:
        copied = copy_learned_once(args.learned, args.dest)
        state = "copied from " + str(args.learned) if copied else "kept" if (args.dest / LEARNED).exists() else "none"
        print(f"seed: {args.dest}/{LEARNED}: {state}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
