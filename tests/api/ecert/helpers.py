"""Helpers of the e-certificate API tests: a world of unit, type, issuer, citizen and clerk."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from tests.support import Api, random_phone

MATTER_ALL = "t-all"
MATTER_NAME = "t-name-only"


@dataclass
class World:
    unit_id: str
    unit_code: str
    type_code: str
    issuer_token: str
    citizen_sub: str
    citizen_token: str
    clerk_token: str
    clerk_unit: str

    def issue_body(self, **over: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_code,
            "doc_number": "DOC-" + secrets.token_hex(6),
            "holder_sub": self.citizen_sub,
            "claims": {
                "name": "林嘉怡",
                "id_number": "440305198608126485",
                "birth_date": "1986-08-12",
            },
            "valid_until": "2035-01-01",
        }
        body.update(over)
        return body


async def make_world(api: Api) -> World:
    svc = api.services
    unit_id = await api.unit()
    unit_code = await svc.pool.fetchval("SELECT code FROM units WHERE id = $1", unit_id)
    type_code = "t" + secrets.token_hex(3)[:5]
    await svc.certificates.upsert_type(
        type_code,
        "测试证",
        "Test certificate",
        {
            "fields": [
                {"key": "name", "label_zh": "姓名", "label_en": "Name", "mask": "name", "qr": True},
                {"key": "id_number", "mask": "id", "qr": True},
                {"key": "birth_date", "qr": True},
                {"key": "address", "required": False},
            ],
            "name_field": "name",
            "id_field": "id_number",
            "validity": {"max_days": 20 * 366},
            "issuer_units": [unit_code],
        },
    )
    await svc.certificates.upsert_matter(MATTER_ALL, "全部", "All", ("*",))
    await svc.certificates.upsert_matter(MATTER_NAME, "仅姓名", "Name only", ("name",))
    _, issuer_token = await api.staff("issuer", unit_id)
    clerk_unit = await api.unit()
    _, clerk_token = await api.staff("counter-staff", clerk_unit)
    phone = random_phone()
    tokens = await api.sign_in(phone)
    me = await api.get("/api/v1/identity/me", token=tokens["access_token"])
    return World(
        unit_id=unit_id,
        unit_code=unit_code,
        type_code=type_code,
        issuer_token=issuer_token,
        citizen_sub=me.json()["sub"],
        citizen_token=tokens["access_token"],
        clerk_token=clerk_token,
        clerk_unit=clerk_unit,
    )


async def issue(api: Api, w: World, **over: Any) -> dict[str, Any]:
    resp = await api.post(
        "/api/v1/ecert/certificates", token=w.issuer_token, json=w.issue_body(**over)
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def qr(api: Api, w: World, cert_id: str, profile: str = "minimal") -> dict[str, Any]:
    resp = await api.post(
        f"/api/v1/ecert/wallet/{cert_id}/qr", token=w.citizen_token, json={"profile": profile}
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def verify(api: Api, w: World, text: str, matter: str = MATTER_ALL) -> Any:
    return await api.post(
        "/api/v1/ecert/verify", token=w.clerk_token, json={"qr_text": text, "matter_code": matter}
    )
