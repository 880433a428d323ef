"""Pairwise subject identifiers (OpenID Connect Core section 8.1).

A citizen has one ``sub`` across the apps of one unit (the sector, like
WeChat's unionid across one developer's apps) and unrelated ones across units
(like openid), derived with a keyed HMAC so nobody without the master key can
link them or recover the account id.
"""

from __future__ import annotations

import base64

from identity.crypto import Vault


def pairwise_sub(vault: Vault, account_id: str, sector: str) -> str:
    digest = vault.blind_index(f"{sector}\x00{account_id}", context="pairwise")
    return "pw_" + base64.b32encode(digest[:15]).decode().lower()
