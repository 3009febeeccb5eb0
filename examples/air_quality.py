"""Air quality in a meeting room: forecast CO2 an hour ahead, retrain on drift.

A virtual room (people, ventilation, a CO2 / temperature / humidity sensor
every 5 minutes of simulated time) feeds this consumer. Every 15 minutes it
asks the ML service for the CO2 one hour ahead. An hour later it knows the
real value: it sends the pair (inputs, actual) to the training service as a
sample and keeps a rolling mean absolute error over the last day of
forecasts. When that error rises above --retrain-above (ppm) and enough new
samples arrived, it asks the training service to retrain; the ML service
picks up the new version by itself, and the answers say which version spoke.

--ventilation 0.4 makes the room's filter clogged from the start: the
shipped model, trained on rooms as designed, is then clearly off, and the
retrained one catches up.

    mlrm up services/demo.yaml                   # air-quality on :8003, training service on :8100
    python examples/air_quality.py --url http://127.0.0.1:8003 --training-url http://127.0.0.1:8100 --ventilation 0.4
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Any

import numpy as np
from consumer import Clock, MlService, TrainingService, options, summary

from mlrm.tools.simulation.rooms import AIR_TARGET, HISTORY_STEPS, HORIZON_STEPS, STEP_MIN, Room, air_features

SERVICE = "air-quality"
FORECAST_EVERY = 3  # steps: every 15 minutes
SEND_EVERY = 4  # samples: one post an hour


def main(argv: list[str] | None = None) -> int:
    p = options(__doc__.splitlines()[0], seconds=60, interval=0.02)
    p.add_argument(
        "--ventilation", type=float, default=1.0, help="share of the designed air flow (0.4: clogged filter)"
    )
    p.add_argument(
        "--retrain-above", type=float, default=60.0, help="rolling MAE (ppm) that triggers retraining (default 60)"
    )
    p.add_argument("--window", type=int, default=96, help="forecasts in the rolling error (default 96: a day)")
    p.add_argument("--min-new", type=int, default=96, help="new samples needed before asking again (default 96)")
    args = p.parse_args(argv)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))

    ml = MlService(args.url)
    info = ml.wait_ready()
    training = TrainingService(args.training_url, SERVICE, say=print)
    say(f"forecasting CO2 of a meeting room with '{info['name']}' version {info['version']} at {args.url}")
    room = Room(np.random.default_rng(args.seed), volume_m3=60, air_changes_per_h=3.0, ventilation=args.ventilation)
    history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY_STEPS + 1)
    pending: dict[int, tuple[dict[str, Any], float, int]] = {}  # step due -> (inputs, forecast, version)
    errors: collections.deque[float] = collections.deque(maxlen=args.window)
    outbox: list[dict[str, Any]] = []
    new_samples, forecasts, retrains = 0, 0, []
    by_version: dict[int, list[float]] = collections.defaultdict(list)
    clock, step = Clock(args.seconds, args.count), 0
    while clock.tick():
        reading = room.step()
        history.append(reading)
        if step in pending:  # the hour is over: how good was the forecast?
            inputs, forecast, version = pending.pop(step)
            error = abs(forecast - reading["co2_ppm"])
            errors.append(error)
            by_version[version].append(error)
            outbox.append({**inputs, AIR_TARGET: reading["co2_ppm"]})
            new_samples += 1
            if len(outbox) >= SEND_EVERY and training.post(outbox):
                outbox = []
            mae = float(np.mean(errors))
            if len(errors) >= args.window and mae > args.retrain_above and new_samples >= args.min_new:
                day = step * STEP_MIN / 1440
                answer = training.train()
                if answer is not None:
                    say(
                        f"day {day:.2f}: rolling MAE {mae:.0f} ppm > {args.retrain_above:g}: asked for retraining ({answer})"
                    )
                    retrains.append({"day": round(day, 2), "mae": round(mae, 1)})
                    new_samples = 0
                    errors.clear()
                else:
                    why = "no --training-url given" if training.url is None else "the training service is not reachable"
                    say(
                        f"day {day:.2f}: rolling MAE {mae:.0f} ppm > {args.retrain_above:g}, time to retrain, but {why}"
                    )
                    new_samples = 0
        if step % FORECAST_EVERY == 0 and (inputs := air_features(list(history))) is not None:
            before = ml.version
            answer = ml.predict([inputs])
            forecast = float(answer["predictions"][0])
            pending[step + HORIZON_STEPS] = (inputs, forecast, ml.version or 0)
            forecasts += 1
            if before is not None and ml.version != before:
                say(f"model version {before} -> {ml.version} now answers")
            if forecasts % 16 == 0:
                hour = reading["hour_of_day"]
                say(
                    f"day {step * STEP_MIN // 1440} {int(hour):02d}:{int(hour % 1 * 60):02d}  CO2 {reading['co2_ppm']:6.0f} ppm, "
                    f"{reading['occupancy']:2d} people -> in 1 h {forecast:6.0f} ppm (v{ml.version})"
                    + (f"  rolling MAE {np.mean(errors):.0f}" if errors else "")
                )
        step += 1
        if args.interval > 0:
            time.sleep(args.interval)
    training.post(outbox)
    summary(
        service=SERVICE,
        simulated_days=round(step * STEP_MIN / 1440, 2),
        forecasts=forecasts,
        mae_by_version={str(v): round(float(np.mean(e)), 1) for v, e in sorted(by_version.items()) if e},
        versions_seen=ml.versions_seen,
        samples_sent=training.posted,
        retrains=retrains,
        training=training.state,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
