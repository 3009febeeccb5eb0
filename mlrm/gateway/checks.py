"""`mlrm up --check`: what each service would find at start, without starting it.

The manifest and every ML service's config set are checked by load_manifest
(problems there are errors: exit 2). This adds what the services themselves
do at start, reported as warnings because the service would still run: an ML
service loads its current version as `mlrm serve` does (no trained model, or
a version that does not load, leaves it live but not ready), and the training
service loads every config set under its root (one it cannot use leaves it
degraded, not down).
"""

from __future__ import annotations

from mlrm.gateway.manifest import Manifest


def start_checks(manifest: Manifest) -> list[str]:
    """Warnings for what would start degraded or not ready."""
    from mlrm.config import load_config_set
    from mlrm.core.service import Service

    warnings = []
    for spec in manifest.enabled():
        service = Service(load_config_set(spec.config_set))
        if service.load_error:
            warnings.append(
                f"{spec.name}: would start not ready: the current version does not load: {service.load_error}"
            )
        elif not service.ready:
            warnings.append(
                f"{spec.name}: would start not ready: no trained version yet (mlrm train {spec.config_set} --data FILE.csv)"
            )
    if manifest.training.mode == "local" and manifest.training.config_root is not None:
        from training_service.services import ConfigRoot

        root = ConfigRoot(manifest.training.config_root)
        for item in root.unavailable.values():
            warnings.append(
                f"training-service: would start degraded: config set '{item.name}' is unavailable: "
                f"{item.reason}. Fix: {item.fix}"
            )
    return warnings
