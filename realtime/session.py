"""The ``session`` object of GLM-Realtime, validated.

GLM treats ``session.update`` as a full reset, not a patch: a field left out falls back to
the server default (leaving out ``beta_fields`` resets ``chat_mode``; leaving out
``turn_detection`` after a tool change drops server VAD). So :class:`SessionConfig` has a
concrete value for every field that changes behaviour and always serialises all of them;
fields that are ``None`` mean "the server's default" and are the only ones omitted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from realtime._validation import config_error
from realtime.audio import InputAudioFormat
from realtime.wire import WireModel

__all__ = [
    "KNOWN_MODELS",
    "VOICES",
    "BetaFields",
    "FunctionTool",
    "GreetingConfig",
    "NoiseReduction",
    "SessionConfig",
    "TurnDetection",
    "Voice",
]

# The spec lists flash and air; live clients were also served "glm-realtime-plus" and saw
# "glm-realtime" echoed back, so those are accepted too.
KNOWN_MODELS: tuple[str, ...] = (
    "glm-realtime-flash",
    "glm-realtime-air",
    "glm-realtime-plus",
    "glm-realtime",
)
Voice = Literal[
    "tongtong",
    "female-tianmei",
    "male-qn-daxuesheng",
    "male-qn-jingying",
    "lovely_girl",
    "female-shaonv",
]
VOICES: tuple[str, ...] = get_args(Voice)
MAX_OUTPUT_TOKENS = 1024
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_TUNING = (
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "create_response",
    "interrupt_response",
)


class TurnDetection(WireModel):
    """Who decides that the user has finished speaking.

    ``server_vad``: the server detects speech and answers by itself; the tuning fields
    apply only here (they come from the SDKs, not the spec). ``client_vad``: the client
    commits the buffer and sends ``response.create``. We write ``server_vad`` unless told
    otherwise; read, a missing ``type`` is ``client_vad`` (the spec's default), Zhipu's
    SDK's zero tuning values mean "the server's default", and tuning under client VAD is
    ignored.
    """

    PLACEHOLDERS: ClassVar[Mapping[str, tuple[object, ...]]] = {
        "threshold": (0,),
        "prefix_padding_ms": (0,),
        "silence_duration_ms": (0,),
    }
    SPEC_DEFAULTS: ClassVar[Mapping[str, object]] = {"type": "client_vad"}

    type: Literal["server_vad", "client_vad"] = "server_vad"
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)
    create_response: bool | None = None
    interrupt_response: bool | None = None

    @classmethod
    def _read_extra(cls, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("type") == "server_vad":
            return data
        return {key: value for key, value in data.items() if key not in _TUNING}

    @model_validator(mode="after")
    def _tuning_only_under_server_vad(self) -> TurnDetection:
        if self.type != "server_vad":
            tuned = [name for name in _TUNING if getattr(self, name) is not None]
            if tuned:
                raise ValueError(
                    f"{', '.join(tuned)}: only valid with type 'server_vad' (type is {self.type!r})"
                )
        return self


class FunctionTool(WireModel):
    """A function the model may call (``parameters`` is a JSON Schema object)."""

    type: Literal["function"] = "function"
    name: str
    description: str
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []}
    )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _TOOL_NAME.match(value):
            raise ValueError("must be 1-64 characters of letters, digits, '_' or '-'")
        return value


class NoiseReduction(WireModel):
    """Input noise reduction: ``near_field`` for close microphones, ``far_field`` otherwise."""

    type: Literal["near_field", "far_field"]


class BetaFields(WireModel):
    """GLM-only settings; they must be nested in ``session`` (sent flat, GLM drops the call)."""

    chat_mode: Literal["audio", "video_passive"] = "audio"
    tts_source: Literal["e2e"] | None = "e2e"
    auto_search: bool | None = True


class GreetingConfig(WireModel):
    """A server-generated opening line, spoken when the session starts."""

    enable: bool = True
    content: str | None = None


class SessionConfig(WireModel):
    """Everything ``session.update`` sends.

    Invalid values raise :class:`realtime.errors.ConfigError` naming the field and what is
    allowed. The model is immutable, so a sent session cannot change under the sender;
    :meth:`replace` derives a changed, revalidated copy. Read from a client
    (:meth:`~realtime.wire.WireModel.read`), ``"voice": "default"`` is the default voice,
    ``"pcm"`` input is ``pcm16`` and ``wav24`` (the old doc's) is ``wav``, no
    ``turn_detection`` is client VAD (the spec's default) and a ``beta_fields`` setting sent
    flat is refused (GLM drops such a session).
    """

    PLACEHOLDERS: ClassVar[Mapping[str, tuple[object, ...]]] = {
        "voice": ("default",),
        "max_response_output_tokens": ("inf",),  # the Go client's "no limit"
    }
    # The old doc's wav16/24/48 (the original extension sends wav24): a WAV names its rate.
    ALIASES: ClassVar[Mapping[str, Mapping[str, str]]] = {
        "input_audio_format": {"pcm": "pcm16", "wav16": "wav", "wav24": "wav", "wav48": "wav"}
    }
    SPEC_DEFAULTS: ClassVar[Mapping[str, object]] = {"turn_detection": {"type": "client_vad"}}
    MISPLACED: ClassVar[Mapping[str, str]] = {
        "chat_mode": "beta_fields",
        "tts_source": "beta_fields",
        "auto_search": "beta_fields",
    }

    model: str = "glm-realtime-flash"
    input_audio_format: InputAudioFormat = "wav"
    output_audio_format: Literal["pcm"] = "pcm"
    instructions: str | None = None
    voice: Voice = "tongtong"
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    max_response_output_tokens: str | None = None
    turn_detection: TurnDetection = Field(default_factory=TurnDetection)
    tools: tuple[FunctionTool, ...] = ()
    modalities: tuple[Literal["text", "audio"], ...] = ("text", "audio")
    input_audio_noise_reduction: NoiseReduction | None = None
    beta_fields: BetaFields = Field(default_factory=BetaFields)
    greeting_config: GreetingConfig | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, "session") from exc

    # Marked as pydantic's own __init__, so that validating a session inside an event (or
    # with a context, as a server reads it) runs the validators with that context instead
    # of calling this; only building a SessionConfig directly turns errors into ConfigError.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in KNOWN_MODELS:
            raise ValueError(f"unknown model; expected one of {', '.join(KNOWN_MODELS)}")
        return value

    @field_validator("max_response_output_tokens", mode="before")
    @classmethod
    def _tokens_as_string(cls, value: object) -> object:
        # GLM wants a string; accept an int from callers and check the range either way.
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"must be an integer 1-{MAX_OUTPUT_TOKENS} (as int or string)")
        text = str(value).strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_OUTPUT_TOKENS:
            raise ValueError(f"must be an integer 1-{MAX_OUTPUT_TOKENS}")
        return str(int(text))

    @field_validator("modalities")
    @classmethod
    def _modalities_sane(
        cls, value: tuple[Literal["text", "audio"], ...]
    ) -> tuple[Literal["text", "audio"], ...]:
        if not value:
            raise ValueError("must name at least one of 'text', 'audio'")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a modality")
        return value

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, value: tuple[FunctionTool, ...]) -> tuple[FunctionTool, ...]:
        names = [tool.name for tool in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tool names must be unique; repeated: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _tools_need_audio_mode(self) -> SessionConfig:
        if self.tools and self.beta_fields.chat_mode != "audio":
            raise ValueError("tools work only with beta_fields.chat_mode 'audio'")
        return self

    def replace(self, **changes: Any) -> SessionConfig:
        """A validated copy with ``changes`` applied (``model_copy`` would skip validation)."""
        return SessionConfig(**{**self.model_dump(), **changes})

    def to_wire(self) -> dict[str, Any]:
        """The JSON object GLM receives: every set field, nested as the spec nests it."""
        return self.model_dump(mode="json", exclude_none=True)
