"""Real-name (L2) and face (L3) verification of the signed-in citizen.

After a 200 the assurance level in the database has changed; the client
refreshes its access token (grant_type=refresh_token) to get the new ``acr``.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from identity.errors import ValidationError
from identity.verification.domain import RealNameStatus
from identity.verification.images import MAX_IMAGE_BYTES
from server.http import BaseHandler, route
from server.openapi import NULLABLE_STR, STR, obj, op

# Multipart framing around a 5 MiB image; the image itself is capped at 5 MiB (422 above).
FACE_MAX_BODY = MAX_IMAGE_BYTES + 64 * 1024
IMAGE_TYPES = ("image/jpeg", "image/png")
LEVEL: dict[str, Any] = {"enum": ["L1", "L2", "L3"]}

STATUS = obj(
    ["assurance_level", "verified", "name", "id_number", "real_name_at", "face_at"],
    assurance_level=LEVEL,
    verified={"type": "boolean"},
    name={**NULLABLE_STR, "description": "masked: *三丰"},
    id_number={**NULLABLE_STR, "description": "masked: 4403**********1234"},
    real_name_at=NULLABLE_STR,
    face_at=NULLABLE_STR,
)
FACE_RESULT = obj(
    ["assurance_level", "score", "threshold", "face_at"],
    assurance_level=LEVEL,
    score={"type": "number", "description": "face distance: lower is more alike"},
    threshold={"type": "number", "description": "same person when score < threshold"},
    face_at=STR,
)


def status_json(s: RealNameStatus) -> dict[str, Any]:
    return {
        "assurance_level": f"L{s.assurance_level}",
        "verified": s.verified,
        "name": s.masked_name,
        "id_number": s.masked_id_number,
        "real_name_at": s.real_name_at.isoformat() if s.real_name_at else None,
        "face_at": s.face_at.isoformat() if s.face_at else None,
    }


class RealNameHandler(BaseHandler):
    openapi = {
        "get": op(
            "My real-name status: level, masked name and ID number, verification times",
            tag="identity",
            response=STATUS,
            auth="user",
            errors=(401,),
        ),
        "post": op(
            "Verify my real name against the population registry (L1 -> L2)",
            tag="identity",
            request=obj(["name", "id_number"], name=STR, id_number=STR),
            response=STATUS,
            auth="user",
            errors=(401, 409, 422, 429, 502, 503),
        ),
    }

    async def get(self) -> None:
        who = self.require_user()
        self.send_json(status_json(await self.svc.realname.status(who.sub)))

    async def post(self) -> None:
        who = self.require_user()
        body = self.json_body()
        status = await self.svc.realname.verify_real_name(
            who, body.get("name"), body.get("id_number"), self.client_ip
        )
        self.send_json(status_json(status))


def _face_operation() -> dict[str, Any]:
    operation = op(
        "Verify my face against my ID photo (L2 -> L3): multipart field 'image', "
        "or a raw image/jpeg or image/png body of at most 5 MiB",
        tag="identity",
        request=obj(["image"], image={"type": "string", "format": "binary"}),
        request_type="multipart/form-data",
        response=FACE_RESULT,
        auth="user",
        errors=(401, 403, 413, 415, 422, 429, 502, 503),
    )
    binary = {"schema": {"type": "string", "format": "binary"}}
    operation["requestBody"]["content"].update({t: binary for t in IMAGE_TYPES})
    return operation


class FaceHandler(BaseHandler):
    max_body = FACE_MAX_BODY
    openapi = {"post": _face_operation()}

    async def post(self) -> None:
        who = self.require_user()
        status, match = await self.svc.realname.verify_face(who, self._image(), self.client_ip)
        self.send_json(
            {
                "assurance_level": f"L{status.assurance_level}",
                "score": match.score,
                "threshold": match.threshold,
                "face_at": status.face_at.isoformat() if status.face_at else None,
            }
        )

    def _image(self) -> bytes:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype in IMAGE_TYPES:
            return self.body()
        if ctype == "multipart/form-data":
            _, files = self.form_body()
            uploads = files.get("image") or []
            if not uploads:
                raise ValidationError("image", "Send the photo in a file field named 'image'.")
            return bytes(uploads[0]["body"])
        raise tornado.web.HTTPError(
            415, "Send the photo as multipart/form-data (field 'image'), image/jpeg or image/png."
        )


ROUTES = [
    route("/api/v1/identity/me/real-name", RealNameHandler),
    route("/api/v1/identity/me/face", FaceHandler),
]
