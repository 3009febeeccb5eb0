"""Air quality with drifting sensors: the service notices, and a better version serves without anyone asking.

24 meeting rooms, one in each time zone of a company's offices, report
every 5 minutes of simulated time (so that the hours of the day the model
was trained on all come up in every minute of the run, not only the few a
short run would reach in one room).
For each reading the consumer asks the ML service for the CO2 one hour
ahead, with an id per instance; an hour (12 readings) later it sends what
the sensor then measured as feedback with the same ids (POST /v1/feedback).
That scores the forecasts (GET /v1/performance) and goes on to the training
service as new samples.

After --drift-after readings the CO2 sensors' calibration starts to shift
(+--shift ppm over --shift-hours simulated hours: the baseline of NDIR
sensors of one batch ageing together). The config set's monitors do the
rest; nothing here asks for a retrain. It stops once a version that took
over has an hour of forecasts scored at under half the first version's
error on drifted readings (or at --count / --seconds; --run-on: only then).
With, in service.yaml:

    serving:  {drift: {window: 60, min_rows: 100}}
    training:
      triggers: {drift: {threshold: 0.25, min_rows: 100}}
      data: {files: [data/initial.csv], samples: {last: 400}}
    feedback: {training_service: http://127.0.0.1:8100, retry_interval: 0.5}

the service's drift on co2_ppm passes 0.25, the training service's drift
trigger fires, the job learns from data/initial.csv and the newest 400
samples, the gate compares it with the current version on rows neither
trained on, and the ML services swap to it. The consumer only watches which
version answers and how far off it is; its summary gives the seconds from
the drift's start to the first answer of the new version (docs/drift.md).

    python examples/air_quality_drift.py --url http://127.0.0.1:8003 --training-url http://127.0.0.1:8100
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Any

import numpy as np
import requests
from consumer import Clock, options, summary

from mlrm.tools.simulation.rooms import AIR_TARGET, HISTORY_STEPS, HORIZON_STEPS, Room, air_features

SERVICE = "air-quality"
ROOMS = 24
WARM_UP = 2 * HISTORY_STEPS  # readings before the first forecast


class Floor:
    """The rooms, their sensors' last hour, and the forecasts waiting for their hour to pass."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rooms = [
            Room(
                rng,
                volume_m3=float(rng.normal(60, 3)),
                air_changes_per_h=float(rng.normal(3.0, 0.15)),
                start_day=int(rng.integers(0, 7)),
            )
            for _ in range(ROOMS)
        ]
        for zone, room in enumerate(self.rooms):
            room.minute += zone * 60  # local time: room k starts at k o'clock
        self.history: list[collections.deque[dict[str, Any]]] = [
            collections.deque(maxlen=HISTORY_STEPS + 1) for _ in self.rooms
        ]
        # step due -> (id, inputs, forecast, version) of each forecast made an hour before
        self.pending: dict[int, list[tuple[str, dict[str, Any], float, int]]] = {}
        for _ in range(WARM_UP):  # past the start's transient (CO2 set near outdoor air), with an hour of history
            self.step()

    def step(self) -> list[dict[str, Any]]:
        readings = [room.step() for room in self.rooms]
        for history, reading in zip(self.history, readings, strict=True):
            history.append(reading)
        return readings


