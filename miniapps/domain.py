"""The mini-app platform's value objects: manifests, apps, versions, routes.

A manifest is what a unit declares for one version of its app and what a
platform reviewer approves: names, category, upstream, scopes, minimum
assurance, contact, limits. Lifecycle of a version: ``draft`` -> ``in_review``
-> ``approved`` | ``rejected`` (with reason) -> ``released``; of an app:
``draft`` (never released) -> ``released`` -> ``suspended`` | ``offline``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from identity.errors import ValidationError
from miniapps.ratelimit import Limit

CATEGORIES: dict[str, str] = {
    "hospital": "医疗挂号",
    "social-security": "社会保障",
    "provident-fund": "住房公积金",
    "traffic": "交通违法",
    "utilities": "水电燃气",
    "education": "教育",
    "business": "企业开办",
    "tax": "税务",
    "public-security": "公安服务",
    "transport": "出行",
    "housing": "住房",
    "civil-affairs": "民政",
    "community": "社区服务",
    "culture-sports": "文体旅游",
    "health": "卫生健康",
    "employment": "就业创业",
}
SCOPES = ("openid", "profile", "phone", "real_name", "id_number", "payment")
KINDS = ("service", "life")
LEVELS = {"L1": 1, "L2": 2, "L3": 3}
APP_STATUSES = ("draft", "released", "suspended", "offline")
VERSION_STATUSES = ("draft", "in_review", "approved", "rejected", "released")
ROLLBACK_DEPTH = 5  # rollback to any of the last 5 released versions

_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$")
_DISTRICT = re.compile(r"^\d{6}$")
_PHONE = re.compile(r"^\+?[0-9 -]{5,20}$")
DEFAULT_TIMEOUT_MS = 10_000
MAX_TIMEOUT_MS = 30_000
DEFAULT_APP_LIMIT = {"count": 1000, "period": 1, "burst": 1000}
DEFAULT_CITIZEN_LIMIT = {"count": 120, "period": 60, "burst": 20}


def _text(raw: dict[str, Any], name: str, max_len: int, *, required: bool = True) -> str:
    value = raw.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(name, "Must be a string.")
    value = value.strip()
    if required and not value:
        raise ValidationError(name, "This field is required.")
    if len(value) > max_len:
        raise ValidationError(name, f"At most {max_len} characters.")
    return value


def _str_list(raw: dict[str, Any], name: str, max_items: int) -> tuple[str, ...]:
    value = raw.get(name) or []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValidationError(name, "Must be a list of strings.")
    if len(value) > max_items:
        raise ValidationError(name, f"At most {max_items} entries.")
    return tuple(dict.fromkeys(x.strip() for x in value if x.strip()))


def _limit(raw: Any, name: str, default: dict[str, int]) -> dict[str, int]:
    if raw is None:
        return dict(default)
    if not isinstance(raw, dict) or set(raw) - {"count", "period", "burst"}:
        raise ValidationError(name, "Must be an object with count, period and burst.")
    out = {**default, **raw}
    for key, hi in (("count", 1_000_000), ("period", 86_400), ("burst", 1_000_000)):
        value = out[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
            raise ValidationError(f"{name}.{key}", f"Must be a whole number from 1 to {hi}.")
    return out


@dataclass(frozen=True)
class Manifest:
    name_zh: str
    name_en: str
    category: str
    kind: str
    description: str
    icon: str
    districts: tuple[str, ...]
    upstream: str
    scopes: tuple[str, ...]
    min_assurance: str
    contact: dict[str, str]
    redirect_uris: tuple[str, ...] = ()
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    app_limit: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_APP_LIMIT))
    citizen_limit: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CITIZEN_LIMIT))

    @classmethod
    def parse(cls, raw: object) -> Manifest:
        """Validate a manifest from JSON; raise ``ValidationError`` naming the field."""
        if not isinstance(raw, dict):
            raise ValidationError("manifest", "Must be a JSON object.")
        category = raw.get("category")
        if category not in CATEGORIES:
            raise ValidationError("category", f"Must be one of {', '.join(CATEGORIES)}.")
        kind = raw.get("kind", "service")
        if kind not in KINDS:
            raise ValidationError("kind", "Must be service or life.")
        districts = _str_list(raw, "districts", 20)
        if not all(_DISTRICT.match(d) for d in districts):
            raise ValidationError("districts", "Each district is a 6-digit administrative code.")
        scopes = _str_list(raw, "scopes", len(SCOPES))
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise ValidationError("scopes", f"Unknown scopes {unknown}; known: {list(SCOPES)}.")
        level = raw.get("min_assurance", "L1")
        if level not in LEVELS:
            raise ValidationError("min_assurance", "Must be L1, L2 or L3.")
        contact = raw.get("contact")
        if not isinstance(contact, dict) or not all(
            isinstance(v, str) and len(v) <= 200 for v in contact.values()
        ):
            raise ValidationError("contact", "Give an object with name, phone and/or email.")
        if not (contact.get("phone") or contact.get("email")):
            raise ValidationError("contact", "A phone number or an email is required.")
        if contact.get("phone") and not _PHONE.match(contact["phone"]):
            raise ValidationError("contact.phone", "Not a phone number.")
        redirects = _str_list(raw, "redirect_uris", 10)
        if not all(
            u.startswith(("https://", "http://127.0.0.1", "http://localhost")) for u in redirects
        ):
            raise ValidationError("redirect_uris", "Redirect URIs must use https.")
        timeout = raw.get("timeout_ms", DEFAULT_TIMEOUT_MS)
        if (
            not isinstance(timeout, int)
            or isinstance(timeout, bool)
            or not 100 <= timeout <= MAX_TIMEOUT_MS
        ):
            raise ValidationError("timeout_ms", f"Must be from 100 to {MAX_TIMEOUT_MS}.")
        limits = raw.get("rate_limit") or {}
        if not isinstance(limits, dict) or set(limits) - {"app", "citizen"}:
            raise ValidationError("rate_limit", "Must be an object with app and citizen limits.")
        return cls(
            name_zh=_text(raw, "name_zh", 60),
            name_en=_text(raw, "name_en", 120),
            category=str(category),
            kind=str(kind),
            description=_text(raw, "description", 2000, required=False),
            icon=_text(raw, "icon", 500, required=False),
            districts=districts,
            upstream=_text(raw, "upstream", 500),
            scopes=scopes or ("openid",),
            min_assurance=str(level),
            contact={k: v.strip() for k, v in contact.items() if k in ("name", "phone", "email")},
            redirect_uris=redirects,
            timeout_ms=timeout,
            app_limit=_limit(limits.get("app"), "rate_limit.app", DEFAULT_APP_LIMIT),
            citizen_limit=_limit(
                limits.get("citizen"), "rate_limit.citizen", DEFAULT_CITIZEN_LIMIT
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "category": self.category,
            "kind": self.kind,
            "description": self.description,
            "icon": self.icon,
            "districts": list(self.districts),
            "upstream": self.upstream,
            "scopes": list(self.scopes),
            "min_assurance": self.min_assurance,
            "contact": self.contact,
            "redirect_uris": list(self.redirect_uris),
            "timeout_ms": self.timeout_ms,
            "rate_limit": {"app": self.app_limit, "citizen": self.citizen_limit},
        }


def parse_version(raw: object) -> str:
    if not isinstance(raw, str) or not _VERSION.match(raw):
        raise ValidationError("version", "Use up to 32 letters, digits, '.', '+' or '-'.")
    return raw


def to_limit(spec: dict[str, int]) -> Limit:
    return Limit(count=spec["count"], period=float(spec["period"]), burst=spec.get("burst"))


@dataclass(frozen=True)
class App:
    app_id: str
    unit_id: str
    client_id: str | None
    status: str
    name_zh: str
    name_en: str
    description: str
    icon: str
    category: str
    kind: str
    districts: tuple[str, ...]
    unit_name: str
    current_version: str | None
    percent: float
    cohort: dict[str, Any] | None
    previous_version: str | None
    use_count: int
    rating_sum: float
    rating_count: int
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        rating = round(self.rating_sum / self.rating_count, 2) if self.rating_count else None
        return {
            "app_id": self.app_id,
            "unit_id": self.unit_id,
            "unit_name": self.unit_name,
            "client_id": self.client_id,
            "status": self.status,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "description": self.description,
            "icon": self.icon,
            "category": self.category,
            "category_zh": CATEGORIES.get(self.category, self.category),
            "kind": self.kind,
            "districts": list(self.districts),
            "release": {
                "version": self.current_version,
                "percent": self.percent,
                "cohort": self.cohort,
                "previous_version": self.previous_version,
            },
            "use_count": self.use_count,
            "rating": rating,
            "rating_count": self.rating_count,
        }


@dataclass(frozen=True)
class Version:
    app_id: str
    version: str
    status: str
    manifest: Manifest
    review_reason: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "version": self.version,
            "status": self.status,
            "manifest": self.manifest.to_json(),
            "review_reason": self.review_reason,
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
            "created_at": self.created_at.isoformat(),
        }
