"""The 18-digit PRC citizen identity number (GB 11643-1999).

Layout: 6-digit address code (GB/T 2260 region), 8-digit birth date YYYYMMDD,
3-digit sequence whose last digit is odd for men and even for women, and an
ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X`` for ten).

``parse_resident_id`` is what real-name verification (assurance L2) calls
before asking the population registry: it catches typing mistakes locally, so
the registry (which is slow and billed per call) only sees plausible numbers.
Passing here proves nothing about the person: only the registry can say that.

The region check accepts every province-level prefix of GB/T 2260 plus 83
(residence permits of Taiwan residents use 830000) and does not require the
full county table: old numbers carry city-level codes such as 440300
(Shenzhen), and county codes change every year.

Masking helpers live in :mod:`identity.verification.masking` and are
re-exported here.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum

from identity.errors import ValidationError
from identity.verification.masking import mask_id_number, mask_name

__all__ = [
    "ResidentId",
    "Sex",
    "generate_resident_id",
    "mask_id_number",
    "mask_name",
    "parse_resident_id",
    "check_character",
]

FIELD = "id_number"

# ISO 7064 MOD 11-2 weights 2^(17-i) mod 11 for positions i = 0..16 (left to right).
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Check character indexed by (weighted sum mod 11), as tabulated in GB 11643-1999.
_CHECK = "10X98765432"

# Province-level prefixes of GB/T 2260 (11 Beijing ... 65 Xinjiang, 71 Taiwan,
# 81 Hong Kong, 82 Macao) and 83 for Taiwan residents' residence permits.
PROVINCE_PREFIXES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82", "83",
    }
)  # fmt: skip

# [0-9] and not \d: \d also matches Arabic-Indic and other Unicode digits.
_FORMAT = re.compile(r"[0-9]{17}[0-9X]")
_FIRST_GENERATION = re.compile(r"[0-9]{15}")

EARLIEST_BIRTH_DATE = date(1900, 1, 1)
# Birth dates are Beijing dates; China has used UTC+8 without daylight saving since 1991.
_CHINA_STANDARD_TIME = timezone(timedelta(hours=8))


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True, slots=True, repr=False)
class ResidentId:
    """A syntactically valid resident ID number and what it encodes."""

    number: str  # normalised: 18 ASCII characters, upper-case X
    region_code: str  # the 6-digit GB/T 2260 address code
    birth_date: date
    sex: Sex

    @property
    def masked(self) -> str:
        return mask_id_number(self.number)

    def __repr__(self) -> str:
        # The full number is personal data: keep it out of logs and tracebacks.
        return f"ResidentId({self.masked!r})"

    __str__ = __repr__


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for 17 ASCII digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected 17 ASCII digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def beijing_today() -> date:
    return datetime.now(_CHINA_STANDARD_TIME).date()


def parse_resident_id(raw: object, *, today: date | None = None) -> ResidentId:
    """Validate and parse an 18-digit resident ID number.

    Accepts full-width characters (common from Chinese input methods) and a
    lower-case ``x``. Raises :class:`ValidationError` on field ``id_number``
    with a detail that says what is wrong, never echoing the number.
    """
    if not isinstance(raw, str):
        raise ValidationError(FIELD, "The ID number must be a string.")
    number = unicodedata.normalize("NFKC", raw).strip().upper()
    if _FIRST_GENERATION.fullmatch(number):
        raise ValidationError(
            FIELD,
            "15-digit first-generation ID numbers are no longer valid; enter the 18-digit number.",
        )
    if not _FORMAT.fullmatch(number):
        raise ValidationError(
            FIELD, "The ID number must be 17 digits followed by a digit or X (18 characters)."
        )
    if check_character(number[:17]) != number[17]:
        raise ValidationError(
            FIELD, "The check digit does not match: a digit was probably mistyped."
        )
    region_code = number[:6]
    if region_code[:2] not in PROVINCE_PREFIXES:
        raise ValidationError(FIELD, "The ID number does not start with a known region code.")
    birth_date = _birth_date(number[6:14], today or beijing_today())
    sex = Sex.MALE if int(number[16]) % 2 == 1 else Sex.FEMALE
    return ResidentId(number=number, region_code=region_code, birth_date=birth_date, sex=sex)


def _birth_date(yyyymmdd: str, today: date) -> date:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        raise ValidationError(
            FIELD, "The birth date in the ID number is not a real date."
        ) from None
    if born > today:
        raise ValidationError(FIELD, "The birth date in the ID number is in the future.")
    if born < EARLIEST_BIRTH_DATE:
        raise ValidationError(FIELD, "The birth date in the ID number is before 1900.")
    return born


def generate_resident_id(
    rng: random.Random | None = None,
    *,
    region_code: str = "440305",
    birth_date: date | None = None,
    sex: Sex | None = None,
) -> str:
    """A valid, made-up resident ID number for tests and demo data.

    Defaults to Shenzhen Nanshan (440305) and a birth date between 1950 and
    2005. Pass a seeded ``random.Random`` for reproducible numbers.
    """
    rng = rng or random.Random()  # noqa: S311 - demo data, not a secret
    if not re.fullmatch(r"[0-9]{6}", region_code) or region_code[:2] not in PROVINCE_PREFIXES:
        raise ValueError("region_code must be 6 digits with a known province prefix")
    if birth_date is None:
        first, last = date(1950, 1, 1).toordinal(), date(2005, 12, 31).toordinal()
        birth_date = date.fromordinal(rng.randint(first, last))
    if sex is None:
        sex = rng.choice((Sex.MALE, Sex.FEMALE))
    sex_digit = rng.choice("13579" if sex is Sex.MALE else "02468")
    first17 = f"{region_code}{birth_date:%Y%m%d}{rng.randint(0, 99):02d}{sex_digit}"
    return first17 + check_character(first17)
