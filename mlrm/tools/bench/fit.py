"""The child process `mlrm bench` trains in: `python -m mlrm.tools.bench.fit CONFIG_SET DATA.csv OUT.json`.

A process of its own, so its CPU time and peak memory are the training's alone
(getrusage of this process, written to OUT.json with the trainer's timings).
It reads the CSV as `mlrm train` does and saves a version in CONFIG_SET, which
is always `mlrm bench`'s temporary copy.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    folder, data, out = (argv if argv is not None else sys.argv[1:])[:3]
    from mlrm.config import load_config_set
    from mlrm.training import csv_files, trainer

    imported = time.perf_counter()
    config = load_config_set(folder)
    table = csv_files.read_file(data, config)
    checked = trainer.dataset(config, table.records, strings=True, invalid=table.invalid)
    result = trainer.train(config, table.records, write=True, data=checked)
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    report = {
        "rows": result.rows,
        "unit": "windows" if config.sequence is not None else "rows",
        "records": len(table.records),
        "rejected": checked.rejected_rows,
        "version": result.version,
        "metrics": result.metrics,
        "timings": result.timings,
        "import_s": round(imported - started, 4),
        "process_cpu_s": round(me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime, 4),
        "peak_rss_kib": max(me.ru_maxrss, children.ru_maxrss),  # Linux: KiB
        "run_s": round(time.perf_counter() - started, 4),
    }
    Path(out).write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
