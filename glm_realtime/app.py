"""Run one spoken turn through a graph: what ``glm-realtime run`` and ``replay`` do.

The graph is a TEN-style app ``property.json``; its nodes are found by addon, so any
graph with a ``file_source``, a ``glm_v2v_python`` node and a ``wav_sink`` works:
the input file goes to every ``file_source``, the output path to every ``wav_sink``,
and backend settings to every GLM node.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import glm_realtime.extension  # noqa: F401 - registers glm_v2v_python for load_graph
from glm_realtime.config import ExtensionConfig
from glm_realtime.extension import GLMRealtimeExtension
from glm_realtime.host.errors import GraphError
from glm_realtime.host.graph import (
    Graph,
    choose_graph,
    graph_names,
    load_graph,
    read_app_property,
)
from glm_realtime.host.runner import GraphRunner
from glm_realtime.nodes import FileSource, TranscriptCollector
from glm_realtime.progress import TurnProgress
from glm_realtime.session import SessionState, VoiceSession
from realtime.compat import TIMEOUT_ERRORS, timeout

__all__ = ["DEFAULT_GRAPH", "TurnReport", "check_app", "load_app", "prepare_app", "run_turn"]

DEFAULT_GRAPH = Path(__file__).parent / "graphs" / "voice_assistant.json"
_PROGRESS_TICK_S = 0.2  # status line refresh


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


REQUIRED_ADDONS = ("file_source", "glm_v2v_python", "wav_sink")


def load_app(path: str | Path | None) -> dict[str, Any]:
    """The app property file (the bundled voice assistant graph by default).

    Raises:
        GraphError: Unreadable, or not an app graph (the message says how to make one).
    """
    path = path or DEFAULT_GRAPH
    app = read_app_property(path)
    try:
        graph_names(app)
    except GraphError as exc:
        raise GraphError(
            f"{path}: {exc}.\nAn app graph lists its nodes and connections under "
            f"'_ten.predefined_graphs': copy {DEFAULT_GRAPH} and edit it."
        ) from exc
    return app


def check_app(app: dict[str, Any], graph_name: str | None = None) -> None:
    """Check, before anything starts, that the graph loads and has the nodes a turn needs.

    Raises:
        GraphError: An invalid graph (unknown addon, unknown key, bad property...).
        ConfigError: A GLM node's settings are invalid.
        TurnError: The graph lacks a file_source, glm_v2v_python or wav_sink node.
    """
    graph = load_graph(app, graph_name)
    for node in graph.nodes:
        if node.addon == "glm_v2v_python":  # its settings, checked before a backend starts
            config = ExtensionConfig.from_properties(dict(node.properties), node.name)
            if not config.server_vad and not _flushed(graph, node.name):
                raise TurnError(
                    f"node '{node.name}' has server_vad false (client VAD): the user's turn "
                    f"ends only on a flush cmd into it, and no node of graph '{graph.name}' "
                    f"sends it one, so no reply would come; set server_vad true, or connect "
                    f"a node's flush cmd to '{node.name}'"
                )
    missing = [a for a in REQUIRED_ADDONS if a not in {node.addon for node in graph.nodes}]
    if missing:
        raise TurnError(
            f"graph '{graph.name}' has no {', '.join(missing)} node; a turn needs a "
            f"{', a '.join(REQUIRED_ADDONS)} node (see {DEFAULT_GRAPH})"
        )


def _flushed(graph: Graph, node: str) -> bool:
    """Whether some node of ``graph`` sends a ``flush`` cmd to ``node``."""
    return any(
        r.kind == "cmd" and r.name == "flush" and node in r.destinations for r in graph.routes
    )


def prepare_app(
    app: dict[str, Any],
    *,
    input_path: Path,
    output_path: Path,
    glm: dict[str, Any],
    graph_name: str | None = None,
    speed: float = 1.0,
    input_rate: int | None = None,
    transcript_path: Path | None = None,
) -> dict[str, Any]:
    """A copy of ``app`` with the input, output and backend set on the graph's nodes.

    ``app`` must have passed :func:`check_app` (the command line checks it before it
    starts a backend).

    Raises:
        GraphError: If ``graph_name`` names no graph of ``app``.
    """
    app = copy.deepcopy(app)
    for node in choose_graph(app, graph_name).get("nodes", []):
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
    return app


def _first(runner: GraphRunner, kind: type[Any]) -> Any:
    for spec in runner.graph.nodes:
        node = runner.node(spec.name)
        if isinstance(node, kind):
            return node
    return None


async def _follow(source: FileSource, progress: TurnProgress) -> None:
    """Redraw how much audio was sent until the input is played (display only)."""
    progress.start()
    while not source.finished.is_set():
        progress.sent(source.seconds_sent)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(source.finished.wait(), _PROGRESS_TICK_S)
    progress.sent_all()


async def _answered(source: FileSource, session: VoiceSession) -> None:
    """The input was played and the reply to it settled, or the session failed first (a
    refused key ends the turn at once, not after the whole input). A greeting is not the
    reply: the turn waits for the answer to what the user said."""
    played = asyncio.create_task(source.finished.wait(), name="turn:played")
    ended = asyncio.create_task(session.wait_answered(1), name="turn:answered-or-failed")
    try:
        await asyncio.wait({played, ended}, return_when=asyncio.FIRST_COMPLETED)
        if session.state is SessionState.FAILED:
            return
        await played
        await session.wait_answered(1)
    finally:
        for task in (played, ended):
            task.cancel()
        await asyncio.gather(played, ended, return_exceptions=True)


async def run_turn(
    app: dict[str, Any],
    graph_name: str | None = None,
    *,
    timeout_s: float = 60.0,
    progress: TurnProgress | None = None,
) -> TurnReport:
    """Play the input, wait for the assistant to finish answering, stop the graph.

    Raises:
        TurnError: No complete reply in ``timeout_s``, or the GLM session failed (the
            message ends with the session's reason; the error that failed it, if one did,
            is its ``__cause__``).
    """
    graph = load_graph(app, graph_name)
    report = TurnReport()
    timed_out = False
    async with GraphRunner(graph) as runner:
        source: FileSource = _first(runner, FileSource)
        glm: GLMRealtimeExtension = _first(runner, GLMRealtimeExtension)
        collector: TranscriptCollector | None = _first(runner, TranscriptCollector)
        assert glm.session is not None
        follower = None
        if progress is not None:
            if collector is not None:
                collector.on_text = progress.text
            follower = asyncio.create_task(_follow(source, progress), name="turn:progress")
        try:
            async with timeout(timeout_s):
                await _answered(source, glm.session)
        except TIMEOUT_ERRORS:  # distinct types on 3.10
            timed_out = True
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)
                assert progress is not None
                progress.close()
        failed = glm.session.state is SessionState.FAILED
        failure = glm.session.failure
    # Leaving the runner drained the queues: the session's error reached the collector.
    if collector is not None:
        report.segments = list(collector.segments)
        report.metrics = list(collector.metrics)
        report.errors = list(collector.errors)
    if failed:
        reasons = "; ".join(str(e.get("message")) for e in report.errors) or "no reason given"
        raise TurnError(f"the GLM session failed: {reasons}") from failure
    if timed_out:
        raise TurnError(f"no complete reply within {timeout_s:g} s")
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
