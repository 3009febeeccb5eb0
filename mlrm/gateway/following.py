"""Which config sets of a gateway follow a central training service (`training.mode: remote`).

`mlrm up` runs the checks in one thread of its own process: one request per
config set and interval to the centre, whatever the number of gunicorn
workers, never inside a worker that serves predictions, and nothing heavy is
imported (a version is checked and written as bytes, never loaded here). The
ML services notice a new current version as they do after a local job.
"""

from __future__ import annotations

from collections.abc import Callable

from mlrm.errors import MlrmError
from mlrm.gateway.commands import Plan
from mlrm.gateway.manifest import Manifest
from mlrm.training.follow import Follower, Following, Say, follower_of


def followers(manifest: Manifest, plan: Plan, say: Say) -> list[Follower]:
    """A Follower for every ML service of the plan, when the manifest's training is remote."""
    if manifest.training.mode != "remote" or not plan.training_url:
        return []
    found = []
    for launch in plan.launches:
        # A process of several services (the manifest's `process`) follows each of its config sets.
        sets = launch.models or ([(launch.name, launch.config_set)] if launch.config_set else [])
        for label, config_set in sets if launch.kind == "ml" else []:
            try:
                found.append(follower_of(config_set, plan.training_url, plan.client_token))
            except (MlrmError, OSError, ValueError) as exc:
                say(f"{label}: does not follow {plan.training_url}: {exc}")
    return found


def following(manifest: Manifest, plan: Plan, event: Callable[[str, str], None]) -> Following | None:
    """The started checks of a gateway whose training is remote (event: the supervisor's, with a level);
    None for any other gateway."""
    if manifest.training.mode != "remote":
        return None

    def say(text: str) -> None:
        event(text, "INFO")

    def warn(text: str) -> None:
        event(text, "WARNING")

    checks = Following(followers(manifest, plan, warn), manifest.training.follow_interval, say, warn)
    names = ", ".join(f.name for f in checks.followers) or "no config set"
    say(f"following {plan.training_url} for {names}: asking every {manifest.training.follow_interval:g}s")
    checks.start()
    return checks
