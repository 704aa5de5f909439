"""Split streamed assistant text into sentences for ``text_data``.

GLM streams the transcript in fragments; a UI wants whole sentences. Fragments are cut
after Latin and CJK sentence punctuation; whatever has no punctuation yet stays in the
tail until more text or the end of the response (then it is sent, never dropped).
"""

from __future__ import annotations

import re

__all__ = ["SentenceSplitter"]

# The seed's cut points (, ， . 。 ? ？ ! ！) plus ; ； … 、: short chunks show sooner.
_CUT = re.compile(r"(?<=[,，.。?？!！;；…、])\s*")


class SentenceSplitter:
    """Accumulate fragments; hand out complete sentences."""

    def __init__(self) -> None:
        self._tail = ""
        self._text: list[str] = []

    @property
    def tail(self) -> str:
        """Text received but not yet handed out."""
        return self._tail

    @property
    def text(self) -> str:
        """Everything received so far."""
        return "".join(self._text)

    def feed(self, fragment: str) -> list[str]:
        """Add a fragment; return the sentences it completes (with their punctuation)."""
        self._text.append(fragment)
        buffer = self._tail + fragment
        sentences: list[str] = []
        start = 0
        for cut in _CUT.finditer(buffer):
            piece = buffer[start : cut.end()]
            # Punctuation alone is not a sentence: keep it with what follows.
            if any(ch.isalnum() for ch in piece):
                sentences.append(piece)
                start = cut.end()
        self._tail = buffer[start:]
        return sentences

    def finish(self) -> str:
        """Hand out the unfinished tail (possibly empty); :attr:`text` keeps everything."""
        tail, self._tail = self._tail, ""
        return tail
