"""GlmVoiceEnvClient and GlmVoiceTask against the gym server on a real socket (uvicorn).

The server is the real app on the embedded backend; the one stand-in is a bare TCP
server that drops a connection after reading a request, the only way to show what the
client does when a step's answer never comes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from glm_gym.client import (
    EnvConflict,
    GlmVoiceEnvClient,
    GlmVoiceTask,
    GymClientError,
    GymUnavailable,
    StepOutcomeUnknown,
)
from glm_gym.scenarios import Scenario
from glm_gym.scripted import scripted_actions
from glm_gym.server import GymSettings, create_app
from tests.gym_utils import bundled, scenario_index, serving
from tests.net_utils import refused_port

# Lines the embedded recogniser hears well enough from the caller's espeak voice that each
# shares words with its own line and none with the others.
LINES = ["go forward ten meters", "one two three four five", "stop the music"]


@pytest.fixture(scope="module")
def scenarios() -> list[Scenario]:
    return bundled()


@pytest.fixture(scope="module")
def gym(scenarios: list[Scenario]) -> Iterator[tuple[str, Any]]:
    """One real gym server for the module: its URL and its app."""
    app = create_app(GymSettings(max_envs=64), scenarios=scenarios)
    with serving(app) as url:
        yield url, app


def test_many_threads_create_step_and_close_with_no_id_collision_and_no_cross_talk(
    scenarios: list[Scenario],
) -> None:
    idx = scenario_index(scenarios, "small_talk")
    app = create_app(GymSettings(), scenarios=scenarios)

    def conversation(k: int) -> tuple[str, str, dict[str, Any]]:
        with GlmVoiceEnvClient(url, retries=3) as client:
            client.reset(idx)
            client.step(f"Thought: my line.\nAction: say {LINES[k % len(LINES)]}")
            detail = client.detail()
            assert detail["scenario_id"] == scenarios[idx].id and detail["info"]["turn"] == 1
            return client.env_id, LINES[k % len(LINES)], detail["info"]

    def churn(_: int) -> str:
        client = GlmVoiceEnvClient(url, retries=3)
        client.close()
        return client.env_id

    with serving(app) as url, ThreadPoolExecutor(12) as pool:
        talks = list(pool.map(conversation, range(len(LINES))))
        churned = list(pool.map(churn, range(24)))
        backend = app.state.backend
        assert backend.live_sessions == 0  # every client closed its env
    ids = [t[0] for t in talks] + churned
    assert len(set(ids)) == len(ids) == len(LINES) + 24
    for _, line, info in talks:
        heard = info["heard"]
        assert len(heard) == 1, info  # the env heard one caller: its own
        words = set(heard[0].split())
        own = len(words & set(line.split()))
        others = max(len(words & set(other.split())) for other in LINES if other != line)
        assert own > others, (line, heard)


def test_shutdown_closes_every_session_of_live_clients(scenarios: list[Scenario]) -> None:
    idx = scenario_index(scenarios, "small_talk")
    app = create_app(GymSettings(), scenarios=scenarios)
    with serving(app) as url:
        clients = [GlmVoiceEnvClient(url) for _ in range(3)]
        for client in clients:
            client.reset(idx)
        backend = app.state.backend
        assert backend.live_sessions == 3
    assert backend.live_sessions == 0 and app.state.registry.live == 0
    for client in clients:
        client.retries = 1
        with pytest.raises(GymUnavailable):
            client.step("Action: say hello")
        with pytest.raises(GymUnavailable):
            client.close()


def test_an_agentenv_rollout_loop_with_a_scripted_agent_through_the_task(
    gym: tuple[str, Any], scenarios: list[Scenario]
) -> None:
    url, _ = gym
    task = GlmVoiceTask({"env_server_base": url}, n_clients=1)
    client = task.clients[0]
    assert len(client) == task.len == len(scenarios)
    assert task.env_name == "GlmVoice" and client.conversation_start[1]["from"] == "gpt"
    picks = [scenario_index(scenarios, c) for c in ("small_talk", "one_tool", "recall")]
    try:
        for idx in picks:
            # agentenv's BaseTask._generate_experience_one, with a scripted agent.
            client.reset(idx)
            state = client.observe()
            conversation = [*client.conversation_start, {"from": "human", "value": state}]
            reward, done, rounds = 0.0, False, 0
            for reply in scripted_actions(scenarios[idx]):
                conversation.append({"from": "gpt", "loss": True, "value": reply})
                out = client.step(reply)
                conversation.append({"from": "human", "loss": None, "value": out.state})
                reward, done, rounds = out.reward, out.done, rounds + 1
                if done:
                    break
            detail = client.detail()
            assert done, (scenarios[idx].id, conversation)
            assert detail["info"]["criteria"]["reward"] == reward == detail["reward"]
            assert detail["info"]["turn"] == rounds
            assert client.observe() == out.state == detail["observation"]
    finally:
        task.close()
    with pytest.raises(GymClientError, match="is closed"):
        client.reset(0)
    gone = httpx.post(f"{url}/reset", json={"id": client.env_id, "data_idx": 0})
    assert gone.status_code == 404 and "closed by a client" in gone.json()["error"]


def test_client_errors_carry_the_servers_status_and_message(gym: tuple[str, Any]) -> None:
    url, _ = gym
    with GlmVoiceEnvClient(url) as client:
        with pytest.raises(EnvConflict, match="POST /reset"):
            client.step("Action: say hello")
        with pytest.raises(Exception, match="out of range") as bad:
            client.reset(10_000)
        assert getattr(bad.value, "status", None) == 422
    assert client.close()["closed"] is False  # closing twice is harmless


def test_a_client_with_no_server_gives_up_after_its_retries() -> None:
    with (
        refused_port() as port,
        pytest.raises(GymUnavailable, match=r"cannot reach .* gave up after 2 attempts"),
    ):
        GlmVoiceEnvClient(f"http://127.0.0.1:{port}", retries=2)


def test_a_create_at_the_cap_is_retried_after_retry_after_and_succeeds_once_one_closes(
    scenarios: list[Scenario],
) -> None:
    app = create_app(GymSettings(max_envs=1), scenarios=scenarios)
    with serving(app) as url:
        holder = GlmVoiceEnvClient(url)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(GlmVoiceEnvClient, url, retries=30)
            rejected = 0.0
            while not rejected:  # the waiting client has been refused once at least
                metrics = httpx.get(f"{url}/metrics").text
                rejected = _sample(metrics, "glm_gym_envs_rejected_total")
                time.sleep(0.01)
            holder.close()
            second = waiting.result(timeout=60)
        assert second.env_id != holder.env_id
        second.close()


class DroppingServer:
    """Answers /create; reads every other request and drops the connection unanswered,
    except a GET that was already dropped once (a retried GET is then answered)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        while len(body) < length:
            body += conn.recv(65536)
        request_line = head.split(b"\r\n")[0].decode()
        path = request_line.split()[1].split("?")[0]
        self.requests.append(path)
        if path == "/create" or (path == "/detail" and self.requests.count(path) > 1):
            answer = {"id": "1-x", "observation": "", "reward": 0.0, "done": False, "data_len": 1}
            payload = json.dumps(answer).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )

    def close(self) -> None:
        self.sock.close()


def test_a_step_whose_answer_never_comes_is_not_retried_but_a_get_is() -> None:
    server = DroppingServer()
    try:
        client = GlmVoiceEnvClient(server.url, retries=5)
        with pytest.raises(StepOutcomeUnknown, match="may have run"):
            client.step("Action: say hello")
        assert server.requests.count("/step") == 1
        with pytest.raises(StepOutcomeUnknown):
            client.reset(0)
        assert server.requests.count("/reset") == 1
        assert client.detail()["id"] == "1-x"
        assert server.requests.count("/detail") == 2
    finally:
        server.close()


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
