"""``glm-realtime eval --caller openai``: a chat model plays the caller's brief.

Against a real HTTP server on 127.0.0.1 speaking the chat completions protocol
(``tests/fake_openai.py``) whose user is deterministic: its replies follow from the
messages it receives. No code of ours is mocked. The client's retries and refusals are
tested on the client; the CLI's errors as a real process (exit code, one line, no
traceback); the whole eval of a small slice on the embedded backend (speech).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from glm_gym.callers import CallerConfigError, CallerOptions, CallerUnavailable, open_caller
from glm_gym.chat_client import ChatClient
from glm_gym.scenarios import load_scenarios
from glm_gym.simulator import STOP_TOKEN
from tests.cli_process import assert_user_error, cli
from tests.fake_openai import FakeChat, chat_server
from tests.net_utils import refused_port

F = TypeVar("F")
MODEL = "sim-user-1"
KEY = "test-key"
ENV = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": None, "GLM_API_KEY": None}


def goal(messages: list[dict[str, str]]) -> str:
    """The caller's goal, read from the brief in the system message."""
    for line in messages[0]["content"].splitlines():
        if line.startswith("- Your goal: "):
            return line.removeprefix("- Your goal: ")
    return ""


def users(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


# The deterministic user of the slice: what it says follows from its goal and the turn.
HELLO_GOAL = "Say hello, then thank the assistant and say goodbye; it should wish you well."
DAYS_GOAL = "Ask how many days a week has."
HELLO_LINE = "Thought: I greet it.\nAction: say Hello, good to hear you."
DAYS_LINE = "Thought: I ask my question.\nAction: say Tell me how many days there are in a week."
NOT_AN_ACTION = "Hello!"
STOP = f"Thought: I have heard enough.\n{STOP_TOKEN}"


OVERLOADED_GOAL = "Ask for the capital of France."
WEATHER_GOAL = "Find out the weather in Paris."
WEATHER_LINE = "Thought: I ask about the weather.\nAction: say What is the weather in Paris?"


def slice_user(messages: list[dict[str, str]]) -> str | int:
    heard = users(messages)
    if messages[0]["role"] != "system":
        return "ready"  # the connection check
    if goal(messages) == HELLO_GOAL:  # an answer that is not an action, a line, the token
        return [NOT_AN_ACTION, HELLO_LINE, STOP][min(len(heard), 3) - 1]
    if goal(messages) == DAYS_GOAL:
        return DAYS_LINE if len(heard) == 1 else STOP
    if goal(messages) == WEATHER_GOAL:
        return WEATHER_LINE if len(heard) == 1 else STOP
    if goal(messages) == OVERLOADED_GOAL:
        return 503  # whatever the conversation: the endpoint is overloaded
    return "Thought: my brief is not one I know.\nAction: hang up"


@pytest.fixture
def chat() -> Iterator[tuple[FakeChat, str]]:
    fake = FakeChat(policy=slice_user)
    with chat_server(fake) as url:
        yield fake, url


def client(url: str, **kwargs: Any) -> ChatClient:
    return ChatClient(url, MODEL, api_key=KEY, **kwargs)


async def test_request_is_the_documented_chat_completions_shape(
    chat: tuple[FakeChat, str],
) -> None:
    fake, url = chat
    async with client(url, temperature=0.3) as model:
        reply = await model.complete([{"role": "user", "content": "hi"}], seed=5)
    assert reply == "ready"
    (request,) = fake.requests
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["body"] == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.3,
        "seed": 5,
    }
    assert (model.usage.requests, model.usage.prompt_tokens, model.usage.completion_tokens) == (
        1,
        1,
        1,
    )


