"""Turn progress as the user sees it: a redrawn status line on a terminal, plain lines in a log."""

from __future__ import annotations

import io
import re

from glm_realtime.progress import TurnProgress


class Terminal(io.StringIO):
    """Text written to a terminal; :meth:`screen` is what is left visible."""

    def isatty(self) -> bool:
        return True

    def screen(self) -> list[str]:
        lines, line, col = [], "", 0
        for token in re.findall(r"\r|\n|\x1b\[K|[^\r\n\x1b]+", self.getvalue()):
            if token == "\n":
                lines.append(line)
                line, col = "", 0
            elif token == "\r":
                col = 0
            elif token == "\x1b[K":
                line = line[:col]
            else:
                line = line[:col] + token + line[col + len(token) :]
                col += len(token)
        return [*lines, line] if line else lines


def play(out: io.StringIO) -> None:
    progress = TurnProgress(10.8, out)
    progress.start()
    progress.sent(3.25)
    progress.text({"role": "user", "text": "what time is it", "end_of_segment": True})
    progress.sent(10.8)
    progress.sent_all()
    progress.text({"role": "assistant", "text": "It is nine.", "end_of_segment": False})
    progress.text({"role": "assistant", "text": " ", "end_of_segment": True})
    progress.close()


def test_on_a_terminal_the_status_is_redrawn_in_place_and_finished_lines_stay() -> None:
    out = Terminal()
    play(out)
    assert "sending 3.2 / 10.8 s" in out.getvalue()
    assert "sent the audio, waiting for the reply" in out.getvalue()
    assert out.screen() == ["heard: what time is it", "reply: It is nine."]


def test_in_a_log_only_whole_lines_are_written() -> None:
    out = io.StringIO()
    play(out)
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert out.getvalue().splitlines() == [
        "sending 10.8 s of audio",
        "heard: what time is it",
        "sent the audio, waiting for the reply",
        "reply: It is nine.",
    ]
