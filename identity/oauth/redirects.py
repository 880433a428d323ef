"""Which redirect URIs a client may register (RFC 9700 2.1, RFC 8252 7).

HTTPS anywhere; plain HTTP only on the loopback interface (development and
native apps); a private-use scheme for native apps (reverse domain name, e.g.
``cn.gov.sz.app:/callback``). No fragments, no wildcards: the authorisation
endpoint compares exact strings.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from identity.errors import ValidationError

_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+$")


def validate_redirect_uri(uri: str) -> str:
    def bad(why: str) -> ValidationError:
        return ValidationError("redirect_uri", f"Redirect URI {uri[:100]!r} {why}")

    if not uri or len(uri) > 2000 or any(c.isspace() for c in uri) or "*" in uri:
        raise bad("must be one absolute URI without spaces or wildcards.")
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise bad("must not have a fragment.")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return uri
    if _PRIVATE_SCHEME.match(parts.scheme):
        return uri
    raise bad("must be https, http on the loopback interface, or a reverse-domain scheme.")


def validate_redirect_uris(uris: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(validate_redirect_uri(u) for u in uris)
