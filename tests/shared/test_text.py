"""The text types every free-text input uses (bwc/text.py): what they refuse and what they
must still accept."""

from __future__ import annotations

import re

import pytest

from bwc.text import IDENTIFIER, LONG_TEXT, SHORT_TEXT


@pytest.mark.parametrize("char", ["\u2028", "\u2029"])
def test_short_text_refuses_unicode_line_breaks(char: str) -> None:
    with pytest.raises(ValueError, match="U\\+202"):
        SHORT_TEXT.check(f"clip{char}name.mp4")


def test_identifier_refuses_invisible_format_characters() -> None:
    """Two officer ids that look the same must be the same: an invisible character makes an
    officer's recordings disappear from the officer's own list."""
    for char in ("\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad"):
        with pytest.raises(ValueError):
            IDENTIFIER.check(f"officer-7{char}")
        assert re.fullmatch(IDENTIFIER.json_pattern[1:-1], f"officer-7{char}") is None
    assert IDENTIFIER.check("officer-müller-7") == "officer-müller-7"
    assert SHORT_TEXT.check("Überfall am Markt, Zeuge\u200d.mp4")  # a joiner in free text


def test_long_text_accepts_windows_line_endings() -> None:
    """A trigger reason typed on a Windows machine has CRLF line endings: legitimate text."""
    reason = "Person mit Messer\r\nbedroht Passanten"
    assert LONG_TEXT.check(reason) == reason
    with pytest.raises(ValueError):
        SHORT_TEXT.check("clip\r.mp4")
