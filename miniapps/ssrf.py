"""Server-side request forgery guard for mini-app upstream URLs.

Follows the OWASP SSRF Prevention Cheat Sheet: allow only ``http``/``https``,
no userinfo, resolve the host and refuse every address that is not globally
routable (RFC 6890 special-purpose registries: private, loopback, link-local,
multicast, unspecified, reserved, CGNAT 100.64.0.0/10 of RFC 6598), including
IPv4 addresses embedded in IPv6 (IPv4-mapped ``::ffff:0:0/96``, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo). An operator allow-list of CIDRs
(e.g. an intranet where units host their services) re-admits addresses.

Check twice: at review time (:func:`check_upstream` with ``phase="review"``)
and at connect time (``phase="connect"``), because DNS can change (DNS
rebinding). At connect time connect to one of the returned addresses, not to
the name again, or the check proves nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from miniapps.errors import UpstreamAddressRefused, UpstreamNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Phase = Literal["review", "connect"]

# Special-purpose blocks named explicitly: the stdlib's tables differ between
# Python patch releases (e.g. 192.0.0.0/24 and fec0::/10 in 3.11).
_DENY = tuple(
    ipaddress.ip_network(n)
    for n in (
        "100.64.0.0/10",  # CGNAT, RFC 6598
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "fec0::/10",  # deprecated site-local
        "100::/64",  # discard-only
        "2001:db8::/32",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use translation
# A DNS name: letters, digits, hyphens, dots; at least one letter in the last label,
# so that odd numeric forms ("2130706433", "0x7f.1") are not handed to the resolver.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z][a-z0-9-]{0,62}$"
)


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    """Settings for the guard: CIDRs that are allowed although not public."""

    allow_cidrs: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_strings(cls, cidrs: Iterable[str]) -> UpstreamPolicy:
        return cls(tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()))


@dataclass(frozen=True, slots=True)
class Upstream:
    """A checked upstream: where to connect and what to send as ``Host``/SNI."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]

    @property
    def origin(self) -> str:
        """``scheme://host:port``: the circuit-breaker and connection-pool key."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    return None


def _is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        # The stdlib calls all of ::ffff:0:0/96, 64:ff9b::/96, 2002::/16 non-global;
        # what matters is where the packet ends up: the embedded IPv4 address.
        return _is_public(embedded)
    if any(ip.version == net.version and ip in net for net in _DENY):
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


def is_allowed_address(ip: IPAddress, policy: UpstreamPolicy = UpstreamPolicy()) -> bool:
    """True if the platform may connect to ``ip``: public, or inside an allow-listed CIDR."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_ipv4(ip)) is not None:
        candidates.append(v4)
    for net in policy.allow_cidrs:
        if any(c.version == net.version and c in net for c in candidates):
            return True
    return _is_public(ip)


def parse_upstream(url: str, phase: Phase = "review") -> tuple[str, str, int, str]:
    """Split and validate the URL's syntax: ``(scheme, host, port, path)``."""
    error = UpstreamNotAllowed if phase == "review" else UpstreamAddressRefused
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise error("the upstream URL is malformed") from exc
    if parts.scheme not in ("http", "https"):
        raise error("only http and https upstreams are allowed")
    if "@" in parts.netloc or parts.username is not None:
        raise error("credentials in the upstream URL are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise error("the upstream URL has no host")
    if parts.fragment:
        raise error("the upstream URL must not have a fragment")
    try:
        host = ipaddress.ip_address(host).compressed
    except ValueError:
        if not _HOSTNAME.match(host):
            raise error("the upstream host name is not a valid DNS name") from None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, host, port or default, parts.path or "/"


async def check_upstream(
    url: str, policy: UpstreamPolicy = UpstreamPolicy(), phase: Phase = "review"
) -> Upstream:
    """Validate ``url``, resolve its host, and refuse it if any address is not allowed.

    Every resolved address must pass: a name that resolves to one public and one
    private address is refused, since the client may pick either.
    """
    error = UpstreamNotAllowed if phase == "review" else UpstreamAddressRefused
    scheme, host, port, path = parse_upstream(url, phase)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise error("the upstream host does not resolve") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not is_allowed_address(ip, policy):
            # Do not echo the address: it would map the internal network for the caller.
            raise error("the upstream resolves to a non-public address")
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise error("the upstream host does not resolve")
    return Upstream(scheme, host, port, path, tuple(addresses))
