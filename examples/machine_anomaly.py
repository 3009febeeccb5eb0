"""Machine sensor anomaly detection: a pump motor's stream, abnormal readings flagged.

A virtual pump motor sends a reading every second (speed, load, current,
vibration RMS and peak, bearing temperature); this consumer asks the ML
service (an isolation forest) whether each one is abnormal. After
--fault-after readings a bearing starts to wear: the consumer raises an
alarm when most of the last ten readings are flagged. Readings of quiet
periods (no alarm) are sent to the training service as examples of usual
operation, so a retrained model follows slow, harmless change.

    mlrm serve configs/machine-anomaly --port 8004
    python examples/machine_anomaly.py --url http://127.0.0.1:8004
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Any

import numpy as np
from consumer import Clock, MlService, TrainingService, options, summary

from mlrm.tools.simulation.machines import Machine

SERVICE = "machine-anomaly"
BATCH = 5  # readings per request: the gateway buffers five seconds


def main(argv: list[str] | None = None) -> int:
    p = options(__doc__.splitlines()[0], seconds=30, interval=0.05)
    p.add_argument(
        "--fault-after", type=int, default=300, help="readings before the bearing starts to wear (default 300)"
    )
    p.add_argument("--glitch-rate", type=float, default=0.01, help="share of readings from a stuck or dropped sensor")
    args = p.parse_args(argv)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    ml = MlService(args.url)
    info = ml.wait_ready()
    training = TrainingService(args.training_url, SERVICE, say=print)
    say(f"watching a pump motor with '{info['name']}' version {info['version']} at {args.url}")
    rng = np.random.default_rng(args.seed)
    machine = Machine(rng)
    recent: collections.deque[bool] = collections.deque(maxlen=10)
    clock = Clock(args.seconds, args.count)
    readings = flagged = flagged_healthy = flagged_faulty = faulty = 0
    alarm_at: int | None = None
    batch: list[dict[str, Any]] = []
    kinds: list[str] = []
    while clock.tick():
        if readings + len(batch) >= args.fault_after:
            kind, row = "fault", machine.reading("bearing-wear")
        elif rng.random() < args.glitch_rate:
            kind, row = "glitch", machine.glitch()
        else:
            kind, row = "healthy", machine.reading("normal")
        batch.append(row)
        kinds.append(kind)
        if len(batch) < BATCH:
            continue
        answer = ml.predict(batch)
        quiet: list[dict[str, Any]] = []
        for row, kind, abnormal, score in zip(batch, kinds, answer["predictions"], answer["scores"]):
            readings += 1
            recent.append(abnormal)
            flagged += abnormal
            faulty += kind == "fault"
            flagged_faulty += abnormal and kind == "fault"
            flagged_healthy += abnormal and kind == "healthy"
            if abnormal:
                say(
                    f"reading {readings:5d}: ABNORMAL (score {score:+.3f}) vibration {row['vibration_rms_mm_s']:.2f}/"
                    f"{row['vibration_peak_mm_s']:.2f} mm/s, bearing {row['bearing_temp_c']:.1f} °C, {row['rpm']:.0f} rpm"
                )
            elif sum(recent) == 0:
                quiet.append(row)
            if alarm_at is None and sum(recent) >= 6:
                alarm_at = readings
                say(
                    f"reading {readings:5d}: ALARM: {sum(recent)} of the last {len(recent)} readings are abnormal; call maintenance"
                )
        training.post(quiet)
        batch, kinds = [], []
        if args.interval > 0:
            time.sleep(args.interval * BATCH)
    healthy = readings - faulty
    summary(
        service=SERVICE,
        readings=readings,
        flagged=flagged,
        false_alarm_rate=round(flagged_healthy / max(healthy, 1), 3),
        fault_detected_rate=round(flagged_faulty / faulty, 3) if faulty else None,
        fault_started_at=args.fault_after if faulty else None,
        alarm_at=alarm_at,
        versions_seen=ml.versions_seen,
        samples_sent=training.posted,
        training=training.state,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
