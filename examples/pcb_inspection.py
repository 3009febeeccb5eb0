"""PCB solder-paste inspection: a virtual SPI machine asks for a verdict per pad.

The solder-paste inspection (SPI) machine of a PCB line measures every pad
(16 values: paste volume, area, height, offsets, bridge gap, ...) and asks
the ML service: OK, error (a real defect) or pseudo-error (the machine would
flag it, but the joint is fine)? Pads the model does not call OK go to a
human re-check; the verdict of the re-check is sent to the training service
as a labelled sample, so the next version learns from the line's own boards.

    mlrm up services/demo.yaml          # pcb-inspection on :8001, training service on :8100
    python examples/pcb_inspection.py --url http://127.0.0.1:8001 --training-url http://127.0.0.1:8100
"""

from __future__ import annotations

import sys
import time
from typing import Any

from consumer import Clock, MlService, TrainingService, options, summary

from mlrm.tools.datasets import pcb_inspection

SERVICE = "pcb-inspection"
PADS_PER_BOARD = 8


def main(argv: list[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0], seconds=30, interval=0.2).parse_args(argv)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    ml = MlService(args.url)
    info = ml.wait_ready()
    training = TrainingService(args.training_url, SERVICE, say=print)
    say(f"inspecting boards with '{info['name']}' version {info['version']} at {args.url}")
    line = iter(pcb_inspection(rows=100_000, seed=args.seed))  # the line's pads, with what a re-check would say
    clock = Clock(args.seconds, args.count)
    boards = pads = agree = rechecked = 0
    counts = {"OK": 0, "error": 0, "pseudo-error": 0}
    while clock.tick():
        board = [next(line) for _ in range(PADS_PER_BOARD)]
        truth = [pad.pop("result") for pad in board]
        answer = ml.predict(board)  # one request per board: all its pads
        boards += 1
        samples: list[dict[str, Any]] = []
        for pad, verdict, actual, proba in zip(
            board, answer["predictions"], truth, answer.get("probabilities") or [{}] * len(board)
        ):
            pads += 1
            counts[verdict] += 1
            agree += verdict == actual
            if verdict != "OK":  # the machine stops the board; a person looks at the pad
                rechecked += 1
                samples.append({**pad, "result": actual})
                mark = "agrees" if verdict == actual else f"says {actual}"
                say(
                    f"board {boards:4d}: pad volume {pad['volume_pct']:6.1f}% -> {verdict} ({proba.get(verdict, 0):.2f}); re-check {mark}"
                )
        training.post(samples)
        if args.interval > 0:
            time.sleep(args.interval)
    summary(
        service=SERVICE,
        boards=boards,
        pads=pads,
        verdicts=counts,
        agreement=round(agree / max(pads, 1), 3),
        rechecked=rechecked,
        versions_seen=ml.versions_seen,
        samples_sent=training.posted,
        training=training.state,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
