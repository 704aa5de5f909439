"""What the benchmarks read of a process tree (Linux ``/proc``), and their percentile."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["machine_cpu", "percentile", "tree", "usage"]

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (ASR workers, Ray's processes, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def usage(pid: int) -> tuple[float, float]:
    """CPU seconds and RSS MiB of the process tree of ``pid``.

    The CPU counts user + system time of the live members and of the children they
    reaped (an ASR worker replaced), so a difference of two readings is what the tree
    computed in between, as long as its processes' parents reap them.
    """
    cpu = rss = 0.0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            pages = int(Path(f"/proc/{member}/statm").read_text().split()[1])
        except OSError:
            continue
        cpu += sum(int(f) for f in fields[11:15]) / _TICK  # utime stime cutime cstime
        rss += pages * _PAGE / 2**20
    return cpu, rss


def machine_cpu() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine since boot (``/proc/stat``).

    What a run computed where its processes come and go (Ray's actors are started and
    killed by Ray's daemon, not by us): a difference of two readings on a quiet machine.
    """
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / _TICK, sum(fields[:8]) / _TICK


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0..1) of a non-empty ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
