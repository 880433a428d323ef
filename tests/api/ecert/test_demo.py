"""``superapp demo`` seeds the certificate types and the citizen's resident ID,
and the demo clerk can verify the demo citizen's e-ID."""

from __future__ import annotations

import pytest

from server.demo.seed import seed
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_demo_citizen_shows_e_id_to_demo_clerk(api: Api) -> None:
    demo = await seed(api.services)
    again = await seed(api.services)  # idempotent
    citizen = demo["accounts"]["citizen"]
    cert_id = citizen["certificates"]["resident_id"]
    assert again["accounts"]["citizen"]["certificates"]["resident_id"] == cert_id
    assert demo["ecert"]["types"] >= 20
    types = (await api.get("/api/v1/ecert/types")).json()["types"]
    assert {"eid", "dl", "vl", "hhr", "rp", "ssc", "mic", "mc", "bc", "bl", "deg", "hpf"} <= {
        t["code"] for t in types
    }
    citizen_token = (await api.sign_in(citizen["phone"]))["access_token"]
    clerk = demo["accounts"]["counter_staff"]
    assert clerk["unit_id"]
    clerk_token = (await api.sign_in(clerk["phone"]))["access_token"]
    resp = await api.post(
        f"/api/v1/ecert/wallet/{cert_id}/qr", token=citizen_token, json={"profile": "minimal"}
    )
    assert resp.status_code == 200, resp.text
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=clerk_token,
        json={"qr_text": resp.json()["qr_text"], "matter_code": "hotel-check-in"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["claims"] == {"name": "林*", "id_number": "4403**********6485"}
    assert resp.json()["type"] == "eid"
