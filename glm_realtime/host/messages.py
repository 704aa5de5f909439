"""Message types with the shape of the TEN 0.8 Python runtime.

``Cmd`` asks for an answer (a ``CmdResult``), ``Data`` and ``AudioFrame`` flow one
way. Every message carries a property tree (see :mod:`.properties`); ``Data`` and
``AudioFrame`` also carry a byte buffer filled with ``alloc_buf``/``lock_buf``/
``unlock_buf`` as in TEN, or read with ``get_buf``.
"""

from __future__ import annotations

import copy
import enum
import itertools
from typing import TypeVar

from .errors import PropertyError
from .properties import PropertyAccessors, PropertyStore

__all__ = [
    "AudioFrame",
    "AudioFrameDataFmt",
    "Cmd",
    "CmdResult",
    "Data",
    "Msg",
    "StatusCode",
]

_M = TypeVar("_M", bound="Msg")
_cmd_ids = itertools.count(1)


class StatusCode(enum.IntEnum):
    """Status of a :class:`CmdResult`."""

    OK = 0
    ERROR = 1


class AudioFrameDataFmt(enum.IntEnum):
    """Sample layout of an :class:`AudioFrame`."""

    INTERLEAVE = 1
    NON_INTERLEAVE = 2


class Msg(PropertyAccessors):
    """Base of every message: a name and a property tree."""

    _kind = "msg"

    def __init__(self, name: str) -> None:
        self._name = name
        self._props = PropertyStore(f"{self._kind} '{name}'")

    @classmethod
    def create(cls: type[_M], name: str) -> _M:
        """Create an empty message called ``name``."""
        return cls(name)

    def get_name(self) -> str:
        """Return the message name, the key graph connections route on."""
        return self._name

    def clone(self: _M) -> _M:
        """Return a deep copy (a cloned ``Cmd`` gets its own id)."""
        twin = copy.copy(self)
        twin._props = PropertyStore(self._props.owner, self._props.snapshot())
        return twin

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, {self._props.to_json()})"


class Cmd(Msg):
    """A command; the sender awaits exactly one final :class:`CmdResult`."""

    _kind = "cmd"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._cmd_id = next(_cmd_ids)

    @property
    def cmd_id(self) -> int:
        """Process-unique id the host matches results against."""
        return self._cmd_id

    def clone(self) -> Cmd:
        """Return a deep copy with a new id."""
        twin = super().clone()
        twin._cmd_id = next(_cmd_ids)
        return twin


class CmdResult(Msg):
    """The answer to a :class:`Cmd`: a status code plus properties (``detail`` by custom)."""

    _kind = "cmd_result"

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._status = StatusCode.OK
        self._final = True

    @classmethod
    def create(  # type: ignore[override]
        cls, status_code: StatusCode, target_cmd: Cmd | None = None
    ) -> CmdResult:
        """Create a result with ``status_code``.

        Args:
            status_code: ``StatusCode.OK`` or ``StatusCode.ERROR``.
            target_cmd: Optional command it answers (the TEN 0.10 signature); its name
                becomes the result's name.
        """
        result = cls(target_cmd.get_name() if target_cmd is not None else "")
        result._status = StatusCode(status_code)
        return result

    @classmethod
    def error(cls, detail: str, target_cmd: Cmd | None = None) -> CmdResult:
        """Create an ERROR result whose ``detail`` property is ``detail``."""
        result = cls.create(StatusCode.ERROR, target_cmd)
        result.set_property_string("detail", detail)
        return result

    def get_status_code(self) -> StatusCode:
        """Return the status code."""
        return self._status

    def is_final(self) -> bool:
        """Tell whether this is the last result for its command (always so unless set)."""
        return self._final

    def set_final(self, final: bool) -> None:
        """Mark the result final or not; the host delivers only final results."""
        self._final = final

    def is_completed(self) -> bool:
        """Tell whether the command is complete (the same as :meth:`is_final` here)."""
        return self._final

    def _answer(self, cmd: Cmd) -> None:
        self._name = cmd.get_name()
        self._props.owner = f"cmd_result '{self._name}'"


