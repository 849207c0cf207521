"""How long a text is for the person who reads it, and whether it shows anything at all.

Lengths that people see are counted in user-perceived characters: Unicode extended grapheme
clusters (UAX #29), as the `regex` module segments them. "é" typed as e + combining accent,
"👍🏽" (a thumb and a skin tone) and "🇫🇷" (two regional indicators) are one character each,
as a reader counts them, where Python's `len` counts 2 and a browser's `maxlength` (UTF-16
code units) 2, 4 and 4. Every service and page that states a length limit counts this way.

A text is visible when it holds a character that is not white space, a control, a format
character or a default-ignorable code point (zero-width space, BOM `\\ufeff`, bidi controls,
variation selectors, the Hangul fillers, ...), nor the blank braille pattern: a thought of only
such characters shows nothing and was accepted (issue 14).
"""

from __future__ import annotations

import regex

_GRAPHEME = regex.compile(r"\X")
_VISIBLE = regex.compile(
    r"[^\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}\p{Z}\N{BRAILLE PATTERN BLANK}]"
)


def user_perceived_length(text: str) -> int:
    """The number of user-perceived characters (extended grapheme clusters) in `text`."""
    return sum(1 for _ in _GRAPHEME.finditer(text))


def is_visible(text: str) -> bool:
    """True when `text` shows at least one character (see the module docstring)."""
    return _VISIBLE.search(text) is not None
