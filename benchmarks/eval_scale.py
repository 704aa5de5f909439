"""Eval throughput on Ray against the number of actors, next to the in-process eval.

One run of the same scenario slice (``--only``, ``--trials``) on the embedded backend's
virtual clock, first in process (``run_eval``) at ``--concurrency`` conversations at once
and at each Ray row's total, then on Ray with 1, 2, ... actors (``--actors 1,2``) of
``--concurrency`` conversations each. Ray is started once before the Ray rows
(``--num-cpus``, loopback only) or joined (``--address``, e.g. ``auto`` on a cluster node,
or ``ray://head:10001``); its start is not in any row.

Per row: wall time of the whole eval (actors' start-up and backend load included, the
``setup`` column), scenarios per minute and audio seconds per wall second over that wall
time, and the same over the run alone (wall minus setup). The ratio column is each row's
run-alone throughput over the in-process row's at the same total concurrency: Ray's
overhead (below 1) or its gain from more processes (above 1), measured in this one run.
The CPU column is how busy the machine's cores were during the row (``/proc/stat``, so on
a quiet machine: this run): near 100 % in process means more actors on this machine have
nothing to gain.

Run: ``python -m benchmarks eval_scale [--only CATEGORIES] [--trials K] [--actors 1,2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from benchmarks._proc import machine_cpu


class Busy:
    """The machine's CPU busy share since the last reading."""

    def __init__(self) -> None:
        self._last = machine_cpu()

    def share(self) -> float:
        (busy0, total0), (busy1, total1) = self._last, machine_cpu()
        self._last = (busy1, total1)
        return (busy1 - busy0) / max(total1 - total0, 1e-9)


def _row(name: str, actors: int | str, report: Any, cpu: float) -> dict[str, Any]:
    meta, summary = report.meta, report.summary
    wall = meta["wall_s"]
    run = max(wall - meta.get("setup_s", 0.0), 1e-9)
    return {
        "runner": name,
        "actors": actors,
        "concurrency": meta["concurrency"],
        "conversations": summary["records"],
        "passed": summary["passed"],
        "setup_s": meta.get("setup_s", 0.0),
        "wall_s": wall,
        "per_min": 60 * summary["records"] / wall,
        "audio_x": summary["audio_s"] / wall,
        "run_per_min": 60 * summary["records"] / run,
        "run_audio_x": summary["audio_s"] / run,
        "cpu": cpu,
    }


def _print(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    base = {r["concurrency"]: r["run_per_min"] for r in rows if r["runner"] == "in-process"}
    print(
        f"eval_scale: {rows[0]['conversations']} conversations per row "
        f"(--only {args.only or 'all'}, {args.trials} trials), embedded backend, virtual clock; "
        f"load average {os.getloadavg()[0]:.2f} at the end"
    )
    print(
        "| runner | actors | concurrency | passed | setup s | wall s | scen/min | audio s/s "
        "| run scen/min | run audio s/s | vs in-process at its concurrency | CPU of the cores |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["run_per_min"] / base[r["concurrency"]]
        print(
            f"| {r['runner']} | {r['actors']} | {r['concurrency']} | "
            f"{r['passed']}/{r['conversations']} | {r['setup_s']:.1f} | {r['wall_s']:.1f} | "
            f"{r['per_min']:.1f} | {r['audio_x']:.2f} | {r['run_per_min']:.1f} | "
            f"{r['run_audio_x']:.2f} | {ratio:.2f}x | {r['cpu']:.0%} |"
        )


async def _rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from glm_gym.evaluation import EvalOptions, run_eval
    from glm_gym.ray_eval import RayOptions, run_ray_eval
    from glm_gym.scenarios import load_scenarios, select_scenarios

    only = [name.strip() for name in (args.only or "").split(",") if name.strip()]
    scenarios = select_scenarios(load_scenarios(), only)
    options = EvalOptions(seed=args.seed)
    actor_counts = [int(a) for a in args.actors.split(",") if a.strip()]
    busy = Busy()
    rows = []
    # In process at every concurrency a Ray row has, so a gain from more conversations at
    # once is not taken for a gain from Ray.
    for concurrency in sorted({args.concurrency, *(a * args.concurrency for a in actor_counts)}):
        report = await run_eval(scenarios, options, concurrency=concurrency, trials=args.trials)
        rows.append(_row("in-process", "-", report, busy.share()))
    for actors in actor_counts:
        report = await run_ray_eval(
            scenarios,
            options,
            RayOptions(address=args.address, actors=actors),
            concurrency=actors * args.concurrency,
            trials=args.trials,
        )
        rows.append(_row("ray", actors, report, busy.share()))
        print(f"ray, {actors} actors: {report.meta['wall_s']:.1f} s", file=sys.stderr)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks eval_scale")
    parser.add_argument("--only", default="", help="scenario ids or categories (default: all)")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="conversations per runner")
    parser.add_argument("--actors", default="1,2", help="comma-separated actor counts")
    parser.add_argument("--address", default=None, help="join this Ray cluster instead")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from glm_gym.eval_cli import use_loopback_ray

    if args.address is None:
        use_loopback_ray()
    import ray

    ray.init(
        address=args.address,
        num_cpus=args.num_cpus if args.address is None else None,
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        rows = asyncio.run(_rows(args))
    finally:
        ray.shutdown()
    _print(rows, args)
    return 0
