"""The free-text types every API field, query and path parameter and tus metadata value uses.

Text from a client reaches Postgres (which refuses NUL: a 500 before these types), S3 headers
and people's screens. Three kinds cover what the fields need:

- ``Identifier``: ids of devices, officers, token subjects: no whitespace at all;
- ``ShortText``: one line shown to people (a device model, a file name);
- ``LongText``: several lines shown to people (a trigger reason); tab and line breaks (LF,
  CRLF) allowed.

All three refuse other control characters (C0, DEL, C1), lone surrogates (not encodable as
UTF-8) and the bidi overrides and isolates (U+202A to U+202E, U+2066 to U+2069) and marks, which
make a file name or a reason read differently on screen than it is stored ("Trojan Source"),
the line and paragraph separators (U+2028, U+2029) and the deprecated format controls
(U+206A to U+206F). Identifiers also refuse invisible characters (zero-width space and
joiners, word joiner, BOM, soft hyphen, variation selectors, fillers), so two ids that look
the same are the same.
Patterns are always applied with ``fullmatch``: ``$`` would match before a trailing newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field

# Code point ranges no free-text field needs. Tab, CR and LF are allowed back for LongText.
_FORBIDDEN_RANGES = (
    (0x00, 0x1F), (0x7F, 0x9F),  # C0 controls, DEL, C1 controls
    (0x061C, 0x061C), (0x200E, 0x200F),  # bidi marks
    (0x2028, 0x2029),  # line and paragraph separators: line breaks no one-line text wants
    (0x202A, 0x202E), (0x2066, 0x2069),  # bidi embeddings, overrides, isolates
    (0x206A, 0x206F),  # deprecated format controls (symmetric swapping, digit shapes)
    (0xD800, 0xDFFF),  # lone surrogates: valid in a Python str, not in UTF-8
)


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    """``\\uXXXX-\\uYYYY`` ranges: Python's ``re`` and ECMA-262 (OpenAPI) both read them."""
    return "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges)


_FORBIDDEN = _char_class(_FORBIDDEN_RANGES)

#: Invisible characters an identifier must not hide: "officer-7" followed by a zero-width
#: space looks like "officer-7" and is another officer (soft hyphen, zero-width space and
#: joiners, word joiner and invisible operators, variation selectors, BOM, fillers).
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200D), (0x2060, 0x2064), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFFB),
)


@dataclass(frozen=True)
class TextKind:
    """One kind of free text: which characters it allows and how long it may be."""

    name: str
    max_length: int
    allow: str = ""  # forbidden characters this kind still needs (tab, newline)
    no_whitespace: bool = False
    forbid: tuple[tuple[int, int], ...] = ()  # ranges forbidden in this kind only

    @property
    def _body(self) -> str:
        forbidden = (_FORBIDDEN + _char_class(self.forbid)
                     + (r"\s" if self.no_whitespace else ""))
        if self.allow:
            # No set subtraction in either dialect: allowed extras are an alternative.
            allowed = "".join(f"\\u{ord(c):04x}" for c in self.allow)
            return f"(?:[{allowed}]|[^{forbidden}])"
        return f"[^{forbidden}]"

    def check(self, value: str) -> str:
        """``value`` if it is this kind of text; ``ValueError`` naming what is wrong."""
        if not value:
            raise ValueError("must not be empty")
        if len(value) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters")
        if re.fullmatch(f"{self._body}*", value) is None:
            for char in value:
                if char not in self.allow and any(lo <= ord(char) <= hi
                                                  for lo, hi in _FORBIDDEN_RANGES):
                    raise ValueError(f"contains the control or bidi character U+{ord(char):04X}")
                if any(lo <= ord(char) <= hi for lo, hi in self.forbid):
                    raise ValueError(f"contains the invisible character U+{ord(char):04X}")
            raise ValueError("must not contain whitespace")
        return value

    @property
    def json_pattern(self) -> str:
        """The same rule in the OpenAPI schema. ECMA-262 has no ``\\A``/``\\Z``; there ``^`` and
        ``$`` anchor the whole value (Python's ``$`` would also match before a final newline,
        which is why Python code here uses ``fullmatch``)."""
        return f"^{self._body}*$"

    def annotated(self) -> object:
        """Constraints for ``Annotated[str, ...]``, documented in the OpenAPI schema."""
        return Field(min_length=1, max_length=self.max_length,
                     json_schema_extra={"pattern": self.json_pattern})


IDENTIFIER = TextKind("identifier", 200, no_whitespace=True, forbid=_INVISIBLE_RANGES)
SHORT_TEXT = TextKind("short text", 255)
LONG_TEXT = TextKind("long text", 2000, allow="\t\n\r")

Identifier = Annotated[str, IDENTIFIER.annotated(), AfterValidator(IDENTIFIER.check)]
ShortText = Annotated[str, SHORT_TEXT.annotated(), AfterValidator(SHORT_TEXT.check)]
LongText = Annotated[str, LONG_TEXT.annotated(), AfterValidator(LONG_TEXT.check)]


def not_blank(hint: str = "") -> AfterValidator:
    """Refuses a value of whitespace only (the lengths above count it as text); ``hint`` says
    what belongs there."""
    message = "must not be blank" + (f": {hint}" if hint else "")

    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(message)
        return value

    return AfterValidator(check)


NonBlankShortText = Annotated[ShortText, not_blank()]
NonBlankLongText = Annotated[LongText, not_blank()]
