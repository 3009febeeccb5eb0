"""`mlrm migrate CONFIG_SET`: re-save older versions in today's format, which cannot run code,
and `mlrm keys generate DIR`: a key pair for signed versions.

Versions written before mlrm stopped loading pickles hold `model.joblib`.
Services refuse them (a pickle runs whatever it names on load). Whoever
trusts the folder converts it once: each version's digests are checked, the
pickle is opened (here, the only place mlrm still opens one, because the
user asked for it), its estimator saved in mlrm's own format (`model.json` +
`model.npz`, mlrm.algorithms.fitted_state), and the new files proven to
answer exactly as the pickle did before they replace the old one under the
same version number (signed anew when MLRM_SIGNING_KEY is set). Versions
saved as `model.skops` load as they are; converting them (no trust needed:
skops loads them safely) spares every service that loads them skops' ~16 MB.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlrm import algorithms
from mlrm.algorithms.sklearn import SklearnAlgorithm
from mlrm.config.service_config import ServiceConfig
from mlrm.errors import StateError
from mlrm.storage import signatures
from mlrm.storage.versions import VersionStore

LEGACY = "model.joblib"
SKOPS = "model.skops"
PROBE_ROWS = 256


def migrate(config: ServiceConfig, say: Callable[[str], None] = print) -> list[int]:
    """Convert every version of config's learned state that holds a pickle or a skops file; the versions converted."""
    store = VersionStore(config.learned_dir)
    converted = []
    for version in store.versions():
        parameters = store.parameters(version)
        held = next((n for n in (LEGACY, SKOPS) if n in (parameters.get("artifacts") or {})), None)
        if held is None:
            continue
        pointer = store.pointer()
        pinned = pointer.parameters_sha256 if pointer and pointer.version == version else None
        record = store.read(version, parameters_sha256=pinned)
        name = str(parameters.get("algorithm", config.algorithm))
        adapter = algorithms.get(name)()
        if not isinstance(adapter, SklearnAlgorithm):
            raise StateError(f"{store.path_of(version)}: {held} for {name}, which never saved one. Retrain it.")
        if held == LEGACY:
            import joblib  # only here: the user asked to open these pickles

            state = joblib.load(io.BytesIO(record.files[LEGACY]))
            if not isinstance(state, dict) or "estimator" not in state:
                raise StateError(f"{store.path_of(version) / LEGACY} is not a model mlrm saved. Retrain it.")
            adapter.adopt(state["estimator"], state.get("n_classes"))
        else:
            adapter.load({SKOPS: record.files[SKOPS]})  # safely: only the types this entry lists
        new = adapter.dump()
        files = {k: v for k, v in record.files.items() if k != held} | new
        _same_answers(adapter, files, f"{store.path_of(version)}")
        store.rewrite(version, files)
        converted.append(version)
        say(f"version {version}: {held} -> {' + '.join(sorted(new))} (digests checked; the same answers "
            f"on {PROBE_ROWS} probe rows){' and signed' if signatures.signer_from_env() else ''}")  # fmt: skip
    return converted


def _same_answers(adapter: SklearnAlgorithm, files: dict[str, bytes], where: str) -> None:
    """StateError unless the re-saved model answers exactly as the pickled one on random rows."""
    fresh = type(adapter)()
    fresh.load(files)
    width = int(adapter.estimator.n_features_in_)
    X = np.random.default_rng(0).normal(size=(PROBE_ROWS, width))
    for before, after in ((adapter.reference_predict(X), fresh.reference_predict(X)), (adapter.predict(X), fresh.predict(X))):  # fmt: skip
        pairs = [(before.values, after.values), (before.probabilities, after.probabilities),
                 (before.scores, after.scores)]  # fmt: skip
        if not all((a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
                   for a, b in pairs):  # fmt: skip
            raise StateError(f"{where}: the converted model does not answer as before; nothing was changed")


def cmd_migrate(args: argparse.Namespace) -> int:
    from mlrm.config import load_config_set

    config = load_config_set(args.config_set)
    if not migrate(config):
        print(f"'{config.name}': nothing to migrate (no version holds {LEGACY} or {SKOPS})")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    private, public = signatures.generate(Path(args.dir))
    print(f"wrote {private} (keep it on the training side only) and {public}")
    print(f"training side:  export {signatures.SIGNING_ENV}={private.resolve()}")
    print(f"services:       export {signatures.VERIFY_ENV}={public.resolve()}")
    return 0


def register(add: Callable[..., Any]) -> None:
    s = add(
        "migrate",
        f"Re-save versions stored as pickles ({LEGACY}) or as {SKOPS} in mlrm's own format (model.json + "
        "model.npz), which loads without running code or importing skops. Opens the pickles, so run it only on a "
        "folder you trust; digests are checked first, version numbers kept, and each converted model must answer "
        "as before.",
        "mlrm migrate configs/pcb-inspection",
        cmd_migrate,
    )
    s.add_argument("config_set", metavar="CONFIG_SET")
    s = add(
        "keys",
        f"Generate an Ed25519 key pair for signed versions: DIR/{signatures.PRIVATE_FILE} (the training side signs "
        f"with it when {signatures.SIGNING_ENV} names it) and DIR/{signatures.PUBLIC_FILE} (services refuse "
        f"unsigned or wrongly signed versions when {signatures.VERIFY_ENV} names it).",
        "mlrm keys generate /etc/mlrm/keys",
        cmd_keys,
    )
    s.add_argument("action", choices=["generate"])
    s.add_argument("dir", metavar="DIR", help="folder for the pair (created; an existing pair is never overwritten)")
