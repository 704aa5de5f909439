"""``--ray``: the eval on a local Ray of 2 CPUs started here, real runners, real backends.

The same plan and the same judgements as the in-process eval, a runner killed mid-run
loses nothing and counts nothing twice (a conversation whose runner died on every attempt
is an error record), and the GLM session cap holds across runners (a real server counts
the sessions), a dead runner's permits going to the others. A model plays the caller on
the runners as in process (a stand-in OpenAI-compatible server, the driver's key).
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from glm_gym.callers import CallerConfigError, CallerOptions
from glm_gym.eval_cli import use_loopback_ray
from glm_gym.evaluation import EvalOptions, WorkItem, run_eval
from glm_gym.report import Report

pytestmark = pytest.mark.speech
pytest.importorskip("pocketsphinx")
use_loopback_ray()
ray = pytest.importorskip("ray")

from glm_gym.ray_eval import RayOptions, run_ray_eval  # noqa: E402  (after the loopback setting)
from glm_gym.scenarios import load_scenarios, select_scenarios  # noqa: E402
from glm_local.server import LocalRealtimeServer  # noqa: E402
from realtime.compat import timeout  # noqa: E402
from tests.fake_openai import FakeChat, chat_server  # noqa: E402

SLICE = ("small-talk-hello", "one-tool-weather-paris", "question-days-in-week")
TRIALS = 2
SEED = 11


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="glm-tests")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def scenarios() -> list[Any]:
    return select_scenarios(load_scenarios(), SLICE)


@pytest.fixture(scope="module")
def local_report(scenarios: list[Any]) -> Report:
    return asyncio.run(run_eval(scenarios, EvalOptions(seed=SEED), concurrency=4, trials=TRIALS))


def plan(report: Report) -> dict[tuple[str, int], Any]:
    """What was to be run: every (scenario, trial) once, its seed, category, expected calls."""
    keys = [r.key for r in report.records]
    assert len(keys) == len(set(keys))
    return {r.key: (r.seed, r.category, r.expected_tool_calls) for r in report.records}


def assert_same_outcomes(report: Report, reference: Report) -> None:
    """Where the backend heard the caller say the same words, the same judgement.

    The caller's piper voice varies a little between processes (its noise), so the
    recogniser may hear a line differently in another process; what follows from the
    same words must not differ.
    """
    assert plan(report) == plan(reference)

    def judged(r: Any) -> tuple[Any, ...]:
        calls = [(c.name, c.arguments) for c in r.tool_calls]
        return (r.passed, r.reward, r.criteria, [t.action for t in r.turns], calls)

    def heard(r: Any) -> list[Any]:
        return [t.info.get("heard") for t in r.turns]

    ours = {r.key: r for r in report.records}
    same = [r for r in reference.records if heard(ours[r.key]) == heard(r)]
    assert same, "no conversation was heard alike: nothing to compare"
    assert [judged(ours[r.key]) for r in same] == [judged(r) for r in same]


async def test_ray_eval_gives_the_in_process_report_on_the_same_slice_and_seed(
    local_ray: Any, scenarios: list[Any], local_report: Report
) -> None:
    report = await run_ray_eval(
        scenarios, EvalOptions(seed=SEED), RayOptions(actors=2), concurrency=4, trials=TRIALS
    )
    assert_same_outcomes(report, local_report)
    assert report.meta["runner"] == "ray" and report.meta["ray"]["actors"] == 2
    assert {r.worker for r in report.records} == {"runner-0", "runner-1"}  # both took work
    assert {r.attempts for r in report.records} == {1}


async def test_a_runner_killed_mid_run_has_its_conversations_retried_and_counted_once(
    local_ray: Any, scenarios: list[Any], local_report: Report
) -> None:
    pids: dict[str, int] = {}
    killed: list[str] = []

    def on_dispatch(_item: WorkItem, runner: dict[str, Any]) -> None:
        pids[runner["name"]] = runner["pid"]

    def on_record(record: Any) -> None:
        # The first runner to finish a conversation still holds its second one: kill it.
        if not killed:
            killed.append(record.worker)
            os.kill(pids[record.worker], signal.SIGKILL)

    report = await run_ray_eval(
        scenarios,
        EvalOptions(seed=SEED),
        RayOptions(actors=2),
        concurrency=4,
        trials=TRIALS,
        on_record=on_record,
        on_dispatch=on_dispatch,
    )
    assert report.meta["ray"]["runner_deaths"] == 1
    retried = [r for r in report.records if r.attempts == 2]
    assert retried and all(r.worker != killed[0] for r in retried)
    assert_same_outcomes(report, local_report)  # every pair once, none lost
    assert report.summary["retried"] == len(retried)


async def test_a_conversation_whose_runner_died_on_every_attempt_is_an_error_record(
    local_ray: Any, scenarios: list[Any]
) -> None:
    """Attempts exhausted: the conversation is reported as failed with the reason, not lost."""
    held: dict[str, set[tuple[str, int]]] = {}  # dispatched to a runner, not yet finished
    pids: dict[str, int] = {}
    killed: list[str] = []

    def on_dispatch(item: WorkItem, runner: dict[str, Any]) -> None:
        pids[runner["name"]] = runner["pid"]
        held.setdefault(runner["name"], set()).add((item.scenario_id, item.trial))

    def on_record(record: Any) -> None:
        if record.worker is None:  # a conversation given up
            return
        held[record.worker].discard(record.key)
        if not killed:  # its other slot is still playing a conversation: kill it
            killed.append(record.worker)
            os.kill(pids[record.worker], signal.SIGKILL)

    report = await run_ray_eval(
        scenarios,
        EvalOptions(seed=SEED),
        RayOptions(actors=1, max_attempts=1),
        concurrency=2,
        trials=TRIALS,
        on_record=on_record,
        on_dispatch=on_dispatch,
    )
    lost = held[killed[0]]  # what the dead runner had and never finished
    assert lost and report.meta["ray"]["runner_deaths"] == 1
    keys = [r.key for r in report.records]
    assert len(set(keys)) == len(keys) == len(scenarios) * TRIALS  # each pair once
    failed = {r.key: r for r in report.records if r.errors}
    assert set(failed) == lost, {k: r.errors for k, r in failed.items()}
    for record in failed.values():
        assert record.errors == ["not run: its runner died on each of 1 attempts"]
        assert record.attempts == 1 and not record.passed and record.worker is None
    assert report.meta["complete"] is True
    assert report.summary["errors"]["records_with_errors"] == len(lost)


async def test_the_glm_session_cap_holds_across_runners(local_ray: Any) -> None:
    short = select_scenarios(load_scenarios(), ["small-talk-hello"])
    token = "cap-test.secret"
    # The stand-in for GLM refuses a third session at once, as GLM does over its cap.
    async with LocalRealtimeServer("127.0.0.1", 0, token, max_sessions=2) as server:
        options = EvalOptions(backend="glm", glm_url=server.url, max_sessions=2, seed=SEED)
        report = await run_ray_eval(
            short, options, RayOptions(actors=2), concurrency=4, trials=4, api_key=token
        )
        metrics = server.metrics()
    assert (metrics.sessions_served, metrics.sessions_refused) == (4, 0)
    assert metrics.peak_sessions == 2  # 4 slots, never over the cap
    assert report.meta["ray"]["session_cap"]["max_in_use"] == 2
    assert [r.errors for r in report.records] == [[]] * 4
    assert report.meta["clock"] == "wall"
    assert token not in report.to_json()


class KillingServer(LocalRealtimeServer):
    """Kills the process of the runner whose conversation opens the first session."""

    runner_pid: int | None = None

    async def _handle(self, ws: Any) -> None:
        if self.sessions_served == 0 and self.runner_pid is not None:
            os.kill(self.runner_pid, signal.SIGKILL)  # it holds a permit of the cap now
        await super()._handle(ws)


async def test_a_dead_runners_glm_permits_go_to_the_others(local_ray: Any) -> None:
    """With a cap of 1 the killed runner held the only permit: its replacement gets it
    (the run would wait for it for ever otherwise)."""
    short = select_scenarios(load_scenarios(), ["small-talk-hello"])
    token = "cap-test.secret"
    async with KillingServer("127.0.0.1", 0, token) as server:

        def on_dispatch(_item: WorkItem, runner: dict[str, Any]) -> None:
            if runner["name"] == "runner-0":
                server.runner_pid = runner["pid"]

        options = EvalOptions(backend="glm", glm_url=server.url, max_sessions=1, seed=SEED)
        async with timeout(120):  # without the fix: waits for the permit for ever
            report = await run_ray_eval(
                short,
                options,
                RayOptions(actors=1),
                concurrency=2,
                trials=2,
                api_key=token,
                on_dispatch=on_dispatch,
            )
    assert report.meta["ray"]["runner_deaths"] == 1
    assert [r.errors for r in report.records] == [[], []]
    assert {r.attempts for r in report.records} == {2}  # both were held by the dead runner
    assert {r.worker for r in report.records} == {"runner-1"}
    assert report.meta["ray"]["session_cap"]["max_in_use"] == 1
    assert server.sessions_served == 3  # the killed one, then the two played to the end


CALLER_KEY = "ray-caller.secret"
DAYS_LINE = "Thought: I ask my question.\nAction: say Tell me how many days there are in a week."


def days_user(messages: list[dict[str, str]]) -> str:
    """The model playing question-days-in-week: its question, then the stop token."""
    if messages[0]["role"] != "system":
        return "ready"  # the connection check
    asked = sum(m["role"] == "user" for m in messages) > 1
    return "Thought: I have my answer.\n###STOP###" if asked else DAYS_LINE


async def test_a_model_caller_plays_on_the_runners_with_the_drivers_key(
    local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--caller openai --ray``: every runner opens the model with the driver's key (set
    after Ray started, so only the runners' environment can carry it), and the report sums
    what the runners' callers spent."""
    short = select_scenarios(load_scenarios(), ["question-days-in-week"])
    fake = FakeChat(policy=days_user, key=CALLER_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", CALLER_KEY)
    with chat_server(fake) as url:
        caller = CallerOptions(kind="openai", model="sim-user-1", url=url)
        options = EvalOptions(seed=SEED, caller=caller)
        report = await run_ray_eval(short, options, RayOptions(actors=2), concurrency=2, trials=2)
    assert [r.errors for r in report.records] == [[]] * 2
    assert {r.caller for r in report.records} == {"openai:sim-user-1"}
    assert all(r.worker in ("runner-0", "runner-1") for r in report.records)
    assert [r.turns[1].action for r in report.records] == [DAYS_LINE] * 2
    assert report.meta["runner"] == "ray" and report.meta["caller"] == "openai:sim-user-1"
    usage = report.meta["caller_usage"]
    assert usage["requests"] == fake.answered == 2 + 2 * 2  # each runner's check, every turn
    assert CALLER_KEY not in report.to_json()


async def test_a_caller_key_the_model_refuses_ends_the_ray_eval_as_in_process(
    local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = select_scenarios(load_scenarios(), ["question-days-in-week"])
    fake = FakeChat(policy=days_user, key=CALLER_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret")
    with chat_server(fake) as url:
        options = EvalOptions(caller=CallerOptions(kind="openai", model="sim-user-1", url=url))
        with pytest.raises(CallerConfigError, match="refused the key") as refused:
            await run_ray_eval(short, options, RayOptions(actors=2), concurrency=2, trials=2)
    assert "sk-wrong-secret" not in str(refused.value)
    assert fake.answered == 0


async def test_a_request_the_model_refuses_mid_run_ends_the_ray_eval_as_in_process(
    local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check passes, then the model refuses a conversation's request (400): every
    conversation would fail alike, so the eval stops with the reason, not a record each."""
    short = select_scenarios(load_scenarios(), ["question-days-in-week"])
    fake = FakeChat(policy=lambda m: "ready" if m[0]["role"] != "system" else 400, key=CALLER_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", CALLER_KEY)
    with chat_server(fake) as url:
        options = EvalOptions(caller=CallerOptions(kind="openai", model="sim-user-1", url=url))
        with pytest.raises(CallerConfigError, match="refused the request"):
            await run_ray_eval(short, options, RayOptions(actors=1), concurrency=1, trials=1)
    assert fake.answered == 1  # the check only
