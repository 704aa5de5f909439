"""``glm-realtime eval``: run the scenario set with a caller, write the report.

The caller is the scenario's script (the default), or with ``--caller openai`` a model behind
any OpenAI-compatible chat completions endpoint playing the scenario's brief.

Attached lazily to the ``glm-realtime`` group (``glm_realtime/cli.py``). This module
imports only click; the eval, rich and matplotlib load when the command runs, Ray only with
``--ray``.

Ctrl-C stops the run: the conversations in flight are cancelled (on Ray too), the report
of those that finished is written, marked partial, and the exit code is 130. That holds
from the moment the options are accepted, also before a conversation (or Ray) started:
the report is then empty.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from glm_gym.caller_cli import caller_from, caller_options
from glm_gym.cli_options import max_sessions_option, realtime_option, scenarios_option
from glm_realtime.cli_group import api_key_option, check_writable, url_option

if TYPE_CHECKING:
    from glm_gym.evaluation import EvalOptions
    from glm_gym.records import ScenarioRecord
    from glm_gym.report import Report

__all__ = ["eval_command", "use_loopback_ray"]

EXIT_INTERRUPTED = 130


def _names(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if values and not names:  # an empty --only (an unset variable, say) is not "all of them"
        raise click.BadParameter(
            f"{values[0]!r} names no scenario; give ids or categories, comma-separated "
            "(leave --only out to run them all)"
        )
    return names


@click.command("eval")
@scenarios_option("scenario_path", must_exist=False)
@click.option(
    "--only",
    multiple=True,
    callback=_names,
    metavar="IDS|CATEGORIES",
    help="Only these scenario ids or categories (comma-separated or repeated).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 512),
    default=4,
    show_default=True,
    help="Conversations at once (with --ray: over all actors).",
)
@click.option(
    "--trials",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Runs of each scenario (pass^k is reported for k = 1..trials).",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "glm"]),
    default=None,
    help="local: the embedded backend; glm: the cloud (default: glm with a key).",
)
@api_key_option("GLM key (env GLM_API_KEY); never written to the report.")
@url_option("GLM websocket URL (default: the cloud's).", dest="glm_url")
@max_sessions_option("Concurrent GLM sessions per key (across the cluster with --ray).")
@click.option(
    "--server",
    "server_url",
    default=None,
    metavar="URL",
    help="Run through a gym server (glm-realtime gym) over HTTP instead of in process.",
)
@realtime_option
@click.option(
    "--turn-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds a turn may take before it counts as timed out.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the run: the order conversations start in, and each one's recorded seed.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/eval"),
    show_default=True,
    help="Directory for the report.",
)
@caller_options
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run on Ray: alone starts a local Ray; 'auto' or "
    "host:port joins a cluster (needs the ray extra).",
)
@click.option(
    "--actors",
    type=click.IntRange(1, 10_000),
    default=None,
    help="With --ray: runner actors (default: one per cluster CPU).",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 10),
    default=3,
    show_default=True,
    help="With --ray: tries of a conversation whose runner died.",
)
def eval_command(
    scenario_path: Path | None,
    only: list[str],
    concurrency: int,
    trials: int,
    backend: str | None,
    api_key: str | None,
    out_dir: Path,
    ray_address: str | None,
    actors: int | None,
    max_attempts: int,
    **option_values: Any,
) -> None:
    """Play the scenarios with the scripted caller (or a model: --caller openai) and write
    a report to --out."""
    from glm_gym.callers import CallerError
    from glm_gym.evaluation import EvalError, EvalOptions
    from glm_gym.scenarios import ScenarioError, UnknownScenarios, load_scenarios, select_scenarios

    try:
        caller = caller_from(option_values)
        try:
            scenarios = select_scenarios(load_scenarios(scenario_path), only)
        except UnknownScenarios as exc:
            raise EvalError(f"--only: {exc} (ids: see the scenario file)") from exc
        chosen = backend or ("glm" if api_key else "local")
        if chosen == "glm" and not api_key and not option_values["server_url"]:
            raise EvalError("--backend glm needs a key: set GLM_API_KEY or pass --api-key")
        options = EvalOptions(
            backend=chosen,  # type: ignore[arg-type]
            realtime=option_values["realtime"],
            turn_timeout_s=option_values["turn_timeout"],
            seed=option_values["seed"],
            server_url=option_values["server_url"],
            glm_url=option_values["glm_url"],
            max_sessions=option_values["max_sessions"],
            caller=caller,
        )
        if ray_address is not None and options.server_url is not None:
            raise EvalError("--ray and --server do not combine: Ray actors run the envs")
        ray_options = _ray_options(ray_address, actors, max_attempts)
    except (ScenarioError, EvalError, CallerError) as exc:
        raise click.UsageError(str(exc)) from exc
    check_writable(out_dir, "'--out'", folder=True)  # not found only after the whole run
    progress = _import_progress()
    total = len(scenarios) * trials
    where = f"Ray ({ray_address})" if ray_address else options.server_url or "in process"
    with _EarlyCtrlC() as early:
        click.echo(
            f"eval: {len(scenarios)} scenarios x {trials} trials on the {chosen} backend, "
            f"{where}, {options.clock} clock, caller {caller.label}",
            err=True,
        )
        with progress(total) as on_record:
            run = _run(
                scenarios, options, ray_options, concurrency, trials, on_record, api_key, early
            )
            try:
                report = asyncio.run(run)
            # A refused key, an unknown model, no gym server at --server: no report to write.
            except (CallerError, EvalError) as exc:
                raise click.ClickException(str(exc)) from None
    paths = report.write(out_dir)
    for line in _summary(report):
        click.echo(line)
    click.echo(f"report: {paths['report.md']} (JSON, Markdown, PNG in {out_dir})")
    if not report.complete:
        click.echo("interrupted: the report holds the conversations that finished", err=True)
        sys.exit(EXIT_INTERRUPTED)


class _EarlyCtrlC:
    """Ctrl-C before the run's loop takes SIGINT over: kept (``hit``), not click's bare
    "Aborted.". Imports, the progress bar and the loop's start come first; the run then
    starts stopped and writes its (empty) partial report as for a later Ctrl-C."""

    def __init__(self) -> None:
        self.hit = False
        self._previous: Any = None

    def __enter__(self) -> _EarlyCtrlC:
        self._previous = signal.signal(signal.SIGINT, self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _record(self, signum: int, frame: Any) -> None:
        self.hit = True


def use_loopback_ray() -> None:
    """Keep a Ray that this process starts on 127.0.0.1 (call before importing Ray).

    Ray binds a single local node to the machine's routable address unless this setting
    (the one it uses for single-node Ray on macOS and Windows) is off. Joining a cluster
    needs the routable address, so only a local start calls this.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _ray_options(address: str | None, actors: int | None, max_attempts: int) -> Any:
    from glm_gym.evaluation import EvalError

    if address is None:
        if actors is not None:
            raise EvalError("--actors needs --ray")
        return None
    if address == "local":
        use_loopback_ray()
    try:
        from glm_gym.ray_eval import RayOptions
    except ImportError as exc:
        raise EvalError(
            f"--ray needs Ray ({exc}); install it with: pip install 'glm-realtime[ray]'"
        ) from exc
    return RayOptions(
        address=None if address == "local" else address, actors=actors, max_attempts=max_attempts
    )