class _BufferMsg(Msg):
    """A message with a byte buffer."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._buf = bytearray()
        self._locked: memoryview | None = None

    def alloc_buf(self, size: int) -> None:
        """Replace the buffer with ``size`` zero bytes."""
        if self._locked is not None:
            raise PropertyError(f"buffer of {self._props.owner} is locked")
        self._buf = bytearray(size)

    def lock_buf(self) -> memoryview:
        """Return a writable view of the buffer; give it back with :meth:`unlock_buf`."""
        if self._locked is not None:
            raise PropertyError(f"buffer of {self._props.owner} is already locked")
        self._locked = memoryview(self._buf)
        return self._locked

    def unlock_buf(self, buf: memoryview) -> None:
        """Release a view returned by :meth:`lock_buf`."""
        if buf is not self._locked:
            raise PropertyError(f"unlock_buf of {self._props.owner} got a view it did not lend")
        buf.release()
        self._locked = None

    def get_buf(self) -> bytearray:
        """Return a copy of the buffer."""
        return bytearray(self._buf)

    def set_buf(self, data: bytes | bytearray | memoryview) -> None:
        """Replace the buffer with a copy of ``data`` (a shortcut for alloc/lock/unlock)."""
        if self._locked is not None:
            raise PropertyError(f"buffer of {self._props.owner} is locked")
        self._buf = bytearray(data)

    def clone(self: _M) -> _M:
        twin = Msg.clone(self)
        assert isinstance(twin, _BufferMsg)
        twin._buf = bytearray(twin._buf)
        twin._locked = None
        return twin


class Data(_BufferMsg):
    """A one-way message with properties and an optional buffer."""

    _kind = "data"


class AudioFrame(_BufferMsg):
    """PCM audio plus its format (rate, width, channels, layout) and a timestamp."""

    _kind = "audio_frame"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._sample_rate = 0
        self._bytes_per_sample = 2
        self._channels = 1
        self._samples_per_channel = 0
        self._data_fmt = AudioFrameDataFmt.INTERLEAVE
        self._timestamp = 0
        self._eof = False

    @classmethod
    def from_buffer(
        cls,
        name: str,
        pcm: bytes | bytearray | memoryview,
        sample_rate: int,
        channels: int = 1,
        bytes_per_sample: int = 2,
    ) -> AudioFrame:
        """Build an interleaved frame around a copy of ``pcm``.

        Raises:
            ValueError: ``pcm`` is not a whole number of sample frames.
        """
        width = channels * bytes_per_sample
        if width <= 0 or len(pcm) % width:
            raise ValueError(
                f"{len(pcm)} bytes is not a whole number of {channels}-channel "
                f"{bytes_per_sample}-byte samples"
            )
        frame = cls(name)
        frame.set_sample_rate(sample_rate)
        frame.set_number_of_channels(channels)
        frame.set_bytes_per_sample(bytes_per_sample)
        frame.set_samples_per_channel(len(pcm) // width)
        frame.set_buf(pcm)
        return frame

    def get_sample_rate(self) -> int:
        """Return the sample rate in Hz."""
        return self._sample_rate

    def set_sample_rate(self, rate: int) -> None:
        """Set the sample rate in Hz."""
        self._sample_rate = rate

    def get_bytes_per_sample(self) -> int:
        """Return the width of one sample (2 for s16)."""
        return self._bytes_per_sample

    def set_bytes_per_sample(self, size: int) -> None:
        """Set the width of one sample."""
        self._bytes_per_sample = size

    def get_number_of_channels(self) -> int:
        """Return the channel count."""
        return self._channels

    def set_number_of_channels(self, channels: int) -> None:
        """Set the channel count."""
        self._channels = channels

    def get_samples_per_channel(self) -> int:
        """Return the number of samples in each channel."""
        return self._samples_per_channel

    def set_samples_per_channel(self, count: int) -> None:
        """Set the number of samples in each channel."""
        self._samples_per_channel = count

    def get_data_fmt(self) -> AudioFrameDataFmt:
        """Return the sample layout."""
        return self._data_fmt

    def set_data_fmt(self, fmt: AudioFrameDataFmt | int) -> None:
        """Set the sample layout."""
        self._data_fmt = AudioFrameDataFmt(fmt)

    def get_timestamp(self) -> int:
        """Return the timestamp (the bundled nodes use milliseconds from stream start)."""
        return self._timestamp

    def set_timestamp(self, timestamp: int) -> None:
        """Set the timestamp."""
        self._timestamp = timestamp

    def is_eof(self) -> bool:
        """Tell whether this frame ends its stream."""
        return self._eof

    def set_eof(self, eof: bool) -> None:
        """Mark this frame as the end of its stream."""
        self._eof = eof
