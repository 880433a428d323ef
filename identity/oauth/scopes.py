"""The scopes a mini-app may ask a citizen for, and what each one releases.

``real_name`` (full name and ID number) is only ever granted to clients the
platform approved for it (``allowed_scopes``); asked for by any other client it
is left out of the grant (RFC 6749 section 3.3 lets the server narrow scope).
``ecert:<type>`` is a pass-through consent read by the e-certificate context.
"""

from __future__ import annotations

import re

from identity.oauth.errors import OAuthError

STANDARD = ("openid", "profile", "phone", "real_name")
RESTRICTED = frozenset({"real_name"})
ECERT = re.compile(r"^ecert:[a-z0-9][a-z0-9_.-]{0,63}$")

CLAIMS_BY_SCOPE: dict[str, tuple[str, ...]] = {
    "openid": ("sub", "acr"),
    "profile": ("name",),
    "phone": ("phone_number", "phone_number_verified"),
    "real_name": ("real_name", "id_number"),
}

DESCRIPTIONS: dict[str, str] = {
    "openid": "你在本应用中的用户标识 · Your ID for this app",
    "profile": "昵称（隐去部分姓名）· Your name, partly hidden",
    "phone": "手机号码 · Your phone number",
    "real_name": "真实姓名与身份证号 · Your full name and ID number",
}


def describe(scope: str) -> str:
    if scope.startswith("ecert:"):
        return f"使用电子证照「{scope[6:]}」· Use your e-certificate {scope[6:]}"
    return DESCRIPTIONS.get(scope, scope)


def parse(raw: str | None) -> list[str]:
    """Space-separated scopes, de-duplicated in order; unknown ones are an error."""
    out: list[str] = []
    for s in (raw or "").split():
        if s in out:
            continue
        if s not in STANDARD and not ECERT.match(s):
            raise OAuthError("invalid_scope", f"Unknown scope {s[:64]!r}.")
        out.append(s)
    if len(out) > 32:
        raise OAuthError("invalid_scope", "Too many scopes.")
    return out


def grantable(requested: list[str], allowed_scopes: tuple[str, ...]) -> list[str]:
    """The requested scopes this client may receive at all."""
    return [s for s in requested if s not in RESTRICTED or s in allowed_scopes]