async def _run(
    scenarios: list[Any],
    options: EvalOptions,
    ray_options: Any,
    concurrency: int,
    trials: int,
    on_record: Any,
    api_key: str | None,
    early: _EarlyCtrlC,
) -> Report:
    from glm_gym.evaluation import run_eval

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if early.hit:  # a Ctrl-C came before this handler: stop at once
        stop.set()
    try:
        if ray_options is None:
            return await run_eval(
                scenarios,
                options,
                concurrency=concurrency,
                trials=trials,
                on_record=on_record,
                stop=stop,
                api_key=api_key,
            )
        from glm_gym.ray_eval import run_ray_eval

        return await run_ray_eval(
            scenarios,
            options,
            ray_options,
            concurrency=concurrency,
            trials=trials,
            on_record=on_record,
            stop=stop,
            api_key=api_key,
        )
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _import_progress() -> Any:
    try:
        import matplotlib  # noqa: F401  (the report's plots: fail before the run, not after)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
    except ImportError as exc:
        raise click.ClickException(
            f"the eval needs the gym extra ({exc}); install it with: "
            "pip install 'glm-realtime[gym]'"
        ) from exc

    @contextmanager
    def progress(total: int) -> Iterator[Any]:
        console = Console(stderr=True)
        columns = (
            TextColumn("eval"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("passing {task.fields[passed]}/{task.completed}"),
            TextColumn("left"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("eval", total=total, passed=0)
            passed = 0

            def on_record(record: ScenarioRecord) -> None:
                nonlocal passed
                passed += record.passed
                bar.update(task, advance=1, passed=passed)
                if not console.is_terminal:  # no live bar: one line per conversation
                    mark = "pass" if record.passed else "FAIL"
                    console.print(
                        f"{mark} {record.scenario_id} trial {record.trial} "
                        f"({len(record.turns)} turns, attempts {record.attempts})",
                        highlight=False,
                    )

            yield on_record

    return progress


def _summary(report: Report) -> list[str]:
    from glm_gym.report import fmt_number, fmt_percent

    s = report.summary
    trials = s["trials"]
    v2v = s["latency_ms"]["voice_to_voice"]
    outcome = [f"passed {s['passed']}/{s['records']}", f"pass@1 {fmt_percent(trials['pass@1'])}"]
    outcome += [f"pass^{k} {fmt_percent(v)}" for k, v in trials["pass^k"].items() if k != "1"]
    lines = [
        "  ".join(outcome),
        f"voice-to-voice ms p50 {fmt_number(v2v['p50'])} p95 {fmt_number(v2v['p95'])} "
        f"max {fmt_number(v2v['max'])} ({report.clock_note()})",
    ]
    if s["errors"]["records_with_errors"]:
        lines.append(f"errors in {s['errors']['records_with_errors']} conversations (see report)")
    return lines
