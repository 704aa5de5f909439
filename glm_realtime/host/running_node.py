"""A node of a running graph: its extension, environment, queue, tasks and stage.

The runner (:mod:`.runner`) makes one per node; everything sent to the node waits in its one
bounded ``inbox`` (data, audio frames and commands, in the order sent), which one consumer
task drains.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .env import AsyncTenEnv
from .extension import Extension
from .failures import FailureLog
from .graph import NodeSpec
from .messages import AudioFrame, Cmd, CmdResult, Data

__all__ = ["CmdDelivery", "RunningNode"]


@dataclass(eq=False)
class CmdDelivery:
    """A command in a node's queue, and the future its ``send_cmd`` awaits."""

    cmd: Cmd
    future: asyncio.Future[CmdResult]


@dataclass(eq=False)
class RunningNode:
    """One node's run-time state (the runner's; see the module docstring)."""

    spec: NodeSpec
    ext: Extension
    env: AsyncTenEnv
    inbox: asyncio.Queue[Data | AudioFrame | CmdDelivery]
    inited: bool = False  # on_init returned: it receives messages
    start_called: bool = False  # on_start was called: on_stop will be
    stopping: bool = False  # on_stop was called: it receives nothing more
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)  # cancelled after its on_stop
    failures: FailureLog = field(init=False)

    def __post_init__(self) -> None:
        self.failures = FailureLog(self.env.logger, self.spec.name)
