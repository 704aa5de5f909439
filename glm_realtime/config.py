"""The extension's properties, validated, and the GLM session they produce.

Every property either reaches the wire (through :meth:`ExtensionConfig.session_config`)
or has an effect documented on its field; ``manifest.json`` declares each one. A wrong
value stops start-up with a :class:`~realtime.errors.ConfigError` naming the property.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from realtime._validation import describe_validation_error
from realtime.audio import InputAudioFormat
from realtime.errors import ConfigError
from realtime.session import (
    BetaFields,
    FunctionTool,
    GreetingConfig,
    NoiseReduction,
    SessionConfig,
    TurnDetection,
    Voice,
)

__all__ = ["ADDON_NAME", "ExtensionConfig", "LANGUAGE_NAMES"]

ADDON_NAME = "glm_v2v_python"
# GLM's default persona answers in Chinese; naming the language keeps replies in it.
LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
}
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class ExtensionConfig(BaseModel):
    """Properties of the ``glm_v2v_python`` node (defaults match ``property.json``)."""

    # Field docstrings become descriptions: the README's property table and the test
    # that every property has an effect both read them.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    # Where and who.
    base_uri: str = "wss://open.bigmodel.cn"
    path: str = "/api/paas/v4/realtime"
    api_key: str = Field(default="", repr=False)
    auth: Literal["api_key", "jwt", "none"] = "api_key"
    """``jwt`` signs a short-lived token with the key's secret instead of sending the key;
    ``none`` sends no credential (a local server without a token) and takes no key."""
    model: str = "glm-realtime-flash"

    # What the model is told and how it answers.
    prompt: str = ""
    """Sent as ``instructions``; empty keeps GLM's default persona."""
    language: str = "en-US"
    """Appended to the instructions ("Always reply in English.")."""
    greeting: str = ""
    """Spoken once via ``greeting_config`` when the first user joins; empty: no greeting."""
    voice: Voice = "tongtong"
    temperature: float = Field(default=0.5, ge=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=1, le=1024)
    """Sent as ``max_response_output_tokens``."""
    audio_out: bool = True
    """False asks for text only (``modalities: ["text"]``); no pcm frames are sent."""
    auto_search: bool = True
    chat_mode: Literal["audio", "video_passive"] = "audio"
    """``video_passive`` forwards ``video_frame`` data (JPEG bytes) to GLM; tools need audio."""

    # Turn taking.
    server_vad: bool = True
    """False: client VAD; a ``flush`` cmd in ends the user turn (commit + response.create)."""
    vad_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    vad_prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    vad_silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)

    # Audio.
    input_audio_format: InputAudioFormat = "wav"
    input_sample_rate: int = Field(default=16000, ge=8000, le=48000)
    """Uplink rate in ``wav`` mode (pcm16/pcm24 fix the rate); frames are resampled to it."""
    packet_ms: int = Field(default=100, ge=10, le=1000)
    """Uplink packet duration."""
    noise_reduction: Literal["", "near_field", "far_field"] = ""
    sample_rate: int = Field(default=24000, ge=8000, le=48000)
    """Rate of the ``pcm_frame``s sent out (GLM speaks 24 kHz; other rates are resampled)."""
    disconnected_audio: Literal["drop", "keep"] = "keep"
    """While reconnecting: drop user audio, or keep the last ``disconnected_keep_ms``."""
    disconnected_keep_ms: int = Field(default=2000, ge=0, le=60_000)
    """How much recent user audio ``keep`` holds while there is no session."""

    # Transcripts and memory.
    input_transcript: bool = True
    """Forward the user's transcript as ``text_data`` (GLM always transcribes)."""
    stream_id: int = 0
    """``stream_id`` of the assistant's ``text_data`` (the user's comes from the audio)."""
    max_history: int = Field(default=20, ge=0, le=1000)
    """Turns of both roles remembered; replayed into the instructions after a reconnect."""
    enable_storage: bool = False
    """``retrieve`` history at start and send ``append`` data for every turn."""

    # Robustness.
    max_reconnect_attempts: int = Field(default=5, ge=0, le=1000)
    """Consecutive failed attempts before giving up (0: never reconnect)."""
    reconnect_base_delay_ms: int = Field(default=500, ge=0, le=60_000)
    """First reconnect delay; doubles per failure, jittered, reset after a good session."""
    reconnect_max_delay_ms: int = Field(default=8000, ge=0, le=300_000)
    """Cap of the reconnect delay."""
    heartbeat_timeout_ms: int = Field(default=90_000, ge=100, le=600_000)
    """No frame at all for this long (GLM beats every 30 s): reconnect."""
    tool_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    """A tool that has not answered by then gets a failure output."""

    # Diagnostics.
    dump: bool = False
    """Write the user's uplink and the assistant's downlink PCM under ``dump_path``."""
    dump_path: str = "."
    """Directory of the dumps: ``<role>_<time>_<rate>hz.pcm``."""

    @classmethod
    def from_properties(cls, properties: dict[str, Any], node: str = ADDON_NAME) -> ExtensionConfig:
        """Validate raw properties; the error names every bad property and the node."""
        try:
            return cls.model_validate(properties)
        except ValidationError as exc:
            detail = describe_validation_error(exc, "")
            raise ConfigError(f"invalid property of node '{node}': {detail}") from exc

    @field_validator("base_uri")
    @classmethod
    def _websocket_uri(cls, value: str) -> str:
        if not re.match(r"^wss?://[^/\s]+$", value.rstrip("/")):
            raise ValueError("must be ws://host[:port] or wss://host[:port]")
        return value.rstrip("/")

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str) -> str:
        if not _LANGUAGE_TAG.match(value):
            raise ValueError("must be a language tag like 'en-US' or 'zh-CN'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExtensionConfig:
        tuned = [
            name
            for name in ("vad_threshold", "vad_prefix_padding_ms", "vad_silence_duration_ms")
            if getattr(self, name) is not None
        ]
        if tuned and not self.server_vad:
            raise ValueError(f"{', '.join(tuned)} need server_vad true")
        if self.reconnect_max_delay_ms < self.reconnect_base_delay_ms:
            raise ValueError("reconnect_max_delay_ms must be >= reconnect_base_delay_ms")
        if self.auth == "none" and self.api_key.strip():
            raise ValueError("auth 'none' sends no credential: leave api_key empty")
        # Fail here rather than at the first session.update.
        self.session_config()
        return self

    @property
    def url(self) -> str:
        """The websocket URL."""
        return self.base_uri + self.path

    @property
    def language_name(self) -> str:
        """The language as words for the instructions."""
        return LANGUAGE_NAMES.get(self.language.split("-")[0].lower(), self.language)

    def instructions(self, history: str = "") -> str:
        """Prompt, language rule and (after a reconnect) the conversation so far."""
        parts = [self.prompt.strip(), f"Always reply in {self.language_name}."]
        if history:
            parts.append(history)
        return "\n\n".join(p for p in parts if p)

    def session_config(
        self,
        tools: tuple[FunctionTool, ...] = (),
        history: str = "",
        greet: bool = False,
    ) -> SessionConfig:
        """The whole session GLM receives; ``greet`` adds the one-time greeting."""
        if self.server_vad:
            turn = TurnDetection(
                type="server_vad",
                threshold=self.vad_threshold,
                prefix_padding_ms=self.vad_prefix_padding_ms,
                silence_duration_ms=self.vad_silence_duration_ms,
            )
        else:
            turn = TurnDetection(type="client_vad")
        return SessionConfig(
            model=self.model,
            input_audio_format=self.input_audio_format,
            instructions=self.instructions(history),
            voice=self.voice,
            temperature=self.temperature,
            max_response_output_tokens=self.max_tokens,
            turn_detection=turn,
            tools=tools,
            modalities=("text", "audio") if self.audio_out else ("text",),
            input_audio_noise_reduction=(
                NoiseReduction(type=self.noise_reduction) if self.noise_reduction else None
            ),
            beta_fields=BetaFields(chat_mode=self.chat_mode, auto_search=self.auto_search),
            greeting_config=(
                GreetingConfig(enable=True, content=self.greeting)
                if greet and self.greeting
                else None
            ),
        )
