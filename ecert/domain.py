"""Domain types of the e-certificate context: certificate types and their claim
schema, certificates, matters (duty-based lookup) and the use log.

A type's claim schema names its fields, which of them a QR presentation may
show (``qr``) and how each is masked there (``name``: surname then ``*``;
``id``: first 4 and last 4 characters; ``none``). ``name_field`` and
``id_field`` fill the two positional slots of the QR certificate claim
(see ``ecert/presentation/cwt.py``); other ``qr`` fields go to its extra map.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from identity.errors import ValidationError

MASKS = ("name", "id", "none")
STATUSES = ("valid", "revoked", "suspended")
# "minimal" fits a version-10 QR; "standard" adds every other QR field of the type.
PROFILES = ("minimal", "standard")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Short on purpose: the code is in every QR code, and the minimal profile must fit version 10.
_TYPE_CODE = re.compile(r"^[a-z][a-z0-9-]{1,5}$")


def mask_name(value: str) -> str:
    """``张三丰`` -> ``张*``: one star whatever the length keeps the QR at version 10."""
    return value[:1] + "*" if value else ""


def mask_id(value: str) -> str:
    """``440305198608126485`` -> ``4403**********6485``."""
    if len(value) <= 8:
        return value[:1] + "*" * (len(value) - 1)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask(value: str, how: str) -> str:
    if how == "name":
        return mask_name(value)
    if how == "id":
        return mask_id(value)
    return value


@dataclass(frozen=True)
class Field:
    key: str
    label_zh: str
    label_en: str
    required: bool = True
    mask: str = "none"
    qr: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "required": self.required,
            "mask": self.mask,
            "qr": self.qr,
        }


@dataclass(frozen=True)
class CertType:
    code: str
    name_zh: str
    name_en: str
    issuer_units: tuple[str, ...]  # unit codes
    fields: tuple[Field, ...]
    name_field: str
    id_field: str
    max_days: int | None  # longest validity; None: open-ended allowed
    requires_until: bool

    def field(self, key: str) -> Field | None:
        return next((f for f in self.fields if f.key == key), None)

    def schema_json(self) -> dict[str, Any]:
        return {
            "fields": [f.to_json() for f in self.fields],
            "name_field": self.name_field,
            "id_field": self.id_field,
            "validity": {"max_days": self.max_days, "requires_until": self.requires_until},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "issuer_units": list(self.issuer_units),
            **self.schema_json(),
        }

    def validate_claims(self, raw: object) -> dict[str, str]:
        """Check issued claims against the schema: known keys, text values, required present."""
        if not isinstance(raw, Mapping):
            raise ValidationError("claims", "Must be an object of text values.")
        claims: dict[str, str] = {}
        for key, value in raw.items():
            if self.field(str(key)) is None:
                raise ValidationError(f"claims.{key}", f"Not a field of type {self.code}.")
            if not isinstance(value, str) or len(value) > 200:
                raise ValidationError(f"claims.{key}", "Must be text of at most 200 characters.")
            if value.strip():
                claims[str(key)] = value.strip()
        for f in self.fields:
            if f.required and f.key not in claims:
                raise ValidationError(f"claims.{f.key}", "This field is required.")
        return claims

    def display(self, claims: Mapping[str, str], profile: str) -> tuple[str, str, dict[str, str]]:
        """The masked (name, id, extra) a QR of this profile shows."""
        name_f, id_f = self.field(self.name_field), self.field(self.id_field)
        name = mask(claims.get(self.name_field, ""), name_f.mask if name_f else "name")
        ident = mask(claims.get(self.id_field, ""), id_f.mask if id_f else "id")
        extra: dict[str, str] = {}
        if profile == "standard":
            for f in self.fields:
                if f.qr and f.key not in (self.name_field, self.id_field) and f.key in claims:
                    extra[f.key] = mask(claims[f.key], f.mask)
        return name, ident, extra


def parse_type(code: object, name_zh: object, name_en: object, schema: object) -> CertType:
    """Validate a type definition (demo seed, admin)."""
    if not isinstance(code, str) or not _TYPE_CODE.match(code):
        raise ValidationError(
            "code", "Use 2-6 lower-case letters, digits and '-' (it goes into every QR code)."
        )
    for name, value in (("name_zh", name_zh), ("name_en", name_en)):
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(name, "This field is required.")
    if not isinstance(schema, Mapping) or not isinstance(schema.get("fields"), list):
        raise ValidationError("schema", "Needs a list of fields.")
    fields: list[Field] = []
    for item in schema["fields"]:
        if not isinstance(item, Mapping) or not _KEY.match(str(item.get("key", ""))):
            raise ValidationError("schema.fields", "Each field needs a snake_case key.")
        how = item.get("mask", "none")
        if how not in MASKS:
            raise ValidationError("schema.fields", f"mask must be one of {', '.join(MASKS)}.")
        fields.append(
            Field(
                key=str(item["key"]),
                label_zh=str(item.get("label_zh", item["key"])),
                label_en=str(item.get("label_en", item["key"])),
                required=bool(item.get("required", True)),
                mask=str(how),
                qr=bool(item.get("qr", False)),
            )
        )
    keys = [f.key for f in fields]
    if len(set(keys)) != len(keys):
        raise ValidationError("schema.fields", "Field keys must be unique.")
    name_field, id_field = schema.get("name_field"), schema.get("id_field")
    if name_field not in keys or id_field not in keys:
        raise ValidationError("schema", "name_field and id_field must name fields.")
    validity = schema.get("validity") or {}
    max_days = validity.get("max_days") if isinstance(validity, Mapping) else None
    if max_days is not None and (type(max_days) is not int or max_days < 1):
        raise ValidationError("schema.validity.max_days", "Must be a positive whole number.")
    units = schema.get("issuer_units", ())
    return CertType(
        code=code,
        name_zh=str(name_zh).strip(),
        name_en=str(name_en).strip(),
        issuer_units=tuple(str(u) for u in units) if isinstance(units, list | tuple) else (),
        fields=tuple(fields),
        name_field=str(name_field),
        id_field=str(id_field),
        max_days=max_days,
        requires_until=bool(validity.get("requires_until", False))
        if isinstance(validity, Mapping)
        else False,
    )


@dataclass(frozen=True)
class Certificate:
    id: str
    type_code: str
    issuer_unit_id: str
    holder_id: str
    doc_number: str
    claims: dict[str, str]
    credential: str  # the issuer's JWS over the claims
    issuer_kid: str
    status: str  # stored status: valid / revoked / suspended
    status_reason: str | None
    valid_from: datetime
    valid_until: datetime | None
    status_list_id: int
    status_idx: int
    issued_at: datetime
    updated_at: datetime

    def effective_status(self, now: datetime | None = None) -> str:
        """``expired`` once ``valid_until`` has passed (and not revoked or suspended)."""
        now = now or datetime.now(UTC)
        if self.status == "valid" and self.valid_until is not None and self.valid_until <= now:
            return "expired"
        if self.status == "valid" and self.valid_from > now:
            return "not-yet-valid"
        return self.status


@dataclass(frozen=True)
class ScannedCertificate:
    """What a counter scan needs of the certificate its QR code names: no claims and no
    credential (the answer shows the code's own masked claims), so the scan reads neither
    column and decrypts nothing."""

    id: str
    type_code: str
    holder_id: str
    status: str
    valid_from: datetime
    valid_until: datetime | None

    effective_status = Certificate.effective_status


@dataclass(frozen=True)
class Matter:
    code: str
    name_zh: str
    name_en: str
    fields: tuple[str, ...]  # claim keys counter staff may see for this matter; "*" = all


@dataclass(frozen=True)
class Use:
    id: str
    certificate_id: str
    kind: str  # verification / service-read
    unit_id: str | None
    unit_name_zh: str | None
    unit_name_en: str | None
    client_id: str | None
    client_name: str | None
    matter_code: str | None
    result: str
    fields: tuple[str, ...]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "unit": None
            if self.unit_id is None
            else {"id": self.unit_id, "name_zh": self.unit_name_zh, "name_en": self.unit_name_en},
            "client": None
            if self.client_id is None
            else {"id": self.client_id, "name": self.client_name},
            "matter_code": self.matter_code,
            "result": self.result,
            "fields": list(self.fields),
            "at": self.created_at.isoformat(),
        }


def parse_time(field: str, value: object, default: datetime | None = None) -> datetime | None:
    """An ISO 8601 date or date-time (UTC if no offset); None / "" gives ``default``."""
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ValidationError(field, "Must be an ISO 8601 date or date-time.")
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(field, "Must be an ISO 8601 date or date-time.") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
