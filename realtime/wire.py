"""One set of client-side models: strict when we write, lenient when we read.

Built in Python (``SessionConfig(voice=...)``) or validated without a context, a
:class:`WireModel` is strict: an unknown field, a ``null`` for a typed field or a value the
spec does not allow is refused, so what we send is complete and exact. Read with
:data:`LENIENT` (:meth:`WireModel.read`, or :func:`realtime.events.parse_client_event`,
which a server uses), the same model takes what real clients send, the way GLM does:

* ``null`` means "not given": the field takes its default;
* a field the model does not know is ignored (logged at debug, by name only), never a
  reason to refuse the whole event;
* a model's ``PLACEHOLDERS`` mean "not given" too: the empty ``event_id``, ``id`` and
  ``call_id`` of Zhipu's SDKs, their zero VAD tuning values, ``"voice": "default"``;
* a model's ``ALIASES`` read a vendor spelling as ours (``"pcm"`` is ``"pcm16"``);
* a model's ``SPEC_DEFAULTS`` fill in what the spec says a missing field means, where
  that differs from what we write (no ``turn_detection`` is client VAD);
* a model's ``MISPLACED`` fields are refused with where they belong (GLM drops a session
  whose ``chat_mode`` is not inside ``beta_fields``).

What the spec forbids (a wrong type, a value outside its enum or range) is refused either
way, with the field named.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

__all__ = ["LENIENT", "WireModel", "reads_leniently"]

logger = logging.getLogger(__name__)

LENIENT: Mapping[str, bool] = MappingProxyType({"lenient": True})
"""The validation context that reads a model leniently."""

_M = TypeVar("_M", bound="WireModel")


def reads_leniently(info: ValidationInfo) -> bool:
    """Whether this validation reads what a peer sent (with :data:`LENIENT`)."""
    context = info.context
    return isinstance(context, Mapping) and bool(context.get("lenient"))


class WireModel(BaseModel):
    """A client-side protocol model; see the module docstring for the two ways to read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    PLACEHOLDERS: ClassVar[Mapping[str, tuple[object, ...]]] = {}
    """Field -> values that mean "not given" when read."""
    ALIASES: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    """Field -> {value as a peer spells it: value as we do}."""
    SPEC_DEFAULTS: ClassVar[Mapping[str, object]] = {}
    """Field -> what the spec says its absence means, where our written default differs."""
    MISPLACED: ClassVar[Mapping[str, str]] = {}
    """Field that does not belong here -> where it belongs (refused when read)."""

    @classmethod
    def read(cls: type[_M], data: Mapping[str, Any]) -> _M:
        """Validate ``data`` as a peer sent it, leniently.

        Raises:
            pydantic.ValidationError: what the spec forbids, naming the field.
        """
        return cls.model_validate(data, context=LENIENT)

    @model_validator(mode="before")
    @classmethod
    def _read_leniently(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping) or not reads_leniently(info):
            return data
        misplaced = [
            f"{key} belongs inside {cls.MISPLACED[key]}" for key in data if key in cls.MISPLACED
        ]
        if misplaced:
            raise ValueError("; ".join(misplaced))
        known, unknown = {}, []
        for key, value in data.items():
            if key not in cls.model_fields:
                unknown.append(str(key))
            elif value is not None and not _is_placeholder(value, cls.PLACEHOLDERS.get(key, ())):
                known[key] = (
                    cls.ALIASES.get(key, {}).get(value, value) if isinstance(value, str) else value
                )
        for key, meaning in cls.SPEC_DEFAULTS.items():
            known.setdefault(key, meaning)
        if unknown and logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s: ignored unknown field(s) %s", cls.__name__, ", ".join(sorted(unknown))
            )
        return cls._read_extra(known)

    @classmethod
    def _read_extra(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A model's own lenient rule, after the common ones (default: none)."""
        return data


def _is_placeholder(value: object, placeholders: tuple[object, ...]) -> bool:
    # False == 0 in Python; a boolean is never a numeric placeholder.
    return not isinstance(value, bool) and value in placeholders
