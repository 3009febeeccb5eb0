"""CPU and memory of a process tree, read from /proc (Linux; no psutil).

A Sampler thread reads the tree of one process (it and every descendant)
every `interval` seconds: CPU seconds (utime + stime of each process, from
/proc/PID/stat) and memory (RSS from /proc/PID/status; PSS, which splits
shared pages between the processes that share them, from
/proc/PID/smaps_rollup where it can be read). CPU utilisation over an
interval is the CPU seconds the tree used in it divided by its length (100%
= one core busy); the mean is over the whole sampled span.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")


def available() -> bool:
    return (PROC / "self" / "stat").exists()


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, or None when it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def tree(pid: int) -> list[int]:
    """pid and every living descendant."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry.name))
    found, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kib(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Sample:
    at: float
    cpu_s: float  # cumulative over every process seen so far: one that ended keeps its last figure
    rss_kib: int
    pss_kib: int | None


def read(pids: list[int]) -> tuple[dict[int, float], int, int | None]:
    """CPU seconds of each living pid, and RSS and PSS summed over them (PSS None where unreadable)."""
    cpu: dict[int, float] = {}
    rss, pss, pss_known = 0, 0, True
    for pid in pids:
        stat = _stat(pid)
        if stat is None:
            continue
        cpu[pid] = stat[1]
        rss += _kib(PROC / str(pid) / "status", "VmRSS:") or 0
        p = _kib(PROC / str(pid) / "smaps_rollup", "Pss:")
        pss_known = pss_known and p is not None
        pss += p or 0
    return cpu, rss, pss if pss_known else None


class Sampler:
    """Samples a process tree in a thread until stopped; `summary()` gives CPU % and peak memory."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"bench-sampler-{pid}")
        self._pids: list[int] = []
        self._cpu: dict[int, float] = {}

    def _sample(self) -> None:
        cpu, rss, pss = read(self._pids)
        self._cpu.update(cpu)
        self.samples.append(Sample(time.monotonic(), sum(self._cpu.values()), rss, pss))

    def _run(self) -> None:
        ticks = 0
        while True:
            if ticks % 10 == 0:  # new workers appear rarely; walking /proc costs more than a sample
                self._pids = tree(self.pid)
            self._sample()
            ticks += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._pids:
            self._sample()

    def summary(self) -> dict[str, Any] | None:
        """cpu_mean_pct, cpu_peak_pct (the busiest interval), peak_rss_mib, peak_pss_mib; None without two samples."""
        s = self.samples
        if len(s) < 2 or s[-1].at <= s[0].at:
            return None
        peaks = [
            (b.cpu_s - a.cpu_s) / (b.at - a.at) for a, b in zip(s, s[1:]) if b.at - a.at >= self.interval / 2
        ]  # fmt: skip
        pss = [x.pss_kib for x in s if x.pss_kib is not None]
        return {
            "cpu_mean_pct": round(100 * (s[-1].cpu_s - s[0].cpu_s) / (s[-1].at - s[0].at), 1),
            "cpu_peak_pct": round(100 * max(peaks), 1) if peaks else None,
            "peak_rss_mib": round(max(x.rss_kib for x in s) / 1024, 1),
            "peak_pss_mib": round(max(pss) / 1024, 1) if pss else None,
            "processes": len(self._pids),
            "interval_s": self.interval,
        }


def listening_pid(port: int) -> int | None:
    """The process listening on a TCP port of this machine (from /proc/net/tcp*), or None.

    Of several (gunicorn's master and workers share the socket) the eldest: the master, whose tree is the service."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return None
    owners = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    owners.append(int(entry.name))
                    break
        except OSError:
            continue
    return min(owners, key=_started) if owners else None


def _started(pid: int) -> int:
    try:
        return int((PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 1 << 62
