"""Opaque identifiers with a type prefix (``usr_``, ``ses_``, ``unt_``...), so a
stray id in a log says what it is. 16 random bytes, Crockford-like base32."""

from __future__ import annotations

import base64
import secrets


def new_id(prefix: str) -> str:
    raw = base64.b32encode(secrets.token_bytes(15)).decode().lower()
    return f"{prefix}_{raw}"
