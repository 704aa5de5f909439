"""The base class of every node, mirroring TEN's ``AsyncExtension``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .messages import AudioFrame, Cmd, CmdResult, Data, StatusCode

if TYPE_CHECKING:
    from .env import AsyncTenEnv

__all__ = ["Extension"]


class Extension:
    """A graph node. Override the coroutines you need; every default does nothing.

    Lifecycle (driven by ``GraphRunner``): ``on_init`` for every node in graph order,
    then ``on_start`` for every node in graph order; at the end ``on_stop`` then
    ``on_deinit``, both in reverse order. A node receives messages once its own
    ``on_init`` has returned, which can be before its ``on_start``.

    Attributes:
        addon_name: Addon name, for classes published through an entry point (set by
            ``register_addon`` too).
        manifest: TEN manifest dict of the addon (``api.property`` declares properties).
        default_properties: The addon's own property defaults.
        name: The node name given by the graph.
    """

    addon_name: ClassVar[str | None] = None
    manifest: ClassVar[Mapping[str, Any] | None] = None
    default_properties: ClassVar[Mapping[str, Any] | None] = None

    def __init__(self, name: str) -> None:
        self.name = name

    async def on_init(self, env: AsyncTenEnv) -> None:
        """Prepare; properties are readable. Messages may arrive once this returns."""

    async def on_start(self, env: AsyncTenEnv) -> None:
        """Start working: open connections, start tasks, send first messages."""

    async def on_stop(self, env: AsyncTenEnv) -> None:
        """Stop working; after this the node receives nothing and its tasks are cancelled."""

    async def on_deinit(self, env: AsyncTenEnv) -> None:
        """Release what ``on_init`` acquired."""

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        """Handle a command; must call ``env.return_result`` before returning.

        The default answers ``StatusCode.OK``.
        """
        await env.return_result(CmdResult.create(StatusCode.OK), cmd)

    async def on_data(self, env: AsyncTenEnv, data: Data) -> None:
        """Handle a data message (delivered in order, one at a time)."""

    async def on_audio_frame(self, env: AsyncTenEnv, audio_frame: AudioFrame) -> None:
        """Handle an audio frame (delivered in order with data, one at a time)."""
