"""Streaming speech recognition: the :class:`Recognizer` protocol and pocketsphinx.

This module is the one import point of both; each lives in a module of its own:

* :mod:`~glm_local.speech.asr_protocol`: :class:`Recognizer`, what every engine
  implements, and :func:`live_recognizers`, how many of them hold resources;
* :mod:`~glm_local.speech.pocketsphinx_model`: :class:`PocketSphinxModel`, the model files
  and the LM that every decoder of a process shares;
* :mod:`~glm_local.speech.pocketsphinx_recognizer`: :class:`PocketSphinxRecognizer`, one
  stream's decoder and its cepstral mean calibration.

The whisper engine is :mod:`glm_local.speech.whisper`; engines by name,
:mod:`glm_local.speech.recognizers`.
"""

from __future__ import annotations

from .asr_protocol import Recognizer, live_recognizers
from .pocketsphinx_model import PocketSphinxModel
from .pocketsphinx_recognizer import PocketSphinxRecognizer

__all__ = ["PocketSphinxModel", "PocketSphinxRecognizer", "Recognizer", "live_recognizers"]
