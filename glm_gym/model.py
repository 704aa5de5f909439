"""Request and response bodies of the gym server (the AgentGym ``model.py``).

Requests are strict: an unknown key, a wrong type or a value out of range is a 422 that
names the field and what is accepted, never a silent default. Responses keep TextCraft's
shapes (``{"id", "observation", "reward", "done"}``) so agentenv-style clients work; extra
keys only add to them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_TURN_TIMEOUT_S",
    "CloseBody",
    "Closed",
    "CreateBody",
    "Detail",
    "EnvState",
    "ResetBody",
    "StepBody",
]

MAX_TURN_TIMEOUT_S = 600.0

EnvId = Annotated[str, Field(min_length=1, max_length=64, description="an id from /create")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateBody(_Request):
    """``POST /create``: every field optional; an empty body is the server's whole set."""

    scenarios: list[str] | None = Field(
        default=None,
        min_length=1,
        description="scenario ids or categories; the env plays these, in the server's order",
    )
    data_idx: Annotated[int, Field(ge=0)] | None = Field(
        default=0,
        description="start this scenario now (TextCraft's create does); null: wait for /reset",
    )
    turn_timeout_s: Annotated[float, Field(gt=0, le=MAX_TURN_TIMEOUT_S)] | None = Field(
        default=None, description="seconds one assistant turn may take (server default if null)"
    )


class StepBody(_Request):
    """``POST /step``: one ReAct reply (``Thought: ...`` then one ``Action: ...``)."""

    id: EnvId
    action: Annotated[str, Field(max_length=16_384)]


class ResetBody(_Request):
    """``POST /reset``: restart the env's conversation on scenario ``data_idx``."""

    id: EnvId
    data_idx: Annotated[int, Field(ge=0)] = 0


class CloseBody(_Request):
    """``POST /close``."""

    id: EnvId


class EnvState(BaseModel):
    """What ``/create``, ``/step``, ``/reset`` and ``/observation`` answer."""

    id: str
    observation: str
    reward: float
    done: bool


class Detail(EnvState):
    """``GET /detail``: the state plus the last step's ``info`` (latencies, tools, criteria)."""

    scenario_id: str | None
    info: dict[str, Any]


class Closed(BaseModel):
    """``POST /close``."""

    id: str
    closed: bool
