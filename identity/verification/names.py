"""Validation of the name a citizen types for real-name verification.

Names are compared with the registry's record after Unicode NFC normalisation
(so a name typed with combining marks equals its precomposed form) and with
runs of spaces collapsed. Allowed: letters of any script, combining marks, the
middle dot of ethnic-minority and transliterated names (``阿卜杜·热合曼``; the
full-width and katakana forms are folded to U+00B7) and, for foreign permanent
residents' Latin names, spaces, hyphens, apostrophes and full stops.
"""

from __future__ import annotations

import re
import unicodedata

from identity.errors import ValidationError

__all__ = ["MAX_NAME_LENGTH", "normalise_name"]

FIELD = "name"
MAX_NAME_LENGTH = 60
_MIDDLE_DOTS = str.maketrans({"\u30fb": "\u00b7", "\uff65": "\u00b7", "\u2022": "\u00b7"})
_PUNCTUATION = frozenset(" \u00b7-'.")


def normalise_name(raw: object) -> str:
    """The normalised name, or ``ValidationError`` on field ``name`` (never echoing it)."""
    if not isinstance(raw, str):
        raise ValidationError(FIELD, "The name must be a string.")
    name = unicodedata.normalize("NFC", raw).translate(_MIDDLE_DOTS)
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in name):
        raise ValidationError(FIELD, "The name must be on one line, without control characters.")
    name = re.sub(r"[ \u3000]+", " ", name).strip()
    if not name:
        raise ValidationError(FIELD, "Enter your name as printed on your ID card.")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(FIELD, f"The name may be at most {MAX_NAME_LENGTH} characters.")
    for char in name:
        category = unicodedata.category(char)
        if not (category.startswith("L") or category.startswith("M") or char in _PUNCTUATION):
            raise ValidationError(
                FIELD, "The name may contain only letters, spaces and the middle dot (·)."
            )
    if not unicodedata.category(name[0]).startswith("L"):
        raise ValidationError(FIELD, "The name must start with a letter.")
    return name
