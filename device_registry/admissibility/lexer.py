"""Cut OpenQASM source into statements in one left-to-right pass, and number their lines.

Comments count as a space and string literals stay whole (a `;` or `//` inside one is text). Each
character is looked at a bounded number of times, so the pass is linear in the source, whatever its
shape: no regular expression here can backtrack, and nothing is searched for twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_SPECIAL = re.compile(r"[;{}/\"']")
_BLANK = re.compile(r"\s*+")
_STRING_REST = {'"': re.compile(r'[^"\n]*+"'), "'": re.compile(r"[^'\n]*+'")}

Piece = tuple[str, int, str]
"""A statement, block header or `}`: its text (comments blanked, not stripped), the offset in the source
from which its first character is the first non-blank one, and what ended it: ';', '{', '}', or ''
for text left after the last of those."""


class Lexer:
    def __init__(self, source: str) -> None:
        self.source = source
        self.unclosed_comment: int | None = None
        """Offset of a `/*` that is never closed (it runs to the end of the source)."""

    def __iter__(self) -> Iterator[Piece]:
        source, search, n = self.source, _SPECIAL.search, len(self.source)
        pos = start = probe = 0  # start: of the text since the last comment; probe: see Piece
        before: list[str] = []  # the statement's text before its comments
        leading = True  # nothing but blanks and comments in the statement so far
        while (found := search(source, pos)) is not None:
            at = found.start()
            char = source[at]
            if char in ";{}":
                text = source[start:at]
                if before:
                    before.append(text)
                    text = " ".join(before)
                    before.clear()
                yield text, probe, char
                pos = start = probe = at + 1
                leading = True
            elif char == "/":
                if source.startswith("//", at):
                    stop = source.find("\n", at)
                    stop = n if stop < 0 else stop
                elif source.startswith("/*", at):
                    close = source.find("*/", at + 2)
                    if close < 0:
                        self.unclosed_comment, stop = at, n
                    else:
                        stop = close + 2
                else:  # a division
                    pos = at + 1
                    continue
                if leading:
                    if _non_blank(source, probe) == at:
                        probe = stop
                    else:
                        leading = False
                before.append(source[start:at])
                pos = start = stop
            else:
                string = _STRING_REST[char].match(source, at + 1)
                pos = at + 1 if string is None else string.end()  # an unclosed quote is just a character
        text = source[start:]
        if before:
            before.append(text)
            text = " ".join(before)
        yield text, probe, ""


class Lines:
    """The line of a piece's first non-blank character, counted on from the previous question.

    Questions come in source order (but for one at the very end), so all of them together cost one
    pass over the source.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._probe, self._at, self._line = -1, 0, 1

    def of(self, probe: int) -> int:
        if probe != self._probe:
            at = _non_blank(self.source, probe)
            if at >= self._at:
                self._line += self.source.count("\n", self._at, at)
            else:
                self._line -= self.source.count("\n", at, self._at)
            self._probe, self._at = probe, at
        return self._line


def _non_blank(text: str, at: int) -> int:
    """The offset of the first non-blank character at or after `at` (or the end)."""
    blank = _BLANK.match(text, at)
    return at if blank is None else blank.end()
