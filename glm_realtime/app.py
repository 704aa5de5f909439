"""Run one spoken turn through a graph: what ``glm-realtime run`` and ``replay`` do.

The graph is a TEN-style app ``property.json``; its nodes are found by addon, so any
graph with a ``file_source``, a ``glm_v2v_python`` node and a ``wav_sink`` works:
the input file goes to every ``file_source``, the output path to every ``wav_sink``,
and backend settings to every GLM node.
"""

from __future__ import annotations

import copy
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import glm_realtime.extension  # noqa: F401 - registers glm_v2v_python for load_graph
from glm_realtime.extension import GLMRealtimeExtension
from glm_realtime.host.graph import load_graph, read_app_property
from glm_realtime.host.runner import GraphRunner
from glm_realtime.nodes import FileSource, TranscriptCollector
from glm_realtime.session import SessionState
from realtime.compat import TIMEOUT_ERRORS, timeout

__all__ = ["DEFAULT_GRAPH", "TurnReport", "prepare_app", "run_turn"]

DEFAULT_GRAPH = Path(__file__).parent / "graphs" / "voice_assistant.json"


class TurnError(RuntimeError):
    """The turn could not be run (bad graph, no reply in time, session failed)."""


@dataclass
class TurnReport:
    """What one turn produced."""

    segments: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_seconds: float = 0.0

    def said(self, role: str) -> list[str]:
        """Finished, non-empty segments of ``role``."""
        return [s["text"].strip() for s in self.segments if s["role"] == role and s["text"].strip()]

    def response_metrics(self) -> list[dict[str, Any]]:
        """The per-response metrics."""
        return [
            m["metrics"] for m in self.metrics if m.get("metrics", {}).get("kind") == "response"
        ]

    def connect_ms(self) -> list[float]:
        """Connection set-up times."""
        return [
            m["metrics"]["connect_ms"]
            for m in self.metrics
            if m.get("metrics", {}).get("kind") == "connect"
        ]


def load_app(path: str | Path | None) -> dict[str, Any]:
    """The app property file (the bundled voice assistant graph by default)."""
    return read_app_property(path or DEFAULT_GRAPH)


def prepare_app(
    app: dict[str, Any],
    *,
    input_path: Path,
    output_path: Path,
    glm: dict[str, Any],
    speed: float = 1.0,
    input_rate: int | None = None,
    transcript_path: Path | None = None,
) -> dict[str, Any]:
    """A copy of ``app`` with the input, output and backend set on every matching node."""
    app = copy.deepcopy(app)
    graphs = app.get("_ten", {}).get("predefined_graphs", [])
    found: set[str] = set()
    for graph in graphs:
        for node in graph.get("nodes", []):
            props = node.setdefault("property", {})
            match node.get("addon"):
                case "file_source":
                    props.update(path=str(input_path), speed=speed)
                    if input_rate is not None:
                        props["sample_rate"] = input_rate
                case "wav_sink":
                    props["path"] = str(output_path)
                case "transcript_collector" if transcript_path is not None:
                    props["path"] = str(transcript_path)
                case "glm_v2v_python":
                    props.update(glm)
                case _:
                    continue
            found.add(node["addon"])
    missing = {"file_source", "glm_v2v_python", "wav_sink"} - found
    if missing:
        raise TurnError(f"the graph has no {', '.join(sorted(missing))} node")
    return app


def _first(runner: GraphRunner, kind: type[Any]) -> Any:
    for spec in runner.graph.nodes:
        node = runner.node(spec.name)
        if isinstance(node, kind):
            return node
    return None


async def run_turn(
    app: dict[str, Any], graph_name: str | None = None, *, timeout_s: float = 60.0
) -> TurnReport:
    """Play the input, wait for the assistant to finish answering, stop the graph."""
    graph = load_graph(app, graph_name)
    report = TurnReport()
    async with GraphRunner(graph) as runner:
        source: FileSource = _first(runner, FileSource)
        glm: GLMRealtimeExtension = _first(runner, GLMRealtimeExtension)
        collector: TranscriptCollector | None = _first(runner, TranscriptCollector)
        assert glm.session is not None
        try:
            async with timeout(timeout_s):
                await source.finished.wait()
                await glm.session.wait_settled(1)
        except TIMEOUT_ERRORS as exc:
            raise TurnError(f"no complete reply within {timeout_s:g} s") from exc
        finally:
            if collector is not None:
                report.segments = list(collector.segments)
                report.metrics = list(collector.metrics)
                report.errors = list(collector.errors)
        if glm.session.state is SessionState.FAILED:
            reasons = "; ".join(str(e.get("message")) for e in report.errors) or "unknown"
            raise TurnError(f"the GLM session failed: {reasons}")
    return report


def wav_seconds(path: Path) -> float:
    """Duration of a WAV file (0 when absent)."""
    if not path.exists():
        return 0.0
    with wave.open(str(path)) as wav:
        frames: int = wav.getnframes()
        rate: int = wav.getframerate()
        return frames / rate


def summary_lines(report: TurnReport, output_path: Path) -> list[str]:
    """A human summary: transcripts, timing, output."""
    lines = [f"user: {text}" for text in report.said("user")]
    lines += [f"assistant: {text}" for text in report.said("assistant")]
    for metrics in report.response_metrics():
        if metrics.get("ttfa_ms") is not None:
            lines.append(f"time to first audio: {metrics['ttfa_ms']:.0f} ms after end of speech")
    if report.connect_ms():
        lines.append(f"connect: {report.connect_ms()[0]:.0f} ms")
    lines.append(f"wrote {wav_seconds(output_path):.2f} s of assistant audio to {output_path}")
    lines += [f"error: {json.dumps(e, ensure_ascii=False)}" for e in report.errors]
    return lines
