"""Every figure of an evaluation report, computed from scenario records alone.

- pass@1 and pass^k over trials, tau2's definitions: for a scenario run ``n`` times with
  ``c`` passes, ``pass^k = C(c, k) / C(n, k)`` (the chance that k trials drawn without
  replacement all pass) and ``pass@k = 1 - C(n - c, k) / C(n, k)`` (at least one passes),
  each averaged over the scenarios that have at least ``k`` trials.
- Tool calls, micro-averaged over every record: a made call matches an expected one of the
  same name (each made call used once, one whose arguments match preferred); precision =
  matches / made, recall = matches / expected, F1 their harmonic mean, argument accuracy =
  matches whose arguments match / matches. Arguments match as the scenario criteria judge
  them (``glm_gym.criteria.arguments_match``: the expected ones present, strings compared
  ignoring case and spacing).
- Latencies: count, p50, p95 (numpy's linear interpolation), max and mean in ms, per kind.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from glm_gym.criteria import arguments_match
from glm_gym.records import LATENCY_KINDS, ScenarioRecord, ToolCall

__all__ = [
    "latency_summary",
    "match_tool_calls",
    "pass_at_k",
    "pass_hat_k",
    "summarise",
    "tool_scores",
    "trial_scores",
]


def pass_hat_k(n: int, c: int, k: int) -> float:
    """tau2's pass^k for one scenario: k of its n trials, drawn at random, all pass."""
    _check_counts(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k for one scenario: at least one of k of its n trials passes."""
    _check_counts(n, c, k)
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _check_counts(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= passes <= trials and 1 <= k <= trials, got n={n} c={c} k={k}")


def trial_scores(records: Iterable[ScenarioRecord], trials: int) -> dict[str, Any]:
    """pass@1, pass^k and pass@k for k = 1..trials, over scenarios with >= k trials."""
    runs: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        runs[record.scenario_id].append(record.passed)
    pass_hat: dict[str, float | None] = {}
    pass_at: dict[str, float | None] = {}
    counted: dict[str, int] = {}
    for k in range(1, trials + 1):
        eligible = [(len(r), sum(r)) for r in runs.values() if len(r) >= k]
        counted[str(k)] = len(eligible)
        pass_hat[str(k)] = _mean([pass_hat_k(n, c, k) for n, c in eligible])
        pass_at[str(k)] = _mean([pass_at_k(n, c, k) for n, c in eligible])
    return {
        "pass@1": pass_hat.get("1"),
        "pass^k": pass_hat,
        "pass@k": pass_at,
        "scenarios_with_k_trials": counted,
    }


def match_tool_calls(expected: Sequence[ToolCall], made: Sequence[ToolCall]) -> tuple[int, int]:
    """(name matches, matches with equal arguments) of one conversation."""
    unused = list(made)
    names = arguments = 0
    for want in expected:
        same_name = [call for call in unused if call.name == want.name]
        if not same_name:
            continue
        exact = [call for call in same_name if arguments_match(want.arguments, call.arguments)]
        chosen = exact[0] if exact else same_name[0]
        unused.remove(chosen)
        names += 1
        arguments += bool(exact)
    return names, arguments


def tool_scores(records: Iterable[ScenarioRecord]) -> dict[str, Any]:
    """Micro-averaged tool-call precision, recall, F1 and argument accuracy."""
    made = expected = matched = exact = 0
    for record in records:
        names, arguments = match_tool_calls(record.expected_tool_calls, record.tool_calls)
        made += len(record.tool_calls)
        expected += len(record.expected_tool_calls)
        matched += names
        exact += arguments
    precision = matched / made if made else None
    recall = matched / expected if expected else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "made": made,
        "expected": expected,
        "matched": matched,
        "arguments_equal": exact,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "argument_accuracy": exact / matched if matched else None,
    }


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p95, max and mean of one latency kind (None when there are none)."""
    if not values_ms:
        return {"count": 0, "p50": None, "p95": None, "max": None, "mean": None}
    data = np.asarray(values_ms, dtype=float)
    return {
        "count": int(data.size),
        "p50": float(np.percentile(data, 50)),
        "p95": float(np.percentile(data, 95)),
        "max": float(data.max()),
        "mean": float(data.mean()),
    }


def latency_values(records: Iterable[ScenarioRecord]) -> dict[str, list[float]]:
    """Every latency of every turn, by kind (the kinds of LATENCY_KINDS first)."""
    values: dict[str, list[float]] = {kind: [] for kind in LATENCY_KINDS}
    for record in records:
        for turn in record.turns:
            for kind, found in turn.latencies_ms.items():
                values.setdefault(kind, []).extend(found)
    return values


def summarise(records: Sequence[ScenarioRecord], trials: int) -> dict[str, Any]:
    """The report's figures: outcome, by category, trials, tools, latencies, errors, load."""
    by_category: dict[str, list[ScenarioRecord]] = defaultdict(list)
    for record in records:
        by_category[record.category].append(record)
    wall = sum(r.wall_s for r in records)
    audio = sum(r.audio_s for r in records)
    clocks = sorted({r.clock for r in records})
    return {
        "records": len(records),
        "scenarios": len({r.scenario_id for r in records}),
        "passed": sum(r.passed for r in records),
        "pass_rate": _mean([float(r.passed) for r in records]),
        "mean_reward": _mean([r.reward for r in records]),
        "by_category": {
            name: {
                "records": len(group),
                "passed": sum(r.passed for r in group),
                "pass_rate": _mean([float(r.passed) for r in group]),
            }
            for name, group in sorted(by_category.items())
        },
        "trials": trial_scores(records, trials),
        "tools": tool_scores(records),
        "latency_ms": {k: latency_summary(v) for k, v in latency_values(records).items()},
        "latency_clock": clocks[0] if len(clocks) == 1 else "+".join(clocks) or None,
        "errors": {
            "records_with_errors": sum(bool(r.errors) for r in records),
            "by_message": dict(Counter(e for r in records for e in r.errors).most_common()),
        },
        "retried": sum(r.attempts > 1 for r in records),
        "audio_s": audio,
        "conversation_wall_s": wall,
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
