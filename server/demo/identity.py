"""Demo identities: the demo citizen is real-name verified (L2) with a person of
the population-registry simulator whose ID photo exists, so face verification
(L3) can be tried with ``skimage.data.astronaut()``; the persons no account has
bound are listed so that a new account can try real-name verification."""

from __future__ import annotations

from typing import Any

from identity.errors import DomainError
from server.bootstrap import Services
from server.sims.registry import persons

# The astronaut photo (Eileen Collins, scikit-image's sample) is this person's ID photo.
CITIZEN_PERSON = "林嘉怡"


async def seed_identity(svc: Services, accounts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Bind the demo citizen (idempotent); return the ``registry`` section of the demo JSON."""
    citizen = accounts["citizen"]
    person = next(p for p in persons() if p.name == CITIZEN_PERSON)
    try:
        status = await svc.realname.bind_verified_identity(
            citizen["sub"], person.name, person.id_number, source="demo"
        )
    except DomainError:
        # The citizen or the number is bound otherwise (someone used the demo database).
        status = await svc.realname.status(citizen["sub"])
    citizen["assurance_level"] = f"L{status.assurance_level}"
    if status.verified:
        citizen["real_name"] = {"name": status.masked_name, "id_number": status.masked_id_number}
        citizen["face_photo"] = "skimage.data.astronaut()"
    free = []
    for p in persons():
        if await svc.realname.account_by_id_number(p.id_number) is None:
            free.append(
                {
                    "name": p.name,
                    "id_number": p.id_number,
                    "phone": p.phone,
                    "has_photo": p.photo is not None,
                }
            )
    return {"persons": free, "url": svc.settings.registry_url}
