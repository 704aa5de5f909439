"""Live progress of one spoken turn on stderr: audio sent, what was heard, the reply.

Plain click output (click is already a dependency; rich or tqdm would add to the base
install for one status line). Two modes, picked by whether stderr is a terminal:

* a terminal: one status line redrawn in place (``sending 3.2 / 10.8 s``, then
  ``waiting for the reply``), with each finished line printed above it;
* a pipe or a log: only lines, so nothing is overwritten: ``sending 10.8 s of audio``,
  ``sent the audio, waiting for the reply``, ``heard: ...`` once per user segment and
  ``reply: ...`` for each piece of the reply as it streams.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import click

__all__ = ["TurnProgress"]


class TurnProgress:
    """Reports a turn while it runs; feed it :meth:`sent` and :meth:`text`.

    Args:
        input_seconds: Length of the input, for ``sending X / TOTAL s``.
        out: Where to write (stderr by default).
    """

    def __init__(self, input_seconds: float, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.live = self.out.isatty()
        self.total = input_seconds
        self._status = ""
        self._sent_all = False

    def _line(self, text: str) -> None:
        if self.live and self._status:
            click.echo("\r\x1b[K", file=self.out, nl=False)
        click.echo(text, file=self.out)
        self._draw(self._status)

    def _draw(self, status: str) -> None:
        self._status = status
        if self.live and status:
            click.echo(f"\r\x1b[K{status}", file=self.out, nl=False)

    def start(self) -> None:
        """The input starts playing."""
        if self.live:
            self._draw(f"sending 0.0 / {self.total:.1f} s")
        else:
            self._line(f"sending {self.total:.1f} s of audio")

    def sent(self, seconds: float) -> None:
        """``seconds`` of the input (silence around it included) were sent so far."""
        if self.live and not self._sent_all:
            self._draw(f"sending {min(seconds, self.total):.1f} / {self.total:.1f} s")

    def sent_all(self) -> None:
        """All the input was sent; the reply is awaited."""
        self._sent_all = True
        if self.live:
            self._draw("sent the audio, waiting for the reply")
        else:
            self._line("sent the audio, waiting for the reply")

    def text(self, record: dict[str, Any]) -> None:
        """A ``text_data`` piece: the user's transcript or part of the reply."""
        text = str(record.get("text", "")).strip()
        if not text:
            return
        if record.get("role") == "user":
            if record.get("end_of_segment"):
                self._line(f"heard: {text}")
        else:
            self._line(f"reply: {text}")

    def close(self) -> None:
        """Clear the status line (the summary follows on stdout)."""
        if self.live and self._status:
            click.echo("\r\x1b[K", file=self.out, nl=False)
        self._status = ""
