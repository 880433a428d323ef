"""What a real-name binding is: the verified identity held on an account.

The name and the ID number are personal data: the dataclass keeps them out of
``repr`` so that a logged or raised object never shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from identity.verification.masking import mask_id_number, mask_name


@dataclass(frozen=True)
class RealNameStatus:
    """An account's assurance level and, once verified (L2+), its bound identity."""

    account_id: str
    assurance_level: int
    name: str | None = field(default=None, repr=False)
    id_number: str | None = field(default=None, repr=False)
    id_number_index: bytes | None = field(default=None, repr=False)
    birth_date: date | None = field(default=None, repr=False)
    region_code: str | None = field(default=None, repr=False)
    real_name_at: datetime | None = None
    face_at: datetime | None = None

    @property
    def verified(self) -> bool:
        return self.id_number is not None

    @property
    def masked_name(self) -> str | None:
        return mask_name(self.name) if self.name is not None else None

    @property
    def masked_id_number(self) -> str | None:
        return mask_id_number(self.id_number) if self.id_number is not None else None
