"""An evaluation report: JSON (every scenario, turn and figure), Markdown and PNG plots.

``Report.write(dir)`` writes ``report.json``, ``report.md``, ``pass_rate_by_category.png``
and ``latency.png``. The figures are ``glm_gym.scoring.summarise`` of the records, so
``Report.from_json(text)`` gives back the same report and its figures can be checked
against its own records. Latencies on the embedded backend's virtual clock are audio
time, not wall time: the Markdown and the plots say so.

matplotlib is imported only by ``write`` (the ``gym`` extra), with the Agg backend: no
display is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glm_gym.records import LATENCY_KINDS, ScenarioRecord
from glm_gym.scoring import latency_values, summarise

__all__ = ["Report", "fmt_number", "fmt_percent"]

REPORT_FILES = ("report.json", "report.md", "pass_rate_by_category.png", "latency.png")


@dataclass
class Report:
    """Records of one evaluation, the figures computed from them, and how it ran."""

    records: list[ScenarioRecord]
    trials: int
    meta: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.records = sorted(self.records, key=lambda r: (r.scenario_id, r.trial))
        self.summary = summarise(self.records, self.trials)

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete", True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "trials": self.trials,
            "summary": self.summary,
            "records": [r.model_dump(mode="json") for r in self.records],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        records = [ScenarioRecord.model_validate(r) for r in data["records"]]
        return cls(records=records, trials=int(data["trials"]), meta=dict(data["meta"]))

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write the four report files into ``directory`` (created); their paths by name."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {name: out / name for name in REPORT_FILES}
        paths["report.json"].write_text(self.to_json() + "\n", encoding="utf-8")
        paths["report.md"].write_text(self.to_markdown(), encoding="utf-8")
        _plot_pass_rate(self, paths["pass_rate_by_category.png"])
        _plot_latency(self, paths["latency.png"])
        return paths

    def clock_note(self) -> str:
        clock = self.summary["latency_clock"]
        if clock == "virtual":
            return "virtual clock: audio time of the embedded backend, not wall time"
        if clock == "wall":
            return "wall clock"
        return f"clocks: {clock}" if clock else "no latencies"

    def to_markdown(self) -> str:
        s, meta = self.summary, self.meta
        lines = [
            f"# glm-realtime eval{'' if self.complete else ' (partial: interrupted)'}",
            "",
            f"- backend: {meta.get('backend', '?')}, engine: {meta.get('engine', '?')}, "
            f"runner: {meta.get('runner', 'local')}, caller: {meta.get('caller', 'scripted')}",
            f"- {s['records']} conversations ({s['scenarios']} scenarios x up to "
            f"{self.trials} trials), {s['passed']} passed, "
            f"pass rate {fmt_percent(s['pass_rate'])}, mean reward {fmt_number(s['mean_reward'])}",
            f"- wall time {fmt_number(meta.get('wall_s'))} s, audio {fmt_number(s['audio_s'])} s, "
            f"retried after a runner fault: {s['retried']}",
            "",
            "## Trials",
            "",
            "| k | pass^k | pass@k | scenarios |",
            "|---|---|---|---|",
        ]
        trials = s["trials"]
        for k, value in trials["pass^k"].items():
            lines.append(
                f"| {k} | {fmt_percent(value)} | {fmt_percent(trials['pass@k'][k])} | "
                f"{trials['scenarios_with_k_trials'][k]} |"
            )
        lines += ["", "## By category", "", "| category | passed | pass rate |", "|---|---|---|"]
        for name, group in s["by_category"].items():
            lines.append(
                f"| {name} | {group['passed']}/{group['records']} | "
                f"{fmt_percent(group['pass_rate'])} |"
            )
        tools = s["tools"]
        lines += [
            "",
            "## Tool calls",
            "",
            f"{tools['made']} made, {tools['expected']} expected, {tools['matched']} matched: "
            f"precision {fmt_number(tools['precision'])}, recall {fmt_number(tools['recall'])}, "
            f"F1 {fmt_number(tools['f1'])}, "
            f"argument accuracy {fmt_number(tools['argument_accuracy'])}",
            "",
            f"## Latency (ms, {self.clock_note()})",
            "",
            "| kind | count | p50 | p95 | max |",
            "|---|---|---|---|---|",
        ]
        for kind, fig in s["latency_ms"].items():
            lines.append(
                f"| {kind} | {fig['count']} | {fmt_number(fig['p50'])} | {fmt_number(fig['p95'])} "
                f"| {fmt_number(fig['max'])} |"
            )
        lines += [
            "",
            "## Conversations",
            "",
            "| scenario | trial | category | reward | passed | turns | attempts | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.records:
            errors = "; ".join(r.errors).replace("|", "/") or ""
            lines.append(
                f"| {r.scenario_id} | {r.trial} | {r.category} | {fmt_number(r.reward)} | "
                f"{'yes' if r.passed else 'no'} | {len(r.turns)} | {r.attempts} | "
                f"{errors} |"
            )
        return "\n".join(lines) + "\n"


def fmt_percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def fmt_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_pass_rate(report: Report, path: Path) -> None:
    plt = _pyplot()
    groups = report.summary["by_category"]
    names = list(groups)
    rates = [100 * (groups[n]["pass_rate"] or 0.0) for n in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 2), 4))
    bars = ax.bar(names, rates, color="#4c72b0")
    for bar, name in zip(bars, names, strict=True):
        ax.annotate(
            f"{groups[name]['passed']}/{groups[name]['records']}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylim(0, 105)
    ax.set_ylabel("pass rate (%)")
    ax.set_title(f"Pass rate by category ({report.summary['records']} conversations)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_latency(report: Report, path: Path) -> None:
    plt = _pyplot()
    values = latency_values(report.records)
    kinds = [k for k in (*LATENCY_KINDS, *sorted(set(values) - set(LATENCY_KINDS))) if values[k]]
    fig, ax = plt.subplots(figsize=(7, 4))
    if kinds:
        ax.boxplot([values[k] for k in kinds], whis=(5, 95), showfliers=True)
        ax.set_xticks(range(1, len(kinds) + 1), [f"{k}\n(n={len(values[k])})" for k in kinds])
    else:
        ax.text(0.5, 0.5, "no latencies recorded", ha="center", va="center")
    ax.set_ylabel("ms")
    ax.set_xlabel("box p25-p75, line p50, whiskers p5-p95", fontsize=8)
    ax.set_title(f"Latency distribution ({report.clock_note()})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
