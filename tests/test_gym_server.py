"""The gym server's routes in process (httpx over ASGI) on real VoiceEnvs, embedded backend.

One embedded backend serves the whole module (as one serves a whole server process);
each test builds its own app on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from glm_gym.backends import Backend
from glm_gym.scenarios import Scenario
from glm_gym.server import GymSettings, create_app
from tests.gym_utils import asgi, backend, in_process, scenario_index, scenarios, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SAY = "Thought: I greet it.\nAction: say Hello there."
__all__ = ["backend", "scenarios"]  # the shared fixtures


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


async def test_a_conversation_through_every_route_has_textcraft_shapes(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    idx = scenario_index(scenarios, "small_talk")
    async with in_process(backend, scenarios) as (http, _):
        about = (await http.get("/")).json()
        assert about["data_len"] == len(scenarios) and about["clock"] == "virtual"
        created = (await http.post("/create", json={"data_idx": idx})).json()
        assert set(created) == {"id", "observation", "reward", "done", "data_len"}
        assert scenarios[idx].brief.goal in created["observation"]
        env_id = created["id"]

        stepped = await http.post("/step", json={"id": env_id, "action": SAY})
        assert stepped.status_code == 200
        assert set(stepped.json()) == {"id", "observation", "reward", "done"}
        env_ms = float(stepped.headers["Server-Timing"].removeprefix("env;dur="))
        assert env_ms > 0

        observed = (await http.get("/observation", params={"id": env_id})).json()
        assert observed == stepped.json()
        detail = (await http.get("/detail", params={"id": env_id})).json()
        assert detail["scenario_id"] == scenarios[idx].id
        assert detail["info"]["turn"] == 1 and detail["info"]["action"] == "say"

        reset = (await http.post("/reset", json={"id": env_id, "data_idx": idx})).json()
        assert reset["reward"] == 0 and reset["done"] is False
        assert (await http.get("/detail", params={"id": env_id})).json()["info"]["turn"] == 0

        closed = await http.post("/close", json={"id": env_id})
        assert closed.json() == {"id": env_id, "closed": True}
        assert "closed by a client" in _error(await http.post("/close", json={"id": env_id}), 404)
    assert backend.live_sessions == 0


async def test_every_bad_body_is_a_422_naming_the_field(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    async with in_process(backend, scenarios) as (http, _):
        env_id = (await http.post("/create", json={"data_idx": None})).json()["id"]
        bad: list[tuple[str, Any, str]] = [
            ("/step", {"id": env_id}, "action"),
            ("/step", {"action": SAY}, "id"),
            ("/step", {"id": env_id, "action": 5}, "action"),
            ("/step", {"id": env_id, "action": SAY, "extra": 1}, "extra"),
            ("/step", ["not", "an", "object"], "body"),
            ("/reset", {"id": env_id, "data_idx": -1}, "data_idx"),
            ("/reset", {"id": env_id, "data_idx": "3"}, "data_idx"),
            ("/reset", {"id": env_id, "data_idx": True}, "data_idx"),
            ("/close", {}, "id"),
            ("/create", {"data_idx": 1.5}, "data_idx"),
            ("/create", {"turn_timeout_s": 0}, "turn_timeout_s"),
            ("/create", {"scenarios": []}, "scenarios"),
            ("/create", {"scenario": ["typo"]}, "scenario"),
        ]
        for path, body, field in bad:
            message = _error(await http.post(path, json=body), 422)
            assert field in message and "accepted" in message, (path, body, message)
        broken = await http.post(
            "/step", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert "JSON" in _error(broken, 422)
        assert "id" in _error(await http.get("/observation"), 422)

        out_of_range = {"id": env_id, "data_idx": len(scenarios)}
        message = _error(await http.post("/reset", json=out_of_range), 422)
        assert f"0..{len(scenarios) - 1}" in message
        message = _error(await http.post("/create", json={"scenarios": ["no-such-id"]}), 422)
        assert "no-such-id" in message and "small_talk" in message
        # Nothing was lost: the env is there and untouched.
        assert (await http.get("/observation", params={"id": env_id})).status_code == 200
        assert _error(await http.get("/nowhere"), 404)


async def test_unknown_and_closed_ids_are_404_on_every_route(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    async with in_process(backend, scenarios) as (http, _):
        env_id = (await http.post("/create", json={"data_idx": None})).json()["id"]
        await http.post("/close", json={"id": env_id})
        for target, why in ((env_id, "closed by a client"), ("7-guess", "unknown env id")):
            calls = [
                http.post("/step", json={"id": target, "action": SAY}),
                http.post("/reset", json={"id": target, "data_idx": 0}),
                http.get("/observation", params={"id": target}),
                http.get("/detail", params={"id": target}),
                http.post("/close", json={"id": target}),
            ]
            for response in await asyncio.gather(*calls):
                assert why in _error(response, 404)


async def test_a_step_before_any_reset_is_a_409_that_says_reset(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    async with in_process(backend, scenarios) as (http, _):
        created = (await http.post("/create", json={"data_idx": None})).json()
        assert created["observation"] == "" and backend.live_sessions == 0
        message = _error(await http.post("/step", json={"id": created["id"], "action": SAY}), 409)
        assert "POST /reset" in message


async def test_a_second_step_on_a_busy_env_is_refused_and_the_first_completes(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    idx = scenario_index(scenarios, "small_talk")
    async with in_process(backend, scenarios) as (http, app):
        first_id = (await http.post("/create", json={"data_idx": idx})).json()["id"]
        other_id = (await http.post("/create", json={"data_idx": idx})).json()["id"]
        first = asyncio.create_task(http.post("/step", json={"id": first_id, "action": SAY}))
        await until(lambda: backend.live_sessions == 2 and _busy(app, first_id))

        again = await http.post("/step", json={"id": first_id, "action": SAY})
        assert "busy" in _error(again, 409)
        reset = await http.post("/reset", json={"id": first_id, "data_idx": idx})
        assert "busy" in _error(reset, 409)
        # Another env is not held up by the busy one.
        other = await http.post("/step", json={"id": other_id, "action": SAY})
        assert other.status_code == 200

        done = await first
        assert done.status_code == 200
        detail = (await http.get("/detail", params={"id": first_id})).json()
        assert detail["info"]["turn"] == 1  # one step ran, not two


async def test_the_live_env_cap_answers_503_with_retry_after_until_one_closes(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    async with in_process(backend, scenarios, max_envs=2) as (http, _):
        ids = [(await http.post("/create", json={"data_idx": None})).json()["id"] for _ in "ab"]
        refused = await http.post("/create", json={"data_idx": None})
        assert "cap" in _error(refused, 503)
        assert int(refused.headers["Retry-After"]) >= 1
        await http.post("/close", json={"id": ids[0]})
        assert (await http.post("/create", json={"data_idx": None})).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert "glm_gym_envs_rejected_total 1.0" in metrics
        assert "glm_gym_live_envs 2.0" in metrics


async def test_ids_are_unguessable_and_never_reused(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    async with in_process(backend, scenarios) as (http, _):
        seen = set()
        for _ in range(20):
            env_id = (await http.post("/create", json={"data_idx": None})).json()["id"]
            await http.post("/close", json={"id": env_id})
            serial, _, secret = env_id.partition("-")
            assert len(secret) >= 16  # 96 random bits beside the serial
            seen.add(env_id)
        assert len(seen) == 20


async def test_metrics_count_envs_steps_latency_and_backend_sessions(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    idx = scenario_index(scenarios, "small_talk")
    async with in_process(backend, scenarios) as (http, _):
        env_id = (await http.post("/create", json={"data_idx": idx})).json()["id"]
        await http.post("/step", json={"id": env_id, "action": SAY})
        during = (await http.get("/metrics")).text
        await http.post("/close", json={"id": env_id})
        after = (await http.get("/metrics")).text
    assert "glm_gym_live_envs 1.0" in during and "glm_gym_backend_sessions 1.0" in during
    assert 'glm_gym_steps_total{kind="step",outcome="ok"} 1.0' in during
    assert 'glm_gym_steps_total{kind="reset",outcome="ok"} 1.0' in during
    assert "glm_gym_step_seconds_count 1.0" in during
    assert "glm_gym_live_envs 0.0" in after and "glm_gym_backend_sessions 0.0" in after
    assert 'glm_gym_envs_closed_total{reason="client"} 1.0' in after


async def test_leaving_the_lifespan_closes_every_env_and_session_even_mid_step(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    idx = scenario_index(scenarios, "small_talk")
    async with in_process(backend, scenarios) as (http, app):
        ids = [(await http.post("/create", json={"data_idx": idx})).json()["id"] for _ in "abc"]
        stepping = asyncio.create_task(http.post("/step", json={"id": ids[0], "action": SAY}))
        await until(lambda: _busy(app, ids[0]))
        assert backend.live_sessions == 3
    assert backend.live_sessions == 0
    response = await stepping
    assert "closed during its step" in _error(response, 404)


def _busy(app: Any, env_id: str) -> bool:
    return bool(app.state.registry.busy(env_id))


async def test_the_glm_backend_option_caps_sessions_per_key_and_queues_the_rest(
    scenarios: list[Scenario],
) -> None:
    """--backend glm with --max-sessions 1, against a server speaking GLM's protocol (the
    embedded one, at 1x pace, with the key as its token): the second conversation waits for
    the first one's session slot, then starts."""
    from glm_local.server import LocalRealtimeServer

    idx = scenario_index(scenarios, "small_talk")
    key = "gym-test.key"
    async with LocalRealtimeServer("127.0.0.1", 0, key, pace=1.0) as glm:
        settings = {"backend": "glm", "glm_api_key": key, "glm_url": glm.url}
        app = create_app(GymSettings(**settings, glm_max_sessions=1), scenarios=scenarios)
        async with asgi(app) as http:
            about = (await http.get("/")).json()
            assert about["backend"] == "glm" and about["clock"] == "wall"
            first = (await http.post("/create", json={"data_idx": idx})).json()["id"]
            second = asyncio.create_task(http.post("/create", json={"data_idx": idx}))
            shared = app.state.backend
            await until(lambda: shared.waiting_sessions == 1)
            metrics = (await http.get("/metrics")).text
            assert "glm_gym_backend_sessions_waiting 1.0" in metrics
            assert "glm_gym_backend_sessions 1.0" in metrics and len(glm.sessions) == 1
            await http.post("/close", json={"id": first})
            started = await second
            assert started.status_code == 200, started.text
            assert shared.live_sessions == 1 and shared.waiting_sessions == 0
        assert shared.live_sessions == 0


async def test_after_shutdown_health_and_create_answer_503(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    async with in_process(backend, scenarios) as (_, app):
        pass
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gym") as http:
        health = await http.get("/health")
        assert health.status_code == 503 and health.json() == {"status": "stopping"}
        refused = await http.post("/create", json={})
        assert "shutting down" in _error(refused, 503) and refused.headers["Retry-After"] == "1"