def main(argv: list[str] | None = None) -> int:
    p = options(__doc__.splitlines()[0], seconds=300, interval=0.0)
    p.add_argument("--drift-after", type=int, default=24, help="readings before the calibration shifts (default 24)")
    p.add_argument("--shift", type=float, default=400.0, help="ppm the sensors end up reading high (default 400)")
    p.add_argument("--shift-hours", type=float, default=0.5, help="simulated hours the shift takes (default 0.5)")
    p.add_argument("--run-on", action="store_true", help="go on to --count/--seconds after a better version took over")
    args = p.parse_args(argv)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    session = requests.Session()
    floor = Floor(args.seed)
    clock = Clock(args.seconds, args.count)
    errors: dict[str, list[float]] = collections.defaultdict(list)  # phase "vN before/after drift" -> |error|
    first_version: int | None = None
    drift_at: float | None = None
    switches: list[dict[str, Any]] = []  # each version that took over after the drift began
    step = 0
    while clock.tick() and (args.run_on or not _recovered(errors, first_version, switches)):
        if step == args.drift_after:
            for room in floor.rooms:
                room.shift_calibration(args.shift, args.shift_hours)
            drift_at = time.monotonic()
            say(f"step {step}: the CO2 sensors' calibration starts to shift (+{args.shift:g} ppm over "
                f"{args.shift_hours:g} h)")  # fmt: skip
        readings = floor.step()
        due = floor.pending.pop(step, [])
        if due:
            records, ids = [], []
            for (key, inputs, forecast, version), reading in zip(due, _rooms_of(due, readings), strict=True):
                records.append({**inputs, AIR_TARGET: reading["co2_ppm"]})
                ids.append(key)
                phase = _phase(key, args.drift_after)
                if phase is not None:
                    errors[f"v{version} {phase} drift"].append(abs(forecast - reading["co2_ppm"]))
            answer = session.post(f"{args.url}/v1/feedback", json={"records": records, "ids": ids}, timeout=10)
            answer.raise_for_status()
        features = [(i, air_features(list(h))) for i, h in enumerate(floor.history)]
        ready = [(i, f) for i, f in features if f is not None]
        if ready:
            ids = [f"{i}-{step}" for i, _ in ready]
            answer = session.post(
                f"{args.url}/v1/predict", json={"instances": [f for _, f in ready], "ids": ids}, timeout=10
            )
            answer.raise_for_status()
            body = answer.json()
            version = int(body["model"]["version"])
            first_version = first_version or version
            if drift_at is not None and version != (switches[-1]["version"] if switches else first_version):
                switches.append({"version": version, "step": step, "seconds": round(time.monotonic() - drift_at, 2)})
                say(f"step {step}: version {version} answers, {switches[-1]['seconds']} s after the drift began")
            floor.pending[step + HORIZON_STEPS] = [
                (key, f, float(pred), version)
                for key, (_, f), pred in zip(ids, ready, body["predictions"], strict=True)
            ]
        step += 1
        if args.interval > 0:
            time.sleep(args.interval)
    mae = {phase: round(float(np.mean(e)), 1) for phase, e in sorted(errors.items()) if e}
    performance = session.get(f"{args.url}/v1/performance", timeout=10).json()
    drift = session.get(f"{args.url}/v1/drift", timeout=10).json()
    summary(
        service=SERVICE,
        readings=step,
        drift_after=args.drift_after,
        first_version=first_version,
        switches=switches,
        better=(better := _better(switches, mae, first_version)),
        mae=mae,
        trigger=_trigger(args.training_url, better),
        performance={k: performance.get(k) for k in ("model", "metric", "holdout", "rolling", "drop", "window")},
        drift={"model": drift.get("model"), "overall": drift.get("overall"), "window": drift.get("window")},
    )
    return 0


def _rooms_of(due: list[tuple[str, dict[str, Any], float, int]], readings: list[dict[str, Any]]) -> list[Any]:
    """The reading, now, of the room each forecast was made for."""
    return [readings[int(key.split("-")[0])] for key, *_ in due]


def _phase(key: str, drift_after: int) -> str | None:
    """Which figure a forecast counts in: "before" if it and its truth both came before the shift began,
    "after" if it was asked once the shift had begun, None for one made before and checked after."""
    made = int(key.split("-")[1])
    if made + HORIZON_STEPS < drift_after:
        return "before"
    return "after" if made >= drift_after else None


def _recovered(errors: dict[str, list[float]], first: int | None, switches: list[dict[str, Any]]) -> bool:
    """Whether the version serving now took over after the drift and has been scored well on an hour of readings
    (its error on drifted readings under half the first version's)."""
    if not switches:
        return False
    own = errors.get(f"v{switches[-1]['version']} after drift", [])
    drifted = errors.get(f"v{first} after drift", [])
    return len(own) >= ROOMS * HORIZON_STEPS and bool(drifted) and np.mean(own) < np.mean(drifted) / 2


def _better(switches: list[dict[str, Any]], mae: dict[str, float], first: int | None) -> dict[str, Any] | None:
    """The first version to take over whose error on drifted readings is under half the first version's."""
    drifted = mae.get(f"v{first} after drift")
    for switch in switches:
        own = mae.get(f"v{switch['version']} after drift")
        if drifted is not None and own is not None and own < drifted / 2:
            return switch
    return None


def _trigger(training_url: str | None, switch: dict[str, Any] | None) -> str | None:
    """Why the training service made the version that took over (its job's trigger)."""
    if not training_url or switch is None:
        return None
    jobs = requests.get(f"{training_url}/v1/services/{SERVICE}/jobs", timeout=10).json()["jobs"]
    made = [j for j in jobs if (j.get("result") or {}).get("version") == switch["version"]]
    return str(made[0]["trigger"]) if made else None


if __name__ == "__main__":
    sys.exit(main())
