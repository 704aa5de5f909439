"""AgentGym client and task for the gym server: ``GlmVoiceEnvClient``, ``GlmVoiceTask``.

Same shapes as agentenv's TextCraft client, so agentenv's rollout loop, evaluator and
trainers use them unchanged (and subclass agentenv's base classes when it is installed,
see :mod:`glm_gym.agentenv_compat`)::

    task = GlmVoiceTask({"env_server_base": "http://127.0.0.1:36001"}, n_clients=1)
    client = task.clients[0]
    client.reset(3)                      # scenario 3: its brief and the assistant's greeting
    print(client.observe())
    out = client.step("Thought: ask first.\\nAction: say What time do you open?")
    print(out.state, out.reward, out.done)
    task.close()

The agent's raw reply goes to the server as it is: the env parses the ReAct text (one
``Action:``) and answers a malformed one with an instructive observation.

Retries, bounded (``retries`` attempts, jittered backoff): a request that never reached the
server (connection refused, connect timeout) and a 503 (the env cap; ``Retry-After`` is
honoured) are retried for every route, because nothing ran. A request that was sent but
got no answer (read timeout, dropped connection) is retried only when repeating it is
harmless (``GET``s); a ``/step``, ``/reset`` or ``/create`` that may have run raises
:class:`StepOutcomeUnknown` instead: look at :meth:`GlmVoiceEnvClient.detail` or reset.

Errors::

    GymClientError
    ├── GymUnavailable        not reachable, or 503, after every retry
    ├── StepOutcomeUnknown    sent, no answer: it may have run
    └── GymHTTPError          the server's status and {"error"} message
        ├── EnvNotFound       404 unknown or closed env
        ├── EnvConflict       409 busy, or no conversation yet / failed: reset it
        ├── BadGymRequest     422 a value the server does not accept
        └── EnvFailed         500 the environment failed; reset it
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from glm_gym.agentenv_compat import BaseEnvClient, BaseTask, ConversationMessage, StepOutput
from glm_gym.http_retry import retry_after_s
from glm_realtime.session.backoff import Backoff

__all__ = [
    "BadGymRequest",
    "EnvConflict",
    "EnvFailed",
    "EnvNotFound",
    "GlmVoiceEnvClient",
    "GlmVoiceTask",
    "GymClientError",
    "GymHTTPError",
    "GymUnavailable",
    "StepOutcomeUnknown",
    "server_info",
]

_INSTRUCTIONS = """\
You are the caller in a phone conversation with a voice assistant. You are given a brief: \
who you are, what you want and what you know. Every round I tell you what the assistant \
said (and which tools it used); you answer with what the caller does next. Your words are \
spoken to the assistant in a synthesised voice.
Your output must strictly follow this format:
Thought:
your thoughts.

Action:
your next action

The actions (exactly one per reply):
- say <words>: speak <words> to the assistant, for example: say I'd like to book a table.
- barge in <words>: start speaking <words> while the assistant is still talking.
- wait <seconds>: stay silent for that long, for example: wait 5
- hang up: end the call, when your goal is reached or cannot be.
"""


class GymClientError(Exception):
    """Base of what the client raises."""


class GymUnavailable(GymClientError):
    """The server was not reachable, or refused with 503, on every attempt."""


class StepOutcomeUnknown(GymClientError):
    """The request was sent but no answer came; it may have run on the server."""


class GymHTTPError(GymClientError):
    """The server answered with an error status; ``str()`` is its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class EnvNotFound(GymHTTPError):
    """404: the env id is unknown here, or the env was closed (the message says why)."""


class EnvConflict(GymHTTPError):
    """409: a step is already running on the env, or it needs a reset first."""


class BadGymRequest(GymHTTPError):
    """422: a body or value the server does not accept (the message names it)."""


class EnvFailed(GymHTTPError):
    """500: the environment failed; the env answers 409 until it is reset."""


_BY_STATUS: dict[int, type[GymHTTPError]] = {
    404: EnvNotFound,
    409: EnvConflict,
    422: BadGymRequest,
    500: EnvFailed,
}

