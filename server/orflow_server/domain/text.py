"""Which characters an identifier or a name may hold: the one rule every door applies.

Control characters break logs and SQL text; format characters (Unicode Cf: the
right-to-left override U+202E, zero-width spaces and joiners) are invisible, so
two ids that print alike could name different patients. Line and paragraph
separators and private-use characters have no place in a name either.
"""

from __future__ import annotations

import unicodedata

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Unicode general categories no identifier or name may contain."""


def has_refused_characters(value: str) -> bool:
    """True when `value` holds a control, invisible-format, surrogate, private-use or line-separator character."""
    return any(unicodedata.category(ch) in REFUSED_CATEGORIES for ch in value)
