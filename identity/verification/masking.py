"""Masking of names and ID numbers for display and logs.

The rules follow what Chinese government and payment apps show (and what
GB/T 35273-2020 "de-identification" examples do):

- ID number: keep the first 4 characters (province and city) and the last 4,
  replace the 10 in between (county, birth date, sequence) with ``*``:
  ``440305199001011234`` -> ``4403**********1234``.
- Name: mask the first character (the surname, for nearly every Chinese
  name) and keep the rest: ``张三丰`` -> ``*三丰``, ``张三`` -> ``*三``. A
  one-character name is fully masked. Compound surnames such as ``欧阳`` keep
  their second character visible (``*阳锋``): we cannot tell them apart from
  given names reliably, and the full name is still not recoverable.
"""

from __future__ import annotations

import unicodedata

__all__ = ["mask_id_number", "mask_name"]


def mask_id_number(number: str) -> str:
    """``440305199001011234`` -> ``4403**********1234``; short input is fully masked."""
    number = number.strip()
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def mask_name(name: str) -> str:
    """``张三丰`` -> ``*三丰``: the surname (first character) is masked."""
    name = unicodedata.normalize("NFC", name.strip())
    if len(name) <= 1:
        return "*" * len(name)
    return "*" + name[1:]
