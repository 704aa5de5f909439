"""User audio on its way to GLM: packed, held while disconnected, optionally dumped."""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO, Literal

from realtime.audio import UplinkPacker

__all__ = ["AudioDump", "Uplink"]

logger = logging.getLogger(__name__)


class Uplink:
    """Packs frames into packets and keeps a bounded backlog while there is no socket.

    Policy ``drop`` discards audio that cannot be sent; ``keep`` holds the most recent
    ``keep_ms`` and sends it first once a new session is ready (older audio is dropped:
    replaying a long gap would answer a question the user has moved on from).
    """

    def __init__(self, packer: UplinkPacker, policy: Literal["drop", "keep"], keep_ms: int) -> None:
        self.packer = packer
        self.policy = policy
        packet_ms = packer.packet_samples * 1000 / packer.sample_rate
        limit = int(keep_ms // packet_ms) if policy == "keep" else 0
        self._backlog: deque[bytes] = deque(maxlen=limit)
        self.dropped_packets = 0

    @property
    def held_packets(self) -> int:
        """Packets in the backlog."""
        return len(self._backlog)

    def pack(self, pcm: bytes, sample_rate: int) -> list[bytes]:
        """Frames in, complete packets out."""
        return self.packer.push(pcm, sample_rate)

    def hold(self, packets: list[bytes]) -> None:
        """Keep packets that could not be sent, within the policy's bound."""
        if not self._backlog.maxlen:
            self.dropped_packets += len(packets)
            return
        for packet in packets:
            if len(self._backlog) == self._backlog.maxlen:
                self.dropped_packets += 1  # the deque evicts the oldest
            self._backlog.append(packet)

    def take_backlog(self) -> list[bytes]:
        """The held packets, oldest first; the backlog is then empty."""
        packets = list(self._backlog)
        self._backlog.clear()
        return packets


class AudioDump:
    """Raw PCM files under ``directory``: ``<role>_<tag>_<rate>hz.pcm`` (s16le mono).

    The rate is in the name so ``glm-realtime replay`` can play a dump back.
    """

    def __init__(self, directory: str | Path, tag: str | None = None) -> None:
        self.directory = Path(directory)
        self.tag = tag or time.strftime("%Y%m%d-%H%M%S")
        self._files: dict[tuple[str, int], BinaryIO] = {}
        self.failed: OSError | None = None  # why dumping stopped, if it did

    def path(self, role: str, sample_rate: int) -> Path:
        """Where ``role`` audio at ``sample_rate`` goes."""
        return self.directory / f"{role}_{self.tag}_{sample_rate}hz.pcm"

    def write(self, role: str, pcm: bytes, sample_rate: int) -> None:
        """Append ``pcm``; opens the file on first use.

        A dump that cannot be written (no such folder, no permission, a full disk) is
        logged once, naming the path and why, and dumping stops: the conversation goes on.
        """
        if self.failed is not None:
            return
        key = (role, sample_rate)
        try:
            handle = self._files.get(key)
            if handle is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                handle = self._files[key] = self.path(role, sample_rate).open("ab")
                logger.info("dumping %s audio to %s", role, self.path(role, sample_rate))
            handle.write(pcm)
        except OSError as exc:
            self.failed = exc
            logger.error(
                "! cannot write the audio dump %s: %s; dumping is off for this session",
                self.path(role, sample_rate),
                exc.strerror or exc,
            )
            self.close()

    def close(self) -> None:
        """Close every file."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()