# Retry-After from a server is honoured up to this many seconds per wait.
_MAX_RETRY_AFTER_S = 30.0


class GlmVoiceEnvClient(BaseEnvClient):
    """One voice env on a gym server; POSTs ``/create`` when constructed.

    Args:
        env_server_base: e.g. ``http://127.0.0.1:36001``.
        data_len: scenarios this client covers (``len(client)``); None: as the server says.
        timeout: seconds for one HTTP call (a step lasts a whole assistant turn).
        scenarios: scenario ids or categories to play (default: the server's whole set).
        turn_timeout_s: seconds one assistant turn may take (default: the server's).
        retries: attempts for a request that did not reach the server, or got a 503.
        action_format: agentenv's; only ``"react"`` is understood by the env.
    """

    conversation_start = (
        ConversationMessage({"from": "human", "loss": None, "value": _INSTRUCTIONS}),
        ConversationMessage(
            {
                "from": "gpt",
                "loss": False,
                "value": "OK. I'll play the caller and follow the format.",
            }
        ),
    )

    def __init__(
        self,
        env_server_base: str,
        data_len: int | None = None,
        *args: Any,
        timeout: float = 300.0,
        scenarios: Sequence[str] | None = None,
        turn_timeout_s: float | None = None,
        retries: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.env_server_base = env_server_base.rstrip("/")
        self.timeout = timeout
        self.retries = max(1, retries)
        # Drop idle connections before uvicorn's 5 s keep-alive does, so a step is never
        # written into a socket the server is closing (its outcome would be unknown).
        self._http = httpx.Client(
            base_url=self.env_server_base,
            timeout=timeout,
            limits=httpx.Limits(keepalive_expiry=4.0),
        )
        body: dict[str, Any] = {"data_idx": None}
        if scenarios is not None:
            body["scenarios"] = list(scenarios)
        if turn_timeout_s is not None:
            body["turn_timeout_s"] = turn_timeout_s
        try:
            created = self._call("POST", "/create", body, repeatable=False)
        except BaseException:
            self._http.close()
            raise
        self.env_id: str = created["id"]
        self.last_round_trip_s: float | None = None
        """The last answered request's round trip, seconds (sent to answer parsed)."""
        self.last_env_s: float | None = None
        """Of that, the time inside the env (the server's ``Server-Timing: env``), if given."""
        self.data_len: int = created["data_len"] if data_len is None else data_len
        self.info: dict[str, Any] = _state(created)

    def __len__(self) -> int:
        return self.data_len

    def __repr__(self) -> str:
        return f"GlmVoiceEnvClient({self.env_server_base!r}, env_id={self.env_id!r})"

    def __enter__(self) -> GlmVoiceEnvClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def observe(self) -> str:
        """The last observation (cached from the last answer, as TextCraft's client does)."""
        return str(self.info["observation"])

    def step(self, action: str) -> StepOutput:
        """Send the agent's raw ReAct reply; the assistant's turn comes back."""
        answer = self._call("POST", "/step", {"id": self.env_id, "action": action})
        self.info = _state(answer)
        return StepOutput(state=answer["observation"], reward=answer["reward"], done=answer["done"])

    def reset(self, idx: int = 0) -> dict[str, Any]:
        """Start scenario ``idx``: the brief and the assistant's greeting; the server's answer."""
        answer = self._call("POST", "/reset", {"id": self.env_id, "data_idx": idx})
        self.info = _state(answer)
        return answer

    def detail(self) -> dict[str, Any]:
        """The last step's ``info`` (latencies, tool calls, criteria) and the scenario id."""
        return self._call("GET", "/detail", {"id": self.env_id})

    def close(self) -> dict[str, Any]:
        """Close the env on the server (an env already closed there is not an error)."""
        if self._http.is_closed:
            return {"id": self.env_id, "closed": False}
        try:
            return self._call("POST", "/close", {"id": self.env_id})
        except EnvNotFound as exc:
            return {"id": self.env_id, "closed": False, "error": str(exc)}
        finally:
            self._http.close()

    def _call(
        self, method: str, path: str, data: dict[str, Any], *, repeatable: bool | None = None
    ) -> dict[str, Any]:
        """One request with the retry policy of the module docstring."""
        if self._http.is_closed:
            raise GymClientError(f"the client of env {self.env_id} is closed; create another")
        if repeatable is None:
            repeatable = method == "GET" or path == "/close"
        backoff = Backoff(0.2, 5.0)
        last = ""
        for attempt in range(1, self.retries + 1):
            wait_s: float | None = None
            start = time.perf_counter()
            try:
                if method == "GET":
                    response = self._http.get(path, params=data)
                else:
                    response = self._http.post(path, json=data)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last = f"cannot reach {self.env_server_base} ({type(exc).__name__}: {exc})"
            except httpx.TransportError as exc:
                if not repeatable:
                    raise StepOutcomeUnknown(
                        f"{method} {path} was sent to {self.env_server_base} but no answer "
                        f"came ({type(exc).__name__}: {exc}); it may have run: see "
                        f"GET /detail?id={self.env_id} or reset the env"
                    ) from exc
                last = f"{method} {path} got no answer ({type(exc).__name__}: {exc})"
            else:
                if response.status_code == 503:
                    last = _message(response)
                    wait_s = retry_after_s(response, _MAX_RETRY_AFTER_S)
                else:
                    answer = _answer(response)
                    self.last_round_trip_s = time.perf_counter() - start
                    self.last_env_s = _env_seconds(response)
                    return answer
            if attempt < self.retries:
                delay = backoff.next_delay() if wait_s is None else wait_s
                time.sleep(delay)
        raise GymUnavailable(f"{last}; gave up after {self.retries} attempts")


class GlmVoiceTask(BaseTask):
    """agentenv's task for the voice envs: ``n_clients`` clients of one server."""

    env_client_cls = GlmVoiceEnvClient
    env_name = "GlmVoice"

    def __init__(
        self, client_args: Mapping[str, Any], *args: Any, n_clients: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(client_args, n_clients, *args, **kwargs)

    def close(self) -> None:
        """Close every client's env."""
        for client in self.clients:
            client.close()


def server_info(base_url: str, *, retries: int = 3, timeout: float = 10.0) -> dict[str, Any]:
    """``GET /`` of a gym server: what it serves (backend, clock, scenario count, cap).

    A refused connection or a 503 is retried (``retries`` attempts), as for every route.

    Raises:
        GymUnavailable: Not reachable after the retries.
        GymHTTPError: Something answered, but not as a gym server does.
    """
    base = base_url.rstrip("/")
    backoff = Backoff(0.2, 5.0)
    with httpx.Client(base_url=base, timeout=timeout) as http:
        for attempt in range(1, max(1, retries) + 1):
            try:
                response = http.get("/")
            except httpx.TransportError as exc:
                last = f"cannot reach {base} ({type(exc).__name__}: {exc})"
            else:
                if response.status_code != 503:
                    break
                last = _message(response)
            if attempt == max(1, retries):
                raise GymUnavailable(f"{last}; gave up after {attempt} attempts")
            time.sleep(backoff.next_delay())
    try:
        body = response.json() if response.is_success else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or "data_len" not in body:
        raise GymHTTPError(
            response.status_code,
            f"{base} is not a glm-realtime gym server: GET / answered HTTP "
            f"{response.status_code} {response.text[:200]!r}",
        )
    return body


def _state(answer: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "observation": answer["observation"],
        "reward": answer["reward"],
        "done": answer["done"],
    }


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _answer(response: httpx.Response) -> dict[str, Any]:
    if response.is_success:
        body = response.json()
        if not isinstance(body, dict):
            raise GymHTTPError(response.status_code, f"expected a JSON object, got {body!r:.200}")
        return body
    kind = _BY_STATUS.get(response.status_code, GymHTTPError)
    raise kind(response.status_code, _message(response))


def _env_seconds(response: httpx.Response) -> float | None:
    timing = response.headers.get("Server-Timing", "")
    if not timing.startswith("env;dur="):
        return None
    try:
        return float(timing.removeprefix("env;dur=")) / 1000
    except ValueError:
        return None
