"""Breast-cancer diagnosis on real data: a lab system asks for a second opinion.

The Wisconsin diagnostic data that scikit-learn ships (569 fine-needle
aspirates, 30 measurements of cell nuclei each) stands in for a lab's
stream of cases. For every case this consumer asks the ML service for
malignant or benign with its probability, and compares with the
pathologist's final diagnosis, which it sends to the training service as a
labelled sample (ten at a time). Uncertain answers (probability below --confident) are
marked for a closer look.

    mlrm up services/demo.yaml          # breast-cancer on :8002
    python examples/breast_cancer.py --url http://127.0.0.1:8002 --count 100
"""

from __future__ import annotations

import sys
import time
from typing import Any

from consumer import Clock, MlService, TrainingService, options, summary

from mlrm.tools.datasets import breast_cancer

SERVICE = "breast-cancer"
SEND_EVERY = 10  # diagnoses per post


def main(argv: list[str] | None = None) -> int:
    p = options(__doc__.splitlines()[0], seconds=30, interval=0.05)
    p.add_argument("--confident", type=float, default=0.9, help="probability below which a case is marked uncertain")
    args = p.parse_args(argv)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    ml = MlService(args.url)
    info = ml.wait_ready()
    training = TrainingService(args.training_url, SERVICE, say=print)
    say(f"second opinions from '{info['name']}' version {info['version']} at {args.url}")
    cases = breast_cancer()
    clock = Clock(args.seconds, args.count)
    seen = correct = uncertain = 0
    outbox: list[dict[str, Any]] = []
    while clock.tick() and seen < len(cases):
        case = dict(cases[(seen + args.seed * 97) % len(cases)])
        diagnosis = case.pop("diagnosis")
        answer = ml.predict([case])
        verdict, probability = answer["predictions"][0], answer["probabilities"][0][answer["predictions"][0]]
        seen += 1
        correct += verdict == diagnosis
        unsure = probability < args.confident
        uncertain += unsure
        if unsure or verdict != diagnosis:
            say(
                f"case {seen:3d}: {verdict} ({probability:.2f}){'  UNCERTAIN' if unsure else ''}; pathologist: {diagnosis}"
            )
        outbox.append({**case, "diagnosis": diagnosis})
        if len(outbox) >= SEND_EVERY and training.post(outbox):
            outbox = []
        if args.interval > 0:
            time.sleep(args.interval)
    training.post(outbox)
    summary(
        service=SERVICE,
        cases=seen,
        accuracy=round(correct / max(seen, 1), 3),
        uncertain=uncertain,
        versions_seen=ml.versions_seen,
        samples_sent=training.posted,
        training=training.state,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
