"""SSRF guard: which upstream URLs and addresses a unit may register and the gateway may call."""

from __future__ import annotations

import ipaddress

import pytest

from miniapps.errors import UpstreamAddressRefused, UpstreamNotAllowed
from miniapps.ssrf import UpstreamPolicy, check_upstream, is_allowed_address, parse_upstream

REFUSED = [
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "0.1.2.3",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.10",  # TEST-NET-1
    "198.18.0.1",  # benchmarking
    "198.51.100.7",
    "203.0.113.9",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "ff02::1",
    "ff05::2",
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "::ffff:100.64.1.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",
    "2001:db8::1",  # documentation
    "::127.0.0.1",  # deprecated IPv4-compatible
    "fec0::1",  # site-local
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "183.60.92.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.32.0.1",
    "2606:4700:4700::1111",
    "2400:3200::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_allowed_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_allowed_address(ipaddress.ip_address(address))


def test_allow_list_readmits_an_intranet_but_nothing_else() -> None:
    policy = UpstreamPolicy.from_strings(["10.20.0.0/16", " fd00:1::/32 ", ""])
    assert is_allowed_address(ipaddress.ip_address("10.20.3.4"), policy)
    assert is_allowed_address(ipaddress.ip_address("::ffff:10.20.3.4"), policy)
    assert is_allowed_address(ipaddress.ip_address("fd00:1::5"), policy)
    assert not is_allowed_address(ipaddress.ip_address("10.21.0.1"), policy)
    assert not is_allowed_address(ipaddress.ip_address("127.0.0.1"), policy)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com:70/",
        "javascript:alert(1)",
        "https://user:pw@example.com/",
        "https://user@example.com/",
        "https:///nohost",
        "https://example.com:99999/",
        "https://exa mple.com/",
        "https://2130706433/",  # decimal 127.0.0.1
        "https://0x7f.1/",
        "http://example.com/#frag",
        "http://[::1/",
    ],
)
def test_bad_urls_are_refused_at_review(url: str) -> None:
    with pytest.raises(UpstreamNotAllowed) as caught:
        parse_upstream(url)
    assert caught.value.code == "upstream-not-allowed"
    assert caught.value.kind == "unprocessable"


def test_url_parts_and_default_ports() -> None:
    assert parse_upstream("https://Apps.SZ.gov.cn") == ("https", "apps.sz.gov.cn", 443, "/")
    assert parse_upstream("http://svc.example.com:8080/api/v1") == (
        "http",
        "svc.example.com",
        8080,
        "/api/v1",
    )
    assert parse_upstream("http://[2606:4700::1]/")[1] == "2606:4700::1"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://localhost:8080/", "http://[::1]/", "http://169.254.169.254/"],
)
async def test_loopback_and_metadata_are_refused_after_resolution(url: str) -> None:
    with pytest.raises(UpstreamNotAllowed):
        await check_upstream(url)
    with pytest.raises(UpstreamAddressRefused) as caught:
        await check_upstream(url, phase="connect")
    assert caught.value.kind == "bad_gateway"
    assert "127.0.0.1" not in caught.value.detail


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_public_literal_resolves_and_allow_list_admits_loopback_for_demos() -> None:
    upstream = await check_upstream("https://8.8.8.8/api")
    assert upstream.addresses == (ipaddress.ip_address("8.8.8.8"),)
    assert upstream.origin == "https://8.8.8.8:443"
    demo = await check_upstream(
        "http://127.0.0.1:9001/", UpstreamPolicy.from_strings(["127.0.0.0/8"]), phase="connect"
    )
    assert demo.port == 9001 and demo.addresses == (ipaddress.ip_address("127.0.0.1"),)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_unresolvable_name_is_refused() -> None:
    with pytest.raises(UpstreamNotAllowed) as caught:
        await check_upstream("https://no-such-host.invalid/")
    assert "resolve" in caught.value.detail