async def test_a_5xx_then_success_is_retried(
    chat: tuple[FakeChat, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = chat
    fake.fail_next = [503, 500, 429]
    with caplog.at_level("WARNING", logger="glm_gym.chat_client"):
        async with client(url, retries=3) as model:
            assert await model.complete([{"role": "user", "content": "hi"}]) == "ready"
    assert len(fake.requests) == 4
    assert model.usage.retries == 3 and model.usage.requests == 1
    logged = [r.getMessage() for r in caplog.records]
    assert [m.split(": ")[1].split(";")[0] for m in logged] == ["503", "500", "429"]
    assert KEY not in " ".join(logged)


async def test_retries_are_bounded_then_the_endpoint_is_unavailable(
    chat: tuple[FakeChat, str],
) -> None:
    fake, url = chat
    fake.fail_next = [502] * 5
    async with client(url, retries=2) as model:
        with pytest.raises(CallerUnavailable, match="answered 502 3 times"):
            await model.complete([{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 3


async def test_refusals_are_not_retried_and_say_what_to_change(chat: tuple[FakeChat, str]) -> None:
    fake, url = chat
    async with ChatClient(url, MODEL, api_key="wrong") as model:
        with pytest.raises(CallerConfigError, match="refused the key .*401.*OPENAI_API_KEY"):
            await model.complete([{"role": "user", "content": "hi"}])
    async with ChatClient(url, "gpt-nope", api_key=KEY) as model:
        with pytest.raises(CallerConfigError, match="no model 'gpt-nope'.*--caller-model"):
            await model.complete([{"role": "user", "content": "hi"}])
    async with client(url.removesuffix("/v1")) as model:
        with pytest.raises(CallerConfigError, match="not a chat completions endpoint.*base URL"):
            await model.complete([{"role": "user", "content": "hi"}])
    async with client(url.replace("/v1", "/not-chat/v1")) as model:
        with pytest.raises(CallerConfigError, match="not a chat completion"):
            await model.complete([{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 2  # the two refused by the chat route, each sent once


async def test_model_caller_plays_the_brief_and_hangs_up_on_the_stop_token(
    chat: tuple[FakeChat, str],
) -> None:
    """The model sees the brief and each observation; words before ###STOP### are said,
    then the caller hangs up without asking the model again."""
    fake, url = chat
    scenario = next(s for s in load_scenarios() if s.id == "question-days-in-week")
    fake.policy = lambda m: DAYS_LINE if len(users(m)) == 1 else f"Action: say Bye. {STOP_TOKEN}"
    options = CallerOptions(kind="openai", model=MODEL, url=url)
    async with open_caller(options, api_key=KEY) as caller:
        turns = caller.begin(scenario, seed=11)
        assert await turns.next_action("The assistant is listening.", {}) == DAYS_LINE
        said = await turns.next_action('The assistant said: "Seven."', {"assistant": "Seven."})
        assert said == "Action: say Bye."
        hang_up = await turns.next_action('The assistant said: "Goodbye."', {})
    assert hang_up is not None and hang_up.endswith("Action: hang up")
    first, second = fake.conversations()
    assert DAYS_GOAL in first[0]["content"] and STOP_TOKEN in first[0]["content"]
    assert second[-1] == {"role": "user", "content": 'The assistant said: "Seven."'}
    assert second[-2] == {"role": "assistant", "content": DAYS_LINE}
    assert {r["body"].get("seed") for r in fake.requests[1:]} == {11}
    usage = caller.usage()
    assert usage is not None and (usage["requests"], usage["retries"]) == (3, 0)  # check + 2


async def test_model_caller_hangs_up_after_invalid_answers_in_a_row(
    chat: tuple[FakeChat, str],
) -> None:
    fake, url = chat
    fake.policy = lambda m: NOT_AN_ACTION if m[0]["role"] == "system" else "ready"
    scenario = load_scenarios()[0]
    async with open_caller(CallerOptions(kind="openai", model=MODEL, url=url), api_key=KEY) as c:
        turns = c.begin(scenario, seed=0)
        answers = [await turns.next_action("Unknown action.", {}) for _ in range(4)]
    assert answers[:3] == [NOT_AN_ACTION] * 3  # the environment tells it how to answer
    assert answers[3] is not None and "4 invalid actions in a row" in answers[3]
    assert answers[3].endswith("Action: hang up")


# The command line as a user meets it: a real process, refused before a backend starts.


def error_line(err: str) -> str:
    """The one ``Error:`` line of the output."""
    (line,) = [line for line in err.splitlines() if line.startswith("Error:")]
    return line


def caller_args(url: str, *extra: str) -> tuple[str, ...]:
    return ("eval", "--only", "question-days-in-week", "--caller", "openai", "--caller-url", url,
            "--caller-model", MODEL, *extra)  # fmt: skip


async def test_cli_names_a_refused_key_in_one_line(
    chat: tuple[FakeChat, str], tmp_path: Path
) -> None:
    _, url = chat
    env = {**ENV, "OPENAI_API_KEY": "sk-wrong-secret"}
    code, out, err = await cli(*caller_args(url, "--out", str(tmp_path)), env=env)
    assert_user_error(code, err, 1)
    assert all(f in error_line(err) for f in ("refused the key", "401", "OPENAI_API_KEY"))
    assert "sk-wrong-secret" not in out + err
    assert not (tmp_path / "report.json").exists()


async def test_cli_names_a_model_the_endpoint_does_not_serve(
    chat: tuple[FakeChat, str], tmp_path: Path
) -> None:
    _, url = chat
    args = (*caller_args(url, "--out", str(tmp_path)), "--caller-model", "gpt-nope")
    code, _, err = await cli(*args, env=ENV)
    assert_user_error(code, err, 1)
    assert "no model 'gpt-nope'" in error_line(err) and "--caller-model" in error_line(err)


async def test_cli_refuses_a_caller_url_that_is_not_http(tmp_path: Path) -> None:
    code, _, err = await cli(*caller_args("api.openai.com/v1", "--out", str(tmp_path)), env=ENV)
    assert_user_error(code, err, 2, "--caller-url must be an http(s) base URL", "api.openai.com")


async def test_cli_refuses_caller_options_without_a_model_caller() -> None:
    code, _, err = await cli("eval", "--caller-model", MODEL, env=ENV)
    assert_user_error(code, err, 2, "--caller-model needs --caller openai")


async def test_cli_names_an_endpoint_it_cannot_reach(tmp_path: Path) -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}/v1"
        args = caller_args(url, "--caller-retries", "0", "--out", str(tmp_path))
        code, _, err = await cli(*args, env=ENV)
    assert_user_error(code, err, 1)
    assert "cannot reach the caller model" in error_line(err) and f":{port}/" in error_line(err)


# The whole eval of a small slice, the model playing the caller on the embedded backend.
# A whole eval in a process, its setup included: under a loaded gate it may need more than
# the suite's 180 s per test.
def slow(test: F) -> F:
    return pytest.mark.speech(pytest.mark.timeout(600)(test))


SLICE = (
    "small-talk-thanks-goodbye",
    "question-days-in-week",
    "question-capital-france",
    "weather-heard-not-seen",
)


def slice_file(directory: Path) -> Path:
    """The bundled scenarios of the slice, and the weather one with its fact due only in
    reply to the second turn, so the call goes on after the tool call."""
    bundled = {s.id: s for s in load_scenarios()}
    weather = bundled["one-tool-weather-paris"].model_dump(mode="json")
    weather["id"] = "weather-heard-not-seen"
    weather["success"]["say"] = [{"text": "sunny", "from_turn": 2}]
    lines = [bundled[i].model_dump(mode="json") for i in SLICE if i in bundled] + [weather]
    path = directory / "slice.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def model_eval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    pytest.importorskip("pocketsphinx")
    out = tmp_path_factory.mktemp("eval-caller")
    fake = FakeChat(policy=slice_user)
    with chat_server(fake) as url:
        env = {**os.environ, **{k: v for k, v in ENV.items() if v}, "OPENAI_BASE_URL": url}
        env.pop("GLM_API_KEY", None)
        args = ["--scenarios", str(slice_file(out)), "--caller", "openai", "--caller-model", MODEL,
                "--caller-retries", "1"]  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-c", "from glm_realtime.cli import main; main()", "eval", *args,
             "--concurrency", "2", "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=600, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    yield {"report": report, "fake": fake, "url": url, "proc": proc, "out": out}


@slow
def test_report_names_the_model_that_played_the_caller(model_eval: dict[str, Any]) -> None:
    report, url = model_eval["report"], model_eval["url"]
    meta = report["meta"]
    assert (meta["caller"], meta["caller_model"], meta["caller_url"]) == (
        f"openai:{MODEL}",
        MODEL,
        url,
    )
    assert {r["caller"] for r in report["records"]} == {f"openai:{MODEL}"}
    assert f"caller: openai:{MODEL}" in (model_eval["out"] / "report.md").read_text()
    usage = meta["caller_usage"]
    assert usage["requests"] == model_eval["fake"].answered  # the check and every turn
    # the overloaded conversation's retry (more if a kept-alive connection closed under load)
    assert usage["retries"] >= 1 and usage["prompt_tokens"] > usage["completion_tokens"] > 0
    text = (model_eval["out"] / "report.json").read_text() + model_eval["proc"].stderr
    assert KEY not in text  # the key is never written


@slow
def test_turns_are_the_models_actions_and_the_stop_token_hangs_up(
    model_eval: dict[str, Any],
) -> None:
    records = {r["scenario_id"]: r for r in model_eval["report"]["records"]}
    assert sorted(records) == sorted(SLICE)
    hello, days = records["small-talk-thanks-goodbye"], records["question-days-in-week"]
    # the model's answers, as it gave them: not an action, a line, then ###STOP###
    actions = [t["action"] for t in hello["turns"]]
    assert actions[:3] == ["", NOT_AN_ACTION, HELLO_LINE] and len(actions) == 4
    assert "Unknown action 'Hello!'" in hello["turns"][1]["info"]["invalid_action"]
    assert actions[3].endswith("Action: hang up") and "hung_up" in hello["turns"][3]["flags"]
    assert hello["turns"][3]["done"] and not hello["errors"]
    assert days["turns"][1]["action"] == DAYS_LINE and not days["errors"]
    assert days["turns"][-1]["done"]


@slow
def test_an_endpoint_failing_after_the_retries_fails_that_conversation_only(
    model_eval: dict[str, Any],
) -> None:
    records = {r["scenario_id"]: r for r in model_eval["report"]["records"]}
    overloaded = records["question-capital-france"]
    assert not overloaded["passed"] and len(overloaded["turns"]) == 1  # the reset only
    (error,) = overloaded["errors"]
    assert error.startswith("CallerUnavailable: ") and "answered 503 2 times" in error
    assert model_eval["report"]["meta"]["complete"] is True


@slow
def test_model_heard_the_brief_and_the_assistants_words(model_eval: dict[str, Any]) -> None:
    """Each request holds the brief (system message) and the observations so far."""
    record = {r["scenario_id"]: r for r in model_eval["report"]["records"]}
    conversations = model_eval["fake"].conversations()
    hello = max((m for m in conversations if goal(m) == HELLO_GOAL), key=len)
    assert "You know nothing beyond your goal." in hello[0]["content"]
    records_turns = record["small-talk-thanks-goodbye"]["turns"]
    assert users(hello)[0] == records_turns[0]["observation"]  # the reset: brief, greeting
    # what the environment answered to the invalid action went back to the model
    assert users(hello)[1] == records_turns[1]["observation"]
    said = records_turns[2]["assistant_text"]
    assert said and f'The assistant said: "{said}"' in users(hello)[2]
    days = [m for m in conversations if goal(m) == DAYS_GOAL]
    assert days and all(DAYS_GOAL in m[0]["content"] for m in days)


@slow
def test_model_hears_the_assistants_words_but_not_its_tool_calls(
    model_eval: dict[str, Any],
) -> None:
    """A caller does not see the tools: the environment's observation lists them, the
    model's message has only what the assistant said."""
    weather = {r["scenario_id"]: r for r in model_eval["report"]["records"]}[
        "weather-heard-not-seen"
    ]
    turn = weather["turns"][1]
    assert turn["action"] == WEATHER_LINE and turn["tool_calls"] and not turn["done"]
    assert "It called tools:" in turn["observation"]
    (messages,) = [m for m in model_eval["fake"].conversations() if goal(m) == WEATHER_GOAL][1:]
    said = f'The assistant said: "{turn["assistant_text"]}"'
    assert users(messages)[-1] == said
    assert all("It called tools" not in text for text in users(messages))


@slow
def test_model_caller_plays_through_a_gym_server_over_http(tmp_path: Path) -> None:
    """``--server`` and ``--caller openai`` together: the model's actions go to a gym
    server's env over HTTP, and what that env answers comes back to the model."""
    pytest.importorskip("pocketsphinx")
    from glm_gym.server import GymSettings, create_app
    from tests.gym_utils import serving

    fake = FakeChat(policy=slice_user)
    with chat_server(fake) as chat_url, serving(create_app(GymSettings())) as gym_url:
        env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": chat_url}
        env.pop("GLM_API_KEY", None)
        proc = subprocess.run(
            [sys.executable, "-c", "from glm_realtime.cli import main; main()", "eval",
             "--server", gym_url, "--only", "small-talk-thanks-goodbye", "--caller", "openai",
             "--caller-model", MODEL, "--out", str(tmp_path)],
            capture_output=True, text=True, env=env, timeout=600, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["meta"]["runner"], report["meta"]["caller"]) == ("server", f"openai:{MODEL}")
    (record,) = report["records"]
    actions = [t["action"] for t in record["turns"]]
    seen = [(t["action"], t["observation"], t["flags"]) for t in record["turns"]]
    assert actions[:3] == ["", NOT_AN_ACTION, HELLO_LINE] and len(actions) == 4, seen
    assert "hung_up" in record["turns"][3]["flags"] and not record["errors"], (seen, record)
    messages = max(fake.conversations(), key=len)
    assert users(messages)[1] == record["turns"][1]["observation"]  # the server's answer
    assert "Unknown action 'Hello!'" in users(messages)[1]
