"""The gym's HTTP server: AgentGym's routes over an :class:`~glm_gym.registry.EnvRegistry`.

``create_app(settings)`` builds a FastAPI app whose lifespan opens the backend (the
embedded one, shared by every env, or GLM with a session cap), loads the scenarios and
runs the registry; leaving it (SIGINT/SIGTERM under uvicorn) closes every env and its
session, then the backend. Routes, with TextCraft's body shapes:

=========================  ===============================================================
``GET /``                   what this server is: backend, clock, scenario count, cap
``POST /create``            ``{scenarios?, data_idx?, turn_timeout_s?}`` -> state + ``data_len``
``POST /step``              ``{id, action}`` -> ``{id, observation, reward, done}``
``POST /reset``             ``{id, data_idx}`` -> state
``GET /observation?id=``    the last state
``GET /detail?id=``         the last state, its ``info`` and the scenario id
``POST /close``             ``{id}`` -> ``{id, closed: true}``
``GET /health``             liveness and load
``GET /metrics``            Prometheus text
=========================  ===============================================================

Errors are ``{"error": "..."}`` with a real status: 404 unknown or closed id, 409 a step
while one runs on the same env (refused, not queued) or a step before a reset, 422 a bad
body, 503 at the live-env cap (with ``Retry-After``), 500 an environment failure (the env
then answers 409 to steps until it is reset). Step and reset answers carry a
``Server-Timing: env;dur=MS`` header: the time spent inside the env, so a client can tell
the voice turn from the server's overhead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import Body, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from glm_gym.errors import AtCapacity, GymServerError
from glm_gym.metrics import CONTENT_TYPE
from glm_gym.model import CloseBody, Closed, CreateBody, Detail, EnvState, ResetBody, StepBody
from glm_gym.registry import EnvRegistry, Outcome

if TYPE_CHECKING:
    from glm_gym.backends import Backend
    from glm_gym.environment import StepResult
    from glm_gym.scenarios import Scenario

__all__ = ["GymSettings", "create_app"]

ENV_NAME = "GlmVoice"


@dataclass(frozen=True)
class GymSettings:
    """What ``glm-realtime gym`` configures; never printed with the key."""

    backend: Literal["local", "glm"] = "local"
    realtime: bool = False
    asr_processes: int = 0
    max_envs: int = 128
    ttl_s: float = 600.0
    turn_timeout_s: float = 30.0
    scenarios_path: Path | None = None
    glm_api_key: str | None = field(default=None, repr=False)
    glm_url: str | None = None
    glm_max_sessions: int = 5


def _open_backend(settings: GymSettings) -> Backend:
    from glm_gym.backends import GLM_URL, GlmBackend, LocalBackend

    if settings.backend == "glm":
        return GlmBackend(
            api_key=settings.glm_api_key or "",
            url=settings.glm_url or GLM_URL,
            max_sessions=settings.glm_max_sessions,
        )
    return LocalBackend(realtime=settings.realtime, asr_processes=settings.asr_processes)


@dataclass
class _Live:
    registry: EnvRegistry | None = None
    backend: Backend | None = None
    stopping: bool = False


def create_app(
    settings: GymSettings | None = None,
    *,
    backend: Backend | None = None,
    scenarios: list[Scenario] | None = None,
) -> FastAPI:
    """The gym app. ``backend``/``scenarios`` given: use them (the caller owns the backend)."""
    settings = settings or GymSettings()
    live = _Live()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from glm_gym.environment import VoiceEnv
        from glm_gym.scenarios import load_scenarios

        chosen = scenarios if scenarios is not None else load_scenarios(settings.scenarios_path)
        async with AsyncExitStack() as stack:
            shared: Backend = (
                backend
                if backend is not None
                else await stack.enter_async_context(_open_backend(settings))
            )

            def make_env(subset: Any, turn_timeout_s: float) -> VoiceEnv:
                return VoiceEnv(shared, subset, turn_timeout_s=turn_timeout_s)

            registry = EnvRegistry(
                make_env,
                chosen,
                max_envs=settings.max_envs,
                ttl_s=settings.ttl_s,
                turn_timeout_s=settings.turn_timeout_s,
            )
            registry.metrics.gauge(
                "glm_gym_backend_sessions",
                "Conversations holding a backend session.",
                lambda: shared.live_sessions,
            )
            registry.metrics.gauge(
                "glm_gym_backend_sessions_waiting",
                "Conversations waiting for a session slot (the per-key cap).",
                lambda: shared.waiting_sessions,
            )
            live.registry = app.state.registry = await stack.enter_async_context(registry)
            live.backend = app.state.backend = shared
            try:
                yield
            finally:
                live.stopping = True

    app = FastAPI(title="glm-realtime gym", lifespan=lifespan)
    _install_error_handlers(app)

    def registry() -> EnvRegistry:
        if live.registry is None:  # only before startup or after shutdown
            raise AtCapacity("the gym server is not running", 1)
        return live.registry

    @app.get("/")
    async def about() -> dict[str, Any]:
        reg = registry()
        shared = cast("Backend", live.backend)  # set with the registry
        return {
            "env": ENV_NAME,
            "backend": shared.name,
            "clock": shared.clock,
            "data_len": len(reg.scenarios),
            "categories": sorted({s.category for s in reg.scenarios}),
            "live_envs": reg.live,
            "max_envs": reg.max_envs,
            "ttl_s": reg.ttl_s,
        }

    @app.post("/create")
    async def create(body: Annotated[CreateBody | None, Body()] = None) -> dict[str, Any]:
        body = body or CreateBody()
        made = await registry().create(body.scenarios, body.data_idx, body.turn_timeout_s)
        state = _state(made.id, made.outcome.result if made.outcome else None)
        return {**state.model_dump(), "data_len": made.data_len}

    @app.post("/step")
    async def step(body: StepBody, response: Response) -> EnvState:
        outcome = await registry().step(body.id, body.action)
        return _timed_state(body.id, outcome, response)

    @app.post("/reset")
    async def reset(body: ResetBody, response: Response) -> EnvState:
        outcome = await registry().reset(body.id, body.data_idx)
        return _timed_state(body.id, outcome, response)

    @app.get("/observation")
    async def observation(id: str) -> EnvState:
        view = registry().view(id)
        return _state(id, view.result)

    @app.get("/detail")
    async def detail(id: str) -> Detail:
        view = registry().view(id)
        state = _state(id, view.result)
        info = dict(view.result.info) if view.result else {}
        return Detail(**state.model_dump(), scenario_id=view.scenario_id, info=info)

    @app.post("/close")
    async def close(body: CloseBody) -> Closed:
        await registry().close(body.id)
        return Closed(id=body.id, closed=True)

    @app.get("/health")
    async def health() -> JSONResponse:
        reg = live.registry
        if reg is None or live.stopping:
            return JSONResponse({"status": "stopping"}, status_code=503)
        return JSONResponse(
            {"status": "ok", "live_envs": reg.live, "max_envs": reg.max_envs}, status_code=200
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(registry().metrics.render(), media_type=CONTENT_TYPE)

    return app


def _state(env_id: str, result: StepResult | None) -> EnvState:
    if result is None:
        return EnvState(id=env_id, observation="", reward=0.0, done=False)
    return EnvState(
        id=env_id, observation=result.observation, reward=result.reward, done=result.done
    )


def _timed_state(env_id: str, outcome: Outcome, response: Response) -> EnvState:
    response.headers["Server-Timing"] = f"env;dur={outcome.env_s * 1000:.3f}"
    return _state(env_id, outcome.result)


_BODIES: dict[str, type[Any]] = {
    "/create": CreateBody,
    "/step": StepBody,
    "/reset": ResetBody,
    "/close": CloseBody,
}


def _accepted(path: str) -> str:
    model = _BODIES.get(path)
    if model is None:
        return "a query parameter id=<env id>"
    fields = [
        f'"{name}"' + ("" if info.is_required() else "?")
        for name, info in model.model_fields.items()
    ]
    return "a JSON object {" + ", ".join(fields) + "} (? marks optional)"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GymServerError)
    async def gym_error(_: Request, exc: GymServerError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, AtCapacity) else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        message = (
            f"{request.method} {request.url.path}: "
            + "; ".join(problems)
            + f"; accepted: {_accepted(request.url.path)}"
        )
        return JSONResponse(
            {"error": message, "detail": jsonable_encoder(exc.errors())}, status_code=422
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
