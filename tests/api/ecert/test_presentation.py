"""The holder's QR code: who may get one, its images, its size, and every way
a scanned text can be refused at the counter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecert.presentation.cwt import StatusRef, encode_presentation, parse_unverified
from ecert.presentation.keys import kid_bytes
from ecert.presentation.qr import qr_version
from ecert.presenting import Presentations
from identity.keys import generate
from tests.api.ecert.helpers import World, issue, qr, verify
from tests.support import Api, random_phone

pytestmark = pytest.mark.asyncio


async def test_wallet_is_private_to_the_holder(api: Api, world: World) -> None:
    cert = await issue(api, world)
    mine = await api.get("/api/v1/ecert/wallet", token=world.citizen_token)
    assert [c["id"] for c in mine.json()["certificates"]] == [cert["id"]]
    assert mine.json()["certificates"][0]["type_name_en"] == "Test certificate"
    one = await api.get(f"/api/v1/ecert/wallet/{cert['id']}", token=world.citizen_token)
    assert one.json()["claims"]["id_number"] == "440305198608126485"
    other = (await api.sign_in(random_phone()))["access_token"]
    for path in ("", "/uses"):
        resp = await api.get(f"/api/v1/ecert/wallet/{cert['id']}{path}", token=other)
        assert resp.status_code == 404 and resp.json()["code"] == "certificate-not-found"
    resp = await api.post(f"/api/v1/ecert/wallet/{cert['id']}/qr", token=other, json={})
    assert resp.status_code == 404
    assert (await api.get("/api/v1/ecert/wallet", token=other)).json()["certificates"] == []
    assert (await api.get("/api/v1/ecert/wallet")).status_code == 401


async def test_qr_text_and_images(api: Api, world: World) -> None:
    cert = await issue(api, world)
    code = await qr(api, world, cert["id"])
    expires = datetime.fromisoformat(code["expires_at"])
    assert timedelta(seconds=55) < expires - datetime.now(UTC) <= timedelta(seconds=60)
    png = await api.client.get(code["png_url"])
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = await api.client.get(code["svg_url"])
    assert svg.status_code == 200 and "<svg" in svg.text
    missing = await api.get("/api/v1/ecert/qr-images/" + "A" * 24 + ".png")
    assert missing.status_code == 404
    bad = await api.post(
        f"/api/v1/ecert/wallet/{cert['id']}/qr", token=world.citizen_token, json={"profile": "x"}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "unknown-profile"
    # Signed by the platform presentation key, published in the JWKS, raw kid bytes.
    msg = parse_unverified(code["qr_text"])
    jwks = (await api.get("/.well-known/jwks.json")).json()
    assert msg.kid in {kid_bytes(k["kid"]) for k in jwks["keys"]}


async def test_minimal_profile_fits_version_10_with_a_short_public_url(
    api: Api, world: World
) -> None:
    svc = api.services
    await svc.certificates.upsert_type(
        "eid",
        "居民身份证",
        "Resident identity card",
        {
            "fields": [
                {"key": "name", "mask": "name", "qr": True},
                {"key": "id_number", "mask": "id", "qr": True},
            ],
            "name_field": "name",
            "id_field": "id_number",
            "issuer_units": [world.unit_code],
        },
    )
    cert = await issue(
        api, world, type="eid", claims={"name": "欧阳娜娜", "id_number": "44030519860812648X"}
    )
    p = svc.presentations
    short = Presentations(
        p.pool,
        p.redis,
        p.repo,
        p.issuers,
        p.certificates,
        p.tokens,
        p.orgs,
        base_url="https://sz.gov.cn",
        qr_ttl=60,
    )
    issued = await short.issue_qr(world.citizen_sub, cert["id"], "minimal")
    assert qr_version(issued.qr_text) <= 10, len(issued.qr_text)


async def test_a_not_valid_issuer_signature_blocks_the_qr(api: Api, world: World) -> None:
    cert = await issue(api, world)
    other = await issue(api, world)
    svc = api.services
    # Swap in another certificate's (genuine) credential: it does not sign these claims.
    await svc.pool.execute(
        """UPDATE ecert_certificates SET credential_enc =
             (SELECT credential_enc FROM ecert_certificates WHERE id = $2) WHERE id = $1""",
        cert["id"],
        other["id"],
    )
    resp = await api.post(
        f"/api/v1/ecert/wallet/{cert['id']}/qr", token=world.citizen_token, json={}
    )
    assert resp.status_code == 409 and resp.json()["code"] == "issuer-signature-invalid"


async def test_decode_errors_each_have_their_code(api: Api, world: World) -> None:
    cert = await issue(api, world)
    good = (await qr(api, world, cert["id"]))["qr_text"]
    now = datetime.now(UTC)
    ring = api.services.tokens.ring.active
    stranger = generate("ES256")

    def sign(key: object, kid: bytes, **times: datetime) -> str:
        return encode_presentation(
            key,  # type: ignore[arg-type]
            kid,
            cert_type=world.type_code,
            masked_name="林*",
            masked_id="4403**********6485",
            issued_at=times.get("iat", now),
            expires_at=times.get("exp", now + timedelta(seconds=60)),
            status=StatusRef(0, "https://elsewhere.example/sl/1"),
        )

    cases = {
        "HC1:" + good[4:]: "qr-bad-prefix",
        "SZ1:" + "::::": "qr-bad-encoding",
        "SZ1:" + "0" * 30: "qr-malformed",
        sign(stranger, b"unknown!"): "qr-unknown-key",
        sign(stranger, kid_bytes(ring.kid)): "qr-bad-signature",
        sign(
            ring.private_key,
            kid_bytes(ring.kid),
            iat=now - timedelta(seconds=300),
            exp=now - timedelta(seconds=240),
        ): "qr-expired",
        sign(
            ring.private_key,
            kid_bytes(ring.kid),
            iat=now + timedelta(seconds=300),
            exp=now + timedelta(seconds=360),
        ): "qr-not-yet-valid",
        # Genuine signature, but the status reference names no certificate of ours.
        sign(ring.private_key, kid_bytes(ring.kid)): "qr-malformed",
    }
    for text, code in cases.items():
        resp = await verify(api, world, text)
        assert resp.status_code in (410, 422), (code, resp.text)
        assert resp.json()["code"] == code, (code, resp.json())
    # None of them used the good code up.
    assert (await verify(api, world, good)).status_code == 200


async def test_expired_qr_is_logged_for_the_holder(api: Api, world: World) -> None:
    cert = await issue(api, world)
    svc = api.services
    stored = await svc.certificates.own(world.citizen_sub, cert["id"])
    ring = svc.tokens.ring.active
    now = datetime.now(UTC)
    text = encode_presentation(
        ring.private_key,  # type: ignore[arg-type]
        kid_bytes(ring.kid),
        cert_type=world.type_code,
        masked_name="林*",
        masked_id="4403**********6485",
        issued_at=now - timedelta(seconds=200),
        expires_at=now - timedelta(seconds=140),
        status=StatusRef(stored.status_idx, svc.presentations.status_uri(stored.status_list_id)),
    )
    resp = await verify(api, world, text)
    assert resp.json()["code"] == "qr-expired"
    uses = await api.get(f"/api/v1/ecert/wallet/{cert['id']}/uses", token=world.citizen_token)
    assert [u["result"] for u in uses.json()["uses"]] == ["qr-expired"]


async def test_only_counter_staff_verify_and_matter_is_required(api: Api, world: World) -> None:
    cert = await issue(api, world)
    text = (await qr(api, world, cert["id"]))["qr_text"]
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=world.citizen_token,
        json={"qr_text": text, "matter_code": "t-all"},
    )
    assert resp.status_code == 422  # no counter role: for which unit?
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=world.citizen_token,
        json={"qr_text": text, "matter_code": "t-all", "unit_id": world.clerk_unit},
    )
    assert resp.status_code == 403
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=world.issuer_token,
        json={"qr_text": text, "matter_code": "t-all", "unit_id": world.unit_id},
    )
    assert resp.status_code == 403  # issuers are not counter staff
    resp = await verify(api, world, text, matter="no-such-matter")
    assert resp.status_code == 422 and resp.json()["code"] == "unknown-matter"
    assert (await verify(api, world, text)).status_code == 200  # still unused


async def test_pages_and_their_scripts_are_served_without_a_cdn(api: Api) -> None:
    for path in ("/ecert/verifier", "/ecert/wallet"):
        resp = await api.get(path)
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
        assert "https://" not in resp.text and "http://" not in resp.text.replace(
            "http://www.w3.org", ""
        )
    assert "BarcodeDetector" in (await api.get("/ecert/verifier")).text
    for asset in ("common.js", "vendor/jsQR.js"):
        assert (await api.get(f"/ecert/assets/{asset}")).status_code == 200
    assert (await api.get("/ecert/assets/../../settings.py")).status_code == 404
