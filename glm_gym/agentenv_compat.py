"""agentenv's base classes when it is installed; the same shapes here when it is not.

agentenv (AgentGym's client package) pulls in torch and transformers, so the gym's client
must work without it. With it importable, :class:`~glm_gym.client.GlmVoiceEnvClient` and
:class:`~glm_gym.client.GlmVoiceTask` subclass its own ``BaseEnvClient``/``BaseTask`` and
return its ``StepOutput``, so agentenv's rollout loop, evaluator and trainers take them as
they take TextCraft's. The stand-ins below have agentenv's signatures (AgentGym 3ef9235).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

__all__ = ["AGENTENV", "BaseEnvClient", "BaseTask", "ConversationMessage", "StepOutput"]

_ConversationMessage = TypedDict(
    "_ConversationMessage", {"from": str, "loss": bool | None, "value": str}
)


@dataclass
class _StepOutput:
    state: str
    reward: float
    done: bool


class _BaseEnvClient(metaclass=ABCMeta):
    """agentenv's ``BaseEnvClient``: one env on a server, seen from the agent's process."""

    conversation_start: tuple[_ConversationMessage, ...] = ()

    def __init__(self, action_format: str = "react") -> None:
        self.action_format = action_format

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def observe(self) -> str: ...

    @abstractmethod
    def step(self, action: str) -> _StepOutput: ...

    @abstractmethod
    def reset(self, idx: int) -> Any: ...


class _BaseTask:
    """agentenv's ``BaseTask``: ``n_clients`` clients built from ``client_args``."""

    env_client_cls: Callable[..., Any] | None = None
    env_name: str | None = None

    def __init__(self, client_args: Mapping[str, Any], n_clients: int = 1) -> None:
        if self.env_client_cls is None or self.env_name is None:
            raise NotImplementedError("a task names its env_client_cls and env_name")
        self.clients = [self.env_client_cls(**client_args) for _ in range(n_clients)]
        self.len = len(self.clients[0])


if TYPE_CHECKING:
    AGENTENV = False
else:
    try:
        from agentenv.controller import BaseEnvClient, BaseTask
        from agentenv.controller.types import ConversationMessage, StepOutput
    except ImportError:
        AGENTENV = False
    else:
        AGENTENV = True
if not AGENTENV:
    ConversationMessage = _ConversationMessage
    StepOutput = _StepOutput
    BaseEnvClient = _BaseEnvClient
    BaseTask = _BaseTask
